"""Process-safe data iteration: worker × rank sharding, shuffle buffers, worker seeding.

Post 6575 warns that Keras ``fit_generator(workers>1, use_multiprocessing=True)`` copies a
Python generator into every process, so each process yields the whole stream. PyTorch has the
same trap: an ``IterableDataset`` under ``DataLoader(num_workers=k)`` and ``torchrun`` is iterated
in full by each of the k workers of each rank unless it shards itself. ``ShardedIterable`` does
that: item ``i`` goes to shard ``i mod (world_size · num_workers)``, so every item is yielded
exactly once overall. ``ShuffleBuffer`` is bert4keras's ``DataGenerator.sample(random=True)``
buffer for unsized data, ``seed_worker`` the usual ``worker_init_fn``, and ``DataGenerator`` a
bert4keras-compatible batch template built on both (an ``IterableDataset``; there is no
``to_dataset``: feed it to ``DataLoader(gen, batch_size=None)`` or call ``forfit()``).

The idiomatic alternative for sized data remains a map-style ``Dataset`` with
``DistributedSampler`` and ``DataLoader(batch_size, collate_fn=...)``.

References:
    Post 6575, https://kexue.fm/archives/6575 (process-safe generators).
    bert4keras ``snippets.DataGenerator`` (https://github.com/bojone/bert4keras, c1ae0dc).
"""

from __future__ import annotations

import itertools
import math
import random as _random
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import IterableDataset, get_worker_info

# bert4keras layout: padding helpers importable from here too; public home is data_padding.
from .data_padding import sequence_masking as sequence_masking
from .data_padding import sequence_padding as sequence_padding

__all__ = ["DataGenerator", "ShardedIterable", "ShuffleBuffer", "seed_worker"]


def _rank_world(rank: int | None, world_size: int | None) -> tuple[int, int]:
    if rank is None and world_size is None:
        if dist.is_available() and dist.is_initialized():
            return dist.get_rank(), dist.get_world_size()
        return 0, 1
    if rank is None or world_size is None:
        raise ValueError(
            f"rank and world_size must be given together, got rank={rank}, world_size={world_size}"
        )
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
    return rank, world_size


def _shard(rank: int | None, world_size: int | None, shard_workers: bool = True) -> tuple[int, int]:
    """Returns ``(index, count)``: this process/worker's shard among ``count`` shards."""
    r, w = _rank_world(rank, world_size)
    info = get_worker_info() if shard_workers else None
    wid, nw = (info.id, info.num_workers) if info is not None else (0, 1)
    return r * nw + wid, w * nw


def _numpy_rng(
    seed: int | None, generator: torch.Generator | None, epoch: int, calls: int
) -> np.random.Generator:
    """A numpy Generator for one pass: from ``(seed, epoch, calls)``, a torch generator or the
    global torch RNG (which ``DataLoader`` seeds differently in every worker)."""
    if seed is not None:
        return np.random.default_rng([seed, epoch, calls])
    s = int(torch.randint(0, 2**62, (), generator=generator))
    return np.random.default_rng(s)


def _check_seed(seed: int | None, generator: torch.Generator | None) -> None:
    if seed is not None and generator is not None:
        raise ValueError("give at most one of seed and generator")
    if seed is not None and (not isinstance(seed, (int, np.integer)) or seed < 0):
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")


class _EpochRandomness:
    """The seeded, per-epoch randomness of :class:`ShuffleBuffer` and :class:`DataGenerator`:
    ``seed`` or ``generator`` (at most one), the epoch mixed into ``seed``, and a fresh NumPy
    generator for every pass (:func:`_numpy_rng`)."""

    seed: int | None
    generator: torch.Generator | None
    epoch: int

    def _init_randomness(self, seed: int | None, generator: torch.Generator | None) -> None:
        _check_seed(seed, generator)
        self.seed = seed
        self.generator = generator
        self.epoch = 0
        self._passes = 0

    def set_epoch(self, epoch: int) -> None:
        """Sets the epoch mixed into ``seed`` (no effect without it; call it each epoch when
        using ``DataLoader``)."""
        self.epoch = int(epoch)

    def _pass_rng(self) -> np.random.Generator:
        rng = _numpy_rng(self.seed, self.generator, self.epoch, self._passes)
        self._passes += 1
        return rng


