"""IMLE against brute force, argmin-only gradients; the two-sample variant; the VI term."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from _ganvalues import F64
from _ganvalues import randn as _randn
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.testing import assert_close

from kexue.gan_losses.losses.imle import (
    imle_loss,
    imle_two_sample_loss,
    nearest_neighbour_sqdist,
    vgan_generator_loss,
)


def _brute_force(x_real: torch.Tensor, x_fake: torch.Tensor) -> torch.Tensor:
    out = []
    for xr in x_real:
        out.append(min(((xr - xf) ** 2).sum() for xf in x_fake))
    return torch.stack(out)


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_fakes_containing_every_real_give_zero(dtype):
    x_real = _randn(5, 2, 3, 3, seed=0, dtype=dtype)
    x_fake = torch.cat([_randn(4, 2, 3, 3, seed=1, dtype=dtype), x_real])[torch.randperm(9)]
    assert_close(imle_loss(x_real, x_fake), torch.zeros((), dtype=dtype), atol=0, rtol=0)
    assert_close(
        imle_loss(x_real, x_fake, reduction="none"), torch.zeros(5, dtype=dtype), atol=0, rtol=0
    )


@settings(max_examples=20, deadline=None)
@given(
    m=st.integers(1, 6),
    k=st.integers(1, 7),
    c=st.integers(1, 3),
    hw=st.integers(1, 3),
    seed=st.integers(0, 999),
)
def test_equals_brute_force(m, k, c, hw, seed):
    x_real, x_fake = _randn(m, c, hw, hw, seed=seed), _randn(k, c, hw, hw, seed=seed + 1)
    per = _brute_force(x_real, x_fake)
    assert_close(imle_loss(x_real, x_fake, reduction="none"), per, atol=1e-12, rtol=1e-12)
    assert_close(imle_loss(x_real, x_fake), per.mean(), atol=1e-12, rtol=1e-12)
    assert_close(imle_loss(x_real, x_fake, reduction="sum"), per.sum(), atol=1e-12, rtol=1e-12)


def test_gradient_only_reaches_the_argmin_fakes():
    x_real = torch.tensor([[0.0, 0.0], [10.0, 10.0], [0.5, 0.0]], dtype=F64)
    x_fake = torch.tensor([[1.0, 0.0], [9.0, 10.0], [-50.0, 3.0], [0.0, 2.0]], dtype=F64)
    x_fake.requires_grad_()
    imle_loss(x_real, x_fake).backward()
    # nearest fakes: real 0 -> fake 0, real 1 -> fake 1, real 2 -> fake 0
    expected = torch.zeros(4, 2, dtype=F64)
    expected[0] = 2 * ((x_fake[0] - x_real[0]) + (x_fake[0] - x_real[2])).detach() / 3
    expected[1] = 2 * (x_fake[1] - x_real[1]).detach() / 3
    assert_close(x_fake.grad, expected, atol=1e-12, rtol=0)
    assert (x_fake.grad[2:] == 0).all()


def test_distances_are_never_negative():
    # large common offset, tiny differences: the ‖a‖² + ‖b‖² − 2a·b expansion cancels badly
    gen = torch.Generator().manual_seed(2)
    x_real = 1000.0 + 1e-4 * torch.randn(4, 64, generator=gen)
    x_fake = x_real + 1e-3 * torch.randn(4, 64, generator=gen)
    expansion = x_real.pow(2).sum(1, keepdim=True) + x_fake.pow(2).sum(1) - 2 * x_real @ x_fake.T
    assert (expansion < 0).any()  # the naive formula goes negative here
    sqdist, index = nearest_neighbour_sqdist(x_real, x_fake)
    assert (sqdist >= 0).all()
    exact = _brute_force(x_real.double(), x_fake.double())
    assert_close(sqdist.double(), exact, atol=0, rtol=1e-3)
    assert_close(sqdist, (x_real - x_fake[index]).pow(2).sum(1), atol=0, rtol=0)


def test_half_precision_is_finite():
    x_real = _randn(4, 8, seed=3, dtype=torch.float32)
    x_fake = _randn(6, 8, seed=4, dtype=torch.float32)
    got = imle_loss(x_real.bfloat16(), x_fake.bfloat16())
    assert torch.isfinite(got)
    assert_close(got.float(), imle_loss(x_real, x_fake), atol=0.1, rtol=0.02)


def test_imle_bad_input():
    with pytest.raises(ValueError, match="candidates"):
        imle_loss(torch.randn(3, 4), torch.randn(3, 5))
    with pytest.raises(ValueError, match="queries"):
        imle_loss(torch.zeros(0, 4), torch.randn(3, 4))
    with pytest.raises(ValueError, match="reduction"):
        imle_loss(torch.randn(3, 4), torch.randn(3, 4), reduction="avg")


# --- two-sample variant -------------------------------------------------------------------------


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_two_sample_matches_formula(reduction):
    x_fake, x_real, x_other = _randn(5, 3, seed=5), _randn(4, 3, seed=6), _randn(6, 3, seed=7)
    pull = _brute_force(x_fake, x_real)
    push = _brute_force(x_fake, x_other)
    per = pull + F.relu(2.0 - push)
    expected = {"mean": per.mean(), "sum": per.sum(), "none": per}[reduction]
    got = imle_two_sample_loss(x_fake, x_real, x_other, margin=2.0, reduction=reduction)
    assert_close(got, expected, atol=1e-12, rtol=1e-12)


def test_two_sample_margin_pushes_fakes_apart():
    x_fake = torch.zeros(2, 2, dtype=F64, requires_grad=True)
    x_real = torch.zeros(1, 2, dtype=F64)
    x_other = torch.tensor([[0.5, 0.0], [3.0, 0.0]], dtype=F64)
    loss = imle_two_sample_loss(x_fake, x_real, x_other, margin=1.0)
    assert_close(loss, torch.tensor(0.75, dtype=F64), atol=1e-15, rtol=0)  # relu(1 − 0.25)
    (grad,) = torch.autograd.grad(loss, x_fake)
    # d/dx relu(1 − ‖x − o‖²) = −2(x − o) = (1, 0), averaged over 2 fakes: descent moves x away
    assert_close(grad, torch.tensor([[0.5, 0.0], [0.5, 0.0]], dtype=F64), atol=1e-15, rtol=0)
    assert_close(
        imle_two_sample_loss(x_fake, x_real, x_other, margin=0.0),
        torch.tensor(0.0, dtype=F64),
        atol=0,
        rtol=0,
    )


def test_two_sample_bad_input():
    x = torch.randn(3, 4)
    with pytest.raises(ValueError, match="margin"):
        imle_two_sample_loss(x, x, x, margin=-1.0)
    with pytest.raises(ValueError, match="x_fake_other"):
        imle_two_sample_loss(x, x, torch.randn(3, 5), margin=1.0)


# --- VI proximal regulariser --------------------------------------------------------------------


@pytest.mark.parametrize("energy", [False, True])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_vgan_generator_loss_values(energy, reduction):
    f = torch.tensor([0.0, 1.0, -2.0], dtype=F64)
    x_fake, x_old = _randn(3, 2, 2, seed=8), _randn(3, 2, 2, seed=9)
    per = F.softplus(-(-f if energy else f)) + 5.0 * ((x_fake - x_old) ** 2).flatten(1).mean(1)
    expected = {"mean": per.mean(), "sum": per.sum(), "none": per}[reduction]
    got = vgan_generator_loss(f, x_fake, x_old, energy=energy, reduction=reduction)
    assert_close(got, expected, atol=1e-12, rtol=1e-12)


def test_vgan_proximal_term_is_zero_at_the_old_generator_and_detaches_it():
    x_fake = _randn(3, 4, seed=10).requires_grad_()
    x_old = x_fake.detach().clone().requires_grad_()
    loss = vgan_generator_loss(torch.zeros(3, dtype=F64), x_fake, x_old)
    assert_close(loss, torch.log(torch.tensor(2.0, dtype=F64)), atol=1e-15, rtol=0)
    loss.backward()
    assert x_old.grad is None
    with pytest.raises(ValueError, match="x_fake_old"):
        vgan_generator_loss(torch.zeros(3), torch.randn(3, 4), torch.randn(3, 5))
    with pytest.raises(ValueError, match="fake_scores"):
        vgan_generator_loss(torch.zeros(2), torch.randn(3, 4), torch.randn(3, 4))


def test_exact_nearest_neighbours_on_offset_data() -> None:
    # Issue 16: offset 1e4, spread 0.01 — cdist's matmul route picks the wrong fake for most rows.
    g = torch.Generator().manual_seed(0)
    x_real = 1e4 + 0.01 * torch.randn(64, 16, generator=g)
    x_fake = 1e4 + 0.01 * torch.randn(64, 16, generator=g)
    exact = ((x_real[:, None].double() - x_fake[None].double()) ** 2).sum(-1)
    sqdist, index = nearest_neighbour_sqdist(x_real, x_fake)
    assert torch.equal(index, exact.argmin(1))
    assert_close(sqdist.double(), exact.min(1).values, rtol=1e-5, atol=0)
    assert_close(imle_loss(x_real, x_fake).double(), exact.min(1).values.mean(), rtol=1e-5, atol=0)
    shortcut = torch.cdist(x_real, x_fake).argmin(1)  # what the matmul route alone gives
    assert (shortcut != index).sum() > 10


def test_exact_nearest_neighbours_far_from_the_mean() -> None:
    # Two clusters at ±1e4: centring cannot remove the offset, the re-rank must.
    g = torch.Generator().manual_seed(1)
    sign = torch.tensor([1.0, -1.0]).repeat(16)[:, None]
    x_real = sign * 1e4 + 0.01 * torch.randn(32, 8, generator=g)
    x_fake = sign * 1e4 + 0.01 * torch.randn(32, 8, generator=g)
    exact = ((x_real[:, None].double() - x_fake[None].double()) ** 2).sum(-1)
    _, index = nearest_neighbour_sqdist(x_real, x_fake)
    assert torch.equal(index, exact.argmin(1))


def test_imle_rejects_non_finite_samples() -> None:
    x = torch.zeros(3, 2)
    bad = x.clone()
    bad[2, 0] = float("inf")
    with pytest.raises(ValueError, match="candidates contains non-finite"):
        imle_loss(x, bad)
