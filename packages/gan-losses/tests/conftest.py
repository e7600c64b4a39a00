"""Determinism for the whole suite: every test starts from the same global RNG state.

Tests pass their own ``torch.Generator`` where randomness matters; this also pins the few places
that draw from the global RNG (module initialisation, spectral-norm ``u``/``v``, throwaway inputs),
so a result never depends on which tests ran before in the same process or worker.
"""

from __future__ import annotations

import random

import pytest
import torch


@pytest.fixture(autouse=True)
def _seed_global_rngs() -> None:
    torch.manual_seed(0)
    random.seed(0)
