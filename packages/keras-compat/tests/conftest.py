"""Determinism for the whole suite: every test starts from the same global RNG state.

Tests pass their own ``torch.Generator`` where randomness matters; this also pins module
initialisation and any throwaway inputs drawn from the global RNGs, so a result never depends on
which tests ran before in the same process or worker.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True)
def _seed_global_rngs() -> None:
    torch.manual_seed(0)
    random.seed(0)
    np.random.seed(0)  # noqa: NPY002 - pins the legacy global RNG for code that uses it
