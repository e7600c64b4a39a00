"""Import graph of a package built from its source with ``ast``, for layout tests.

Every ``import`` statement counts, at module level or inside a function, except under
``if TYPE_CHECKING:``. Importing ``a.b.c`` first runs the ``__init__`` of ``a`` and ``a.b``, so an
import also depends on the target's packages, unless the importer lives inside them (they are then
already being initialised). A cycle in this graph is an import cycle, even one papered over by a
function-level import.
"""

from __future__ import annotations

import ast
from pathlib import Path

__all__ = ["find_cycle", "import_graph", "long_modules", "package_modules"]


def package_modules(src: Path, name: str) -> dict[str, Path]:
    """``{dotted module name: path}`` for every ``.py`` file under ``src`` (the folder of ``name``)."""
    out = {}
    for path in sorted(Path(src).rglob("*.py")):
        parts = path.relative_to(src).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join((name, *parts))] = path
    return out


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                skip.update(id(n) for n in ast.walk(child))
    return skip


def _targets(name: str, path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = _type_checking_nodes(tree)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            targets.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            targets.add(mod)
            targets.update(f"{mod}.{a.name}" for a in node.names)
    return targets


def import_graph(src: Path, name: str) -> dict[str, set[str]]:
    """``{module: modules of the same package that importing it runs}``."""
    modules = package_modules(src, name)
    root_depth = len(name.split("."))
    graph: dict[str, set[str]] = {}
    for mod, path in modules.items():
        deps: set[str] = set()
        for t in _targets(mod, path):
            if t not in modules:
                continue
            parts = t.split(".")
            for k in range(root_depth, len(parts) + 1):
                dep = ".".join(parts[:k])
                # packages enclosing the importer are already initialising: no edge
                if dep != mod and not (mod + ".").startswith(dep + "."):
                    deps.add(dep)
        graph[mod] = deps
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as ``[a, b, ..., a]``, or None."""
    state: dict[str, int] = {}
    for start in sorted(graph):
        if start in state:
            continue
        stack: list[tuple[str, list[str]]] = [(start, sorted(graph[start]))]
        path = [start]
        state[start] = 1
        while stack:
            node, todo = stack[-1]
            if not todo:
                stack.pop()
                path.pop()
                state[node] = 2
                continue
            dep = todo.pop(0)
            if state.get(dep) == 1:
                return [*path[path.index(dep) :], dep]
            if dep not in state:
                state[dep] = 1
                path.append(dep)
                stack.append((dep, sorted(graph.get(dep, ()))))
    return None


def long_modules(
    src: Path, max_lines: int, *, skip: tuple[str, ...] = ("_kernels",)
) -> dict[str, int]:
    """``{relative path: lines}`` of modules over ``max_lines``, outside folders named in ``skip``."""
    out = {}
    for path in sorted(Path(src).rglob("*.py")):
        rel = path.relative_to(src)
        if any(part in skip for part in rel.parts[:-1]):
            continue
        n = len(path.read_text(encoding="utf-8").splitlines())
        if n > max_lines:
            out[str(rel)] = n
    return out
