"""Top-k and nucleus (top-p) filters of next-token *probabilities*, for sampling text.

Both filters take probabilities ``(..., V)`` (not logits): a token masked out upstream (a ``-inf``
logit) arrives here as probability 0, which is allowed and stays 0. The public filters validate
their input once (one host sync): every entry finite and ≥ 0 (NaN, ±inf and negative values raise
``ValueError`` naming ``probas`` and its shape) and every row with positive mass (a row of zeros,
e.g. softmax over a row of all ``-inf`` logits, cannot be renormalised: ``ValueError`` naming the
first such row). :class:`~kexue.textkit.seq2seq.decoding.decoder.AutoRegressiveDecoder` calls the
unchecked cores ``_top_k_core`` / ``_top_p_core`` inside its loop (no host sync per step).

Not to be confused with the sampled-softmax / NCE *losses* (sampled classes for training), which
live in :mod:`kexue.textkit.losses.sampled`.

Public through :mod:`kexue.textkit.seq2seq.decoding` (and :mod:`kexue.textkit.seq2seq`).
"""

from __future__ import annotations

import operator

import torch
from torch import Tensor

__all__ = ["top_k_filter", "top_p_filter"]


def _check_probas(probas: object) -> Tensor:
    """Checked entry shared by the filters: one host sync for all value checks."""
    if not isinstance(probas, Tensor):
        raise TypeError(f"probas must be a torch.Tensor, got {type(probas).__name__}")
    if probas.dim() < 1 or probas.shape[-1] == 0 or not probas.is_floating_point():
        raise ValueError(
            f"probas must be a floating (N, V) tensor of probabilities with V >= 1, got "
            f"{probas.dtype} of shape {tuple(probas.shape)}"
        )
    if probas.numel() == 0:
        return probas
    rows = probas.reshape(-1, probas.shape[-1])
    finite, nonneg, mass = _row_flags(rows)
    flags = torch.stack((finite.all(), nonneg.all(), mass.all())).tolist()  # the one host sync
    if all(flags):
        return probas
    shape = tuple(probas.shape)
    bad = ~finite if not flags[0] else ~nonneg if not flags[1] else ~mass
    flat = int(bad.nonzero()[0, 0])  # error path only
    row = tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), shape[:-1]))
    where = f"row {row[0] if len(row) == 1 else row} of probas (shape {shape})"
    if not row:
        where = f"probas (shape {shape})"
    if not flags[0]:
        raise ValueError(
            f"probas must be finite: {where} holds NaN or inf (a softmax over logits that are "
            f"all -inf gives NaN); pass probabilities, with masked tokens at 0 rather than -inf"
        )
    if not flags[1]:
        raise ValueError(
            f"probas must be non-negative probabilities: {where} holds a negative entry "
            f"(logits passed instead of probabilities?)"
        )
    raise ValueError(
        f"probas rows need positive mass: {where} is all zero (every token masked?), so it "
        f"cannot be renormalised"
    )


def _row_flags(rows: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Per row of ``(N, V)``, no sync: all finite; all ≥ 0; positive mass."""
    return torch.isfinite(rows).all(-1), (rows >= 0).all(-1), rows.sum(-1) > 0


def _invalid_rows(probas: Tensor) -> Tensor:
    """``(N,)`` bool, no sync: rows of ``(N, V)`` that are not a usable distribution (NaN / inf /
    negative entry, or no positive mass). The decoder loops fold ``.any()`` of it into their
    per-step host sync instead of calling the checked filters.

    Two row reductions and no ``(N, V)`` temporaries (the loops run it every step): a NaN makes
    the row minimum NaN (``>= 0`` fails), −inf or a negative entry makes it negative, +inf makes
    the row sum infinite, and a zero row has sum 0. (A sum overflowing to inf from finite
    entries is flagged too; it could not be renormalised either.)"""
    low, total = probas.amin(-1), probas.sum(-1)
    return ~((low >= 0) & (total > 0) & torch.isfinite(total))


def top_k_filter(probas: Tensor, k: int) -> Tensor:
    """Keep each row's ``k`` largest probabilities, zero the rest, renormalise.

    Arguments:
        probas: ``(N, V)`` (or ``(..., V)``) finite, non-negative, every row with positive mass
            (unnormalised rows are fine); otherwise ``ValueError``.
        k: tokens kept (≥ 1; ``k ≥ V`` keeps all).

    Returns:
        ``(N, V)`` renormalised probabilities.

    References: bert4keras ``AutoRegressiveDecoder.random_sample``; spec §2.6.
    """
    try:
        k = operator.index(k)
    except TypeError:
        raise ValueError(f"topk must be an int >= 1, got {k!r}") from None
    if k < 1:
        raise ValueError(f"topk must be an int >= 1, got {k!r}")
    return _top_k_core(_check_probas(probas), k)


def _top_k_core(probas: Tensor, k: int) -> Tensor:
    """Trusted core of :func:`top_k_filter` (no checks, no host sync)."""
    if k < probas.shape[-1]:
        keep = torch.zeros_like(probas, dtype=torch.bool)
        keep.scatter_(-1, probas.topk(k, dim=-1).indices, True)
        probas = probas * keep
    return probas / probas.sum(dim=-1, keepdim=True)


def top_p_filter(probas: Tensor, p: float) -> Tensor:
    """Nucleus filter: keep the smallest most-probable set whose mass reaches ``p``, renormalise.

    Token ``i`` (in descending order) is dropped when the mass BEFORE it is already ``≥ p``; the
    most probable token is always kept (bert4keras rule). Rows should sum to 1 (the mass is
    compared with ``p`` as given). Zero-probability (masked) tokens stay at 0.

    Arguments:
        probas: ``(N, V)`` (or ``(..., V)``) probabilities: finite, non-negative, every row with
            positive mass; otherwise ``ValueError``.
        p: mass threshold in ``(0, 1]``.

    Returns:
        ``(N, V)`` renormalised probabilities.

    References: arXiv:1904.09751; spec §2.6.
    """
    if not 0.0 < p <= 1.0:  # NaN fails too
        raise ValueError(f"topp must lie in (0, 1], got {p!r}")
    return _top_p_core(_check_probas(probas), p)


def _top_p_core(probas: Tensor, p: float) -> Tensor:
    """Trusted core of :func:`top_p_filter` (no checks, no host sync)."""
    sorted_p, idx = probas.sort(dim=-1, descending=True)
    cum = sorted_p.cumsum(dim=-1)
    before = torch.cat((torch.zeros_like(cum[..., :1]), cum[..., :-1]), dim=-1)
    drop_sorted = before >= p
    drop_sorted[..., 0] = False
    drop = torch.zeros_like(drop_sorted).scatter_(-1, idx, drop_sorted)
    probas = probas.masked_fill(drop, 0.0)
    return probas / probas.sum(dim=-1, keepdim=True)
