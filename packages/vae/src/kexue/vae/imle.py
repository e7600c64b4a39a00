"""Pooled IMLE in code space (post 6394; Li & Malik): each target pulls its nearest pool sample.

L = (1/M)Σ_i min_j ‖t_i − s_j‖² with a pool of samples s_j = T(e_j) larger than the batch of
targets t_i (the paper's pool; the author's script is batch-local, ``kexue.gan_losses.imle_loss``,
which this equals when pool = batch). The nearest sample is found without gradient, exactly, in
chunks of targets (memory chunk × pool), lowest index on ties.

References:
    https://kexue.fm/archives/6394; Li & Malik, arXiv:1809.09087; ``bojone/gan`` ``imle.py``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._validation import Reduction, check_batched, check_int, check_reduction, flat, reduce

__all__ = ["imle_loss_pooled", "imle_match"]


def imle_match(targets: Tensor, pool: Tensor, *, chunk: int | None = None) -> tuple[Tensor, Tensor]:
    """Index of the nearest pool row for each target (squared L2 over non-batch dims).

    Arguments:
        targets: ``(M, ...)``; pool: ``(N, ...)`` with the same per-sample shape.
        chunk: targets per distance block (default all; memory chunk × N).

    Returns:
        ``(index (M,) int64, sqdist (M,))``, no gradient; ties go to the lowest index.
    """
    check_batched(targets, "targets")
    check_batched(pool, "pool")
    if targets.shape[1:] != pool.shape[1:]:
        raise ValueError(
            f"targets and pool must have the same per-sample shape, got {tuple(targets.shape)} "
            f"and {tuple(pool.shape)}"
        )
    t, p = flat(targets.detach()), flat(pool.detach())
    dtype = torch.promote_types(t.dtype, torch.float32)
    t, p = t.to(dtype), p.to(dtype)
    step = t.shape[0] if chunk is None else check_int(chunk, "chunk")
    idx, dist = [], []
    with torch.no_grad():
        for s in range(0, t.shape[0], max(step, 1)):
            d = (t[s : s + step, None, :] - p[None]).pow(2).sum(-1)
            val, arg = d.min(dim=1)
            idx.append(arg)
            dist.append(val)
    if not idx:
        return torch.zeros(0, dtype=torch.long, device=t.device), t.new_zeros(0)
    return torch.cat(idx), torch.cat(dist)


def imle_loss_pooled(
    targets: Tensor, pool: Tensor, *, chunk: int | None = None, reduction: Reduction = "mean"
) -> Tensor:
    """IMLE loss: each target's squared distance to its nearest pool sample (gradient to the pool).

    Arguments:
        targets: ``(M, ...)`` data (e.g. GLO codes), constants.
        pool: ``(N, ...)`` samples T(e) with the mapper attached; N ≥ M recommended.
        chunk: as :func:`imle_match`.
        reduction: "mean" (default), "sum" or "none" (``(M,)``).
    """
    check_reduction(reduction)
    index, _ = imle_match(targets, pool, chunk=chunk)
    per = flat(targets.to(pool.dtype) - pool[index]).pow(2).sum(1)
    return reduce(per, reduction)
