"""Exception-safe ``parallel_apply`` (bert4keras-compatible) over a bounded process pool.

bert4keras's ``parallel_apply`` feeds a ``multiprocessing`` queue to a pool whose workers loop
forever; if ``func`` raises, the worker loop dies and the consumer waits forever (spec §4.4 #5).
This port runs on ``concurrent.futures``: an exception in ``func`` is re-raised in the caller
(with the worker traceback as ``__cause__``), a crashed worker raises ``BrokenProcessPool``, and
the remaining work is cancelled. At most ``workers + max_queue_size`` items are in flight, so
a long or infinite ``iterable`` is consumed lazily.

Processes use the ``"fork"`` start method where available (Linux): ``func`` reaches the workers
through the fork, so closures and lambdas work as in bert4keras; only items and results are
pickled. Elsewhere ``func`` must be picklable. ``dummy=True`` uses threads.

References:
    bert4keras ``snippets.parallel_apply`` / ``parallel_apply_generator``
    (https://github.com/bojone/bert4keras, c1ae0dc).
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
import random as _random
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import torch

__all__ = ["parallel_apply", "parallel_apply_generator"]

_FUNC: Callable[[Any], Any] | None = None


def _init_worker(func: Callable[[Any], Any], seeds: Any) -> None:
    """Pool initializer: stores ``func`` and seeds numpy, random and torch with a unique seed."""
    global _FUNC
    _FUNC = func
    if seeds is not None:
        seed = int(seeds.get())
        np.random.seed(seed)  # noqa: NPY002 - bert4keras seeds the global RNG
        _random.seed(seed)
        torch.manual_seed(seed)


def _call(index: int, item: Any) -> tuple[int, Any]:
    assert _FUNC is not None
    return index, _FUNC(item)


def _worker_seeds(random_seeds: bool | Sequence[int], workers: int) -> list[int] | None:
    if random_seeds is False:
        return None
    if random_seeds is True:
        seeds: list[int] = []
        while len(seeds) < workers:  # distinct draws from the parent's global numpy RNG
            s = int(np.random.randint(0, 2**32, dtype=np.int64))  # noqa: NPY002
            if s not in seeds:
                seeds.append(s)
        return seeds
    seeds = [int(s) for s in random_seeds]
    if len(seeds) != workers:
        raise ValueError(
            f"random_seeds must be a bool or one seed per worker ({workers}), got {len(seeds)}"
        )
    return seeds


def _executor(
    func: Callable[[Any], Any], workers: int, dummy: bool, seeds: list[int] | None
) -> tuple[cf.Executor, Callable[[int, Any], cf.Future]]:
    if dummy:
        pool = cf.ThreadPoolExecutor(workers)
        return pool, lambda i, item: pool.submit(lambda: (i, func(item)))
    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else None)
    queue = None
    if seeds is not None:
        queue = ctx.Queue()
        for s in seeds:
            queue.put(s)
    ppool = cf.ProcessPoolExecutor(
        workers, mp_context=ctx, initializer=_init_worker, initargs=(func, queue)
    )
    return ppool, lambda i, item: ppool.submit(_call, i, item)


def parallel_apply_generator(
    func: Callable[[Any], Any],
    iterable: Iterable[Any],
    workers: int = 4,
    max_queue_size: int = 10,
    dummy: bool = False,
    random_seeds: bool | Sequence[int] = True,
    unordered: bool = True,
) -> Iterator[tuple[int, Any]]:
    """Yields ``(index, func(item))`` computed by a pool, as results arrive.

    Arguments as in :func:`parallel_apply`. With ``unordered=False`` results come in input order
    (a slow item blocks the head; the in-flight window stays bounded). Closing the generator
    early cancels pending work.

    Returns:
        An iterator of ``(index, result)`` pairs.
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive int, got {workers!r}")
    if isinstance(max_queue_size, bool) or not isinstance(max_queue_size, int):
        raise ValueError(f"max_queue_size must be an int >= 0, got {max_queue_size!r}")
    if max_queue_size < 0:
        raise ValueError(f"max_queue_size must be an int >= 0, got {max_queue_size!r}")
    if not callable(func):
        raise ValueError(f"func must be callable, got {type(func).__name__}")
    seeds = None if dummy else _worker_seeds(random_seeds, workers)
    return _generate(func, iterable, workers, max_queue_size, dummy, seeds, unordered)


def _generate(
    func: Callable[[Any], Any],
    iterable: Iterable[Any],
    workers: int,
    max_queue_size: int,
    dummy: bool,
    seeds: list[int] | None,
    unordered: bool,
) -> Iterator[tuple[int, Any]]:
    executor, submit = _executor(func, workers, dummy, seeds)
    limit = workers + max_queue_size
    items = enumerate(iterable)
    pending: deque[cf.Future] = deque()
    exhausted, finished = False, False
    try:
        while True:
            while not exhausted and len(pending) < limit:
                nxt = next(items, None)
                if nxt is None:
                    exhausted = True
                else:
                    pending.append(submit(*nxt))
            if not pending:
                break
            if unordered:
                done, _ = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
                for fut in [f for f in pending if f in done]:
                    pending.remove(fut)
                    yield fut.result()
            else:
                yield pending.popleft().result()
        finished = True
    finally:
        # On error or early close: cancel queued work, do not wait for running tasks, and stop
        # worker processes so that a stuck ``func`` cannot block interpreter exit.
        executor.shutdown(wait=finished, cancel_futures=True)
        if not finished:
            for proc in list((getattr(executor, "_processes", None) or {}).values()):
                proc.terminate()


def parallel_apply(
    func: Callable[[Any], Any],
    iterable: Iterable[Any],
    workers: int = 4,
    max_queue_size: int = 10,
    callback: Callable[[Any], Any] | None = None,
    dummy: bool = False,
    random_seeds: bool | Sequence[int] = True,
    unordered: bool = True,
) -> list[Any] | None:
    """Applies ``func`` to every item of ``iterable`` in parallel (bert4keras-compatible).

    Arguments:
        func: One-argument function. In a worker process it sees the parent's state at pool
            creation (fork); exceptions it raises propagate to the caller.
        iterable: Items, consumed lazily (at most ``workers + max_queue_size`` in flight).
        workers: Number of worker processes (threads with ``dummy``).
        max_queue_size: Items queued beyond those being processed.
        callback: If given, called in the parent on each result as it arrives and the
            function returns ``None`` (bert4keras); otherwise the results are returned.
        dummy: Use threads instead of processes (``multiprocessing.dummy`` in bert4keras).
        random_seeds: ``True`` seeds each worker's ``numpy``, ``random`` and ``torch`` global
            RNGs with a distinct seed drawn from the parent's ``numpy`` global RNG (bert4keras
            draws from OS entropy; forked workers otherwise share one stream), ``False``
            leaves them alone, a sequence gives one seed per worker. Ignored with ``dummy``
            (threads share the global RNGs).
        unordered: Return results in completion order (bert4keras default) rather than in
            input order.

    Returns:
        The list of results (completion or input order), or ``None`` when ``callback`` is set.

    Example:
        >>> parallel_apply(lambda x: x * x, range(5), workers=2, unordered=False)
        [0, 1, 4, 9, 16]
    """
    results = parallel_apply_generator(
        func, iterable, workers, max_queue_size, dummy, random_seeds, unordered
    )
    if callback is None:
        return [r for _, r in results]
    for _, r in results:
        callback(r)
    return None
