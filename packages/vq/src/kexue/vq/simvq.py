"""SimVQ: a frozen random codebook seen through one learned linear map (Zhu et al. 2024).

Spec: ``vq-modern.md`` §2.5. The codes are c_k = W·q_k (+ b) with Q = [q_k] a frozen buffer drawn
N(0, 1/d′) and W learned. Every step on W moves all K codes together, so unselected codes follow
the encoder instead of being left behind — the paper's remedy for codebook collapse.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from ._implicit import work_dtype
from ._layout import check_layout, flatten_input, unflatten
from ._masking import IndexStats, check_count, row_weights
from .functional import nearest_code
from .quantizer import QuantizerOutput
from .rotation import ESTIMATORS, rotation_trick

__all__ = ["SimVQ"]


class SimVQ(nn.Module):
    """Vector quantiser whose codebook is ``project(frozen)``: C = Q·Wᵀ (+ b), Q frozen.

    Forward, for z flattened to (N, D): C is computed once per call (K·d′·D FLOPs; cached in eval
    mode until W changes), k*(i) = argmin_k ‖z_i − c_k‖² through :func:`~kexue.vq.nearest_code`
    (exact, no N×K tensor — lucidrains uses ``torch.cdist``), z_q = sg(c_k*) + (z − sg(z)) (the
    forward value is the code exactly, the gradient passes straight through; or the rotation
    trick with ``estimator="rotation"``), and

        loss = codebook_weight·mean‖sg(z) − c_k*‖² + beta·mean‖z − sg(c_k*)‖².

    With the straight-through estimator W is trained by the codebook term only. The weights are
    those of the paper's official config (``legacy: false``) and of lucidrains (commitment_weight
    1, input_to_quantize_commit_loss_weight 0.25); the SimVQ code default ``legacy=True`` swaps
    them.

    Arguments:
        num_codes: K.
        dim: D, the input feature size.
        frozen_dim: d′, width of the frozen codes (default D).
        projection_bias: a bias b in the linear map (the paper's code has one, lucidrains not;
            default False).
        beta: commitment weight, 0.25.
        codebook_weight: weight of the codebook term, 1.0.
        layout: ``"channels_last"`` (x (..., D)) or ``"channels_first"`` (x (B, D, *spatial)).
        estimator: ``"ste"`` (default) or ``"rotation"`` (the rotation trick of
            :mod:`kexue.vq.rotation`: forward value still the code bit for bit, gradient λRᵀg;
            lucidrains' SimVQ default). ``stats["rotation_fallback"]`` counts rows that fell
            back to the STE.
        generator: optional generator for the frozen codebook draw.

    Forward: ``forward(x, mask=None, lens=None)``. ``mask`` bool with x's shape without D (True =
    valid), or ``lens`` (B,) for channels_last x (B, T, D). Padded positions get index −1 and
    ``quantized`` = the input there; they are left out of the losses (means over valid elements),
    of the gradients and of the stats.

    Returns:
        :class:`QuantizerOutput`; ``losses`` = {``codebook``, ``commitment``, ``total``} (weighted),
        stats {``perplexity``, ``usage``} of this batch.

    References:
        Zhu et al. 2024, "Addressing Representation Collapse in Vector Quantized Models with One
        Linear Layer", arXiv:2411.02038; youngsheen/SimVQ; lucidrains ``SimVQ``.

    Example:
        >>> vq = SimVQ(64, 8)
        >>> out = vq(torch.randn(4, 10, 8))
        >>> out.indices.shape, sorted(out.losses)
        (torch.Size([4, 10]), ['codebook', 'commitment', 'total'])
    """

    frozen_codebook: Tensor

    def __init__(
        self,
        num_codes: int,
        dim: int,
        *,
        frozen_dim: int | None = None,
        projection_bias: bool = False,
        beta: float = 0.25,
        codebook_weight: float = 1.0,
        layout: Literal["channels_last", "channels_first"] = "channels_last",
        estimator: Literal["ste", "rotation"] = "ste",
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        frozen_dim = dim if frozen_dim is None else frozen_dim
        for name, value in (("num_codes", num_codes), ("dim", dim), ("frozen_dim", frozen_dim)):
            check_count(name, value)
        for name, value in (("beta", beta), ("codebook_weight", codebook_weight)):
            if not value >= 0:
                raise ValueError(f"{name} must be >= 0, got {value}")
        check_layout(layout)
        if estimator not in ESTIMATORS:
            raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")
        self.estimator = estimator
        self.num_codes, self.dim, self.frozen_dim = num_codes, dim, frozen_dim
        self.beta, self.codebook_weight = float(beta), float(codebook_weight)
        self.layout = layout
        frozen = torch.randn(num_codes, frozen_dim, generator=generator) * frozen_dim**-0.5
        self.register_buffer("frozen_codebook", frozen)
        self.project = nn.Linear(frozen_dim, dim, bias=projection_bias)
        self._cache: tuple[tuple[int, ...], Tensor] | None = None

    def extra_repr(self) -> str:
        return f"num_codes={self.num_codes}, dim={self.dim}, frozen_dim={self.frozen_dim}"

    @property
    def codebook(self) -> Tensor:
        """The implicit codebook C = Q·Wᵀ (+ b), (K, D); differentiable in W in training mode."""
        if self.training:
            self._cache = None
            return self.project(self.frozen_codebook)
        params = [self.project.weight, self.frozen_codebook]
        if self.project.bias is not None:
            params.append(self.project.bias)
        key = tuple(p._version for p in params) + tuple(p.data_ptr() for p in params)
        if self._cache is None or self._cache[0] != key:
            with torch.no_grad():
                self._cache = (key, self.project(self.frozen_codebook))
        return self._cache[1]

    def lookup(self, indices: Tensor) -> Tensor:
        """Indices (index shape) → codes in the input layout; index −1 gives the zero vector."""
        if indices.dtype.is_floating_point or indices.dtype == torch.bool:
            raise ValueError(f"indices must be an integer tensor, got {indices.dtype}")
        idx = indices.to(torch.int64)
        codes = self.codebook[idx.clamp_min(0).reshape(-1)]
        codes = codes.masked_fill((idx < 0).reshape(-1, 1), 0.0)
        return unflatten(codes, tuple(idx.shape), self.layout)

    def forward(
        self, x: Tensor, mask: Tensor | None = None, lens: Tensor | None = None
    ) -> QuantizerOutput:
        """Quantise x; see the class docstring for ``mask`` / ``lens``."""
        flat, index_shape, mask = flatten_input(x, self.dim, self.layout, mask, lens)
        work = work_dtype(x)
        with torch.autocast(x.device.type, enabled=False):
            z = flat.to(work)
            codebook = self.codebook.to(work)
            idx, _ = nearest_code(z.detach(), codebook.detach())
            codes = codebook[idx]
            weights, total = row_weights(mask, z.shape[0], z)
            denom = total * self.dim
            commit = ((z - codes.detach()).pow(2).sum(-1) * weights).sum() / denom
            code_loss = ((z.detach() - codes).pow(2).sum(-1) * weights).sum() / denom
            if self.estimator == "rotation":
                quantized, fallback = rotation_trick(z, codes)
            else:
                quantized, fallback = codes.detach() + (z - z.detach()), None
        losses = {"codebook": self.codebook_weight * code_loss, "commitment": self.beta * commit}
        losses["total"] = losses["codebook"] + losses["commitment"]
        out = quantized.to(x.dtype)
        if mask is not None:
            valid = mask.reshape(-1, 1)
            out = torch.where(valid, out, flat)
            idx = idx.masked_fill(~valid.squeeze(-1), -1)
        extra = {}
        if fallback is not None:
            valid_fallback = fallback if mask is None else fallback & mask.reshape(-1)
            extra["rotation_fallback"] = valid_fallback.sum().to(torch.float32)
        stats = IndexStats(idx.unsqueeze(-1), self.num_codes, extra)
        quantized_out = unflatten(out, index_shape, self.layout)
        return QuantizerOutput(
            quantized_out, idx.reshape(index_shape), losses["total"], losses, stats
        )
