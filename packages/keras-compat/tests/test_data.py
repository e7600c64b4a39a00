"""Sharding, shuffle buffer, worker seeding and the DataGenerator shim (spec §2.13, §3.1 Data)."""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import DataLoader, IterableDataset

from kexue.keras_compat.data import (
    DataGenerator,
    ShardedIterable,
    ShuffleBuffer,
    seed_worker,
)
from kexue.keras_compat.data_padding import sequence_masking, sequence_padding

# CI machines may have fewer cores than the 3 workers the spec's sharding test asks for.
pytestmark = pytest.mark.filterwarnings("ignore:This DataLoader will create:UserWarning")


def _loader_items(dataset, num_workers: int) -> list:
    loader = DataLoader(dataset, batch_size=None, num_workers=num_workers)
    return [int(x) for x in loader]


# --- ShardedIterable ---------------------------------------------------------------------------


def test_sharded_3_workers_x_2_ranks_every_item_exactly_once() -> None:
    source = list(range(23))  # not a multiple of 6: shards differ in length
    per_rank = []
    for rank in range(2):
        ds = ShardedIterable(source, rank=rank, world_size=2)
        per_rank.append(_loader_items(ds, num_workers=3))
    union = per_rank[0] + per_rank[1]
    assert sorted(union) == source
    assert Counter(union).most_common(1)[0][1] == 1
    # ranks see disjoint halves of (almost) equal size
    assert {len(p) for p in per_rank} == {11, 12}


def test_sharded_factory_generator_is_restarted_each_pass() -> None:
    ds = ShardedIterable(lambda: (i * i for i in range(10)), rank=1, world_size=2)
    assert list(ds) == [1, 9, 25, 49, 81]
    assert list(ds) == [1, 9, 25, 49, 81]  # a second pass calls the factory again


def test_sharded_without_workers_or_ranks_is_identity() -> None:
    assert list(ShardedIterable(range(7))) == list(range(7))
    assert _loader_items(ShardedIterable(range(7)), num_workers=0) == list(range(7))


