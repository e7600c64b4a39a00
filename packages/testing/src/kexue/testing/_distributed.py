"""Run a test file as several fresh processes, one per rank, for gloo (CPU) distributed tests."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

__all__ = ["RANK_FLAG", "gloo_group", "launch_ranks", "worker_main"]

RANK_FLAG = "--kexue-rank"


def launch_ranks(
    test_file: str | Path,
    out_dir: str | Path,
    world: int = 2,
    timeout: float = 90.0,
    *,
    pythonpath: Sequence[str | Path] = (),
) -> Path:
    """Run ``test_file`` as ``world`` fresh Python processes, one per rank, and wait for them.

    Each process runs ``python test_file --kexue-rank RANK WORLD INIT_METHOD OUT_DIR``; the test
    file's ``__main__`` block calls :func:`worker_main` with its worker. Fresh interpreters, not
    ``fork``: forking a pytest (xdist) worker that has other threads can deadlock the child. The
    rendezvous is a file in ``out_dir`` (``file://``), so parallel tests never race for a TCP port.
    Output of each rank goes to ``out_dir/rank<r>.log`` and is shown when a rank fails or the
    deadline passes (the calling test fails).

    Arguments:
        test_file: the script to run (a test module passes ``__file__``).
        out_dir: where the rendezvous file, the logs and the workers' results go (created).
        world: the number of ranks.
        timeout: seconds until every rank is killed and the test fails.
        pythonpath: folders put in front of the ranks' ``PYTHONPATH`` (e.g. a tests folder whose
            helpers a test file in a subfolder imports).

    Returns:
        ``out_dir`` as a :class:`~pathlib.Path`.

    Example:
        >>> def test_all_reduce(tmp_path, run_ranks):  # doctest: +SKIP
        ...     out = run_ranks(__file__, tmp_path, world=2)
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    init_method = f"file://{out / 'rendezvous'}"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    if pythonpath:
        paths = [str(p) for p in pythonpath] + [env.get("PYTHONPATH", "")]
        env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    procs, logs = [], []
    for rank in range(world):
        log = open(out / f"rank{rank}.log", "w")
        logs.append(log)
        cmd = [
            sys.executable,
            str(test_file),
            RANK_FLAG,
            str(rank),
            str(world),
            init_method,
            str(out),
        ]
        procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env))
    deadline = time.monotonic() + timeout
    try:
        for proc in procs:
            proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
    except subprocess.TimeoutExpired:
        for proc in procs:
            proc.kill()
        pytest.fail(f"ranks did not finish within {timeout:.0f} s:\n{_logs(out, world)}")
    finally:
        for log in logs:
            log.close()
    failed = [r for r, proc in enumerate(procs) if proc.returncode != 0]
    if failed:
        pytest.fail(f"ranks {failed} failed:\n{_logs(out, world)}")
    return out


def _logs(out: Path, world: int) -> str:
    return "\n".join(
        f"--- rank {r} ---\n{(out / f'rank{r}.log').read_text()[-3000:]}" for r in range(world)
    )


def worker_main(worker: Callable[[int, int, str, str], object]) -> None:
    """Entry point for the ``__main__`` block of a distributed test file.

    Calls ``worker(rank, world, init_method, out_dir)`` with the arguments :func:`launch_ranks`
    passed on the command line. The rank leaves through ``os._exit`` once the worker has returned
    (and flushed): gloo's background threads can abort the interpreter's normal C++ teardown with
    "terminate called without an active exception" when the peer has already gone, which would fail
    a rank whose work had fully succeeded. A worker that raises exits 1 with its traceback in the log.

    Arguments:
        worker: the per-rank function; it initialises the process group itself.
    """
    flag, rank, world, init_method, out_dir = sys.argv[1:6]
    assert flag == RANK_FLAG, sys.argv
    code = 0
    try:
        worker(int(rank), int(world), init_method, out_dir)
    except BaseException:
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


@contextlib.contextmanager
def gloo_group(
    rank: int, world: int, init_method: str, *, threads: int | None = 1
) -> Iterator[None]:
    """The body of a worker: a gloo process group for ``rank`` of ``world`` at ``init_method``
    (the arguments :func:`worker_main` passes), destroyed on the way out, also when the body raises.

    ``threads`` (default 1) sets ``torch.set_num_threads`` first: the ranks share the machine's
    cores (None leaves it alone).

    Example:
        >>> def _worker(rank, world, init_method, out_dir):  # doctest: +SKIP
        ...     with gloo_group(rank, world, init_method):
        ...         x = torch.tensor([float(rank + 1)])
        ...         dist.all_reduce(x)
    """
    import torch
    import torch.distributed as dist

    if threads is not None:
        torch.set_num_threads(threads)
    dist.init_process_group("gloo", init_method=init_method, rank=rank, world_size=world)
    try:
        yield
    finally:
        dist.destroy_process_group()
