"""Residual LFQ: LFQ stages on ever finer scales s_q = 2^(−q) (lucidrains ``ResidualLFQ``).

Spec: ``vq-modern.md`` §2.3 (last paragraph).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ._implicit import ProjectedQuantizer, no_autocast, work_dtype
from ._masking import IndexStats, check_count
from .lfq import LFQ
from .quantizer import QuantizerOutput

__all__ = ["ResidualLFQ"]


class ResidualLFQ(ProjectedQuantizer):
    """Q stages of :class:`LFQ` with codebook scale s_q = 2^(−q), each quantising the residual.

    r_0 = y (the projected input), stage q quantises r_q with scale 2^(−q) (and the soft clamp
    ``soft_clamp``·2^(−q) when set, as lucidrains halves it per stage), r_{q+1} = r_q − sg(ẑ_q), and
    the output is Σ_q ẑ_q. Each stage has its own entropy and commitment terms on its residual;
    ``loss`` is their sum over stages (lucidrains returns them stacked).

    Gradient: one straight-through estimator for the whole stack, ∂out/∂y = I. lucidrains keeps a
    per-stage STE, which scales the encoder gradient by Q (spec §2.7, "Gradient through the
    stack"); the forward values are the same.

    Arguments:
        bits: bits per stage (K = 2^bits codes per stage).
        num_quantizers: Q >= 1.
        dim: input feature size D; default ``bits``; when different, ``project_in`` /
            ``project_out`` linear maps surround the whole stack.
        soft_clamp: the first stage's soft clamp (None = none).
        **lfq_kwargs: passed to every stage's :class:`LFQ` (``entropy_weight``,
            ``diversity_weight``, ``commitment_weight``, ``inv_temperature``, ``bit_order``,
            ``entropy``, ``log_clamp``, ``chunk_elements``).

    Forward: ``forward(x, mask=None, lens=None)`` as :class:`LFQ`; padded positions get index −1
    in every stage and ``quantized`` = the input.

    Returns:
        :class:`QuantizerOutput` with indices (..., Q) int64; ``losses`` hold the stage sums of
        ``entropy``, ``commitment`` and ``total`` plus the per-stage ``per_sample_entropy`` and
        ``codebook_entropy`` as (Q,) tensors; stats averaged over stages.

    Example:
        >>> rlfq = ResidualLFQ(4, num_quantizers=3)
        >>> rlfq(torch.randn(8, 4)).indices.shape
        torch.Size([8, 3])
    """

    def __init__(
        self,
        bits: int,
        num_quantizers: int,
        dim: int | None = None,
        *,
        soft_clamp: float | None = None,
        **lfq_kwargs: Any,
    ) -> None:
        super().__init__()
        check_count("num_quantizers", num_quantizers)
        for key in ("dim", "num_codebooks", "codebook_scale", "soft_clamp"):
            if key in lfq_kwargs:
                raise ValueError(f"ResidualLFQ sets {key} of its stages; got {key}= in lfq_kwargs")
        self.stages = nn.ModuleList(
            LFQ(
                bits,
                codebook_scale=2.0**-q,
                soft_clamp=None if soft_clamp is None else soft_clamp * 2.0**-q,
                **lfq_kwargs,
            )
            for q in range(num_quantizers)
        )
        self._init_projection(dim, bits)
        self.bits, self.num_quantizers = bits, num_quantizers
        self.num_codes = 2**bits

    def lookup(self, indices: Tensor) -> Tensor:
        """Indices (..., Q) → output-space vectors (..., D); stages with index −1 contribute 0."""
        idx = self._head_indices(indices, self.num_quantizers, stacked=True)
        total = torch.zeros(*idx.shape[:-1], self.bits, device=idx.device)
        for q, stage in enumerate(self.stages):
            codes = stage.indices_to_codes(idx[..., q].clamp_min(0))
            total = total + codes.masked_fill((idx[..., q] < 0).unsqueeze(-1), 0.0)
        return self._project_codes(total, idx)

    def forward(
        self, x: Tensor, mask: Tensor | None = None, lens: Tensor | None = None
    ) -> QuantizerOutput:
        """Quantise x (..., D); see :class:`LFQ` for ``mask`` / ``lens``."""
        z, mask = self._enter(x, mask, lens)
        work = work_dtype(z)
        stage_losses: list[dict[str, Tensor]] = []
        stage_indices = []
        with no_autocast(z):
            y = z.to(work)
            residual = y
            total = torch.zeros_like(y)
            for stage in self.stages:
                r = residual.unsqueeze(-2)
                if stage.soft_clamp is not None:
                    r = torch.tanh(r / stage.soft_clamp) * stage.soft_clamp
                s = stage.codebook_scale
                codes = torch.where(r > 0, s, -s).to(work)
                stage_indices.append(stage.codes_to_indices(r.detach()).squeeze(-1))
                stage_losses.append(stage.losses_of(r, codes, mask))
                total = total + codes.squeeze(-2)
                residual = residual - codes.squeeze(-2)
            quantized = total + (y - y.detach())
        out, indices = self._leave(quantized, torch.stack(stage_indices, dim=-1), z, x, mask)
        losses = {
            key: torch.stack([sl[key] for sl in stage_losses]).sum()
            for key in ("entropy", "commitment", "total")
        }
        for key in ("per_sample_entropy", "codebook_entropy"):
            losses[key] = torch.stack([sl[key] for sl in stage_losses])
        stats = IndexStats(indices, self.num_codes)
        return QuantizerOutput(out, indices, losses["total"], losses, stats)
