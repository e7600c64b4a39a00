"""Fast path of log Z: the scaled forward recursion with a hand-written β backward.

In probability space (spec §2.1's matmul trick), p_t ∝ (p_{t−1} @ exp(A − max A)) ⊙
exp(h_t − max h_t), normalised every step, with the log normalisers summed afterwards;
``A − max A`` is clamped at −80 so ``exp`` never returns 0 in fp32. The backward pass runs the β
recursion and returns the exact gradients (marginals for ``h``, start and end, expected
transition counts for ``A``): a handful of small ops per step instead of autograd through the
loop. Not twice differentiable. The reference it must match is the log-semiring
:func:`~._chain.chain` (``algorithm="lse"``).

References:
    Rabiner 1989, "A tutorial on hidden Markov models" (scaled forward–backward);
    https://kexue.fm/archives/5542.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

__all__ = ["scaled_log_partition"]

_CLAMP = -80.0  # spec §2.1: A − max A ≥ −80 so exp(·) > 0 in fp32
_SAFE_SPREAD = 30.0  # nats: normalise every other step below it (see scaled_log_partition)


class _ScaledForwardBackward(torch.autograd.Function):
    """log Z by the scaled forward recursion; backward = the β recursion (exact gradients)."""

    @staticmethod
    def forward(ctx, h, mask, a, start, end, steps, shortest, every):  # type: ignore[override]
        b = h.shape[0]
        ht = h.transpose(0, 1)[:steps]  # (S, B, K)
        if start is not None:
            ht = torch.cat([(ht[0] + start).unsqueeze(0), ht[1:]])
        hmax = ht.amax(-1, keepdim=True)  # (S, B, 1)
        e = (ht - hmax).exp_()
        amax = a.max()
        ea = (a - amax).clamp_min(_CLAMP).exp_()
        p = torch.empty_like(e)
        s = torch.ones_like(hmax)  # normalisers; 1 at the steps left unnormalised
        torch.sum(e[0], -1, keepdim=True, out=s[0])
        torch.div(e[0], s[0], out=p[0])
        for t in range(1, steps):
            torch.mm(p[t - 1], ea, out=p[t])
            p[t].mul_(e[t])
            if t % every == 0:
                torch.sum(p[t], -1, keepdim=True, out=s[t])
                p[t].div_(s[t])
        last = mask.sum(1) - 1  # (B,)
        rows = torch.arange(b, device=h.device)
        offset = (hmax + s.log()).squeeze(-1).cumsum(0)[last, rows] + last.to(h.dtype) * amax
        p_last = p[last, rows]  # (B, K)
        if end is None:  # p_last sums to 1 unless its step was left unnormalised
            tail = p_last.sum(-1).log()
            b_last = (-tail).exp().unsqueeze(-1).expand_as(p_last).contiguous()
        else:
            tail = torch.logsumexp(p_last.log() + end, -1)
            b_last = (end - tail.unsqueeze(-1)).exp()
        log_z = offset + tail
        e.div_(s)  # e'_t = e_t / s_t, what the backward recursion uses
        ctx.save_for_backward(mask, p, e, ea, b_last, last)
        ctx.flags = (start is not None, end is not None, h.shape, shortest)
        return log_z

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):  # type: ignore[override]
        mask, p, e, ea, b_last, last = ctx.saved_tensors
        has_start, has_end, shape, shortest = ctx.flags
        steps = p.shape[0]
        b, t_full, k = shape
        beta = torch.empty_like(p)
        beta[steps - 1] = b_last
        # stop (use b_last) at t ≥ L − 1, i.e. where the next step is padding
        stop = ~mask.transpose(0, 1)[1:steps].unsqueeze(-1)  # (S − 1, B, 1)
        ea_t = ea.t()
        tmp = torch.empty_like(b_last)
        eb = torch.empty_like(p)  # e'_t ⊙ β_t, kept for the transition gradient
        for t in range(steps - 2, -1, -1):
            torch.mul(e[t + 1], beta[t + 1], out=eb[t + 1])
            if t + 1 < shortest:  # every row runs on past t: no row stops here
                torch.mm(eb[t + 1], ea_t, out=beta[t])
                continue
            torch.mm(eb[t + 1], ea_t, out=tmp)
            torch.where(stop[t], b_last, tmp, out=beta[t])
        gamma = p * beta  # (S, B, K) marginals (garbage at pads, masked below)
        mt = mask.transpose(0, 1)[:steps].unsqueeze(-1)
        g = grad.to(p.dtype).unsqueeze(-1)  # (B, 1)
        grad_ht = torch.where(mt, gamma * g, 0.0)
        grad_h = grad_ht.new_zeros(t_full, b, k)
        grad_h[:steps] = grad_ht
        grad_h = grad_h.transpose(0, 1)
        if steps > 1:
            u = torch.where(mt[1:], p[:-1] * g, 0.0).reshape(-1, k)
            v = eb[1:].reshape(-1, k)
            grad_a = ea * (u.t() @ v)
        else:
            grad_a = torch.zeros_like(ea)
        grad_start = grad_ht[0].sum(0) if has_start else None
        rows = torch.arange(b, device=p.device)
        grad_end = grad_ht[last, rows].sum(0) if has_end else None
        return grad_h, None, grad_a, grad_start, grad_end, None, None, None


def scaled_log_partition(h: Tensor, mask: Tensor, a: Tensor, start: Tensor | None,
                         end: Tensor | None, steps: int, shortest: int = 1,
                         spread: float | None = None) -> Tensor:  # fmt: skip
    """(B,) log Z; trusted inputs (``h`` 0 at pads, ``steps`` / ``shortest`` = the longest /
    shortest length; a wrong ``shortest`` above the true one gives wrong gradients).

    ``spread``: max A − min A (and of ``end``) when known. At most 30 nats, every entry of
    exp(A − max A) is ≥ e^−30, so one unnormalised step shrinks the mass by at most e^−30 (the
    best tag's emission factor is 1): normalising every other step keeps it ≥ e^−60, far above
    fp32's smallest normal (≈ e^−87). The scaling factors are arbitrary in the scaled
    forward–backward as long as β uses the same ones (Rabiner 1989 §V.A)."""
    every = 2 if spread is not None and spread <= _SAFE_SPREAD else 1
    return _ScaledForwardBackward.apply(h, mask, a, start, end, steps, shortest, every)