def test_plain_iterable_dataset_duplicates_across_workers() -> None:
    """The trap ShardedIterable fixes (post 6575): an unsharded stream repeats per worker."""

    class Plain(IterableDataset):
        def __iter__(self):
            return iter(range(5))

    items = _loader_items(Plain(), num_workers=2)
    assert sorted(items) == sorted(list(range(5)) * 2)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"rank": 0}, "world_size"),
        ({"world_size": 2}, "rank"),
        ({"rank": 2, "world_size": 2}, "rank"),
        ({"rank": 0, "world_size": 0}, "world_size"),
    ],
)
def test_sharded_bad_rank_world(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        ShardedIterable(range(3), **kwargs)


def test_sharded_bad_source() -> None:
    with pytest.raises(ValueError, match="iterable_or_factory"):
        ShardedIterable(3)


# --- ShuffleBuffer ---------------------------------------------------------------------------


@pytest.mark.parametrize("size", [1, 4, 50, 1000])
def test_shuffle_buffer_is_a_permutation(size: int) -> None:
    out = list(ShuffleBuffer(range(100), size, seed=3))
    assert sorted(out) == list(range(100))
    if size > 1:
        assert out != list(range(100))


def test_shuffle_buffer_size_bounds_displacement() -> None:
    out = list(ShuffleBuffer(range(200), 5, seed=0))
    # an item is emitted at the earliest when the buffer overflows: position >= index - size
    for pos, item in enumerate(out):
        assert pos >= item - 5


def test_shuffle_buffer_same_seed_same_order() -> None:
    a = list(ShuffleBuffer(range(50), 10, seed=7))
    b = list(ShuffleBuffer(range(50), 10, seed=7))
    c = list(ShuffleBuffer(range(50), 10, seed=8))
    assert a == b
    assert a != c


def test_shuffle_buffer_generator_reproducible_and_epochs_differ() -> None:
    sb1 = ShuffleBuffer(range(40), 8, generator=torch.Generator().manual_seed(1))
    sb2 = ShuffleBuffer(range(40), 8, generator=torch.Generator().manual_seed(1))
    e1, e2 = list(sb1), list(sb1)
    assert e1 == list(sb2) and e2 == list(sb2)
    assert e1 != e2


def test_shuffle_buffer_set_epoch() -> None:
    sb = ShuffleBuffer(range(40), 8, seed=1)
    sb.set_epoch(3)
    first = list(sb)
    other = ShuffleBuffer(range(40), 8, seed=1)
    other.set_epoch(3)
    assert list(other) == first
    other2 = ShuffleBuffer(range(40), 8, seed=1)
    assert list(other2) != first


def test_shuffle_buffer_over_sharded_workers_is_a_permutation() -> None:
    ds = ShuffleBuffer(ShardedIterable(range(60)), 6, seed=2)
    items = _loader_items(ds, num_workers=3)
    assert sorted(items) == list(range(60))


def test_shuffle_buffer_bad_args() -> None:
    with pytest.raises(ValueError, match="size"):
        ShuffleBuffer(range(3), 0)
    with pytest.raises(ValueError, match="seed"):
        ShuffleBuffer(range(3), 2, seed=1, generator=torch.Generator())
    with pytest.raises(ValueError, match="iterable"):
        ShuffleBuffer(5, 2)


# --- seed_worker -----------------------------------------------------------------------------


class _Draws(IterableDataset):
    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        np_draw = float(np.random.rand())  # noqa: NPY002 - the global stream seed_worker seeds
        yield (info.id, np_draw, float(torch.rand(())), random.random())


def _worker_draws(seed: int) -> dict[int, tuple[float, float, float]]:
    loader = DataLoader(
        _Draws(),
        batch_size=None,
        num_workers=3,
        worker_init_fn=seed_worker,
        generator=torch.Generator().manual_seed(seed),
    )
    return {wid: (a, b, c) for wid, a, b, c in loader}


def test_seed_worker_distinct_streams_and_reproducible() -> None:
    draws = _worker_draws(0)
    assert sorted(draws) == [0, 1, 2]
    for k in range(3):  # numpy, torch and random differ between every pair of workers
        assert len({d[k] for d in draws.values()}) == 3
    assert _worker_draws(0) == draws
    assert _worker_draws(1) != draws


def test_seed_worker_seeds_from_torch_initial_seed() -> None:
    torch.manual_seed(2**32 + 5)
    seed_worker(0)
    a, b = np.random.rand(), random.random()  # noqa: NPY002
    np.random.seed(5)  # noqa: NPY002
    random.seed(5)
    assert (a, b) == (np.random.rand(), random.random())  # noqa: NPY002


# --- DataGenerator ---------------------------------------------------------------------------


class _Batches(DataGenerator):
    def __iter__(self, random: bool = False):
        for batch in self.batches(random):
            yield sequence_padding(batch)


def _ragged(n: int) -> list[list[int]]:
    return [[i] * (1 + i % 3) for i in range(n)]


def test_data_generator_batches_and_steps() -> None:
    gen = _Batches(_ragged(10), batch_size=4)
    assert gen.steps == 3 and len(gen) == 3 and gen.buffer_size == 4000
    batches = list(gen)
    assert [b.shape for b in batches] == [(4, 3), (4, 3), (2, 3)]
    np.testing.assert_array_equal(batches[2], np.array([[8, 8, 8], [9, 0, 0]]))


def test_data_generator_batches_group_each_shard_and_flush_its_end() -> None:
    gen = DataGenerator(list("abcdefg"), batch_size=3)
    assert list(gen.batches()) == [["a", "b", "c"], ["d", "e", "f"], ["g"]]
    # rank 1 of 2 holds the odd positions: its own last batch is flushed short
    odd = DataGenerator(list("abcdefg"), batch_size=2, rank=1, world_size=2)
    assert list(odd.batches()) == [["b", "d"], ["f"]]
    shuffled = list(DataGenerator(list(range(10)), 4, seed=3).batches(random=True))
    again = [x for _, x in DataGenerator(list(range(10)), 4, seed=3).sample(True)]
    assert [len(b) for b in shuffled] == [4, 4, 2] and [x for b in shuffled for x in b] == again
    assert list(DataGenerator([], batch_size=2).batches()) == []


def test_data_generator_sample_is_end_flags() -> None:
    gen = DataGenerator(list("abc"))
    assert list(gen.sample()) == [(False, "a"), (False, "b"), (True, "c")]
    assert list(DataGenerator([]).sample()) == []


@pytest.mark.parametrize("sized", [True, False])
def test_data_generator_random_is_seeded_permutation(sized: bool) -> None:
    data = list(range(30)) if sized else (lambda: iter(range(30)))
    items = [x for _, x in DataGenerator(data, 4, buffer_size=5, seed=9).sample(True)]
    again = [x for _, x in DataGenerator(data, 4, buffer_size=5, seed=9).sample(True)]
    assert sorted(items) == list(range(30)) and items != list(range(30))
    assert items == again


def test_data_generator_sharded_over_ranks_and_workers() -> None:
    seen = []
    for rank in range(2):
        data = [[i] for i in range(25)]
        gen = _Batches(data, batch_size=3, shuffle=True, seed=1, rank=rank, world_size=2)
        loader = DataLoader(gen, batch_size=None, num_workers=3)
        for b in loader:
            assert len(b) <= 3
            seen += [int(v) for v in np.asarray(b).ravel()]
    assert sorted(seen) == list(range(25))


def test_data_generator_forfit_cycles_and_rejects_empty() -> None:
    gen = _Batches([[i] for i in range(5)], batch_size=2)
    it = gen.forfit()
    got = [next(it).ravel().tolist() for _ in range(4)]
    assert sorted(v for b in got[:3] for v in b) == list(range(5))
    with pytest.raises(RuntimeError, match="no batch"):
        next(_Batches([], batch_size=2).forfit())


def test_data_generator_unsized_len_and_base_iter() -> None:
    gen = DataGenerator(lambda: iter(range(3)))
    assert gen.steps is None
    with pytest.raises(TypeError):
        len(gen)
    with pytest.raises(NotImplementedError):
        iter(gen)


def test_data_generator_bad_args() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        DataGenerator([1], batch_size=0)
    with pytest.raises(ValueError, match="buffer_size"):
        DataGenerator([1], buffer_size=0)
    with pytest.raises(ValueError, match="rank"):
        DataGenerator([1], rank=3, world_size=2)


# --- sequence_padding / sequence_masking -----------------------------------------------------


def test_padding_post_and_pre() -> None:
    seqs = [[1, 2, 3], [4], [5, 6]]
    np.testing.assert_array_equal(
        sequence_padding(seqs), np.array([[1, 2, 3], [4, 0, 0], [5, 6, 0]])
    )
    np.testing.assert_array_equal(
        sequence_padding(seqs, value=-1, mode="pre"),
        np.array([[1, 2, 3], [-1, -1, 4], [-1, 5, 6]]),
    )


def test_padding_truncates_with_length() -> None:
    seqs = [np.arange(1, 6), np.arange(7, 9)]
    np.testing.assert_array_equal(
        sequence_padding(seqs, length=3), np.array([[1, 2, 3], [7, 8, 0]])
    )
    # bert4keras keeps the head also in "pre" mode; truncating="pre" keeps the tail
    np.testing.assert_array_equal(
        sequence_padding(seqs, length=3, mode="pre"), np.array([[1, 2, 3], [0, 7, 8]])
    )
    np.testing.assert_array_equal(
        sequence_padding(seqs, length=3, truncating="pre"), np.array([[3, 4, 5], [7, 8, 0]])
    )
    assert sequence_padding(seqs, length=0).shape == (2, 0)


def test_padding_seq_dims_2_on_ragged_matrices() -> None:
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = np.full((3, 1), 9.0, dtype=np.float32)
    out = sequence_padding([a, b], seq_dims=2, value=-1)
    assert out.shape == (2, 3, 3) and out.dtype == np.float32
    expected = np.full((2, 3, 3), -1.0, dtype=np.float32)
    expected[0, :2, :3] = a
    expected[1, :3, :1] = b
    np.testing.assert_array_equal(out, expected)
    # per-axis lengths, None = maximum on that axis; truncation on both axes
    out = sequence_padding([a, b], length=[2, None], seq_dims=2)
    assert out.shape == (2, 2, 3)
    np.testing.assert_array_equal(out[1], [[9, 0, 0], [9, 0, 0]])
    out = sequence_padding([a, b], length=[1, 2], seq_dims=2, mode="pre")
    np.testing.assert_array_equal(out, [[[0.0, 1.0]], [[0.0, 9.0]]])


def test_padding_integer_length_applies_to_every_sequence_axis() -> None:
    # one meaning with kexue.textkit (tests/test_sequence_padding_agree.py): an int is every axis
    a = np.arange(6).reshape(2, 3)
    b = np.full((3, 1), 9)
    out = sequence_padding([a, b], length=2, seq_dims=2)
    np.testing.assert_array_equal(out, [[[0, 1], [3, 4]], [[9, 0], [9, 0]]])
    np.testing.assert_array_equal(out, sequence_padding([a, b], length=(2, 2), seq_dims=2))


def test_padding_value_is_cast_to_each_inputs_dtype_like_bert4keras() -> None:
    # bert4keras pads every input alone (np.pad casts value to its dtype), then stacks
    out = sequence_padding([np.array([1, 2]), np.array([0.25])], value=0.5)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, [[1.0, 2.0], [0.25, 0.5]])
    out = sequence_padding([np.array([1]), np.array([0.25, 0.75])], value=0.5)
    np.testing.assert_array_equal(out, [[1.0, 0.0], [0.25, 0.75]])


