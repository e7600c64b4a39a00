"""Exact LFQ entropies without an N × 2^b tensor (private; see ``lfq.py``, spec vq-modern.md §2.3).

With codes c ∈ {±s}^d and logits ℓ_ik = 2β·z_i·c_k, the softmax p_i factorises over bits:
p_i(c_j = +s) = σ(a_ij) with a = 4βs·z. Hence

- the per-sample entropy is H(p_i) = Σ_j h(σ(a_ij)) (h the binary entropy), O(N·d);
- the code distribution of row i is the outer product of the distributions over the low and the
  high half of the bits: p_i = P^lo_i ⊗ P^hi_i with 2^⌊d/2⌋ and 2^⌈d/2⌉ entries, so the batch mean
  p̄ = Σ_i w_i·P^hi_iᵀ P^lo_i is one matrix product per chunk of rows. Memory is
  O(rows·2^⌈d/2⌉ + 2^d) and there is no elementwise work on N × 2^d.

:class:`_MeanCodeProbs` returns p̄ (C, 2^d_hi, 2^d_lo) with a streaming backward that recomputes each
chunk's P^lo, P^hi. :class:`_ClampedSampleEntropy` is the per-sample entropy with lucidrains' log
clamp (−Σ_k p log max(p, ε)), which does not factorise: it streams rows against all 2^d codes.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

__all__ = ["DEFAULT_CHUNK_ELEMENTS", "clamped_sample_entropy", "mean_code_probs", "sample_entropy"]

#: Elements of one chunk's per-row probability tables (fp32: 16 MiB).
DEFAULT_CHUNK_ELEMENTS = 2**22


def bit_table(bits: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """(2^bits, bits) table of 0/1, row k = the bits of k, least significant first."""
    k = torch.arange(2**bits, device=device).unsqueeze(-1)
    return ((k >> torch.arange(bits, device=device)) & 1).to(dtype)


def _floor(dtype: torch.dtype) -> float:
    """A log-probability below which p is dropped: e^floor is a normal float (fp32 e^−80 ≈ 1.8e-35).

    On CPU, exp / log1p take a slow scalar path (~300× slower) for results that underflow; keeping
    every argument in range avoids it. Probabilities below e^floor contribute nothing measurable.
    """
    return -700.0 if dtype == torch.float64 else -80.0


def softplus(a: Tensor) -> Tensor:
    """log(1 + e^a) = max(a, 0) + log(1 + e^−|a|), with |a| capped at −floor (error < e^floor)."""
    t = torch.exp(-a.abs().clamp_max(-_floor(a.dtype)))
    return a.clamp_min(0) + torch.log(1 + t)


def sigmoid(a: Tensor) -> Tensor:
    """σ(a) with a clipped to ±(−floor): exact to e^floor, without the slow underflow path."""
    cap = -_floor(a.dtype)
    return torch.sigmoid(a.clamp(-cap, cap))


def _probs(logp: Tensor) -> Tensor:
    """exp(logp) for logp <= 0, with entries below e^floor set to 0."""
    floor = _floor(logp.dtype)
    return torch.exp(logp.clamp_min(floor)).masked_fill_(logp < floor, 0.0)


def _log_probs(a: Tensor, table: Tensor) -> Tensor:
    """log P(bits = row k of ``table`` | logits a): a (R, C, n) → (R, C, 2^n).

    log Π_j σ(a_j)^b_j σ(−a_j)^(1−b_j) = Σ_j b_j a_j − Σ_j softplus(a_j).
    """
    return a @ table.T - softplus(a).sum(-1, keepdim=True)


def _rows_per_chunk(codebooks: int, width: int, chunk_elements: int) -> int:
    return max(1, chunk_elements // max(1, codebooks * width))


def sample_entropy(a: Tensor, weights: Tensor, total: Tensor) -> Tensor:
    """Closed-form mean per-sample entropy: Σ_i w_i·mean_c Σ_j h(σ(a_icj)) / total, a (N, C, d).

    h(σ(a)) = softplus(a) − a·σ(a); differentiable by autograd, O(N·C·d).
    """
    h = softplus(a) - a * sigmoid(a)
    per_row = h.sum(-1).mean(-1)
    return (per_row * weights).sum() / total


class _MeanCodeProbs(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, a: Tensor, weights: Tensor, total: Tensor, chunk_elements: int) -> Tensor:
        n, c, d = a.shape
        d_lo = d // 2
        t_lo = bit_table(d_lo, a.dtype, a.device)
        t_hi = bit_table(d - d_lo, a.dtype, a.device)
        rows = _rows_per_chunk(c, t_lo.shape[0] + t_hi.shape[0], chunk_elements)
        pbar = a.new_zeros(c, t_hi.shape[0], t_lo.shape[0])
        scale = weights / total
        for start in range(0, n, rows):
            ac = a[start : start + rows]
            p_lo = (
                _probs(_log_probs(ac[..., :d_lo], t_lo)) * scale[start : start + rows, None, None]
            )
            p_hi = _probs(_log_probs(ac[..., d_lo:], t_hi))
            pbar.baddbmm_(p_hi.permute(1, 2, 0), p_lo.transpose(0, 1))
        ctx.save_for_backward(a, scale)
        ctx.chunk_elements = chunk_elements
        return pbar

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, None, None, None]:
        a, scale = ctx.saved_tensors
        n, c, d = a.shape
        d_lo = d // 2
        t_lo = bit_table(d_lo, a.dtype, a.device)
        t_hi = bit_table(d - d_lo, a.dtype, a.device)
        rows = _rows_per_chunk(c, t_lo.shape[0] + t_hi.shape[0], ctx.chunk_elements)
        u = grad.to(a.dtype)  # (C, K_hi, K_lo)
        out = torch.empty_like(a)
        for start in range(0, n, rows):
            ac = a[start : start + rows]
            p_lo = _probs(_log_probs(ac[..., :d_lo], t_lo)).transpose(0, 1)  # (C, R, K_lo)
            p_hi = _probs(_log_probs(ac[..., d_lo:], t_hi)).transpose(0, 1)  # (C, R, K_hi)
            # g_k p_ik summed with the bits of k: d p_ik / d a_ij = p_ik (b_kj − σ(a_ij))
            lo = torch.bmm(p_hi, u) * p_lo  # (C, R, K_lo): Σ_hi u p_hi, times p_lo
            hi = torch.bmm(p_lo, u.transpose(1, 2)) * p_hi
            total = lo.sum(-1)  # Σ_k u_k p_ik
            grad_bits = torch.cat([lo @ t_lo, hi @ t_hi], dim=-1)  # (C, R, d)
            g = grad_bits - sigmoid(ac.transpose(0, 1)) * total.unsqueeze(-1)
            out[start : start + rows] = g.transpose(0, 1) * scale[start : start + rows, None, None]
        return out, None, None, None


def mean_code_probs(
    a: Tensor, weights: Tensor, total: Tensor, chunk_elements: int = DEFAULT_CHUNK_ELEMENTS
) -> Tensor:
    """p̄ = Σ_i w_i p_i / total over the 2^d codes of each of C codebooks, a (N, C, d) → (C, 2^d).

    Code k's bit j (least significant first) is 1 when c_kj = +s. Exact, differentiable in a,
    memory O(rows·2^⌈d/2⌉ + C·2^d) per chunk of rows.
    """
    pbar = _MeanCodeProbs.apply(a, weights.to(a.dtype), total.to(a.dtype), chunk_elements)
    return pbar.flatten(1)  # k = k_lo + 2^d_lo·k_hi: the low bits are the low dims


class _ClampedSampleEntropy(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any, a: Tensor, weights: Tensor, total: Tensor, eps: float, chunk_elements: int
    ) -> Tensor:
        n, c, d = a.shape
        table = bit_table(d, a.dtype, a.device)
        rows = _rows_per_chunk(c, table.shape[0], chunk_elements)
        scale = weights / (total * c)
        log_eps = torch.tensor(eps, dtype=a.dtype, device=a.device).log()
        acc = a.new_zeros(())
        for start in range(0, n, rows):
            logp = _log_probs(a[start : start + rows], table)
            ent = -(_probs(logp) * logp.clamp_min(log_eps)).sum(-1).sum(-1)
            acc = acc + (ent * scale[start : start + rows]).sum()
        ctx.save_for_backward(a, scale)
        ctx.eps, ctx.chunk_elements = eps, chunk_elements
        return acc

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, None, None, None, None]:
        a, scale = ctx.saved_tensors
        n, c, d = a.shape
        table = bit_table(d, a.dtype, a.device)
        rows = _rows_per_chunk(c, table.shape[0], ctx.chunk_elements)
        log_eps = torch.tensor(ctx.eps, dtype=a.dtype, device=a.device).log()
        out = torch.empty_like(a)
        for start in range(0, n, rows):
            ac = a[start : start + rows]
            logp = _log_probs(ac, table)
            # d/dp [−p log max(p, ε)] = −(1 + log p) above ε, −log ε below (lucidrains' clamp)
            v = torch.where(logp > log_eps, -(1 + logp), -log_eps) * _probs(logp)
            g = v @ table - sigmoid(ac) * v.sum(-1, keepdim=True)
            out[start : start + rows] = g * (grad * scale[start : start + rows, None, None])
        return out, None, None, None, None


def clamped_sample_entropy(
    a: Tensor,
    weights: Tensor,
    total: Tensor,
    eps: float,
    chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
) -> Tensor:
    """Σ_i w_i·mean_c(−Σ_k p_ik log max(p_ik, ε)) / total, streamed over rows against all codes."""
    return _ClampedSampleEntropy.apply(
        a, weights.to(a.dtype), total.to(a.dtype), eps, chunk_elements
    )
