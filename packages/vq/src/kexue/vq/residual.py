"""Residual and grouped vector quantisation built from :class:`~kexue.vq.quantizer.VectorQuantizer`.

- :class:`ResidualVQ` (SoundStream, arXiv:2107.03312): stage q quantises what the previous stages
  left, r_q = z − Σ_{j<q} e^{(j)}; the output is Σ_q e^{(q)}.
- :class:`GroupedVQ` (multi-head VQ): the D features are split into ``groups`` equal slices, each
  with its own codebook; the output concatenates the slices.

Both return a :class:`~kexue.vq.quantizer.QuantizerOutput` whose ``indices`` carry a last axis of
size num_quantizers / groups, whose losses are summed over stages / groups and whose stats are
(num_quantizers,) / (groups,) tensors, one entry per stage / group.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ._layout import channel_axis, check_input, check_layout
from .quantizer import QuantizerOutput, VectorQuantizer

__all__ = ["GroupedVQ", "ResidualVQ"]


def _merge(outputs: list[QuantizerOutput], quantized: Tensor) -> QuantizerOutput:
    indices = torch.stack([o.indices for o in outputs], dim=-1)
    losses = {k: sum(o.losses[k] for o in outputs) for k in outputs[0].losses}
    stats = {k: torch.stack([o.stats[k] for o in outputs]) for k in outputs[0].stats}
    return QuantizerOutput(quantized, indices, losses["total"], losses, stats)


class ResidualVQ(nn.Module):
    """Residual vector quantiser: ``num_quantizers`` stages, each coding the previous residual.

    The residual is carried in fp32 (fp64 for fp64 inputs); the codes subtracted between stages are
    detached, so stage q's commitment loss β·‖r_q − sg(e^{(q)})‖² trains the encoder through r_q. The output is exactly
    Σ_q e^{(q)} in the forward pass with a straight-through (identity) gradient to ``x``.

    Arguments:
        num_quantizers: number of stages Q ≥ 1.
        num_codes: codebook size of every stage.
        dim: D, the input feature size.
        vq_kwargs: keyword options of :class:`~kexue.vq.quantizer.VectorQuantizer` for every stage
            (``layout`` included).

    References:
        SoundStream, arXiv:2107.03312, §3.3 (Algorithm 1).
    """

    def __init__(self, num_quantizers: int, num_codes: int, dim: int, **vq_kwargs: Any) -> None:
        super().__init__()
        if num_quantizers < 1:
            raise ValueError(f"num_quantizers must be >= 1, got {num_quantizers}")
        self.layers = nn.ModuleList(
            VectorQuantizer(num_codes, dim, **vq_kwargs) for _ in range(num_quantizers)
        )
        self.dim, self.layout = dim, self.layers[0].layout

    def forward(self, x: Tensor) -> QuantizerOutput:
        """Quantise ``x`` with every stage.

        Arguments:
            x: input in the stages' layout ((..., D) or (B, D, *spatial)).

        Returns:
            :class:`QuantizerOutput` with indices of shape (*index_shape, num_quantizers).
        """
        check_input(x, self.dim, self.layout)
        dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
        z = x.to(dtype)
        residual = z  # keeps the graph to x: every stage's commitment loss reaches the encoder
        total = torch.zeros_like(z).detach()
        outputs = []
        for layer in self.layers:
            out = layer(residual)
            outputs.append(out)
            total = total + out.quantized.detach()
            residual = residual - out.quantized.detach()
        # straight-through over the whole stack: forward value Σ_q e^(q), gradient identity to x
        quantized = (total + (z - z.detach())).to(x.dtype)
        return _merge(outputs, quantized)

    @torch.no_grad()
    def lookup(self, indices: Tensor) -> Tensor:
        """Σ_q of the stages' code vectors.

        Arguments:
            indices: integer tensor (..., num_quantizers).

        Returns:
            The summed vectors in the stages' layout.
        """
        if indices.dim() < 2 or indices.shape[-1] != len(self.layers):
            raise ValueError(
                f"indices must have a last axis of size num_quantizers = {len(self.layers)}, "
                f"got shape {tuple(indices.shape)}"
            )
        return sum(layer.lookup(indices[..., q]) for q, layer in enumerate(self.layers))


class GroupedVQ(nn.Module):
    """Grouped (multi-head) quantiser: D split into ``groups`` slices with separate codebooks.

    Arguments:
        groups: number of groups G ≥ 1; ``dim`` must be divisible by G.
        num_codes: codebook size of every group.
        dim: D, the input feature size; each group quantises D/G features.
        vq_kwargs: keyword options of :class:`~kexue.vq.quantizer.VectorQuantizer` for every group.

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
            VectorQuantizer(num_codes, dim // groups, **vq_kwargs) for _ in range(groups)
        )

    def forward(self, x: Tensor) -> QuantizerOutput:
        """Quantise each slice of ``x`` along the channel axis with its own codebook.

        Arguments:
            x: input in the layout ((..., D) or (B, D, *spatial)).

        Returns:
            :class:`QuantizerOutput` with indices of shape (*index_shape, groups).
        """
        check_input(x, self.dim, self.layout)
        axis = channel_axis(self.layout)
        chunks = x.chunk(self.groups, dim=axis)
        outputs = [layer(c) for layer, c in zip(self.layers, chunks, strict=True)]
        return _merge(outputs, torch.cat([o.quantized for o in outputs], dim=axis))

    @torch.no_grad()
    def lookup(self, indices: Tensor) -> Tensor:
        """Concatenated group vectors.

        Arguments:
            indices: integer tensor (..., groups).

        Returns:
            The vectors in the layout, groups concatenated along the channel axis.
        """
        if indices.dim() < 2 or indices.shape[-1] != self.groups:
            raise ValueError(
                f"indices must have a last axis of size groups = {self.groups}, "
                f"got shape {tuple(indices.shape)}"
            )
        parts = [layer.lookup(indices[..., g]) for g, layer in enumerate(self.layers)]
        return torch.cat(parts, dim=channel_axis(self.layout))
