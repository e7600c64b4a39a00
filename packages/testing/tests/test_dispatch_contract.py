"""kexue.testing.dispatch.DispatchContract passes on a module that keeps the contract and fails
on each way of breaking it (the suites of vq and flows run it on their real ``_dispatch``)."""

from __future__ import annotations

import inspect
import re
import types
from pathlib import Path

import pytest

from kexue.testing.dispatch import DispatchContract

# The contract is checked against a real ``_dispatch.py`` of the workspace (read as text, never
# imported: this package depends on no kexue runtime package), renamed to a package of its own.
PACKAGES = Path(__file__).resolve().parents[2]
DISPATCH = next(iter(sorted(PACKAGES.glob("*/src/kexue/*/_dispatch.py"))), None)
if DISPATCH is None:  # the wheel check runs these tests away from the workspace
    pytest.skip("no packages/*/src/kexue/*/_dispatch.py beside this test", allow_module_level=True)
SOURCE = re.sub(
    r'^_ENV = "KEXUE_[A-Z_]+_BACKEND"$',
    '_ENV = "KEXUE_FAKEKERNELS_BACKEND"',
    DISPATCH.read_text(encoding="utf-8"),
    count=1,
    flags=re.M,
)

MUTANTS = {
    "wrong variable": (
        '_ENV = "KEXUE_FAKEKERNELS_BACKEND"',
        '_ENV = "KEXUE_BACKEND"',
        {
            "test_the_environment_variable_is_the_package_one",
            "test_unknown_names_raise",
            "test_forced_triton_without_triton_names_the_package",  # the variable forcing triton
        },
    ),
    "variable overrides a forced backend": (
        'if backend == "auto":\n        env = ',
        "if True:\n        env = ",
        {
            "test_unknown_names_raise",  # a bad variable breaks backend="torch"
            "test_forced_triton_without_triton_names_the_package",  # "triton" becomes "auto"
            "test_forced_triton_on_cpu_needs_the_interpreter",
        },
    ),
    "silent fallback when triton is missing": (
        "if err is not None:\n        raise",
        "if err is not None:\n        return 'torch'\n        raise",
        {"test_forced_triton_without_triton_names_the_package"},
    ),
    "forced triton on cpu without the interpreter": (
        "if not _interpreting() and",
        "if False and",
        {"test_forced_triton_on_cpu_needs_the_interpreter"},
    ),
}


def _module(source: str) -> types.ModuleType:
    module = types.ModuleType("fakekernels._dispatch")
    exec(compile(source, "fakekernels/_dispatch.py", "exec"), module.__dict__)
    return module


def _failures(module: types.ModuleType) -> set[str]:
    """Run every contract test on ``module`` (a fresh MonkeyPatch each), return those failing."""
    contract = type("Contract", (DispatchContract,), {"module": module})()
    failed = set()
    for name, method in inspect.getmembers(contract, inspect.ismethod):
        if not name.startswith("test_"):
            continue
        with pytest.MonkeyPatch.context() as mp:
            mp.delenv(contract.env, raising=False)
            try:
                method(mp) if "monkeypatch" in inspect.signature(method).parameters else method()
            except (AssertionError, pytest.fail.Exception, ValueError, RuntimeError):
                failed.add(name)
    return failed


def test_names_come_from_the_module() -> None:
    assert SOURCE.count('_ENV = "KEXUE_FAKEKERNELS_BACKEND"') == 1
    contract = type("Contract", (DispatchContract,), {"module": _module(SOURCE)})()
    assert (contract.package, contract.env) == ("fakekernels", "KEXUE_FAKEKERNELS_BACKEND")


def test_a_module_keeping_the_contract_passes_all_six() -> None:
    names = [n for n in dir(DispatchContract) if n.startswith("test_")]
    assert len(names) == 6
    assert _failures(_module(SOURCE)) == set()


@pytest.mark.parametrize("mutant", sorted(MUTANTS))
def test_each_broken_rule_fails_its_test(mutant: str) -> None:
    old, new, expected = MUTANTS[mutant]
    assert SOURCE.count(old) == 1
    assert _failures(_module(SOURCE.replace(old, new))) == expected
