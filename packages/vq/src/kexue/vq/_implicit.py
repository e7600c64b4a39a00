"""Plumbing shared by the implicit-codebook quantisers FSQ, LFQ and their residual stacks (private).

:class:`ProjectedQuantizer` holds the optional ``project_in`` / ``project_out`` linear maps around
the quantiser (when ``dim`` differs from the quantiser's own width), the input checks done once at
the public boundary, the exact-precision context of the quantisation step, and the padded-output
convention of ``mask=`` / ``lens=`` (index −1, output = the input).
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from torch import Tensor, nn

from ._masking import check_float_input, pad_outputs, project_codes, resolve_mask

__all__ = ["ProjectedQuantizer", "no_autocast", "work_dtype"]


def work_dtype(x: Tensor) -> torch.dtype:
    """The dtype of the quantisation step: fp64 for fp64 inputs, else fp32."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def no_autocast(x: Tensor) -> contextlib.AbstractContextManager[Any]:
    """Autocast off for the exact quantisation step (a no-op context when it is off already)."""
    if torch.is_autocast_enabled(x.device.type):
        return torch.autocast(x.device.type, enabled=False)
    return contextlib.nullcontext()


class ProjectedQuantizer(nn.Module):
    """Base class: input/output projections, boundary checks and padded outputs (see module doc)."""

    dim: int
    has_projection: bool
    project_in: nn.Module
    project_out: nn.Module

    def _init_projection(self, dim: int | None, width: int, *, bias: bool = True) -> None:
        """``dim`` (default ``width``) checked; Linear maps dim → width → dim when they differ."""
        dim = width if dim is None else dim
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise ValueError(f"dim must be a positive int or None, got {dim!r}")
        self.dim, self.has_projection = dim, dim != width
        self.project_in = nn.Linear(dim, width, bias=bias) if self.has_projection else nn.Identity()
        self.project_out = (
            nn.Linear(width, dim, bias=bias) if self.has_projection else nn.Identity()
        )

    def _enter(
        self, x: Tensor, mask: Tensor | None, lens: Tensor | None
    ) -> tuple[Tensor, Tensor | None]:
        """Checked input x (..., D) → (``project_in(x)``, the valid mask or None)."""
        check_float_input(x, self.dim)
        if mask is not None or lens is not None:
            mask = resolve_mask(x, mask, lens)
        return (self.project_in(x) if self.has_projection else x), mask

    def _leave(
        self, quantized: Tensor, indices: Tensor, z: Tensor, x: Tensor, mask: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        """(output, indices): ``project_out`` of the quantised z-space values (in z's dtype), with
        padded positions set to the input x and index −1."""
        out = quantized if quantized.dtype == z.dtype else quantized.to(z.dtype)
        if self.has_projection:
            out = self.project_out(out)
        return pad_outputs(out, indices, x, mask)

    def _project_codes(self, codes: Tensor, indices: Tensor) -> Tensor:
        """``lookup``'s end: codes (..., width) to the output space; zero where every index is −1."""
        return project_codes(self.project_out, codes, indices)

    def _head_indices(self, indices: Tensor, heads: int, *, stacked: bool = False) -> Tensor:
        """int64 indices (..., heads) from integer ``indices`` (..., heads), or (...) for a single
        head unless ``stacked`` (the residual stacks always carry the stage axis)."""
        if indices.dtype.is_floating_point or indices.dtype == torch.bool:
            raise ValueError(f"indices must be an integer tensor, got {indices.dtype}")
        idx = indices.to(torch.int64)
        if heads == 1 and not stacked:
            return idx.unsqueeze(-1)
        if idx.shape[-1:] != (heads,):
            raise ValueError(f"indices must have shape (..., {heads}), got {tuple(idx.shape)}")
        return idx
