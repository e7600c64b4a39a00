"""Global RNG seeding and the derandomised hypothesis profile."""

from __future__ import annotations

import random

import torch

__all__ = ["HYPOTHESIS_PROFILE", "load_hypothesis_profile", "seed_everything"]

HYPOTHESIS_PROFILE = "kexue"


def seed_everything(seed: int = 0) -> None:
    """Seed torch's, Python's and (when installed) NumPy's global RNGs with ``seed``.

    Tests pass their own ``torch.Generator`` where randomness matters; this pins what still draws
    from the global RNGs (module initialisation, spectral-norm ``u``/``v``, throwaway inputs), so a
    result never depends on which tests ran before in the same process or worker. The plugin calls
    it before every test (autouse fixture).

    Arguments:
        seed: the seed for every global RNG.
    """
    torch.manual_seed(seed)
    random.seed(seed)
    try:
        import numpy as np
    except ImportError:  # numpy is optional here; torch does not need it
        return
    np.random.seed(seed)  # noqa: NPY002 - pins the legacy global RNG for code that uses it


def load_hypothesis_profile() -> bool:
    """Register and load the ``kexue`` hypothesis profile (``derandomize=True``).

    Hypothesis then draws its examples from a fixed seed: the suite is deterministic, and a property
    test that fails in CI fails the same way on every machine.

    Returns:
        ``False`` when hypothesis is not installed (a suite without property tests runs without it).
    """
    try:
        from hypothesis import settings
    except ImportError:
        return False
    settings.register_profile(HYPOTHESIS_PROFILE, derandomize=True)
    settings.load_profile(HYPOTHESIS_PROFILE)
    return True
