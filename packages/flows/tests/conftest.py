"""Determinism for the whole suite: every test starts from the same global RNG state.

Tests pass their own ``torch.Generator`` where randomness matters; this also pins module
initialisation and any throwaway inputs drawn from the global RNGs, so a result never depends on
which tests ran before in the same process or worker.

Triton kernels: without CUDA the kernel tests run under Triton's CPU interpreter. ``TRITON_INTERPRET``
is read when a kernel is decorated, so it is set here, before any test module imports a kernel.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
import traceback
from pathlib import Path

import numpy as np
import pytest
import torch

# Hypothesis draws its examples from a fixed seed (derandomize): the suite is deterministic, and a
# property test that fails in CI fails the same way on every machine.
try:
    from hypothesis import settings as _hypothesis_settings
except ImportError:  # hypothesis is a test tool; a suite without property tests runs without it
    pass
else:
    _hypothesis_settings.register_profile("kexue", derandomize=True)
    _hypothesis_settings.load_profile("kexue")

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

# Under pytest-xdist every worker is its own process: one intra-op thread each keeps the workers
# from oversubscribing the cores (the default test command runs one worker per core).
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)

# Shared invertibility / log-det checkers live in tests/_flowcheck.py (a name no other package
# uses). pytest's importlib mode does not put this folder on sys.path, so do it here.
if str(Path(__file__).parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(autouse=True)
def _seed_global_rngs() -> None:
    torch.manual_seed(0)
    random.seed(0)
    np.random.seed(0)  # noqa: NPY002 - pins the legacy global RNG for code that uses it


def _launch_ranks(
    test_file: str, out_dir: str | Path, world: int = 2, timeout: float = 90.0
) -> Path:
    """Run ``test_file`` as ``world`` fresh Python processes, one per rank, and wait for them.

    Each process runs ``python test_file --kexue-rank RANK WORLD INIT_METHOD OUT_DIR``; the test
    file's ``__main__`` block calls its worker. Fresh interpreters, not ``fork``: forking a pytest
    (xdist) worker that has other threads can deadlock the child. The rendezvous is a file in
    ``out_dir`` (``file://``), so parallel tests never race for a TCP port. Output of each rank goes
    to ``out_dir/rank<r>.log`` and is shown when a rank fails or the deadline passes.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    init_method = f"file://{out / 'rendezvous'}"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    procs, logs = [], []
    for rank in range(world):
        log = open(out / f"rank{rank}.log", "w")
        logs.append(log)
        cmd = [
            sys.executable,
            test_file,
            "--kexue-rank",
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


@pytest.fixture(scope="session")
def run_ranks():
    """``run_ranks(__file__, out_dir, world=2, timeout=90)``: see :func:`_launch_ranks`."""
    return _launch_ranks


def worker_main(worker) -> None:
    """Entry point for the ``__main__`` block of a distributed test file.

    The rank leaves through ``os._exit`` once the worker has returned (and flushed): gloo's
    background threads can abort the interpreter's normal C++ teardown with "terminate called
    without an active exception" when the peer has already gone, which would fail a rank whose
    work had fully succeeded. A worker that raises exits 1 with its traceback in the log.
    """
    flag, rank, world, init_method, out_dir = sys.argv[1:6]
    assert flag == "--kexue-rank", sys.argv
    code = 0
    try:
        worker(int(rank), int(world), init_method, out_dir)
    except BaseException:
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
