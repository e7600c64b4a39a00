"""Helpers shared by the losses (private): reductions, shape strings, the fused input checks.

Checked entry, trusted core: a public loss validates its inputs once with these helpers, then
calls its private core. Every value check of one call is fused into a single device→host
transfer (:func:`_raise_on_flags`), so a checked call costs one host synchronisation however many
tensors it inspects; host-only checks (shapes, dtypes, arguments) cost none.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__: list[str] = []

_REDUCTIONS = ("mean", "sum", "none")


def _shape(t: object) -> str:
    """``(B, C)``-style shape of a tensor, or the type name of anything else."""
    if isinstance(t, Tensor):
        return str(tuple(t.shape))
    return type(t).__name__


def _check_reduction(reduction: str) -> None:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def _reduce(per_example: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return per_example.mean()
    if reduction == "sum":
        return per_example.sum()
    return per_example


def _check_tensor(name: str, t: object, *, dim: int | None = None, floating: bool = True) -> Tensor:
    """Host-only check of type, rank and dtype (no synchronisation)."""
    if not isinstance(t, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if dim is not None and t.dim() != dim:
        raise ValueError(f"{name} must be {dim}-D, got shape {_shape(t)}")
    if floating and not t.is_floating_point():
        raise ValueError(f"{name} must be floating point, got {t.dtype}")
    return t


def _finite_flag(t: Tensor) -> Tensor:
    """0-d bool on ``t``'s device: every element is finite (no NaN, no ±inf). No sync."""
    return torch.isfinite(t).all()


def _raise_on_flags(checks: list[tuple[Tensor, str]]) -> None:
    """Raise ``ValueError(message)`` for the first 0-d bool flag that is False.

    All flags are stacked and copied to the host in ONE transfer (one synchronisation), whatever
    their number; with no flags nothing is transferred.
    """
    if not checks:
        return
    device = checks[0][0].device
    flags = torch.stack([f.to(device=device, dtype=torch.bool).reshape(()) for f, _ in checks])
    for ok, (_, message) in zip(flags.tolist(), checks):
        if not ok:
            raise ValueError(message)


def _finite_check(name: str, t: Tensor) -> tuple[Tensor, str]:
    """A (flag, message) pair for :func:`_raise_on_flags`: ``t`` holds no NaN or ±inf."""
    return _finite_flag(t), f"{name} must be finite: it holds NaN or inf (shape {_shape(t)})"


def _check_finite(**named: Tensor) -> None:
    """Raise ValueError naming the first of ``named`` holding NaN or ±inf (one sync in all)."""
    _raise_on_flags([_finite_check(name, t) for name, t in named.items()])
