"""kexue.testing.dispatch.DispatchContract passes on a module that keeps the contract and fails
on each way of breaking it (the suites of vq and flows run it on their real ``_dispatch``)."""

from __future__ import annotations

import inspect
import textwrap
import types

import pytest

from kexue.testing.dispatch import DispatchContract

# A minimal module keeping the contract of CONTRIBUTING's "Adding a kernel".
SOURCE = textwrap.dedent(
    """
    import os

    _ENV = "KEXUE_FAKEKERNELS_BACKEND"
    _PACKAGE = "fakekernels"
    _CHOICES = ("auto", "triton", "torch")


    def _triton_import_error():
        return "ImportError: no module named 'triton'"


    def triton_available():
        return _triton_import_error() is None


    def resolve_backend(backend, *tensors):
        if backend not in _CHOICES:
            raise ValueError(f"backend must be one of {_CHOICES}, got {backend!r}")
        if backend == "auto":
            env = os.environ.get(_ENV, "auto").strip().lower() or "auto"
            if env not in _CHOICES:
                raise ValueError(f"{_ENV} must be one of {_CHOICES}, got {env!r}")
            backend = env
            if backend == "auto":
                on_cuda = bool(tensors) and all(t.is_cuda for t in tensors)
                return "triton" if on_cuda and triton_available() else "torch"
        if backend == "torch":
            return "torch"
        err = _triton_import_error()
        if err is not None:
            raise RuntimeError(f"{_PACKAGE}: backend='triton' requested but triton cannot be imported ({err})")
        interpreting = os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")
        if not interpreting and not all(t.is_cuda for t in tensors):
            devices = ", ".join(sorted({str(t.device) for t in tensors}))
            raise RuntimeError(f"{_PACKAGE}: backend='triton' requested but the inputs are on {devices}; need CUDA")
        return "triton"
    """
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
        "if not interpreting and",
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
