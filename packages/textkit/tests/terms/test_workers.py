"""The terms worker pool: ordered results, errors re-raised, no process outlives the pool."""

from __future__ import annotations

import os
import time

import pytest

from kexue.textkit.terms._workers import WorkerPool


def _square_after(x: int, delay: float) -> tuple[int, int]:
    time.sleep(delay)
    return x * x, os.getpid()


def _fail(x: int) -> int:
    raise ValueError(f"bad job {x}")


def test_results_in_submission_order_across_workers() -> None:
    jobs = [(i, 0.02 * ((7 * i) % 3)) for i in range(12)]  # later jobs often finish first
    with WorkerPool(3) as pool:
        out = list(pool.imap(_square_after, jobs))
        procs = list(pool._procs)
    assert [r[0] for r in out] == [i * i for i in range(12)]
    assert len({r[1] for r in out}) == 3 and os.getpid() not in {r[1] for r in out}
    assert not any(p.is_alive() for p in procs)


def test_worker_error_is_raised_and_workers_end() -> None:
    with pytest.raises(ValueError, match="bad job 2"):
        with WorkerPool(2) as pool:
            procs = list(pool._procs)
            list(pool.imap(_fail, [(2,), (3,)]))
    assert not any(p.is_alive() for p in procs)


def test_consumer_exception_terminates_busy_workers() -> None:
    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        with WorkerPool(2) as pool:
            procs = list(pool._procs)
            for _ in pool.imap(_square_after, [(1, 0.0), (2, 30.0), (3, 30.0)]):
                raise KeyboardInterrupt  # as Ctrl-C in the parent would, workers still busy
    assert time.monotonic() - t0 < 5
    assert not any(p.is_alive() for p in procs)


def test_bad_size() -> None:
    with pytest.raises(ValueError, match="workers"):
        WorkerPool(0)
