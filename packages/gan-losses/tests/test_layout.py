"""The package's own layout rules as tests: rooms, no import cycle, small modules, flat functional.

Reads the installed package's source files (``kexue.gan_losses.__file__``), never ``src/`` paths.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

import kexue.gan_losses as gl
from kexue.gan_losses import (
    dragan,
    functional,
    lazy,
    lecam,
    losses,
    penalties,
    regularizers,
    training,
)

PKG = Path(gl.__file__).resolve().parent
TESTS = Path(__file__).resolve().parent
MODULES = sorted(p for p in PKG.rglob("*.py") if "__pycache__" not in p.parts)
MAX_LINES = 500


def _dotted(path: Path) -> str:
    parts = path.relative_to(PKG).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(("kexue.gan_losses", *parts))


def _package_of(path: Path) -> str:
    name = _dotted(path)
    return name if path.name == "__init__.py" else name.rsplit(".", 1)[0]


def _imports(path: Path) -> set[str]:
    """Intra-package modules that ``path`` imports at module level or inside functions."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = _package_of(path).split(".")
            base = base[: len(base) - (node.level - 1)]
            target = ".".join([*base, node.module] if node.module else base)
            out.add(target)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
            "kexue.gan_losses"
        ):
            out.add(node.module or "")
    return out


def test_rooms_exist_and_say_what_lives_there() -> None:
    for room in ("losses", "training"):
        init = PKG / room / "__init__.py"
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")))
        assert doc, f"{room}/__init__.py needs a docstring"
        for mod in (PKG / room).glob("*.py"):
            if mod.name != "__init__.py":
                assert f":mod:`.{mod.stem}`" in doc, f"{room}/__init__ docstring misses {mod.stem}"


def test_no_import_cycle_between_modules() -> None:
    graph = {_dotted(p): _imports(p) for p in MODULES}
    # A subpackage __init__ importing its own modules is the facade, not a dependency edge back.
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for dep in graph.get(node, ()):
            if dep not in graph or dep.startswith(node + "."):
                continue
            if state.get(dep) == 1:
                pytest.fail(f"import cycle: {' -> '.join([*stack, node, dep])}")
            if dep not in state:
                visit(dep, [*stack, node])
        state[node] = 2

    for node in graph:
        if node not in state:
            visit(node, [])


def test_implementation_modules_never_import_the_facades() -> None:
    facades = {"kexue.gan_losses", "kexue.gan_losses.losses", "kexue.gan_losses.training"}
    for p in MODULES:
        if p.name == "__init__.py" or p.name == "functional.py":
            continue
        assert not (_imports(p) & facades), f"{_dotted(p)} imports a facade"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PKG)))
def test_no_module_over_the_size_budget(path: Path) -> None:
    n = len(path.read_text(encoding="utf-8").splitlines())
    assert n <= MAX_LINES, f"{path.relative_to(PKG)} has {n} lines (> {MAX_LINES}): split it"


def test_tests_mirror_the_modules() -> None:
    for p in MODULES:
        if p.name.startswith("_") or p.name == "functional.py":
            continue
        rel = p.relative_to(PKG)
        expected = TESTS / rel.parent / f"test_{rel.stem}.py"
        assert expected.is_file(), f"no {expected.relative_to(TESTS)} for {rel}"


def test_functional_is_every_function_of_the_loss_penalty_and_regularizer_modules() -> None:
    expected = {
        name
        for mod in (losses, penalties, regularizers, dragan, lazy, lecam)
        for name in mod.__all__
        if inspect.isfunction(getattr(mod, name))
    }
    assert set(functional.__all__) == expected
    for name in functional.__all__:
        assert getattr(functional, name) is getattr(gl, name), name


def test_root_reexports_every_room_name_as_the_same_object() -> None:
    for room in (losses, training):
        for name in room.__all__:
            assert getattr(gl, name) is getattr(room, name), name
    assert set(losses.__all__) | set(training.__all__) <= set(gl.__all__)
