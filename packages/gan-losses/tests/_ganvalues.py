"""Values and scalar helpers shared by the loss tests (hand-written formulas in Python floats)."""

from __future__ import annotations

import math

import torch

F64 = torch.float64
REAL = [-1.5, -0.25, 0.5, 2.0]  # raw D scores on reals / fakes used by the per-pair value tests
FAKE = [-2.0, -0.5, 0.75, 1.5]
TOL = {"rtol": 1e-10, "atol": 1e-12}


def sp(t: float) -> float:
    """softplus in float64 Python arithmetic."""
    return math.log1p(math.exp(t))


def relu(t: float) -> float:
    return max(t, 0.0)


def mean(xs: list[float]) -> float:
    return sum(xs) / len(xs)


def randn(*shape: int, seed: int, dtype: torch.dtype = F64) -> torch.Tensor:
    """Seeded standard normal tensor (its own generator)."""
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)
