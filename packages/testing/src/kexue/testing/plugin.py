"""The pytest plugin (entry point ``pytest11``: ``kexue-testing``), loaded before any conftest.

What every kexue suite shares:

- ``TRITON_INTERPRET=1`` when CUDA is absent, set when this module is imported. Triton reads it when
  a kernel is decorated; an entry-point plugin is imported while pytest parses its configuration,
  before any conftest or test module imports a kernel module.
- the ``kexue`` hypothesis profile (``derandomize=True``), loaded at import;
- one intra-op thread per pytest-xdist worker, so the workers do not oversubscribe the cores;
- the markers ``slow`` and ``gpu``; ``gpu`` tests are skipped without CUDA;
- fixtures: ``_seed_global_rngs`` (autouse: every test starts from the same global RNG state),
  ``run_ranks`` (gloo multi-process tests, :func:`kexue.testing.launch_ranks`) and ``host_syncs``
  (:func:`kexue.testing.count_host_syncs` over the whole test).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import torch

from ._distributed import launch_ranks
from ._seeding import load_hypothesis_profile, seed_everything
from ._syncs import HostSyncs, count_host_syncs

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

load_hypothesis_profile()

MARKERS = (
    "slow: long-running (dynamics, training) tests; deselect with -m 'not slow'",
    "gpu: needs a CUDA device; skipped when none is present",
)


def pytest_configure(config: pytest.Config) -> None:
    for line in MARKERS:
        config.addinivalue_line("markers", line)
    # Under pytest-xdist every worker is its own process: one intra-op thread each keeps the workers
    # from oversubscribing the cores (the default test command runs one worker per core).
    if os.environ.get("PYTEST_XDIST_WORKER"):
        torch.set_num_threads(1)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA (marked gpu)")
    for item in items:
        if item.get_closest_marker("gpu") is not None:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seed_global_rngs() -> None:
    seed_everything(0)


@pytest.fixture(scope="session")
def run_ranks():
    """``run_ranks(__file__, out_dir, world=2, timeout=90)``: see :func:`launch_ranks`."""
    return launch_ranks


@pytest.fixture
def host_syncs() -> Iterator[HostSyncs]:
    """Counts the explicit device→host syncs of the test; ``reset()`` before the part measured."""
    with count_host_syncs() as syncs:
        yield syncs
