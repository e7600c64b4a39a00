"""A small exact k-means (k-means++ seeding, Lloyd iterations, best of ``n_init``) in torch.

Used to initialise the clustering VAE's class means from the encoder means after a warm-up
(VaDE / DEC pretraining, spec §2.5). Small data only: distances are (N, K) at once.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["kmeans"]


def _plusplus(x: Tensor, k: int, gen: torch.Generator) -> Tensor:
    centres = [x[torch.randint(0, x.shape[0], (1,), generator=gen)].squeeze(0)]
    d2 = (x - centres[0]).pow(2).sum(1)
    for _ in range(1, k):
        probs = d2 / d2.sum() if float(d2.sum()) > 0 else torch.full_like(d2, 1.0 / d2.numel())
        i = torch.multinomial(probs, 1, generator=gen)
        centres.append(x[i].squeeze(0))
        d2 = torch.minimum(d2, (x - centres[-1]).pow(2).sum(1))
    return torch.stack(centres)


@torch.no_grad()
def kmeans(
    x: Tensor,
    k: int,
    *,
    n_init: int = 10,
    iters: int = 100,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor, float]:
    """k-means of ``x`` ``(N, d)``: ``(centres (k, d), labels (N,), inertia)`` of the best init.

    An empty cluster is re-seeded at the point farthest from its centre.
    """
    if x.dim() != 2 or not 1 <= k <= x.shape[0]:
        raise ValueError(f"x must be (N, d) with N >= k = {k}, got {tuple(x.shape)}")
    gen = generator or torch.Generator().manual_seed(0)
    x = x.double()
    best: tuple[Tensor, Tensor, float] | None = None
    for _ in range(n_init):
        c = _plusplus(x, k, gen)
        for _ in range(iters):
            d = torch.cdist(x, c).pow(2)
            labels = d.argmin(1)
            new = torch.zeros_like(c).index_add_(0, labels, x)
            counts = torch.bincount(labels, minlength=k).to(x.dtype)
            empty = counts == 0
            new = new / counts.clamp_min(1)[:, None]
            if bool(empty.any()):
                far = d.min(1).values.argsort(descending=True)[: int(empty.sum())]
                new[empty] = x[far]
            if torch.equal(new, c):
                break
            c = new
        d = torch.cdist(x, c).pow(2)
        inertia = float(d.min(1).values.sum())
        if best is None or inertia < best[2]:
            best = (c, d.argmin(1), inertia)
    assert best is not None
    return best