class ShardedIterable(IterableDataset):
    """Shards an iterable over ``DataLoader`` workers and distributed ranks.

    Shard ``j = rank · num_workers + worker_id`` of ``n = world_size · num_workers`` yields the
    items at positions ``j, j + n, j + 2n, ...``; the union over all shards is the source, each
    item exactly once (shards differ in length by at most one item).

    Arguments:
        iterable_or_factory: A re-iterable source (list, dataset, file reader object) or a
            zero-argument callable returning a fresh iterable per pass (use this for
            generators, which can be iterated only once).
        rank: This process's rank; with ``world_size``, overrides ``torch.distributed``
            (read at iteration time when initialised, else rank 0 of 1).
        world_size: Number of ranks, given together with ``rank``.
        shard_workers: Also split over ``DataLoader`` workers (default ``True``).

    Example:
        >>> loader = DataLoader(ShardedIterable(lambda: open("data.txt")), num_workers=3)
    """

    def __init__(
        self,
        iterable_or_factory: Iterable[Any] | Callable[[], Iterable[Any]],
        *,
        rank: int | None = None,
        world_size: int | None = None,
        shard_workers: bool = True,
    ) -> None:
        if not isinstance(iterable_or_factory, Iterable) and not callable(iterable_or_factory):
            raise ValueError(
                "iterable_or_factory must be an iterable or a zero-argument callable, got "
                f"{type(iterable_or_factory).__name__}"
            )
        _rank_world(rank, world_size)  # validate early
        self.source = iterable_or_factory
        self.rank = rank
        self.world_size = world_size
        self.shard_workers = shard_workers

    def shard(self) -> tuple[int, int]:
        """``(index, count)`` of the shard the current process/worker iterates."""
        return _shard(self.rank, self.world_size, self.shard_workers)

    def __iter__(self) -> Iterator[Any]:
        src = self.source
        data = src if isinstance(src, Iterable) else src()
        index, count = self.shard()
        return itertools.islice(iter(data), index, None, count)


class ShuffleBuffer(_EpochRandomness, IterableDataset):
    """Approximate shuffling of an unsized stream with a bounded buffer (bert4keras semantics).

    The buffer fills with the first ``size`` items; afterwards each incoming item enters the
    buffer and a uniformly chosen item leaves it; at the end the rest leaves in random order.
    The output is a permutation of the input. An item can move backwards by at most ``size``
    positions.

    Arguments:
        iterable: The source (e.g. a ``ShardedIterable``: shard first, then shuffle per shard).
        size: Buffer size (bert4keras: ``buffer_size = batch_size · 1000`` by default).
        seed: Seed for a reproducible order; each pass uses ``(seed, epoch, pass)``, where
            ``epoch`` is set by :meth:`set_epoch` and ``pass`` counts passes in this process
            (in non-persistent ``DataLoader`` workers it restarts each epoch: call
            ``set_epoch`` as with ``DistributedSampler``).
        generator: Alternatively a ``torch.Generator`` drawn from at each pass. With neither,
            the global torch RNG is used (seeded per worker by ``DataLoader``).
    """

    def __init__(
        self,
        iterable: Iterable[Any],
        size: int,
        *,
        seed: int | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"size must be a positive int, got {size!r}")
        if not isinstance(iterable, Iterable):
            raise ValueError(f"iterable must be iterable, got {type(iterable).__name__}")
        self._init_randomness(seed, generator)
        self.iterable = iterable
        self.size = size

    def __iter__(self) -> Iterator[Any]:
        return _buffer_shuffle(iter(self.iterable), self.size, self._pass_rng())


def _buffer_shuffle(it: Iterator[Any], size: int, rng: np.random.Generator) -> Iterator[Any]:
    buf: list[Any] = []
    for item in it:
        buf.append(item)
        if len(buf) > size:  # full: emit a random element (swap-with-last pop, O(1))
            i = int(rng.integers(len(buf)))
            buf[i], buf[-1] = buf[-1], buf[i]
            yield buf.pop()
    while buf:
        i = int(rng.integers(len(buf)))
        buf[i], buf[-1] = buf[-1], buf[i]
        yield buf.pop()


def seed_worker(worker_id: int) -> None:
    """``DataLoader`` ``worker_init_fn`` seeding ``numpy`` and ``random`` from torch's seed.

    ``DataLoader`` gives worker ``i`` the torch seed ``base_seed + i``, with ``base_seed``
    drawn from the loader's ``generator``; this propagates it to the global ``random`` and
    ``numpy`` RNGs (mod 2³²), so workers draw different streams and a seeded ``generator``
    reproduces them (the PyTorch reproducibility recipe).

    Arguments:
        worker_id: The worker index (unused; the seed already includes it).

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> DataLoader(ds, num_workers=4, worker_init_fn=seed_worker, generator=g)
    """
    del worker_id
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)  # noqa: NPY002 - seeding the legacy global RNG is the point
    _random.seed(seed)


