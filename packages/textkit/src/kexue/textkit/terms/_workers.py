"""A small process pool for counting and cutting that an interrupt always ends (private).

``multiprocessing.Pool`` feeds its workers from a task thread; when Ctrl-C reaches the whole process
group its workers die of ``KeyboardInterrupt`` while that thread is still writing a multi-megabyte
block into their pipe, and ``Pool.__exit__`` (``terminate``) waits for the thread forever. This pool
has no helper thread:

- one duplex pipe per worker, written and read only by the calling thread, at most one job in
  flight per worker (so neither side can block on the other's full pipe), results in submission
  order;
- workers ignore SIGINT (the parent handles it) and keep SIGTERM's default action, and on Linux
  receive SIGTERM when the parent dies (``PR_SET_PDEATHSIG``); SIGINT and SIGTERM are blocked in
  the parent while it forks, so no worker starts with the parent's handlers;
- leaving the ``with`` block by an exception (an interrupt included) sends SIGTERM to every worker
  and reaps it (SIGKILL after 1 s), so no worker outlives the pool.
"""

from __future__ import annotations

import signal
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from ._checks import check_at_least

__all__ = ["WorkerPool"]

_SIGNALS = {signal.SIGINT, signal.SIGTERM}


def _die_with_parent() -> None:
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):
        pass


def _serve(conn: Any, others: list[Any]) -> None:
    """Worker loop: ``(fn, args)`` in, ``("ok", result)`` or ``("err", exception)`` out."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _die_with_parent()
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)
    for c in others:  # the parent's ends: EOF reaches this worker when the parent goes away
        c.close()
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        fn, args = job
        try:
            reply: tuple[str, Any] = ("ok", fn(*args))
        except Exception as e:  # sent back and re-raised in the parent
            reply = ("err", e)
        try:
            conn.send(reply)
        except (OSError, EOFError):
            return
        except Exception as e:  # an unpicklable exception
            conn.send(("err", RuntimeError(f"{type(e).__name__}: {e}")))


class WorkerPool:
    """``workers`` forked processes running ``fn(*args)`` jobs; use as a context manager.

    Arguments:
        workers: number of processes (≥ 1).
    """

    def __init__(self, workers: int) -> None:
        check_at_least(1, workers=workers)
        import multiprocessing as mp  # here, not at import: kexue-terms starts faster

        method = "fork" if "fork" in mp.get_all_start_methods() else None
        ctx = mp.get_context(method)
        self._procs: list[Any] = []
        self._conns: list[Any] = []
        old = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
        try:
            for _ in range(workers):
                mine, theirs = ctx.Pipe(duplex=True)
                self._conns.append(mine)
                proc = ctx.Process(target=_serve, args=(theirs, list(self._conns)), daemon=True)
                proc.start()
                theirs.close()
                self._procs.append(proc)
        except BaseException:
            self.terminate()
            raise
        finally:  # a signal that arrived meanwhile is delivered here, as an exception if need be
            try:
                signal.pthread_sigmask(signal.SIG_SETMASK, old)
            except BaseException:
                self.terminate()
                raise

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.terminate()

    def imap(self, fn: Callable[..., Any], jobs: Iterable[tuple[Any, ...]]) -> Iterator[Any]:
        """``fn(*args)`` for every ``args`` of ``jobs``, in order; at most one job per worker."""
        free = deque(self._conns)
        busy: deque[Any] = deque()
        for args in jobs:
            if not free:
                conn = busy.popleft()
                yield self._result(conn)
                free.append(conn)
            conn = free.popleft()
            conn.send((fn, args))
            busy.append(conn)
        while busy:
            yield self._result(busy.popleft())

    @staticmethod
    def _result(conn: Any) -> Any:
        try:
            status, value = conn.recv()
        except EOFError:
            raise RuntimeError("a worker process ended unexpectedly") from None
        if status == "err":
            raise value
        return value

    def close(self) -> None:
        """Ask the workers to finish and reap them (after the last result was read)."""
        for conn in self._conns:
            try:
                conn.send(None)
            except OSError:
                pass
        for proc in self._procs:
            proc.join(timeout=5)
        self.terminate()

    def terminate(self) -> None:
        """End every worker now (SIGTERM, then SIGKILL after 1 s) and close the pipes."""
        for proc in self._procs:
            if proc.is_alive():
                proc.terminate()
        for proc in self._procs:
            proc.join(timeout=1)
            if proc.is_alive():
                proc.kill()
                proc.join()
        for conn in self._conns:
            conn.close()
        self._procs, self._conns = [], []
