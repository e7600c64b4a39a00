"""Quality regression: a tiny Glow trained briefly on scikit-learn digits must model them.

Data: ``sklearn.datasets.load_digits`` (8×8 images, 17 grey levels 0..16), the fixed split
``train_test_split(test_size=0.2, random_state=0)`` (1437 train / 360 test), dequantised
y = (x + u)/17 by :meth:`MultiScaleFlow.bpd` (``n_levels=17``), which also adds the constant
64·ln 17 of spec §1.2. Model: ``glow((1, 8, 8), levels=2, steps=2, hidden=32)`` (17,576
parameters), Adam lr 2e-3, batch 64, ``STEPS`` = 250 steps (≈ 11 epochs), all randomness from
seeded generators.

Reference points (test bits/dim):

- a uniform model over the 17 levels: log₂17 ≈ 4.087;
- an independent per-pixel Gaussian fitted in closed form to the dequantised train data
  (computed in the test, ≈ 3.40): a model that learned nothing about pixel correlations;
- this configuration, measured (2-core CPU, torch 2.13): 2.882 with the test's seed 0; seeds 1
  and 2 (model and batch/noise generators) give 2.986 and 3.046 (300 steps: 2.82–3.00). After one
  step it is ≈ 4.5. Wall time ≈ 4 s idle, up to ≈ 19 s on a busy 2-core machine.

The thresholds sit between: the test bpd must be below ``THRESHOLD`` = 3.25 (≈ 0.37 above the
measured value, 0.2 above the worst seed seen) and at least 0.15 below the Gaussian baseline
computed here (≈ 3.25 as well). A sign error in a log-det, a missing prior term, a wrong bpd
constant (±log₂17 ≈ 4.1 bits) or a broken gradient path moves the result far outside this window.
"""

from __future__ import annotations

import math

import pytest
import torch

pytest.importorskip("sklearn")

from kexue.flows.builders.glow import glow

N_LEVELS = 17
STEPS = 250
BATCH = 64
THRESHOLD = 3.25


def _digits() -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    images = load_digits().images.astype("int64")
    train, test = train_test_split(images, test_size=0.2, random_state=0)
    return (
        torch.from_numpy(train).reshape(-1, 1, 8, 8),
        torch.from_numpy(test).reshape(-1, 1, 8, 8),
    )


def _gaussian_baseline_bpd(train: torch.Tensor, test: torch.Tensor) -> float:
    """Exact expected test bpd (over u) of a per-pixel Gaussian fitted to dequantised train."""
    noise_var = 1.0 / (12 * N_LEVELS**2)
    y_train = (train.double() + 0.5) / N_LEVELS
    mu = y_train.mean(0)
    var = y_train.var(0, unbiased=False) + noise_var
    sq = ((test.double() + 0.5) / N_LEVELS - mu) ** 2 + noise_var
    log_p = (-0.5 * sq / var - 0.5 * torch.log(2 * math.pi * var)).flatten(1).sum(1)
    d = train[0].numel()
    return float((-(log_p - d * math.log(N_LEVELS)) / (d * math.log(2))).mean())


@pytest.mark.slow
def test_tiny_glow_beats_baselines_on_digits() -> None:
    train, test = _digits()
    assert (len(train), len(test)) == (1437, 360)
    baseline = _gaussian_baseline_bpd(train, test)
    assert 3.3 < baseline < 3.5  # the closed-form reference itself (measured 3.399)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: one thread is faster and steadier on a busy machine
    try:
        model = glow(
            (1, 8, 8), levels=2, steps=2, hidden=32, generator=torch.Generator().manual_seed(0)
        )
        opt = torch.optim.Adam(model.parameters(), lr=2e-3)
        gen = torch.Generator().manual_seed(0)
        for _ in range(STEPS):
            idx = torch.randint(len(train), (BATCH,), generator=gen)
            loss = model.bpd(train[idx], n_levels=N_LEVELS, generator=gen).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            bpd = model.bpd(test, n_levels=N_LEVELS, generator=torch.Generator().manual_seed(1))
    finally:
        torch.set_num_threads(threads)
    assert bpd.shape == (len(test),)
    assert torch.isfinite(bpd).all()
    mean = float(bpd.mean())
    assert mean < THRESHOLD, f"test bpd {mean:.3f} (Gaussian baseline {baseline:.3f})"
    assert mean < baseline - 0.15
    assert mean > 1.0  # far below anything a flow this small reaches: a constant gone missing
