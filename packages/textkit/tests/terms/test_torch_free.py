"""kexue.textkit.terms and the kexue-terms console script never import torch (fresh interpreters)."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import kexue.textkit.terms as terms

MODULES = ["kexue.textkit.terms"] + [
    f"kexue.textkit.terms.{m.name}" for m in pkgutil.iter_modules(terms.__path__)
]


def _imported(stderr: str) -> set[str]:
    """Module names from ``python -X importtime`` output."""
    names = set()
    for line in stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip())
    return names


def test_every_terms_module_and_name_imports_without_torch(run_python) -> None:
    assert "kexue.textkit.terms.cli" in MODULES and "kexue.textkit.terms._workers" in MODULES
    code = (
        "import importlib, sys\n"
        f"for m in {MODULES!r}:\n"
        "    importlib.import_module(m)\n"
        "import kexue.textkit.terms as t\n"
        "for n in t.__all__:\n"
        "    getattr(t, n)\n"
        "bad = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))\n"
        "assert not bad, bad\n"
        "print('ok', len(t.__all__))\n"
    )
    res = run_python(code, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["ok", str(len(terms.__all__))]


def test_import_of_the_package_is_lazy(run_python) -> None:
    code = (
        "import sys, kexue.textkit.terms, kexue.textkit.terms.cli\n"
        "print(sorted(m for m in sys.modules if m.startswith(('numpy', 'torch', "
        "'kexue.textkit.terms.'))))\n"
    )
    res = run_python(code, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == str(
        ["kexue.textkit.terms._atomic", "kexue.textkit.terms._cli_io", "kexue.textkit.terms.cli"]
    )


@pytest.mark.parametrize(
    "argv",
    [["--help"], ["discover", "{corpus}", "-q"], ["count", "{corpus}", "-o", "{table}", "-q"]],
    ids=["help", "discover", "count"],
)
def test_console_script_never_imports_torch(
    tmp_path: Path, argv: list[str], kexue_terms: str
) -> None:
    corpus = tmp_path / "c.txt"
    corpus.write_text("变压器和输电线路。\n继电保护与电网调度。\n" * 50, encoding="utf-8")
    args = [a.format(corpus=corpus, table=tmp_path / "t.npz") for a in argv]
    res = subprocess.run(
        [sys.executable, "-X", "importtime", kexue_terms, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    names = _imported(res.stderr)
    assert "kexue.textkit.terms.cli" in names  # the trace is real
    assert not {n for n in names if n == "torch" or n.startswith("torch.")}
    if argv == ["--help"]:  # --help loads neither numpy nor the algorithms
        assert "usage: kexue-terms" in res.stdout
        assert "numpy" not in names and "kexue.textkit.terms.discovery" not in names
    else:
        assert "numpy" in names
