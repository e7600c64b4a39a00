"""Top-k and nucleus (top-p) filters of next-token distributions (private; re-exported by
:mod:`kexue.textkit.decoding`)."""

from __future__ import annotations

import torch
from torch import Tensor

__all__: list[str] = []  # public through kexue.textkit.decoding


def top_k_filter(probas: Tensor, k: int) -> Tensor:
    """Keep each row's ``k`` largest probabilities, zero the rest, renormalise.

    Arguments:
        probas: ``(N, V)`` non-negative, rows with positive mass.
        k: tokens kept (≥ 1; ``k ≥ V`` keeps all).

    Returns:
        ``(N, V)`` renormalised probabilities.

    References: bert4keras ``AutoRegressiveDecoder.random_sample``; spec §2.6.
    """
    if k < 1:
        raise ValueError(f"topk must be >= 1, got {k}")
    if k < probas.shape[-1]:
        keep = torch.zeros_like(probas, dtype=torch.bool)
        keep.scatter_(-1, probas.topk(k, dim=-1).indices, True)
        probas = probas * keep
    return probas / probas.sum(dim=-1, keepdim=True)


def top_p_filter(probas: Tensor, p: float) -> Tensor:
    """Nucleus filter: keep the smallest most-probable set whose mass reaches ``p``, renormalise.

    Token ``i`` (in descending order) is dropped when the mass BEFORE it is already ``≥ p``; the
    most probable token is always kept (bert4keras rule). Rows should sum to 1.

    Arguments:
        probas: ``(N, V)`` probabilities.
        p: mass threshold in ``(0, 1]``.

    Returns:
        ``(N, V)`` renormalised probabilities.

    References: arXiv:1904.09751; spec §2.6.
    """
    if not 0.0 < p <= 1.0:
        raise ValueError(f"topp must lie in (0, 1], got {p}")
    sorted_p, idx = probas.sort(dim=-1, descending=True)
    cum = sorted_p.cumsum(dim=-1)
    before = torch.cat((torch.zeros_like(cum[..., :1]), cum[..., :-1]), dim=-1)
    drop_sorted = before >= p
    drop_sorted[..., 0] = False
    drop = torch.zeros_like(drop_sorted).scatter_(-1, idx, drop_sorted)
    probas = probas.masked_fill(drop, 0.0)
    return probas / probas.sum(dim=-1, keepdim=True)
