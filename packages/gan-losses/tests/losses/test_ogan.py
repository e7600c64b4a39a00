"""O-GAN: Pearson correlation, feature-mean score, encoder/generator losses, single-loss form."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.testing import assert_close

from kexue.gan_losses.losses.ogan import (
    ogan_correlation_loss,
    ogan_encoder_loss,
    ogan_generator_loss,
    ogan_reconstruction_code,
    ogan_score,
    ogan_single_loss,
    pearson_correlation,
)

DTYPES = [torch.float32, torch.float64]
TOL = {torch.float32: {"atol": 1e-6, "rtol": 1e-5}, torch.float64: {"atol": 1e-12, "rtol": 1e-10}}


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _randn(*shape: int, seed: int = 0, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.randn(*shape, generator=_gen(seed), dtype=dtype)


def _loop_pearson(z: torch.Tensor, z_hat: torch.Tensor) -> torch.Tensor:
    return torch.stack([torch.corrcoef(torch.stack([a, b]))[0, 1] for a, b in zip(z, z_hat)])


# --- pearson_correlation ------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_pearson_affine_closed_forms(dtype):
    z = _randn(5, 8, dtype=dtype)
    ones = torch.ones(5, dtype=dtype)
    assert_close(pearson_correlation(z, 2 * z + 3), ones, **TOL[dtype])
    assert_close(pearson_correlation(z, -z), -ones, **TOL[dtype])
    assert_close(pearson_correlation(z, 0.5 * z - 7), ones, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_pearson_equals_corrcoef_loop(dtype):
    z, z_hat = _randn(6, 5, seed=1, dtype=dtype), _randn(6, 5, seed=2, dtype=dtype)
    assert_close(pearson_correlation(z, z_hat), _loop_pearson(z, z_hat), **TOL[dtype])


def test_pearson_gradient_orthogonal_to_ones_and_centred_code():
    z = _randn(4, 6, seed=3, dtype=torch.float64)
    z_hat = _randn(4, 6, seed=4, dtype=torch.float64).requires_grad_()
    (grad,) = torch.autograd.grad(pearson_correlation(z, z_hat).sum(), z_hat)
    centred = z_hat.detach() - z_hat.detach().mean(dim=1, keepdim=True)
    zeros = torch.zeros(4, dtype=torch.float64)
    assert_close(grad.sum(dim=1), zeros, atol=1e-12, rtol=0)
    assert_close((grad * centred).sum(dim=1), zeros, atol=1e-12, rtol=0)
    assert grad.abs().max() > 1e-3  # the gradient itself is not zero


def test_pearson_zero_variance_code_is_finite():
    z = _randn(3, 5)
    z_hat = torch.full((3, 5), 2.5, requires_grad=True)
    rho = pearson_correlation(z, z_hat)
    assert_close(rho, torch.zeros(3), atol=0, rtol=0)
    (grad,) = torch.autograd.grad(rho.sum(), z_hat)
    assert torch.isfinite(grad).all()


def test_pearson_half_precision_upcasts():
    z, z_hat = _randn(4, 16, seed=5), _randn(4, 16, seed=6)
    rho_bf16 = pearson_correlation(z.bfloat16(), z_hat.bfloat16())
    assert rho_bf16.dtype == torch.float32
    assert_close(rho_bf16, pearson_correlation(z, z_hat), atol=2e-2, rtol=0)


def test_pearson_bad_input():
    z = torch.randn(3, 4)
    with pytest.raises(ValueError, match="z_hat"):
        pearson_correlation(z, torch.randn(3, 5))
    with pytest.raises(ValueError, match="z"):
        pearson_correlation(torch.randn(3, 1), torch.randn(3, 1))
    with pytest.raises(ValueError, match="eps"):
        pearson_correlation(z, z, eps=0.0)
    with pytest.raises(ValueError, match="z"):
        pearson_correlation(torch.randn(3), torch.randn(3))


@settings(max_examples=20, deadline=None)
@given(
    b=st.integers(1, 5),
    n=st.integers(2, 9),
    scale=st.floats(0.1, 10.0),
    shift=st.floats(-5.0, 5.0),
    seed=st.integers(0, 1000),
)
def test_pearson_bounded_and_affine_invariant(b, n, scale, shift, seed):
    z = _randn(b, n, seed=seed, dtype=torch.float64)
    z_hat = _randn(b, n, seed=seed + 1, dtype=torch.float64)
    rho = pearson_correlation(z, z_hat)
    assert rho.shape == (b,)
    assert (rho.abs() <= 1 + 1e-12).all()
    assert_close(pearson_correlation(z, scale * z_hat + shift), rho, atol=1e-10, rtol=0)
    assert_close(pearson_correlation(z_hat, z), rho, atol=1e-12, rtol=0)


# --- score and reconstruction code --------------------------------------------------------------


def test_score_is_feature_mean_and_works_for_batch_one():
    e = torch.tensor([[1.0, 2.0, 6.0], [0.0, -3.0, 0.0]])
    assert_close(ogan_score(e), torch.tensor([3.0, -1.0]), atol=0, rtol=0)
    assert_close(ogan_score(e[:1]), torch.tensor([3.0]), atol=0, rtol=0)
    # no batch statistics: a sample's score does not depend on the rest of the batch
    big = _randn(7, 5)
    assert_close(ogan_score(big)[2:3], ogan_score(big[2:3]), atol=0, rtol=0)


def test_score_bad_input():
    with pytest.raises(ValueError, match="encoder_output"):
        ogan_score(torch.randn(4))
    with pytest.raises(ValueError, match="encoder_output"):
        ogan_score(torch.ones(3, 4, dtype=torch.int64))


@pytest.mark.parametrize("dtype", DTYPES)
def test_reconstruction_code_standardises_per_sample(dtype):
    e = _randn(4, 10, seed=7, dtype=dtype) * 3 + 1
    code = ogan_reconstruction_code(e, scale=0.9, eps=0.0)
    assert_close(code.mean(dim=1), torch.zeros(4, dtype=dtype), **TOL[dtype])
    assert_close(code.std(dim=1, unbiased=False), torch.full((4,), 0.9, dtype=dtype), **TOL[dtype])
    # invariant to a positive per-sample affine map of the code
    a = torch.tensor([[0.5], [2.0], [3.0], [10.0]], dtype=dtype)
    assert_close(ogan_reconstruction_code(a * e - 4, eps=0.0), code, **TOL[dtype])


def test_reconstruction_code_bad_input():
    with pytest.raises(ValueError, match="encoder_output"):
        ogan_reconstruction_code(torch.randn(2, 3, 4))
    with pytest.raises(ValueError, match="scale"):
        ogan_reconstruction_code(torch.randn(2, 3), scale=0.0)


# --- two-optimiser losses -----------------------------------------------------------------------


def _manual_encoder_loss(real_code, fake_code, z, x_real, x_fake, lam, energy, eps=1e-8):
    sign = -1.0 if energy else 1.0
    delta = sign * (real_code.mean(1) - fake_code.mean(1))
    mse = ((x_real - x_fake) ** 2).flatten(1).mean(1)
    return -delta + 0.25 * delta**2 / (mse + eps) - lam * _loop_pearson(z, fake_code)


@pytest.mark.parametrize("energy", [False, True])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_encoder_loss_matches_formula(energy, reduction):
    dt = torch.float64
    real_code, fake_code, z = (_randn(4, 6, seed=s, dtype=dt) for s in (10, 11, 12))
    x_real, x_fake = _randn(4, 3, 2, 2, seed=13, dtype=dt), _randn(4, 3, 2, 2, seed=14, dtype=dt)
    expected = _manual_encoder_loss(real_code, fake_code, z, x_real, x_fake, 0.5, energy)
    expected = {"mean": expected.mean(), "sum": expected.sum(), "none": expected}[reduction]
    got = ogan_encoder_loss(
        real_code, fake_code, z, x_real, x_fake, energy=energy, reduction=reduction
    )
    assert_close(got, expected, atol=1e-12, rtol=1e-10)


def test_encoder_loss_qp_optimum():
    # with ρ off, per sample -Δ + 0.25Δ²/MSE is minimal at Δ* = 2·MSE with value -MSE
    x_real = torch.zeros(3, 1, 2, 2, dtype=torch.float64)
    x_fake = torch.full((3, 1, 2, 2), 0.1, dtype=torch.float64)  # MSE = 0.01
    z = _randn(3, 4, seed=15, dtype=torch.float64)
    fake_code = torch.zeros(3, 4, dtype=torch.float64)
    real_code = torch.full((3, 4), 0.02, dtype=torch.float64, requires_grad=True)
    loss = ogan_encoder_loss(real_code, fake_code, z, x_real, x_fake, lam=0.0, eps=0.0)
    assert_close(loss, torch.tensor(-0.01, dtype=torch.float64), atol=1e-15, rtol=0)
    (grad,) = torch.autograd.grad(loss, real_code)
    assert_close(grad, torch.zeros_like(grad), atol=1e-12, rtol=0)
    for off in (0.019, 0.021, 0.0, 0.05):
        other = torch.full((3, 4), off, dtype=torch.float64)
        assert ogan_encoder_loss(other, fake_code, z, x_real, x_fake, lam=0.0, eps=0.0) > loss


def test_generator_loss_matches_formula_and_signs():
    dt = torch.float64
    fake_code, z = _randn(5, 6, seed=16, dtype=dt), _randn(5, 6, seed=17, dtype=dt)
    rho = _loop_pearson(z, fake_code)
    assert_close(
        ogan_generator_loss(fake_code, z, lam=0.5, reduction="none"),
        -fake_code.mean(1) - 0.5 * rho,
        atol=1e-12,
        rtol=0,
    )
    assert_close(
        ogan_generator_loss(fake_code, z, lam=1.0, energy=True, reduction="sum"),
        (fake_code.mean(1) - rho).sum(),
        atol=1e-12,
        rtol=0,
    )
    assert_close(
        ogan_correlation_loss(z, fake_code, lam=0.5, reduction="none"),
        -0.5 * rho,
        atol=1e-12,
        rtol=0,
    )


def test_losses_bad_input():
    code, z, x = torch.randn(4, 6), torch.randn(4, 6), torch.randn(4, 3, 2, 2)
    with pytest.raises(ValueError, match="fake_code"):
        ogan_encoder_loss(code, torch.randn(3, 6), z, x, x)
    with pytest.raises(ValueError, match="x_fake"):
        ogan_encoder_loss(code, code, z, x, torch.randn(4, 3, 2, 1))
    with pytest.raises(ValueError, match="x_real"):
        ogan_encoder_loss(code, code, z, torch.randn(5, 3, 2, 2), torch.randn(5, 3, 2, 2))
    with pytest.raises(ValueError, match="lam"):
        ogan_generator_loss(code, z, lam=-1.0)
    with pytest.raises(ValueError, match="reduction"):
        ogan_generator_loss(code, z, reduction="avg")


# --- networks: routing and the single-loss form -------------------------------------------------


class _Nets:
    """Tiny linear G: z (6) -> x (2, 2, 2) and E: x -> code (6), float64."""

    def __init__(self, seed: int = 0, batch_norm: bool = False):
        torch.manual_seed(seed)
        self.G = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Unflatten(1, (2, 2, 2))).double()
        layers = [nn.Flatten(), nn.Linear(8, 12)]
        if batch_norm:
            layers.append(nn.BatchNorm1d(12))
        layers += [nn.LeakyReLU(0.2), nn.Linear(12, 6)]
        self.E = nn.Sequential(*layers).double()
        self.z = _randn(5, 6, seed=seed + 100, dtype=torch.float64)
        self.x_real = _randn(5, 2, 2, 2, seed=seed + 200, dtype=torch.float64)

    def zero(self):
        for p in [*self.G.parameters(), *self.E.parameters()]:
            p.grad = None

    def grads(self, net: nn.Module) -> list[torch.Tensor | None]:
        return [None if p.grad is None else p.grad.clone() for p in net.parameters()]


def _all_zero(grads) -> bool:
    return all(g is None or g.abs().max() <= 1e-12 for g in grads)


def _nonzero(grads) -> bool:
    return any(g is not None and g.abs().max() > 1e-6 for g in grads)


def test_encoder_loss_routes_nothing_to_g_and_generator_loss_routes_rho_to_both():
    n = _Nets()
    x_fake = n.G(n.z)
    loss = ogan_encoder_loss(n.E(n.x_real), n.E(x_fake.detach()), n.z, n.x_real, x_fake)
    loss.backward()
    assert all(g is None for g in n.grads(n.G)) and _nonzero(n.grads(n.E))
    n.zero()
    ogan_correlation_loss(n.z, n.E(n.G(n.z))).backward()
    assert _nonzero(n.grads(n.G)) and _nonzero(n.grads(n.E))


@pytest.mark.parametrize("energy", [False, True])
def test_single_loss_components_route_as_the_author_intends(energy):
    n = _Nets(seed=1)
    out = ogan_single_loss(n.E, n.x_real, n.G(n.z), n.z, energy=energy)
    assert_close(out.loss, out.critic + out.generator + out.correlation + out.quadratic)
    assert out.generator.item() == 0.0
    # ρ: gradients in both E and G
    out.correlation.backward(retain_graph=True)
    assert _nonzero(n.grads(n.E)) and _nonzero(n.grads(n.G))
    # QP and critic (t) terms: none in G
    for term in (out.critic, out.quadratic):
        n.zero()
        term.backward(retain_graph=True)
        assert _all_zero(n.grads(n.G)) and _nonzero(n.grads(n.E))
    # trick term: zero in E, non-zero in G
    n.zero()
    out.generator.backward()
    assert all(g is None or g.abs().max() <= 1e-6 for g in n.grads(n.E))
    assert _nonzero(n.grads(n.G))


def test_single_loss_energy_matches_author_formula():
    n = _Nets(seed=2)
    x_fake = n.G(n.z)
    e_real, e_fake = n.E(n.x_real), n.E(x_fake)
    t1 = e_real.mean(1) - e_fake.mean(1)
    mse = ((n.x_real - x_fake) ** 2).flatten(1).mean(1)
    expected = (t1 - 0.5 * _loop_pearson(n.z, e_fake)).mean() + (0.25 * t1**2 / (mse + 1e-8)).mean()
    got = ogan_single_loss(n.E, n.x_real, x_fake, n.z, energy=True).loss
    assert_close(got, expected, atol=1e-12, rtol=1e-10)


@pytest.mark.parametrize("energy", [False, True])
@pytest.mark.parametrize("batch_norm", [False, True])
def test_single_loss_gradients_equal_two_optimiser_gradients(energy, batch_norm):
    n = _Nets(seed=3, batch_norm=batch_norm)
    x_fake = n.G(n.z)
    ogan_encoder_loss(
        n.E(n.x_real), n.E(x_fake.detach()), n.z, n.x_real, x_fake, energy=energy
    ).backward()
    ref_e = n.grads(n.E)
    n.zero()
    ogan_generator_loss(n.E(n.G(n.z)), n.z, energy=energy).backward()
    ref_g = n.grads(n.G)
    n.zero()
    ogan_single_loss(n.E, n.x_real, n.G(n.z), n.z, energy=energy).loss.backward()
    for got, ref in zip(n.grads(n.E), ref_e):
        assert_close(got, ref, atol=1e-10, rtol=1e-8)
    for got, ref in zip(n.grads(n.G), ref_g):
        assert_close(got, ref, atol=1e-10, rtol=1e-8)


def test_single_loss_reduction_none_and_batch_check():
    n = _Nets(seed=4)
    out = ogan_single_loss(n.E, n.x_real, n.G(n.z), n.z, reduction="none")
    assert out.loss.shape == (5,)
    mean = ogan_single_loss(n.E, n.x_real, n.G(n.z), n.z).loss
    assert_close(out.loss.mean(), mean, atol=1e-12, rtol=1e-10)
    with pytest.raises(ValueError, match="encoder"):
        ogan_single_loss(n.E, n.x_real[:4], n.G(n.z), n.z)


def test_pearson_rejects_non_finite_codes() -> None:
    z = torch.randn(3, 4, generator=torch.Generator().manual_seed(0))
    bad = z.clone()
    bad[0, 1] = float("nan")
    with pytest.raises(ValueError, match="z_hat contains non-finite"):
        pearson_correlation(z, bad)
    with pytest.raises(ValueError, match="z contains non-finite"):
        pearson_correlation(bad, z)
