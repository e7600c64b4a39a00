"""Length-bucketed batching and right padding: the one batching helper of kexue-textkit.

Used by the tagger trainer (:mod:`kexue.textkit.tagging.train`) and the seq2seq task pipeline
(:mod:`kexue.textkit.tasks.generation`). Bucketing by length cuts the compute spent on padding
while keeping batches random (design decision; the usual "bucket iterator" of NMT toolkits).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["length_bucketed_batches", "pad_batch"]


def length_bucketed_batches(
    lengths: Sequence[int],
    *,
    batch_size: int,
    pool: int = 32,
    shuffle: bool = True,
    generator: torch.Generator | None = None,
) -> list[list[int]]:
    """One epoch of batches of indices, grouped by similar length to cut padding.

    With ``shuffle`` the indices are permuted, cut into pools of ``pool × batch_size``, each pool
    is sorted by length and cut into batches, and the batch order is permuted again; without it,
    all indices are sorted by length (stable) and cut in order (for evaluation).

    Arguments:
        lengths: length of each item.
        batch_size: items per batch (the last batch of a pool may be smaller).
        pool: batches per length-sorted pool (default 32, design decision).
        shuffle: shuffle (training) or sort everything (evaluation). Default True.
        generator: seeds both shuffles.

    Returns:
        Lists of item indices, covering every item exactly once.

    Example:
        >>> length_bucketed_batches([3, 1, 2, 1], batch_size=3, shuffle=False)
        [[1, 3, 2], [0]]
    """
    for name, value in (("batch_size", batch_size), ("pool", pool)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    n = len(lengths)
    if not shuffle:
        order = sorted(range(n), key=lambda i: lengths[i])
        return [order[i : i + batch_size] for i in range(0, n, batch_size)]
    perm = torch.randperm(n, generator=generator).tolist()
    span = batch_size * pool
    batches: list[list[int]] = []
    for a in range(0, n, span):
        chunk = sorted(perm[a : a + span], key=lambda i: lengths[i])
        batches.extend(chunk[b : b + batch_size] for b in range(0, len(chunk), batch_size))
    return [batches[k] for k in torch.randperm(len(batches), generator=generator).tolist()]


def pad_batch(seqs: Sequence[Sequence[int]], *, pad_value: int = 0) -> tuple[Tensor, Tensor]:
    """Right-pad id lists into one batch.

    Arguments:
        seqs: B non-empty id lists.
        pad_value: id written at padded steps (default 0 = ``CharVocab.PAD``).

    Returns:
        ``(ids (B, T) long, mask (B, T) bool)`` with T the longest length.
    """
    if not seqs:
        raise ValueError("seqs must not be empty")
    width = max(len(s) for s in seqs)
    if width == 0:
        raise ValueError("seqs are all empty")
    ids = torch.full((len(seqs), width), pad_value, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.bool)
    for i, s in enumerate(seqs):
        if not len(s):
            raise ValueError(f"seqs[{i}] is empty")
        ids[i, : len(s)] = torch.as_tensor(list(s), dtype=torch.long)
        mask[i, : len(s)] = True
    return ids, mask