def test_padding_trailing_feature_dims_kept() -> None:
    x = [np.ones((2, 4)), np.ones((5, 4))]
    assert sequence_padding(x).shape == (2, 5, 4)


@pytest.mark.parametrize("dtype", [torch.int64, torch.float32, torch.bfloat16, torch.bool])
def test_padding_tensors_keep_dtype(dtype: torch.dtype) -> None:
    seqs = [torch.ones(3, dtype=dtype), torch.ones(1, dtype=dtype)]
    out = sequence_padding(seqs, mode="pre")
    assert isinstance(out, torch.Tensor) and out.dtype == dtype
    torch.testing.assert_close(out, torch.tensor([[1, 1, 1], [0, 0, 1]]).to(dtype), rtol=0, atol=0)


@pytest.mark.parametrize("dtype", [np.int32, np.float16, np.float64])
def test_padding_arrays_keep_dtype(dtype) -> None:
    out = sequence_padding([np.ones(2, dtype=dtype), np.ones(4, dtype=dtype)])
    assert isinstance(out, np.ndarray) and out.dtype == dtype
    np.testing.assert_array_equal(out, np.array([[1, 1, 0, 0], [1, 1, 1, 1]], dtype=dtype))


def test_padding_mixed_tensor_and_list_gives_tensor() -> None:
    out = sequence_padding([torch.tensor([1, 2]), [3]])
    assert isinstance(out, torch.Tensor)
    torch.testing.assert_close(out, torch.tensor([[1, 2], [3, 0]]), rtol=0, atol=0)


