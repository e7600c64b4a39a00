"""Input layouts of the quantisers: flatten to (N, D) and back, without guessing.

``"channels_last"``: x is (..., D) with at least one leading axis — (N, D), (B, T, D), (B, H, W, D).
``"channels_first"``: x is (B, D, *spatial) — (B, D, H, W), (B, D, T); (B, D) is also accepted.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor

from ._masking import resolve_mask

__all__ = [
    "LAYOUTS",
    "Layout",
    "channel_axis",
    "check_input",
    "check_layout",
    "flatten",
    "flatten_input",
    "unflatten",
]

Layout = Literal["channels_last", "channels_first"]
LAYOUTS = ("channels_last", "channels_first")


def check_layout(layout: str) -> None:
    """Raise ValueError unless ``layout`` is a known layout name."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")


def channel_axis(layout: str) -> int:
    """The axis holding D: -1 for channels_last, 1 for channels_first."""
    return -1 if layout == "channels_last" else 1


def check_input(x: Tensor, dim: int, layout: str, *, name: str = "x") -> None:
    """Validate a quantiser input: a floating tensor, enough axes, D = ``dim``, finite values."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a floating tensor, got dtype {x.dtype}")
    if x.dim() < 2:
        raise ValueError(
            f"{name} must have at least 2 axes for layout {layout!r} "
            f"({'(..., D)' if layout == 'channels_last' else '(B, D, *spatial)'}), "
            f"got shape {tuple(x.shape)}"
        )
    axis = channel_axis(layout)
    if x.shape[axis] != dim:
        where = "last axis" if layout == "channels_last" else "axis 1"
        raise ValueError(
            f"{name} has shape {tuple(x.shape)} but layout {layout!r} expects D = {dim} on its "
            f"{where} (got {x.shape[axis]})"
        )
    if x.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(x.shape)})")
    # vector_norm(inf) is NaN/inf exactly when x holds one, without an x-sized temporary
    if x.numel() and not math.isfinite(float(torch.linalg.vector_norm(x.detach(), ord=math.inf))):
        raise ValueError(f"{name} contains NaN or inf values (shape {tuple(x.shape)})")


def flatten(x: Tensor, layout: str) -> tuple[Tensor, tuple[int, ...]]:
    """(N, D) view/copy of ``x`` and the index shape (x's shape without D)."""
    if layout == "channels_first":
        x = x.movedim(1, -1)
    index_shape = tuple(x.shape[:-1])
    return x.reshape(-1, x.shape[-1]), index_shape


def unflatten(flat: Tensor, index_shape: tuple[int, ...], layout: str) -> Tensor:
    """Inverse of :func:`flatten`: (N, D) → the input layout with index shape ``index_shape``."""
    out = flat.reshape(*index_shape, flat.shape[-1])
    if layout == "channels_first":
        out = out.movedim(-1, 1)
    return out


def flatten_input(
    x: Tensor, dim: int, layout: str, mask: Tensor | None, lens: Tensor | None
) -> tuple[Tensor, tuple[int, ...], Tensor | None]:
    """A quantiser's checked input: (rows (N, D), index shape, the valid mask of the index shape
    from ``mask`` / ``lens`` or None), as the forwards of every layout-aware quantiser begin."""
    check_input(x, dim, layout)
    flat, index_shape = flatten(x, layout)
    if mask is not None or lens is not None:
        mask = resolve_mask(flat.reshape(*index_shape, dim), mask, lens)
    return flat, index_shape, mask
