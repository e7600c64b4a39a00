"""Lazy R1 and path length: gain scaling, Adam settings, linear-G path lengths, the running mean."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from kexue.gan_losses import (
    PathLengthState,
    lazy_adam_hparams,
    lazy_r1_penalty,
    lazy_schedule,
    path_length_penalty,
    r1_penalty,
)


def _critic() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.Tanh(), nn.Linear(8, 1))


def test_gain_scaled_value_is_interval_times_r1() -> None:
    d = _critic()
    x = torch.randn(6, 3, 2, 2, generator=torch.Generator().manual_seed(1)).requires_grad_()
    s = d(x)
    assert lazy_r1_penalty(s, x, interval=16).item() == pytest.approx(
        16 * r1_penalty(s, x).item(), rel=1e-6
    )


def test_lazy_schedule_matches_every_step_r1_in_expectation() -> None:
    # Over a schedule, the sum of lazy penalties is an unbiased estimate of the sum of per-step R1.
    d = _critic()
    g = torch.Generator().manual_seed(2)
    interval, steps = 4, 800
    lazy_vals, plain_vals = [], []
    for step in range(steps):
        x = torch.randn(8, 3, 2, 2, generator=g).requires_grad_()
        s = d(x)
        plain_vals.append(r1_penalty(s, x, create_graph=False).item())
        lazy_vals.append(
            lazy_r1_penalty(s, x, interval=interval, create_graph=False).item()
            if lazy_schedule(step, interval)
            else 0.0
        )
    lazy_mean = sum(lazy_vals) / steps
    plain_mean = sum(plain_vals) / steps
    due = [v for v in lazy_vals[::interval]]
    se = (torch.tensor(due).std().item() / math.sqrt(len(due))) / interval
    assert abs(lazy_mean - plain_mean) < 4 * se


def test_lazy_adam_hparams() -> None:
    lr, (b1, b2) = lazy_adam_hparams(2e-3, (0.0, 0.99), 16)
    assert lr == pytest.approx(2e-3 * 16 / 17, rel=1e-15)
    assert b1 == 0.0 and b2 == pytest.approx(0.99 ** (16 / 17), rel=1e-15)
    assert lazy_schedule(32, 16) and not lazy_schedule(33, 16)
    with pytest.raises(ValueError, match="interval"):
        lazy_schedule(1, 0)


def test_linear_generator_path_length_and_running_mean() -> None:
    g = torch.Generator().manual_seed(3)
    a = torch.randn(2 * 4 * 4, 5, generator=g, dtype=torch.float64)  # images = A w, (B, 2, 4, 4)
    state = PathLengthState(decay=0.01)
    expected_mean = 0.0
    for _ in range(3):
        ws = torch.randn(7, 5, generator=g, dtype=torch.float64).requires_grad_()
        images = (ws @ a.T).view(7, 2, 4, 4)
        noise_gen = torch.Generator().manual_seed(11)
        y = torch.randn(images.shape, generator=noise_gen, dtype=torch.float32).double() / 4.0
        lengths = (y.flatten(1) @ a).norm(dim=1)  # g = Aᵀy per sample
        expected_mean += 0.01 * (lengths.mean().item() - expected_mean)
        p = path_length_penalty(images, ws, state, generator=torch.Generator().manual_seed(11))
        assert state.pl_mean.item() == pytest.approx(expected_mean, rel=1e-5)
        expected = 2.0 * ((lengths - state.pl_mean.double()) ** 2).mean().item()
        assert p.item() == pytest.approx(expected, rel=1e-5)


def test_path_length_with_per_layer_ws_and_interval_gain() -> None:
    g = torch.Generator().manual_seed(4)
    ws = torch.randn(3, 4, 5, generator=g).requires_grad_()  # (B, num_ws, w_dim)
    lin = nn.Linear(5, 8)
    images = lin(ws).sum(1).view(3, 2, 2, 2)
    s1, s2 = PathLengthState(), PathLengthState()
    p1 = path_length_penalty(images, ws, s1, generator=torch.Generator().manual_seed(0))
    p4 = path_length_penalty(images, ws, s2, interval=4, generator=torch.Generator().manual_seed(0))
    assert p4.item() == pytest.approx(4 * p1.item(), rel=1e-6)
    p4.backward()
    assert lin.weight.grad is not None and torch.isfinite(lin.weight.grad).all()
    with pytest.raises(ValueError, match="images must be"):
        path_length_penalty(images.flatten(1), ws, s1)
