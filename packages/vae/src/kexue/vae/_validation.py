"""Input checks shared by the public functions of ``kexue.vae`` (once, at the boundary).

Every error is a ``ValueError`` naming the argument and the shapes involved. No check reads tensor
values (no host syncs): shapes, dtypes and option names only.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

__all__ = ["Reduction"]

Reduction = Literal["mean", "sum", "none"]
_REDUCTIONS = ("mean", "sum", "none")


def check_reduction(reduction: str) -> None:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def reduce(per_sample: Tensor, reduction: str) -> Tensor:
    """Reduce a per-sample value ``(B,)`` by ``reduction`` ("mean", "sum" or "none")."""
    check_reduction(reduction)
    if reduction == "mean":
        return per_sample.mean()
    if reduction == "sum":
        return per_sample.sum()
    return per_sample


def check_choice(value: object, name: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


def check_batched(x: object, name: str, *, min_dim: int = 1) -> Tensor:
    if not isinstance(x, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() < min_dim:
        raise ValueError(f"{name} must have at least {min_dim} dims, got shape {tuple(x.shape)}")
    return x


def check_same_shape(a: Tensor, b: Tensor, a_name: str, b_name: str) -> None:
    if a.shape != b.shape:
        raise ValueError(
            f"{a_name} and {b_name} must have the same shape, got {tuple(a.shape)} and "
            f"{tuple(b.shape)}"
        )


def check_broadcasts_to(a: Tensor, shape: tuple[int, ...], a_name: str, target: str) -> None:
    """``a`` must broadcast to ``shape`` without changing it (e.g. a per-pixel log-variance)."""
    try:
        out: tuple[int, ...] | None = tuple(torch.broadcast_shapes(tuple(a.shape), tuple(shape)))
    except RuntimeError:
        out = None
    if out != tuple(shape):
        raise ValueError(
            f"{a_name} of shape {tuple(a.shape)} does not broadcast to {target} {tuple(shape)}"
        )


def check_positive(value: float, name: str, *, allow_zero: bool = False) -> float:
    v = float(value)
    if not (v > 0 or (allow_zero and v == 0)) or v != v:
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")
    return v


def check_int(value: object, name: str, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


def flat(x: Tensor) -> Tensor:
    """``(B, ...)`` → ``(B, D)``."""
    return x.reshape(x.shape[0], -1)
