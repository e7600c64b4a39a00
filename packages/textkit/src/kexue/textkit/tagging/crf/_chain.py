"""The linear-chain forward recursion, written once over a semiring (the reference = the spec).

    α_1[j] = start[j] ⊗ h_1[j]
    α_t[j] = (⊕_i α_{t−1}[i] ⊗ A[i, j]) ⊗ h_t[j]      (padded steps carry α_{t−1})
    total  = ⊕_j α_L[j] ⊗ end[j]

Under :data:`~.semiring.LOG` the total is log Z (and autograd through it gives the marginals),
under :data:`~.semiring.MAX` the best path score with back-pointers, under
:class:`~.semiring.KMax` the k best scores with back-pointers; :func:`backtrace` turns the
back-pointers into tag paths. Inputs are trusted (checked by the public entries): ``h`` (B, T, K)
with zeros at padded steps, ``mask`` (B, T) bool prefix mask, ``steps`` = the longest length.

References:
    Rush 2020, "Torch-Struct", arXiv 2002.00876; https://kexue.fm/archives/5542 (the recursion).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .semiring import Semiring

__all__ = ["backtrace", "chain"]


def chain(
    semiring: Semiring,
    h: Tensor,
    mask: Tensor,
    a: Tensor,
    start: Tensor | None,
    end: Tensor | None,
    steps: int,
) -> tuple[Tensor, Tensor | None, list[Tensor]]:
    """Run the recursion; return ``(total (B[, r]), final witness (B[, r]) or None, back)``.

    ``back`` holds, for t = 1 … steps − 1, the witnesses (B, K[, r]) of step t (identity at
    padded steps); it is empty for semirings without witnesses.
    """
    b, _, k = h.shape
    extra = (1,) if semiring.ranks is not None else ()
    ht, mt = h.transpose(0, 1), mask.transpose(0, 1).reshape(-1, b, 1, *extra)
    alpha = semiring.lift(ht[0] if start is None else ht[0] + start)  # (B, K[, r])
    pair = a.reshape(1, k, k, *extra)  # (1, K_from, K_to[, 1])
    stay = semiring.identity_witness((b, k), h.device) if semiring.has_witness else None
    back: list[Tensor] = []
    for t in range(1, steps):
        nxt, witness = semiring.plus(alpha.unsqueeze(2) + pair, dim=1)
        nxt = nxt + ht[t].reshape(b, k, *extra)
        alpha = torch.where(mt[t], nxt, alpha)
        if witness is not None:
            back.append(torch.where(mt[t], witness, stay))
    if end is not None:
        alpha = alpha + end.reshape(1, k, *extra)
    total, witness = semiring.plus(alpha, dim=1)
    return total, witness, back


def backtrace(semiring: Semiring, witness: Tensor, back: list[Tensor]) -> Tensor:
    """Follow the back-pointers of :func:`chain` (max or k-max); return tags (B, r, steps)."""
    r = semiring.ranks or 1
    if semiring.ranks is None:  # max: pointers are tags; view them as tag · 1 + rank 0
        witness, back = witness.unsqueeze(-1), [bp.unsqueeze(-1) for bp in back]
    b = witness.shape[0]
    tag, rank = witness // r, witness % r  # (B, r)
    path = [tag]
    for bp in reversed(back):
        flat = bp.reshape(b, -1).gather(1, tag * r + rank)
        tag, rank = flat // r, flat % r
        path.append(tag)
    return torch.stack(path[::-1], dim=-1)
