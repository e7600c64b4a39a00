"""What the suite shares with every kexue package comes from the kexue-testing pytest plugin.

kexue-testing (``[test]`` extra) seeds the global RNGs before every test (module initialisation,
spectral-norm ``u``/``v``, throwaway inputs), loads the derandomised hypothesis profile and runs the
gloo tests (``run_ranks``). Ours: the ``__main__`` blocks of the distributed tests import
``worker_main`` from here, also from subfolders (``tests/losses/...``), so ``run_ranks`` puts this
folder on the ranks' ``PYTHONPATH``.
"""

from functools import partial
from pathlib import Path

import pytest

from kexue.testing import launch_ranks, worker_main

__all__ = ["worker_main"]


@pytest.fixture(scope="session")
def run_ranks():
    """``run_ranks(__file__, out_dir, world=2, timeout=90)``: :func:`kexue.testing.launch_ranks`."""
    return partial(launch_ranks, pythonpath=[Path(__file__).resolve().parent])
