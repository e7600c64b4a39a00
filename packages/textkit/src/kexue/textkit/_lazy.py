"""PEP 562 lazy attributes, shared by the package root and the rooms that import on first use.

``__getattr__, __dir__ = lazy_attributes(globals(), names, submodules)`` in a package's
``__init__``: ``names`` maps each public name to the submodule (relative to the package) that
defines it, ``submodules`` are names importable as attributes. A name is imported on first access
and then cached in the package's namespace, so the next access is a plain lookup.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_attributes"]


def lazy_attributes(
    namespace: dict[str, Any], names: Mapping[str, str], submodules: tuple[str, ...] = ()
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The module-level ``__getattr__`` and ``__dir__`` of the package whose ``globals()`` is
    ``namespace`` (its ``__name__`` and ``__all__`` are read from there)."""
    package = namespace["__name__"]

    def __getattr__(name: str) -> Any:
        if name in submodules:
            return importlib.import_module(f"{package}.{name}")
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(namespace.get("__all__", ())))

    return __getattr__, __dir__
