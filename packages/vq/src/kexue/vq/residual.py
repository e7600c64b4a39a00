"""Residual and grouped vector quantisation built from :class:`~kexue.vq.quantizer.VectorQuantizer`.

- :class:`ResidualVQ` (SoundStream, arXiv:2107.03312): stage q quantises what the previous stages
  left, r_q = z − Σ_{j<q} e^{(j)}; the output is Σ_q e^{(q)}. Extras (spec §2.7): quantizer
  dropout (:class:`~kexue.vq.quantizer_dropout.QuantizerDropout`), a shared codebook with one pooled
  EMA step per forward, stage codes, the stack gradient (identity, or per stage as lucidrains),
  Gumbel sampling through the stages' ``sample="gumbel"``, and ``mask=`` / ``lens=``.
- :class:`GroupedVQ` (multi-head VQ): the D features are split into ``groups`` equal slices, each
  with its own codebook; the output concatenates the slices. :class:`GroupedResidualVQ` does the
  same with a :class:`ResidualVQ` per slice.

All return a :class:`~kexue.vq.quantizer.QuantizerOutput` whose ``indices`` carry a last axis of
size num_quantizers / groups (grouped residual: (..., groups, num_quantizers)), whose losses are
summed over stages / groups and whose stats are stacked, one entry per stage / group.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import Tensor, nn

from ._implicit import work_dtype
from ._layout import channel_axis, check_layout, flatten, flatten_input, unflatten
from .quantizer import QuantizerOutput, VectorQuantizer
from .quantizer_dropout import QuantizerDropout
from .rotation import rotation_trick

__all__ = ["GroupedResidualVQ", "GroupedVQ", "ResidualVQ"]


def _merge(outputs: list[QuantizerOutput], quantized: Tensor) -> QuantizerOutput:
    indices = torch.stack([o.indices for o in outputs], dim=-1)
    losses = {k: sum(o.losses[k] for o in outputs) for k in outputs[0].losses}
    stats = {k: torch.stack([o.stats[k] for o in outputs]) for k in outputs[0].stats}
    return QuantizerOutput(quantized, indices, losses["total"], losses, stats)


def _channel_mask(mask: Tensor, layout: str) -> Tensor:
    """(index shape) bool → broadcastable against the input (channel axis of size 1)."""
    return mask.unsqueeze(channel_axis(layout) if layout == "channels_first" else -1)


class ResidualVQ(nn.Module):
    """Residual vector quantiser: ``num_quantizers`` stages, each coding the previous residual.

    The residual is carried in fp32 (fp64 for fp64 inputs); the codes subtracted between stages are
    detached, so stage q's commitment loss β·‖r_q − sg(e^{(q)})‖² trains the encoder through r_q.
    The output is exactly Σ_q e^{(q)} in the forward pass.

    Arguments:
        num_quantizers: number of stages Q ≥ 1.
        num_codes: codebook size of every stage.
        dim: D, the input feature size.
        dropout: a :class:`~kexue.vq.quantizer_dropout.QuantizerDropout`, or None (default).
        shared_codebook: one codebook for every stage (lucidrains ``shared_codebook``); its EMA
            statistics are pooled over the stages' valid rows and decayed **once** per forward
            (lucidrains decays once per stage, γ^Q per step).
        grad: ``"stack"`` (default): one estimator over the whole stack — identity for
            ``estimator="ste"`` (the encoder gradient is not multiplied by Q), the rotation of x
            onto Σ_q e^{(q)} for ``"rotation"``; ``"per_stage"``: every active stage's estimator
            output is summed (lucidrains; ∂out/∂x = Q_active·I with the STE).
        vq_kwargs: keyword options of :class:`~kexue.vq.quantizer.VectorQuantizer` for every stage
            (``layout``, ``estimator``, ``sample``/``temperature`` included).

    Forward: ``forward(x, mask=None, lens=None, *, generator=None, return_stage_codes=False)``;
    ``mask``/``lens`` as :meth:`VectorQuantizer.forward` (padded positions: index −1 in every stage,
    output = input); ``generator`` feeds ``sample="gumbel"``; ``return_stage_codes=True`` returns
    ``(output, stage_codes)`` with stage_codes from :meth:`stage_codes`.

    References:
        SoundStream, arXiv:2107.03312, §3.3 (Algorithm 1); RQ-VAE, arXiv:2203.01941.
    """

    def __init__(
        self,
        num_quantizers: int,
        num_codes: int,
        dim: int,
        *,
        dropout: QuantizerDropout | None = None,
        shared_codebook: bool = False,
        grad: Literal["stack", "per_stage"] = "stack",
        **vq_kwargs: Any,
    ) -> None:
        super().__init__()
        if num_quantizers < 1:
            raise ValueError(f"num_quantizers must be >= 1, got {num_quantizers}")
        if grad not in ("stack", "per_stage"):
            raise ValueError(f"grad must be 'stack' or 'per_stage', got {grad!r}")
        if dropout is not None and not isinstance(dropout, QuantizerDropout):
            raise TypeError(f"dropout must be a QuantizerDropout or None, got {type(dropout)}")
        count = 1 if shared_codebook else num_quantizers
        self.layers = nn.ModuleList(
            VectorQuantizer(num_codes, dim, **vq_kwargs) for _ in range(count)
        )
        self.num_quantizers, self.shared_codebook, self.grad = num_quantizers, shared_codebook, grad
        self.dim, self.layout = dim, self.layers[0].layout
        self.estimator = self.layers[0].estimator
        self.dropout = dropout

    def stage(self, q: int) -> VectorQuantizer:
        """The quantiser of stage q (the same module for every q with a shared codebook)."""
        return self.layers[0 if self.shared_codebook else q]

    def forward(
        self,
        x: Tensor,
        mask: Tensor | None = None,
        lens: Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
        return_stage_codes: bool = False,
    ) -> QuantizerOutput | tuple[QuantizerOutput, Tensor]:
        """Quantise ``x`` with every stage (see the class docstring).

        Returns:
            :class:`QuantizerOutput` with indices of shape (*index_shape, num_quantizers)
            (−1 for padded positions and dropped stages), or ``(output, stage_codes)``.
        """
        _, index_shape, mask = flatten_input(x, self.dim, self.layout, mask, lens)
        dtype = work_dtype(x)
        z = x.to(dtype)
        keep = None  # (B, 1, ...) number of kept stages per sample
        if self.training and self.dropout is not None and self.dropout.p > 0:
            keep = self.dropout.draw(index_shape[0], self.num_quantizers).to(x.device)
            keep = keep.view(-1, *([1] * (len(index_shape) - 1)))
        shared = self.layers[0] if self.shared_codebook and self.training else None
        if shared is not None:
            shared._pending = []
        try:
            total, outputs, codes = self._stages(z, index_shape, mask, keep, generator)
            if shared is not None:
                shared._pooled_update_(shared._resolved_sync())
        finally:
            if shared is not None:
                shared._pending = None
        if self.grad == "per_stage":  # each stage's estimator output, attached: Σ_q gradients
            quantized = torch.stack(codes).sum(dim=0)
        elif self.estimator == "rotation":
            rows, _ = flatten(z, self.layout)
            rotated, _ = rotation_trick(rows, flatten(total, self.layout)[0])
            quantized = unflatten(rotated, index_shape, self.layout)
        else:  # straight-through over the whole stack: value Σ_q e^(q), gradient identity to x
            quantized = total + (z - z.detach())
        if mask is not None:
            quantized = torch.where(_channel_mask(mask, self.layout), quantized, z)
        result = _merge(outputs, quantized.to(x.dtype))
        if return_stage_codes:
            return result, self.stage_codes(result.indices)
        return result

    def _stages(
        self,
        z: Tensor,
        index_shape: tuple[int, ...],
        mask: Tensor | None,
        keep: Tensor | None,
        generator: torch.Generator | None,
    ) -> tuple[Tensor, list[QuantizerOutput], list[Tensor]]:
        residual = z  # keeps the graph to x: every stage's commitment loss reaches the encoder
        total = torch.zeros_like(z).detach()
        outputs, codes = [], []
        for q in range(self.num_quantizers):
            stage_mask = mask
            if keep is not None:  # dropped (sample, stage) pairs are padded rows of the stage
                active = (keep > q).expand(index_shape)
                stage_mask = active if mask is None else mask & active
            out = self.stage(q)(residual, mask=stage_mask, generator=generator)
            code = out.quantized
            if stage_mask is not None:  # padded / dropped rows contribute nothing
                code = torch.where(_channel_mask(stage_mask, self.layout), code, 0.0)
            outputs.append(out)
            codes.append(code)
            total = total + code.detach()
            residual = residual - code.detach()
        return total, outputs, codes

    @torch.no_grad()
    def stage_codes(self, indices: Tensor) -> Tensor:
        """Per-stage code vectors (lucidrains ``return_all_codes``), zero for index −1.

        Arguments:
            indices: integer tensor (*index_shape, num_quantizers).

        Returns:
            (num_quantizers, …) stacked :meth:`VectorQuantizer.lookup` results, each in the
            stages' layout ((*index_shape, D) for channels_last).
        """
        self._check_indices(indices)
        return torch.stack(
            [self.stage(q).lookup(indices[..., q]) for q in range(self.num_quantizers)]
        )

    @torch.no_grad()
    def lookup(self, indices: Tensor) -> Tensor:
        """Σ_q of the stages' code vectors (−1, a padded position or dropped stage, adds 0).

        Arguments:
            indices: integer tensor (..., num_quantizers).

        Returns:
            The summed vectors in the stages' layout.
        """
        return self.stage_codes(indices).sum(dim=0)

    def _check_indices(self, indices: Tensor) -> None:
        if indices.dim() < 2 or indices.shape[-1] != self.num_quantizers:
            raise ValueError(
                f"indices must have a last axis of size num_quantizers = {self.num_quantizers}, "
                f"got shape {tuple(indices.shape)}"
            )


class GroupedVQ(nn.Module):
    """Grouped (multi-head) quantiser: D split into ``groups`` slices with separate codebooks.

    Arguments:
        groups: number of groups G ≥ 1; ``dim`` must be divisible by G.
        num_codes: codebook size of every group.
        dim: D, the input feature size; each group quantises D/G features.
        vq_kwargs: keyword options of :class:`~kexue.vq.quantizer.VectorQuantizer` for every group.

    Forward: ``forward(x, mask=None, lens=None, *, generator=None)``, masks as
    :meth:`VectorQuantizer.forward` (applied to every group).

    References:
        vqtorch ``GroupVectorQuant`` (arXiv:2305.08842); lucidrains ``heads``.
    """

    def __init__(self, groups: int, num_codes: int, dim: int, **vq_kwargs: Any) -> None:
        super().__init__()
        if groups < 1 or dim % groups:
            raise ValueError(f"groups must be >= 1 and divide dim = {dim}, got groups={groups}")
        layout = vq_kwargs.get("layout", "channels_last")
        check_layout(layout)
        self.groups, self.dim, self.layout = groups, dim, layout
        self.layers = nn.ModuleList(
            self._make(num_codes, dim // groups, vq_kwargs) for _ in range(groups)
        )

    def _make(self, num_codes: int, dim: int, kwargs: dict[str, Any]) -> nn.Module:
        return VectorQuantizer(num_codes, dim, **kwargs)

    def forward(
        self,
        x: Tensor,
        mask: Tensor | None = None,
        lens: Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
    ) -> QuantizerOutput:
        """Quantise each slice of ``x`` along the channel axis with its own quantiser.

        Arguments:
            x: input in the layout ((..., D) or (B, D, *spatial)).
            mask: optional bool, x's shape without D (True = valid).
            lens: optional (B,) lengths instead of ``mask``.
            generator: random source of ``sample="gumbel"``.

        Returns:
            :class:`QuantizerOutput` with indices of shape (*index_shape, groups[, Q]).
        """
        _, index_shape, mask = flatten_input(x, self.dim, self.layout, mask, lens)
        axis = channel_axis(self.layout)
        chunks = x.chunk(self.groups, dim=axis)
        outputs = [
            layer(c, mask=mask, generator=generator)
            for layer, c in zip(self.layers, chunks, strict=True)
        ]
        quantized = torch.cat([o.quantized for o in outputs], dim=axis)
        merged = _merge(outputs, quantized)
        if merged.indices.dim() > len(index_shape) + 1:  # grouped residual: (..., G, Q)
            merged = merged._replace(indices=merged.indices.transpose(-1, -2))
        return merged

    @torch.no_grad()
    def lookup(self, indices: Tensor) -> Tensor:
        """Concatenated group vectors.

        Arguments:
            indices: integer tensor (..., groups) (grouped residual: (..., groups, Q)).

        Returns:
            The vectors in the layout, groups concatenated along the channel axis.
        """
        axis = -2 if isinstance(self.layers[0], ResidualVQ) else -1
        if indices.dim() < 1 - axis or indices.shape[axis] != self.groups:
            raise ValueError(
                f"indices must have an axis {axis} of size groups = {self.groups}, "
                f"got shape {tuple(indices.shape)}"
            )
        parts = [layer.lookup(indices.select(axis, g)) for g, layer in enumerate(self.layers)]
        return torch.cat(parts, dim=channel_axis(self.layout))


class GroupedResidualVQ(GroupedVQ):
    """Grouped residual VQ (lucidrains ``GroupedResidualVQ``): a :class:`ResidualVQ` per slice.

    Arguments:
        groups: number of groups G ≥ 1, dividing ``dim``.
        num_quantizers: stages Q of every group's residual quantiser.
        num_codes: codebook size of every stage.
        dim: D; each group quantises D/G features.
        rvq_kwargs: keyword options of :class:`ResidualVQ` (``dropout``, ``shared_codebook``,
            ``grad``) and of its stages. A ``dropout`` module is copied per group with the same
            seed, so every group keeps the same stages of a sample.

    Returns indices of shape (*index_shape, groups, num_quantizers) and stats of shape (G, Q).

    References:
        lucidrains/vector-quantize-pytorch ``GroupedResidualVQ``; SoundStream, arXiv:2107.03312.
    """

    def __init__(
        self, groups: int, num_quantizers: int, num_codes: int, dim: int, **rvq_kwargs: Any
    ) -> None:
        self.num_quantizers = num_quantizers
        super().__init__(groups, num_codes, dim, **rvq_kwargs)

    def _make(self, num_codes: int, dim: int, kwargs: dict[str, Any]) -> nn.Module:
        kwargs = dict(kwargs)
        dropout = kwargs.pop("dropout", None)
        if dropout is not None:
            dropout = QuantizerDropout(
                dropout.p, min_stages=dropout.min_stages, multiple_of=dropout.multiple_of,
                per_sample=dropout.per_sample, seed=dropout.seed,
            )  # fmt: skip
        return ResidualVQ(self.num_quantizers, num_codes, dim, dropout=dropout, **kwargs)
