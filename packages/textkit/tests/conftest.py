"""Fixtures shared by textkit's test rooms.

``one_thread``: tiny models train and step faster on one intra-op thread (a second thread only
adds synchronisation, and stalls on a loaded machine); the count is restored afterwards. Modules
where every test wants it use ``pytestmark = pytest.mark.usefixtures("one_thread")``.

``run_python``: ``run_python(code, timeout=...)`` runs ``code`` in a fresh interpreter (what it
imports is not what this process has imported) and returns the finished process, output as text.
"""

import subprocess
import sys

import pytest
import torch


@pytest.fixture
def one_thread():
    """Run the test on one intra-op thread (restored afterwards)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def run_python():
    """``run_python(code, timeout=...)``: ``python -c code`` in a fresh interpreter, not checked."""

    def run(code: str, *, timeout: float) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    return run
