"""``parallel_apply``: order, exception propagation (no hang), bounded queue, seeds (§2.13)."""

from __future__ import annotations

import multiprocessing as mp
import os
import threading
import time

import numpy as np
import pytest

from kexue.keras_compat.parallel import parallel_apply, parallel_apply_generator

TIMEOUT = 30.0


def _run_with_timeout(fn, timeout: float = TIMEOUT):
    """Runs ``fn`` in a thread; fails (instead of hanging the suite) if it does not return."""
    box: dict = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as e:
            box["error"] = e

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        pytest.fail(f"parallel_apply did not return within {timeout} s")
    if "error" in box:
        raise box["error"]
    return box["value"]


def _square(x: int) -> int:
    time.sleep(0.002 * (x % 3))  # uneven durations: completion order differs from input order
    return x * x


@pytest.mark.parametrize("dummy", [False, True])
def test_ordered_equals_serial_map(dummy: bool) -> None:
    out = _run_with_timeout(
        lambda: parallel_apply(_square, range(40), 3, 2, dummy=dummy, unordered=False)
    )
    assert out == [x * x for x in range(40)]


@pytest.mark.parametrize("dummy", [False, True])
def test_unordered_is_a_permutation(dummy: bool) -> None:
    out = _run_with_timeout(lambda: parallel_apply(_square, range(40), 3, 2, dummy=dummy))
    assert sorted(out) == [x * x for x in range(40)]


def test_closure_func_and_callback() -> None:
    offset = 100  # a closure: reaches the workers through fork, never pickled
    got: list[int] = []
    ret = _run_with_timeout(
        lambda: parallel_apply(lambda x: x + offset, range(10), 2, 1, callback=got.append)
    )
    assert ret is None
    assert sorted(got) == list(range(100, 110))


def test_generator_yields_indices() -> None:
    pairs = _run_with_timeout(lambda: list(parallel_apply_generator(_square, [3, 3, 3], 2, 0)))
    assert sorted(pairs) == [(0, 9), (1, 9), (2, 9)]


def _fail_on_5(x: int) -> int:
    if x == 5:
        raise KeyError(f"bad item {x}")
    return x


@pytest.mark.parametrize("dummy", [False, True])
@pytest.mark.parametrize("unordered", [False, True])
def test_exception_in_func_propagates_without_hang(dummy: bool, unordered: bool) -> None:
    start = time.monotonic()
    with pytest.raises(KeyError, match="bad item 5"):
        _run_with_timeout(
            lambda: parallel_apply(_fail_on_5, range(1000), 2, 3, dummy=dummy, unordered=unordered)
        )
    assert time.monotonic() - start < TIMEOUT


def test_worker_crash_raises() -> None:
    from concurrent.futures.process import BrokenProcessPool

    def crash(x: int) -> int:
        if x == 2:
            os._exit(1)
        return x

    with pytest.raises(BrokenProcessPool):
        _run_with_timeout(lambda: parallel_apply(crash, range(6), 2, 1))


def test_iterable_consumed_lazily_with_bounded_queue() -> None:
    consumed = 0

    def source():
        nonlocal consumed
        for i in range(1000):
            consumed += 1
            yield i

    gen = parallel_apply_generator(_square, source(), 2, 3, unordered=False)
    first = _run_with_timeout(lambda: next(gen))
    assert first == (0, 0)
    assert consumed <= 2 + 3 + 1  # workers + max_queue_size in flight (+ one refill)
    gen.close()  # cancels the rest


_MEETING: list = []  # [Barrier(2)] while a two-worker test runs; forked workers inherit it
_MET: list[bool] = []  # set in a worker once it has met the other one


def _seeded_draw(_: int) -> tuple[int, float]:
    """The worker's next draw from the global numpy state. A worker's first item waits until the
    other worker holds an item too, so both workers take part even on a loaded machine (a sleep
    alone did not guarantee it)."""
    if _MEETING and not _MET:
        value = float(np.random.random())  # noqa: NPY002 - the seeded global, drawn first
        _MEETING[0].wait(timeout=TIMEOUT)
        _MET.append(True)
        return os.getpid(), value
    time.sleep(0.01)
    return os.getpid(), float(np.random.random())  # noqa: NPY002 - the seeded global


@pytest.fixture
def two_workers_meet():
    """Arms ``_seeded_draw``'s meeting point (a fork-inherited barrier) for one test."""
    _MEETING.append(mp.get_context("fork").Barrier(2))
    yield
    _MEETING.clear()


def test_explicit_seeds_give_each_worker_its_stream(two_workers_meet) -> None:
    out = _run_with_timeout(
        lambda: parallel_apply(
            _seeded_draw, range(12), 2, 0, random_seeds=[11, 22], unordered=False
        )
    )
    by_pid: dict[int, list[float]] = {}
    for pid, v in out:  # a worker runs its items in input order
        by_pid.setdefault(pid, []).append(v)
    assert len(by_pid) == 2
    streams = {s: np.random.RandomState(s).random_sample(12).tolist() for s in (11, 22)}
    used = set()
    for draws in by_pid.values():
        (seed,) = [s for s, ref in streams.items() if ref[: len(draws)] == draws]
        used.add(seed)
    assert used == {11, 22}


def test_random_seeds_true_distinct_and_false_shared(two_workers_meet) -> None:
    def first_draws(random_seeds) -> dict[int, float]:
        out = parallel_apply(_seeded_draw, range(8), 2, 0, random_seeds=random_seeds)
        firsts: dict[int, float] = {}
        for pid, v in out:
            firsts.setdefault(pid, v)
        return firsts

    np.random.seed(0)  # noqa: NPY002
    seeded = _run_with_timeout(lambda: first_draws(True))
    assert len(seeded) == 2 and len(set(seeded.values())) == 2
    # without seeding, forked workers inherit one state: bert4keras's reason for the option
    shared = _run_with_timeout(lambda: first_draws(False))
    assert len(shared) == 2 and len(set(shared.values())) == 1


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="workers"):
        parallel_apply(_square, range(3), 0)
    with pytest.raises(ValueError, match="max_queue_size"):
        parallel_apply(_square, range(3), 2, -1)
    with pytest.raises(ValueError, match="random_seeds"):
        parallel_apply(_square, range(3), 2, 1, random_seeds=[1, 2, 3])
    with pytest.raises(ValueError, match="func"):
        parallel_apply(3, range(3), 2, 1)
