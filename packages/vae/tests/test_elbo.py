"""ELBO pieces: KL closed forms and Monte Carlo, decoder likelihoods, reductions (spec §4.1–2)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from kexue.vae import (
    bernoulli_nll,
    elbo,
    gaussian_kl,
    gaussian_kl_sampled,
    gaussian_nll,
    reparameterize,
)


def test_kl_of_identical_gaussians_is_zero_exactly() -> None:
    g = torch.Generator().manual_seed(0)
    mu, lv = torch.randn(5, 7, generator=g), torch.randn(5, 7, generator=g)
    kl = gaussian_kl(mu, lv, mu, lv, reduction="none")
    assert torch.equal(kl, torch.zeros(5))


def test_kl_closed_form_values() -> None:
    one = gaussian_kl(torch.ones(1, 1), torch.zeros(1, 1), reduction="none")
    assert_close(one, torch.tensor([0.5]), rtol=0, atol=1e-7)
    four = gaussian_kl(torch.zeros(1, 1), torch.full((1, 1), math.log(4.0)), reduction="none")
    # ½(4 − log 4 − 1) = 0.80685
    assert_close(four, torch.tensor([0.5 * (3.0 - math.log(4.0))]), rtol=0, atol=1e-6)
    assert abs(four.item() - 0.80685) < 1e-5


def test_analytic_kl_equals_monte_carlo_within_four_standard_errors() -> None:
    g = torch.Generator().manual_seed(1)
    mu, lv = torch.tensor([[0.3, -1.2, 0.7]]), torch.tensor([[-0.5, 0.4, 0.1]])
    pm, plv = torch.tensor([0.2, 0.1, -0.3]), torch.tensor([0.3, -0.2, 0.5])
    n = 200_000
    mu_n, lv_n = mu.expand(n, 3), lv.expand(n, 3)
    z = reparameterize(mu_n, lv_n, generator=g)
    samples = gaussian_kl_sampled(z, mu_n, lv_n, pm, plv, reduction="none").double()
    exact = gaussian_kl(mu, lv, pm, plv, reduction="none").double()
    se = samples.std() / math.sqrt(n)
    assert abs(samples.mean() - exact[0]) < 4 * se
    assert se < 0.01  # the test has power


def test_kl_gradients_match_autograd_of_the_closed_form() -> None:
    g = torch.Generator().manual_seed(2)
    mu = torch.randn(4, 3, generator=g, dtype=torch.float64, requires_grad=True)
    lv = torch.randn(4, 3, generator=g, dtype=torch.float64, requires_grad=True)
    gaussian_kl(mu, lv, reduction="sum").backward()
    assert_close(mu.grad, mu.detach(), rtol=1e-12, atol=1e-12)
    assert_close(lv.grad, 0.5 * (lv.detach().exp() - 1.0), rtol=1e-12, atol=1e-12)


def test_sampled_kl_standard_prior_form() -> None:
    g = torch.Generator().manual_seed(3)
    mu, lv = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g)
    eps = torch.randn(6, 4, generator=g)
    z = mu + (0.5 * lv).exp() * eps
    expected = 0.5 * (z.pow(2) - eps.pow(2) - lv).sum(1)
    got = gaussian_kl_sampled(z, mu, lv, reduction="none")
    assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_fixed_variance_nll_is_the_weighted_squared_error_plus_constant() -> None:
    g = torch.Generator().manual_seed(4)
    x, m = torch.rand(3, 1, 8, 8, generator=g), torch.rand(3, 1, 8, 8, generator=g)
    lam = 5.0
    got = gaussian_nll(x, m, lam=lam, reduction="none")
    expected = 0.5 * lam * (x - m).pow(2).sum((1, 2, 3)) + 32 * math.log(2 * math.pi / lam)
    assert_close(got, expected, rtol=1e-6, atol=1e-5)
    same = gaussian_nll(x, m, torch.full((1, 8, 8), -math.log(lam)), reduction="none")
    assert_close(same, expected, rtol=1e-6, atol=1e-5)


def test_bernoulli_nll_is_summed_bce_and_reductions_differ_by_batch() -> None:
    g = torch.Generator().manual_seed(5)
    x = (torch.rand(4, 64, generator=g) > 0.5).float()
    logits = torch.randn(4, 64, generator=g)
    per = bernoulli_nll(x, logits, reduction="none")
    assert_close(per.sum(), F.binary_cross_entropy_with_logits(logits, x, reduction="sum"))
    assert_close(bernoulli_nll(x, logits), per.mean())
    assert_close(bernoulli_nll(x, logits, reduction="sum"), per.sum())
    # the pixel-mean port (F.mse_loss / BCE mean) is the per-sample sum divided by D
    mean_port = F.binary_cross_entropy_with_logits(logits, x, reduction="mean")
    assert_close(mean_port * 64, per.mean(), rtol=1e-6, atol=1e-6)


def test_elbo_and_errors() -> None:
    assert_close(elbo(torch.tensor([1.0, 2.0]), torch.tensor([0.5, 0.5])), torch.tensor(1.0))
    with pytest.raises(ValueError, match="mu and logvar"):
        gaussian_kl(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="exactly one of logvar"):
        gaussian_nll(torch.zeros(2, 3), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="prior_mu"):
        gaussian_kl(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(4))
    with pytest.raises(ValueError, match="reduction"):
        gaussian_kl(torch.zeros(2, 3), torch.zeros(2, 3), reduction="avg")  # type: ignore[arg-type]
