"""Workspace rules on each package's source: no import cycle, no module over ~500 lines, one
dispatch pattern, kernel files named `_kernels/triton_<op>.py`.

The graph counts function-level imports and package ``__init__`` effects (see
``kexue.testing.import_graph``), so a cycle cannot hide behind an import inside a function.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kexue.testing.import_graph import find_cycle, import_graph, long_modules

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = sorted(p.parent for p in ROOT.glob("packages/*/src/kexue/*/__about__.py"))
MAX_LINES = 500


def _name(src: Path) -> str:
    return f"kexue.{src.name}"


def test_every_package_is_seen() -> None:
    assert {p.name for p in PACKAGES} >= {"gan_losses", "flows", "vq", "textkit", "keras_compat"}


@pytest.mark.parametrize("src", PACKAGES, ids=lambda p: p.name)
def test_no_import_cycle(src: Path) -> None:
    graph = import_graph(src, _name(src))
    assert sum(len(v) for v in graph.values()) > 0, "empty graph: the parser found no imports"
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


@pytest.mark.parametrize("src", PACKAGES, ids=lambda p: p.name)
def test_no_module_over_the_size_limit(src: Path) -> None:
    assert long_modules(src, MAX_LINES) == {}


def test_cycle_finder_finds_a_function_level_cycle(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .b import g\n\ndef f():\n    return g()\n")
    (pkg / "b.py").write_text("def g():\n    from .a import f\n    return f\n")
    (pkg / "c.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .a import f\n"
    )
    graph = import_graph(pkg, "kexue.pkg")
    assert graph["kexue.pkg.c"] == set()
    assert find_cycle(graph) in (
        ["kexue.pkg.a", "kexue.pkg.b", "kexue.pkg.a"],
        ["kexue.pkg.b", "kexue.pkg.a", "kexue.pkg.b"],
    )


def test_package_init_edges_count(tmp_path: Path) -> None:
    # x/__init__ imports x.m, which imports y.n; y/__init__ imports y.k, which imports x.m:
    # importing y.n runs y/__init__, so x -> x.m -> y -> y.k -> x is a cycle
    pkg = tmp_path / "pkg"
    for sub in ("x", "y"):
        (pkg / sub).mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "x" / "__init__.py").write_text("from .m import M\n")
    (pkg / "x" / "m.py").write_text("from ..y.n import N\nM = 1\n")
    (pkg / "y" / "__init__.py").write_text("from .k import K\n")
    (pkg / "y" / "n.py").write_text("N = 1\n")
    (pkg / "y" / "k.py").write_text("from ..x.m import M\nK = 1\n")
    assert find_cycle(import_graph(pkg, "kexue.pkg")) is not None
    (pkg / "y" / "__init__.py").write_text("")
    assert find_cycle(import_graph(pkg, "kexue.pkg")) is None


def test_kernel_packages_share_one_dispatch_module() -> None:
    """vq and flows keep their own ``_dispatch.py`` (runtime independence) but the same one."""
    files = sorted(ROOT.glob("packages/*/src/kexue/*/_dispatch.py"))
    assert {f.parent.name for f in files} >= {"vq", "flows"}
    texts = []
    for f in files:
        pkg = f.parent.name
        lines = [
            ln for ln in f.read_text(encoding="utf-8").splitlines() if not ln.startswith("_ENV =")
        ]
        texts.append("\n".join(lines).replace(pkg, "<pkg>").replace(pkg.upper(), "<PKG>"))
    assert all(t == texts[0] for t in texts), [f.parent.name for f in files]


@pytest.mark.parametrize("src", PACKAGES, ids=lambda p: p.name)
def test_kernel_files_are_named_triton_op(src: Path) -> None:
    kernels = src / "_kernels"
    if not kernels.is_dir():
        pytest.skip("no kernels")
    names = [p.name for p in kernels.glob("*.py") if p.name != "__init__.py"]
    assert names and all(n.startswith("triton_") for n in names), names
