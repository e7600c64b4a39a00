"""The argument checks of the terms room: integer lower bounds, one message format for all."""

from __future__ import annotations

__all__ = ["check_at_least"]


def check_at_least(low: int, /, *, allow_none: bool = False, **values: int | None) -> None:
    """Raise ``ValueError("<name> must be >= <low>, got <value>")`` for the first of ``values``
    (keyword = the argument's name) below ``low``; with ``allow_none`` a None value passes."""
    for name, value in values.items():
        if value is None and allow_none:
            continue
        if value is None or value < low:
            bound = f">= {low} or None" if allow_none else f">= {low}"
            raise ValueError(f"{name} must be {bound}, got {value}")