class DataGenerator(_EpochRandomness, IterableDataset):
    """bert4keras ``DataGenerator`` batch template as a sharded ``IterableDataset``.

    Subclasses implement ``__iter__(self, random=False)`` yielding batches built from
    :meth:`batches` (lists of ``batch_size`` items, the shard's last one possibly shorter) or,
    for other groupings, from :meth:`sample`, which yields ``(is_end, item)`` pairs (``is_end``
    marks the last item of this process's shard, to flush a final partial batch)::

        class Batches(DataGenerator):
            def __iter__(self, random=False):
                for batch in self.batches(random):
                    yield sequence_padding(batch)

    Items are sharded by ``ShardedIterable`` (``DataLoader`` worker × rank), so with
    ``DataLoader(gen, batch_size=None, num_workers=k)`` under DDP every item appears once per
    epoch. ``random=True`` shuffles: a permutation of the shard for sized, indexable data, a
    ``ShuffleBuffer`` of ``buffer_size`` otherwise. Since ``DataLoader`` calls ``iter(gen)``
    (``random=False``), pass ``shuffle=True`` to shuffle there.

    Arguments:
        data: Sized indexable data (list, array, map-style dataset) or any re-iterable;
            a zero-argument callable returning an iterable is also accepted (unsized).
        batch_size: Batch size (bert4keras default 32).
        buffer_size: Shuffle-buffer size for unsized data (bert4keras default
            ``batch_size · 1000``).
        shuffle: Shuffle even when ``random=False`` is passed (for ``DataLoader``).
        seed, generator: Randomness as in :class:`ShuffleBuffer` (default: global torch RNG).
        rank, world_size: Override the ``torch.distributed`` rank and world size.

    Attributes:
        steps: ``ceil(len(data) / batch_size)`` for sized data, else ``None`` (bert4keras).
            Under sharding each shard yields about ``steps / shards`` batches, plus at most one
            partial batch per shard; ``len()`` returns ``steps``.
    """

    def __init__(
        self,
        data: Any,
        batch_size: int = 32,
        buffer_size: int | None = None,
        *,
        shuffle: bool = False,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        if buffer_size is not None and (not isinstance(buffer_size, int) or buffer_size < 1):
            raise ValueError(f"buffer_size must be a positive int or None, got {buffer_size!r}")
        self._init_randomness(seed, generator)
        _rank_world(rank, world_size)
        self.data = data
        self.batch_size = batch_size
        self._indexable = hasattr(data, "__len__") and hasattr(data, "__getitem__")
        self.steps: int | None = (
            math.ceil(len(data) / batch_size) if hasattr(data, "__len__") else None
        )
        self.buffer_size = buffer_size or batch_size * 1000
        self.shuffle = shuffle
        self.rank = rank
        self.world_size = world_size

    def __len__(self) -> int:
        if self.steps is None:
            raise TypeError("DataGenerator over unsized data has no len()")
        return self.steps

    def sample(self, random: bool = False) -> Iterator[tuple[bool, Any]]:
        """Yields ``(is_end, item)`` over this process's shard, shuffled if ``random``."""
        random = random or self.shuffle
        if random:
            rng = self._pass_rng()
        if random and self._indexable:
            index, count = _shard(self.rank, self.world_size)
            positions = range(index, len(self.data), count)
            items: Iterator[Any] = (
                self.data[positions[i]] for i in rng.permutation(len(positions))
            )
        else:
            sharded = iter(ShardedIterable(self.data, rank=self.rank, world_size=self.world_size))
            items = _buffer_shuffle(sharded, self.buffer_size, rng) if random else sharded
        try:
            current = next(items)
        except StopIteration:
            return
        for nxt in items:
            yield False, current
            current = nxt
        yield True, current

    def batches(self, random: bool = False) -> Iterator[list[Any]]:
        """Yields lists of ``batch_size`` items of this process's shard (shuffled if ``random``,
        as :meth:`sample`); the shard's last list may be shorter. The grouping loop a bert4keras
        ``__iter__`` writes around ``sample``."""
        batch: list[Any] = []
        for is_end, item in self.sample(random):
            batch.append(item)
            if len(batch) == self.batch_size or is_end:
                yield batch
                batch = []

    def __iter__(self, random: bool = False) -> Iterator[Any]:
        raise NotImplementedError("subclasses implement __iter__(self, random=False)")

    def forfit(self, random: bool = True) -> Iterator[Any]:
        """Iterates epochs forever (bert4keras ``forfit``); raises if an epoch is empty."""
        while True:
            empty = True
            for batch in self.__iter__(random):
                empty = False
                yield batch
            if empty:
                raise RuntimeError(
                    "DataGenerator epoch yielded no batch: data is empty or a one-shot "
                    "iterator (pass a list or a factory callable)"
                )
