"""Tests of kexue.textkit.data.batching: the one length-bucketing helper and right padding."""

from __future__ import annotations

import pytest
import torch

from kexue.textkit.data.batching import length_bucketed_batches, pad_batch


def test_length_bucketed_batches_partition_and_buckets() -> None:
    gen = torch.Generator().manual_seed(0)
    lengths = torch.randint(1, 50, (1000,), generator=gen).tolist()
    batches = length_bucketed_batches(lengths, batch_size=16, pool=4, generator=gen)
    flat = sorted(i for b in batches for i in b)
    assert flat == list(range(1000))
    assert all(1 <= len(b) <= 16 for b in batches)
    assert all(lengths[b[k]] <= lengths[b[k + 1]] for b in batches for k in range(len(b) - 1))
    # bucketing: padding is far below that of random batches
    waste = sum(len(b) * max(lengths[i] for i in b) for b in batches) / sum(lengths) - 1
    assert waste < 0.25
    again = length_bucketed_batches(
        lengths, batch_size=16, pool=4, generator=torch.Generator().manual_seed(0)
    )
    gen0 = torch.Generator().manual_seed(0)
    torch.randint(1, 50, (1000,), generator=gen0)
    assert length_bucketed_batches(lengths, batch_size=16, pool=4, generator=gen0) == batches
    assert again != batches  # a different stream gives a different order
    ordered = length_bucketed_batches([3, 1, 2, 1], batch_size=3, shuffle=False)
    assert ordered == [[1, 3, 2], [0]]


def test_pad_batch_values() -> None:
    ids, mask = pad_batch([[5, 6, 7], [8]], pad_value=0)
    assert ids.tolist() == [[5, 6, 7], [8, 0, 0]]
    assert mask.tolist() == [[True, True, True], [True, False, False]]
    with pytest.raises(ValueError, match="seqs"):
        pad_batch([])
    with pytest.raises(ValueError, match=r"seqs\[1\]"):
        pad_batch([[1], []])


def test_length_bucketed_batches_cover_every_item_once():
    lengths = [5, 1, 9, 3, 7, 2, 8, 4, 6, 10, 11]
    batches = length_bucketed_batches(
        lengths, batch_size=3, pool=2, generator=torch.Generator().manual_seed(1)
    )
    flat = sorted(i for b in batches for i in b)
    assert flat == list(range(len(lengths)))
    assert all(1 <= len(b) <= 3 for b in batches)
    # inside a batch the lengths are sorted (one pool sorts 6 items)
    assert all([lengths[i] for i in b] == sorted(lengths[i] for i in b) for b in batches)
    again = length_bucketed_batches(
        lengths, batch_size=3, pool=2, generator=torch.Generator().manual_seed(1)
    )
    assert again == batches
    with pytest.raises(ValueError, match="batch_size"):
        length_bucketed_batches(lengths, batch_size=0)


def test_pool_and_batch_size_are_checked() -> None:
    with pytest.raises(ValueError, match="pool"):
        length_bucketed_batches([1, 2], batch_size=2, pool=0)
    with pytest.raises(ValueError, match="batch_size"):
        length_bucketed_batches([1, 2], batch_size=True)
