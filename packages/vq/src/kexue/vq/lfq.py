"""Lookup-free quantisation (LFQ): one sign bit per dimension, with an exact, chunked entropy loss.

MAGVIT-v2 (Yu et al. 2023, arXiv:2310.05737 §3.1); spec ``vq-modern.md`` §2.3. The codebook is
{−s, +s}^d, implicit; the index of a code is its bit string. The entropy terms of the paper
(per-sample entropy down, codebook entropy up) are computed **exactly** without the N × 2^d logits
that lucidrains/vector-quantize-pytorch materialises (see :mod:`kexue.vq._lfq_entropy`).
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor

from ._implicit import ProjectedQuantizer, no_autocast, work_dtype
from ._lfq_entropy import (
    DEFAULT_CHUNK_ELEMENTS,
    clamped_sample_entropy,
    mean_code_probs,
    sample_entropy,
    sigmoid,
)
from ._masking import IndexStats, check_count, row_weights
from .quantizer import QuantizerOutput

__all__ = ["LFQ", "MAX_EXACT_ENTROPY_BITS", "lfq_entropies"]

#: Above this many bits per codebook the default entropy is ``"factorized"`` (spec §2.3).
MAX_EXACT_ENTROPY_BITS = 20
_ENTROPIES = ("exact", "factorized")
_BIT_ORDERS = ("msb", "lsb")


def _entropy(p: Tensor, log_clamp: float | None) -> Tensor:
    """−Σ p log p over the last axis; with ``log_clamp`` ε: −Σ p log max(p, ε) (lucidrains).

    Without a clamp the log is taken of max(p, smallest normal float): the value is exact (0·log 0
    = 0) and the gradient stays finite at p = 0, where it multiplies only zero probabilities.
    """
    eps = torch.finfo(p.dtype).tiny if log_clamp is None else log_clamp
    return -(p * p.clamp_min(eps).log()).sum(-1)


def lfq_entropies(
    z: Tensor,
    *,
    inv_temperature: float = 100.0,
    codebook_scale: float = 1.0,
    mask: Tensor | None = None,
    entropy: str = "exact",
    log_clamp: float | None = None,
    chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
) -> tuple[Tensor, Tensor]:
    """(per-sample entropy H_s, codebook entropy H_b) of LFQ inputs z (N, C, d), in nats.

    p_i = softmax_k(2β·z_i·c_k) over the codes c_k ∈ {±s}^d of each of the C codebooks;
    H_s = mean over valid rows and codebooks of H(p_i); H_b = mean over codebooks of H(p̄) with p̄
    the mean of p_i over valid rows. ``entropy="exact"`` computes H_s in closed form,
    Σ_j h(σ(4βs·z_ij)), and p̄ exactly in chunks of rows (no N × 2^d tensor);
    ``"factorized"`` replaces H_b by Σ_j h(p̄_j) over the bit marginals, an upper bound
    (subadditivity), O(N·d). ``log_clamp`` = ε reproduces lucidrains' −Σ p log max(p, ε) in both
    terms (then H_s is streamed over all 2^d codes; only with ``"exact"``).
    """
    if not isinstance(z, Tensor) or not z.is_floating_point() or z.dim() != 3:
        raise ValueError(f"z must be a floating (N, C, d) tensor, got {getattr(z, 'shape', z)!r}")
    if entropy not in _ENTROPIES:
        raise ValueError(f"entropy must be one of {_ENTROPIES}, got {entropy!r}")
    if log_clamp is not None and entropy != "exact":
        raise ValueError("log_clamp needs entropy='exact'")
    n = z.shape[0]
    if mask is not None and mask.numel() != n:
        raise ValueError(f"mask must hold N = {n} entries, got shape {tuple(mask.shape)}")
    a = (4.0 * inv_temperature * codebook_scale) * z
    weights, total = row_weights(mask, n, a)
    if log_clamp is None:
        per_sample = sample_entropy(a, weights, total)
    else:
        per_sample = clamped_sample_entropy(a, weights, total, log_clamp, chunk_elements)
    if entropy == "factorized":
        bit_p = (sigmoid(a) * weights[:, None, None]).sum(0) / total  # (C, d)
        stacked = torch.stack([bit_p, 1 - bit_p], dim=-1)
        return per_sample, _entropy(stacked, None).sum(-1).mean()
    pbar = mean_code_probs(a, weights, total, chunk_elements)
    return per_sample, _entropy(pbar, log_clamp).mean()


class LFQ(ProjectedQuantizer):
    """Lookup-free quantiser: q_j = s·sign(z_j) (sign(0) → −s), K = 2^bits implicit codes.

    Index = Σ_j 1[z_j > 0]·w_j with w_j = 2^(d−1−j) (``bit_order="msb"``, lucidrains' order, the
    default: indices identical to its ``LFQ``) or 2^j (``"lsb"``, Open-MAGVIT2). The output is the
    code exactly in the forward (q + (z − sg(z))) with the straight-through gradient, in train and
    eval alike (lucidrains returns the bare code in eval).

    Loss (spec §2.3): entropy_weight·(H_s − diversity_weight·H_b) + commitment_weight·mean‖z − sg(q)‖²
    where p_i = softmax_k(2β·z_i·c_k), β = ``inv_temperature``, H_s = mean_i H(p_i) and
    H_b = H(mean_i p_i) (see :func:`lfq_entropies`): exact, no N × 2^bits tensor.

    Arguments:
        bits: d, bits per codebook (K = 2^d codes).
        dim: input feature size D; default ``bits * num_codebooks``; when different,
            ``project_in``/``project_out`` linear maps (with ``projection_bias``) surround it.
        num_codebooks: C heads over C slices of the projected feature; indices gain a last axis of
            size C when C > 1; the entropies are averaged over heads (lucidrains).
        entropy_weight: w_e, 0.1 (lucidrains). diversity_weight: γ, 1.0 (``diversity_gamma``).
        commitment_weight: w_c, 0.25 (Open-MAGVIT2; lucidrains' default is 0).
        inv_temperature: β, 100 (lucidrains' forward default; Open-MAGVIT2 divides by 0.01).
        codebook_scale: s, 1.0 (residual LFQ halves it per stage).
        soft_clamp: v; when set the input first becomes v·tanh(z/v) (lucidrains
            ``soft_clamp_input_value``).
        bit_order: ``"msb"`` (default) or ``"lsb"``.
        entropy: ``"exact"`` or ``"factorized"`` (bit-marginal upper bound of H_b); default exact up
            to :data:`MAX_EXACT_ENTROPY_BITS` bits, factorized (with a warning) above.
        log_clamp: ε of lucidrains' log clamp (``1e-5`` for its values); None (default) = exact
            entropies. With a clamp H_s costs O(N·2^d) time (still chunked).
        chunk_elements: elements of one chunk's probability tables (memory knob).

    Forward: ``forward(x, mask=None, lens=None)`` with x (..., D). ``mask`` bool (...), True = valid,
    or ``lens`` (B,) for x (B, T, D). Padded positions get index −1 and ``quantized`` = the input
    unchanged there; they are left out of every loss term (means over valid positions only) and of
    the usage stats, and receive no gradient from the losses.

    Returns:
        :class:`QuantizerOutput`; ``losses`` holds ``per_sample_entropy`` and ``codebook_entropy``
        (raw, in nats, as lucidrains' breakdown), ``entropy`` = w_e(H_s − γH_b), ``commitment`` =
        w_c·mse, and ``total``; stats ``perplexity``, ``usage``.

    References:
        Yu et al. 2023, arXiv:2310.05737; lucidrains/vector-quantize-pytorch ``LFQ``;
        TencentARC/Open-MAGVIT2 ``lookup_free_quantize.py``.

    Example:
        >>> lfq = LFQ(8)
        >>> out = lfq(torch.randn(2, 16, 8))
        >>> out.indices.shape, sorted(out.losses)[:2]
        (torch.Size([2, 16]), ['codebook_entropy', 'commitment'])
    """

    bit_weights: Tensor

    def __init__(
        self,
        bits: int,
        dim: int | None = None,
        *,
        num_codebooks: int = 1,
        entropy_weight: float = 0.1,
        diversity_weight: float = 1.0,
        commitment_weight: float = 0.25,
        inv_temperature: float = 100.0,
        codebook_scale: float = 1.0,
        soft_clamp: float | None = None,
        bit_order: str = "msb",
        entropy: str | None = None,
        log_clamp: float | None = None,
        projection_bias: bool = True,
        chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
    ) -> None:
        super().__init__()
        check_count("bits", bits)
        check_count("num_codebooks", num_codebooks)
        if bits > 62:
            raise ValueError(f"bits must be <= 62 (int64 indices), got {bits}")
        self._init_projection(dim, bits * num_codebooks, bias=projection_bias)
        for name, value in (
            ("entropy_weight", entropy_weight),
            ("diversity_weight", diversity_weight),
            ("commitment_weight", commitment_weight),
        ):
            if not value >= 0:
                raise ValueError(f"{name} must be >= 0, got {value}")
        for name, value in (
            ("inv_temperature", inv_temperature),
            ("codebook_scale", codebook_scale),
        ):
            if not value > 0:
                raise ValueError(f"{name} must be > 0, got {value}")
        if soft_clamp is not None and not soft_clamp >= codebook_scale:
            raise ValueError(f"soft_clamp must be >= codebook_scale or None, got {soft_clamp}")
        if bit_order not in _BIT_ORDERS:
            raise ValueError(f"bit_order must be one of {_BIT_ORDERS}, got {bit_order!r}")
        if entropy is None:
            entropy = "exact" if bits <= MAX_EXACT_ENTROPY_BITS else "factorized"
            if entropy == "factorized":
                warnings.warn(
                    f"LFQ with {bits} bits > {MAX_EXACT_ENTROPY_BITS}: the codebook entropy is "
                    "the factorized upper bound (pass entropy='exact' to force the exact one)",
                    stacklevel=2,
                )
        if entropy not in _ENTROPIES:
            raise ValueError(f"entropy must be one of {_ENTROPIES} or None, got {entropy!r}")
        if log_clamp is not None and (not log_clamp > 0 or entropy != "exact"):
            raise ValueError(f"log_clamp must be > 0 and needs entropy='exact', got {log_clamp}")
        if chunk_elements < 1:
            raise ValueError(f"chunk_elements must be >= 1, got {chunk_elements}")
        self.bits, self.num_codebooks = bits, num_codebooks
        self.num_codes = 2**bits
        self.entropy_weight, self.diversity_weight = float(entropy_weight), float(diversity_weight)
        self.commitment_weight = float(commitment_weight)
        self.inv_temperature, self.codebook_scale = float(inv_temperature), float(codebook_scale)
        self.soft_clamp = None if soft_clamp is None else float(soft_clamp)
        self.bit_order, self.entropy, self.log_clamp = bit_order, entropy, log_clamp
        self.chunk_elements = int(chunk_elements)
        powers = range(bits - 1, -1, -1) if bit_order == "msb" else range(bits)
        weights = torch.tensor([2**p for p in powers], dtype=torch.int64)
        self.register_buffer("bit_weights", weights, persistent=False)

    def extra_repr(self) -> str:
        return (
            f"bits={self.bits}, dim={self.dim}, num_codebooks={self.num_codebooks}, "
            f"bit_order={self.bit_order!r}, entropy={self.entropy!r}"
        )

    # -- codes and indices -----------------------------------------------------------------------

    def codes_to_indices(self, codes: Tensor) -> Tensor:
        """Codes (..., bits) (any sign pattern) → int64 indices (...): bit j set where code_j > 0."""
        if codes.shape[-1:] != (self.bits,):
            raise ValueError(f"codes must have shape (..., {self.bits}), got {tuple(codes.shape)}")
        return ((codes > 0).to(torch.int64) * self.bit_weights).sum(-1)

    def indices_to_codes(self, indices: Tensor) -> Tensor:
        """int64 indices (...) in [0, 2^bits) → codes (..., bits) in {±s}, fp32 (no projection)."""
        if indices.dtype.is_floating_point or indices.dtype == torch.bool:
            raise ValueError(f"indices must be an integer tensor, got {indices.dtype}")
        bits = (indices.to(torch.int64).unsqueeze(-1) & self.bit_weights) != 0
        return torch.where(bits, self.codebook_scale, -self.codebook_scale).to(torch.float32)

    def lookup(self, indices: Tensor) -> Tensor:
        """Indices (...) or (..., C) → output-space vectors (..., D); index −1 gives the zero vector."""
        idx = self._head_indices(indices, self.num_codebooks)
        return self._project_codes(self.indices_to_codes(idx.clamp_min(0)).flatten(-2), idx)

    # -- forward ---------------------------------------------------------------------------------

    def forward(
        self, x: Tensor, mask: Tensor | None = None, lens: Tensor | None = None
    ) -> QuantizerOutput:
        """Quantise x (..., D); see the class docstring for ``mask`` / ``lens``."""
        z, mask = self._enter(x, mask, lens)
        work = work_dtype(z)
        with no_autocast(z):
            zc = z.to(work).unflatten(-1, (self.num_codebooks, self.bits))
            if self.soft_clamp is not None:
                zc = torch.tanh(zc / self.soft_clamp) * self.soft_clamp
            codes = torch.where(zc > 0, self.codebook_scale, -self.codebook_scale).to(work)
            indices = self.codes_to_indices(zc.detach())
            quantized = codes + (zc - zc.detach())
            losses = self.losses_of(zc, codes, mask)
        out, indices = self._leave(quantized.flatten(-2), indices, z, x, mask)
        stats = IndexStats(indices, self.num_codes)
        if self.num_codebooks == 1:
            indices = indices.squeeze(-1)
        return QuantizerOutput(out, indices, losses["total"], losses, stats)

    def losses_of(self, zc: Tensor, codes: Tensor, mask: Tensor | None) -> dict[str, Tensor]:
        """The loss terms of (soft-clamped) inputs zc (..., C, bits) and their codes (..., C, bits)."""
        flat = zc.reshape(-1, self.num_codebooks, self.bits)
        weights, total = row_weights(mask, flat.shape[0], flat)
        sq = (flat - codes.reshape(flat.shape).detach()).pow(2).sum((-2, -1))
        commitment = (sq * weights).sum() / (total * self.num_codebooks * self.bits)
        if self.entropy_weight > 0:
            h_s, h_b = lfq_entropies(
                flat,
                inv_temperature=self.inv_temperature,
                codebook_scale=self.codebook_scale,
                mask=mask,
                entropy=self.entropy,
                log_clamp=self.log_clamp,
                chunk_elements=self.chunk_elements,
            )
        else:
            h_s = h_b = flat.new_zeros(())
        entropy = self.entropy_weight * (h_s - self.diversity_weight * h_b)
        commitment = self.commitment_weight * commitment
        return {
            "per_sample_entropy": h_s,
            "codebook_entropy": h_b,
            "entropy": entropy,
            "commitment": commitment,
            "total": entropy + commitment,
        }
