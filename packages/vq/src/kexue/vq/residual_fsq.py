"""Residual FSQ: stages of symmetric, hard-clamped FSQ on ever finer scales (lucidrains ``ResidualFSQ``).

Spec: ``vq-modern.md`` §2.2.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ._implicit import ProjectedQuantizer, no_autocast, work_dtype
from ._masking import IndexStats, check_count
from .fsq import FSQ
from .quantizer import QuantizerOutput

__all__ = ["ResidualFSQ"]

_GRADS = ("stack", "per_stage")


class ResidualFSQ(ProjectedQuantizer):
    """Residual finite scalar quantiser with per-dimension stage scales σ_q = L_i^(−q).

    The (projected) input is soft-clamped to y = c·tanh(x/c), c_i = L_i/(L_i − 1); then stage q
    quantises ẑ_q = σ_q·FSQ(r_q/σ_q) with the symmetric bound and a hard clamp, r_0 = y,
    r_{q+1} = r_q − sg(ẑ_q), and the output is Σ_q ẑ_q. Each stage errs by at most 1/(L−1) in its
    own units, so |y − Σ_q ẑ_q| ≤ 1/((L−1)·L^(Q−1)) per dimension (spec §2.2).

    Gradient (``grad="stack"``, default): one straight-through estimator for the whole stack,
    out = Σ_q ẑ_q + (y − sg(y)), so ∂out/∂y = I and ∂out/∂x = diag(1 − (y/c)²) (the soft clamp's
    derivative) whatever Q. ``grad="per_stage"`` keeps an STE per stage as lucidrains does: each
    stage whose scaled residual lies inside the hard clamp adds another I, so the encoder gradient
    grows with Q (Q·I for small inputs; spec §2.7, "Gradient through the stack"). The forward
    values are the same in both modes.

    The scale L^(−q) is lucidrains' (v1.31.0, ``levels ** -ind``); lucidrains#96 proposed
    (L−1)^(−q), which is not what the reference implements.

    Arguments:
        levels: L_i per dimension, each >= 2 (shared by all stages).
        num_quantizers: Q >= 1 stages.
        dim: input feature size D; default ``len(levels)``; when different, ``project_in`` /
            ``project_out`` linear maps surround the whole residual stack.
        grad: ``"stack"`` (default, one STE, encoder gradient independent of Q) or
            ``"per_stage"`` (lucidrains' per-stage STE, for gradient parity).

    Returns (forward):
        :class:`QuantizerOutput` with indices (..., Q) int64, ``loss = 0``, empty ``losses``, stats
        ``{"perplexity", "usage"}`` averaged over stages.

    References:
        Mentzer et al. 2023, arXiv:2309.15505; symmetric bound: arXiv:2411.19842;
        lucidrains/vector-quantize-pytorch ``ResidualFSQ``.

    Example:
        >>> rfsq = ResidualFSQ([5, 5, 5], num_quantizers=3)
        >>> rfsq(torch.randn(8, 3)).indices.shape
        torch.Size([8, 3])
    """

    scales: Tensor
    clamp_value: Tensor

    def __init__(
        self,
        levels: Sequence[int],
        num_quantizers: int,
        dim: int | None = None,
        *,
        grad: str = "stack",
    ) -> None:
        super().__init__()
        if grad not in _GRADS:
            raise ValueError(f"grad must be one of {_GRADS}, got {grad!r}")
        self.grad = grad
        check_count("num_quantizers", num_quantizers)
        self.fsq = FSQ(levels, bound="symmetric", hard_clamp=True)
        self._init_projection(dim, self.fsq.codebook_dim)
        self.num_quantizers = num_quantizers
        self.num_codes = self.fsq.num_codes
        lv = self.fsq.levels.to(torch.float64)
        scales = torch.stack([lv ** (-q) for q in range(num_quantizers)])
        self.register_buffer("scales", scales, persistent=False)
        self.register_buffer("clamp_value", lv / (lv - 1), persistent=False)

    def lookup(self, indices: Tensor) -> Tensor:
        """Indices (..., Q) → output-space vectors (..., D); stages with index −1 contribute 0."""
        idx = self._head_indices(indices, self.num_quantizers, stacked=True)
        codes = self.fsq.indices_to_codes(idx.clamp_min(0)).to(torch.float64)
        codes = (codes * self.scales).masked_fill((idx < 0).unsqueeze(-1), 0.0).sum(dim=-2)
        return self._project_codes(codes.to(torch.float32), idx)

    def forward(
        self, x: Tensor, mask: Tensor | None = None, lens: Tensor | None = None
    ) -> QuantizerOutput:
        """Quantise x: (..., D). ``mask``: optional bool (...), True = valid; padded positions get
        index −1 in every stage and ``quantized`` = the input there, and are left out of the stats.
        ``lens``: (B,) integer lengths instead of ``mask`` for x (B, T, D)."""
        z, mask = self._enter(x, mask, lens)
        work = work_dtype(z)
        per_stage = self.grad == "per_stage"
        with no_autocast(z):
            c = self.clamp_value.to(work)
            y = torch.tanh(z.to(work) / c) * c
            residual = y if per_stage else y.detach()
            total = torch.zeros_like(residual)
            stage_indices = []
            for q in range(self.num_quantizers):
                scale = self.scales[q].to(work)
                codes, indices = self.fsq._bound_round(residual / scale)
                stage_indices.append(indices)
                zq = codes * scale
                residual = residual - zq.detach()
                total = total + zq
            if not per_stage:  # one straight-through estimator for the stack: ∂out/∂y = I
                total = total + (y - y.detach())
            indices = torch.cat(stage_indices, dim=-1)
        quantized, indices = self._leave(total, indices, z, x, mask)
        stats = IndexStats(indices, self.num_codes)
        zero = torch.zeros((), dtype=work_dtype(x), device=x.device)
        return QuantizerOutput(quantized, indices, zero, {}, stats)