def test_padding_bad_input() -> None:
    with pytest.raises(ValueError, match="mode"):
        sequence_padding([[1]], mode="middle")
    with pytest.raises(ValueError, match="truncating"):
        sequence_padding([[1]], truncating="x")
    with pytest.raises(ValueError, match="inputs"):
        sequence_padding([])
    with pytest.raises(ValueError, match="seq_dims"):
        sequence_padding([[1]], seq_dims=0)
    with pytest.raises(ValueError, match="seq_dims"):
        sequence_padding([np.ones(3)], seq_dims=2)
    with pytest.raises(ValueError, match="length"):
        sequence_padding([[1]], length=[1, 2])
    with pytest.raises(ValueError, match="trailing shape"):
        sequence_padding([np.ones((2, 3)), np.ones((2, 4))])


def test_masking_fills_exactly_masked_positions() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 4, 3, generator=g)
    mask = torch.tensor([[1, 1, 0, 0], [1, 0, 1, 0]])
    out = sequence_masking(x, mask, value=-5.0, axis=1)
    keep = mask.bool()[:, :, None].expand_as(x)
    torch.testing.assert_close(out[keep], x[keep], rtol=0, atol=0)
    assert torch.all(out[~keep] == -5.0)
    assert x[~keep].ne(-5.0).all()  # the input is not modified


def test_masking_other_axis_and_inf() -> None:
    x = torch.zeros(2, 3, 4, dtype=torch.float16)
    mask = torch.tensor([[True, False, True, True], [False, True, True, True]])
    out = sequence_masking(x, mask, value="-inf", axis=-1)
    expected = torch.zeros_like(x)
    expected[0, :, 1] = torch.finfo(torch.float16).min
    expected[1, :, 0] = torch.finfo(torch.float16).min
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    assert torch.isfinite(out).all()
    assert sequence_masking(x, None) is x


def test_masking_bad_input() -> None:
    x = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="mask"):
        sequence_masking(x, torch.ones(2, 4))
    with pytest.raises(ValueError, match="axis"):
        sequence_masking(x, torch.ones(2, 2), axis=0)
    with pytest.raises(ValueError, match="value"):
        sequence_masking(x, torch.ones(2, 3), value="nan")


@settings(max_examples=25, deadline=None)
@given(
    lengths=st.lists(st.integers(0, 6), min_size=1, max_size=5),
    length=st.none() | st.integers(0, 7),
    mode=st.sampled_from(["post", "pre"]),
    truncating=st.sampled_from(["post", "pre"]),
)
def test_padding_property_matches_elementwise_definition(lengths, length, mode, truncating) -> None:
    seqs = [np.arange(1, n + 1) * 10 + i for i, n in enumerate(lengths)]
    out = sequence_padding(seqs, length=length, value=-1, mode=mode, truncating=truncating)
    target = max(lengths) if length is None else length
    assert out.shape == (len(seqs), target) and out.dtype == seqs[0].dtype
    for row, s in zip(out, seqs, strict=True):
        kept = s[:target] if truncating == "post" else s[max(len(s) - target, 0) :]
        pad = [-1] * (target - len(kept))
        expected = list(kept) + pad if mode == "post" else pad + list(kept)
        assert row.tolist() == expected
    as_tensor = sequence_padding(
        [torch.from_numpy(s) for s in seqs],
        length=length,
        value=-1,
        mode=mode,
        truncating=truncating,
    )
    np.testing.assert_array_equal(as_tensor.numpy(), out)
