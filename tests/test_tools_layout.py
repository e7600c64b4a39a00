"""Rules of ``tools/``: small functions, one import style.

Every module under ``tools/`` runs from the repository root as part of the ``tools`` package
(``python -m tools.demo``, ``python -m tools.bench.vq``); none edits ``sys.path`` to find a sibling,
and no function grows past ``MAX_FUNCTION_LINES`` (split it into named steps instead).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOOLS = ROOT / "tools"
MAX_FUNCTION_LINES = 80
FILES = sorted(TOOLS.rglob("*.py"))


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _sys_path_edits(tree: ast.Module) -> list[int]:
    """Lines that touch ``sys.path`` (``sys.path.insert(...)``, ``sys.path = ...``, ...)."""
    lines = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and node.attr == "path"
            and isinstance(node.value, ast.Name)
            and node.value.id == "sys"
        ):
            lines.append(node.lineno)
        if isinstance(node, ast.ImportFrom) and node.module == "sys":
            if any(alias.name == "path" for alias in node.names):
                lines.append(node.lineno)
    return lines


def test_tools_is_a_package_tree() -> None:
    folders = {p.parent for p in FILES} - {TOOLS}
    missing = [_rel(d) for d in sorted(folders | {TOOLS}) if not (d / "__init__.py").exists()]
    assert not missing, f"folders under tools/ without __init__.py: {missing}"


@pytest.mark.parametrize("path", FILES, ids=_rel)
def test_no_sys_path_manipulation(path: Path) -> None:
    lines = _sys_path_edits(_tree(path))
    assert not lines, f"{_rel(path)} touches sys.path at lines {lines}; import via tools.<...>"


@pytest.mark.parametrize("path", FILES, ids=_rel)
def test_no_long_functions(path: Path) -> None:
    long = [
        f"{node.name} (line {node.lineno}: {node.end_lineno - node.lineno + 1} lines)"
        for node in ast.walk(_tree(path))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert not long, f"{_rel(path)}: functions over {MAX_FUNCTION_LINES} lines: {long}"


def test_the_checks_catch_what_they_promise() -> None:
    edit = ast.parse("import sys\nsys.path.insert(0, 'x')\n")
    assert _sys_path_edits(edit) == [2]
    assert _sys_path_edits(ast.parse("from sys import path\n")) == [1]
    assert _sys_path_edits(ast.parse("import os\nos.path.join('a')\n")) == []
