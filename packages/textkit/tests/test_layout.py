"""The package's layout rules, written as tests: rooms, lazy imports, no cycles, small modules.

The import graph comes from :mod:`kexue.testing.import_graph` (every ``import`` statement, function
level included, and the package ``__init__`` each import runs).
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import kexue.textkit as tk
from kexue.testing.import_graph import find_cycle, import_graph, long_modules, package_modules

SRC = Path(tk.__file__).resolve().parent
ROOT = "kexue.textkit"
ROOMS = ("tagging", "terms", "seq2seq", "losses", "data", "tasks")
# Which room may import which (besides itself). Everything else is independent: the term miner,
# the tagger, the seq2seq stack and the losses never import one another.
ALLOWED = {
    "tagging": {"data"},  # the trainer batches with data.batching
    "data": {"tagging"},  # the People's Daily loader writes tags with tagging.schemes
    "terms": set(),
    "seq2seq": set(),
    "losses": set(),
    "tasks": {"tagging", "seq2seq", "losses", "data", "terms"},  # applications
}
# Root-level private helpers every room may use; they import no room themselves.
SHARED = {"_lazy"}
MAX_LINES = 500


MODULES = package_modules(SRC, ROOT)
GRAPH = import_graph(SRC, ROOT)


def _room(name: str) -> str | None:
    parts = name.split(".")
    return parts[2] if len(parts) > 2 else None


def test_rooms_exist_with_docstrings() -> None:
    assert tuple(tk.SUBPACKAGES) == ROOMS
    for room in ROOMS:
        mod = importlib.import_module(f"{ROOT}.{room}")
        assert mod.__doc__ and len(mod.__doc__.split()) >= 15, room
        # every module of the room is described in its docstring
        for name, path in MODULES.items():
            if _room(name) == room and name.count(".") == 3 and not path.stem.startswith("_"):
                stem = name.rsplit(".", 1)[1]
                assert f".{stem}`" in mod.__doc__, f"{room}: {stem} not described"


def test_no_import_cycle() -> None:
    cycle = find_cycle(GRAPH)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_graph_sees_real_edges() -> None:
    # guard against a graph that is empty by mistake
    assert f"{ROOT}.tagging.constraints" in GRAPH[f"{ROOT}.tagging.crf.functional"]
    assert f"{ROOT}.data" in GRAPH[f"{ROOT}.tagging.train"]
    assert f"{ROOT}.tagging" in GRAPH[f"{ROOT}.data.peoples_daily"]
    assert sum(len(v) for v in GRAPH.values()) > 40


def test_rooms_import_only_what_they_may() -> None:
    bad = []
    for name, deps in GRAPH.items():
        room = _room(name)
        if room is None:
            continue
        for dep in deps:
            other = _room(dep)
            if other is not None and other != room and other not in ALLOWED[room] | SHARED:
                bad.append(f"{name} -> {dep}")
    assert not bad, bad


def test_shared_helpers_import_no_room() -> None:
    for helper in SHARED:
        deps = GRAPH[f"{ROOT}.{helper}"]
        assert not [d for d in deps if _room(d) in ROOMS], (helper, deps)


def test_no_module_over_the_size_limit() -> None:
    assert long_modules(SRC, MAX_LINES) == {}


def test_terms_never_import_torch_statically() -> None:
    for name in MODULES:
        if _room(name) == "terms":
            tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    assert not any(a.name.split(".")[0] == "torch" for a in node.names), name
                if isinstance(node, ast.ImportFrom) and node.module:
                    assert node.module.split(".")[0] != "torch", name


def test_root_is_lazy_and_headlines_resolve(run_python) -> None:
    code = (
        "import sys, kexue.textkit as tk\n"
        "assert 'torch' not in sys.modules, 'import kexue.textkit imported torch'\n"
        "light = {'kexue.textkit.__about__', 'kexue.textkit._lazy'}\n"
        "assert not any(m.startswith('kexue.textkit.') and m not in light"
        " for m in sys.modules), sorted(m for m in sys.modules if m.startswith('kexue.'))\n"
        "tk.WordFinder\n"
        "assert 'torch' not in sys.modules, 'a terms headline imported torch'\n"
        "tk.CRF\n"
        "assert 'kexue.textkit.seq2seq' not in sys.modules\n"
        "print('ok')\n"
    )
    out = run_python(code, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
    for name in tk.__all__:
        assert getattr(tk, name) is not None
    with pytest.raises(AttributeError, match="no_such_name"):
        tk.no_such_name  # noqa: B018


def test_lazy_data_room_maps_every_name() -> None:
    data = importlib.import_module(f"{ROOT}.data")
    assert sorted(data.__all__) == sorted(data._MODULE_OF)
    for name in data.__all__:
        assert getattr(data, name) is not None, name


def test_tasks_are_not_reexported_from_the_root() -> None:
    tasks = importlib.import_module(f"{ROOT}.tasks")
    assert not set(tasks.__all__) & set(tk.__all__)
