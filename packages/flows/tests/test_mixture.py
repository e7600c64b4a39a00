"""GaussianMixture base (spec flows-splines §5 row 12): normalisation by quadrature, K = 1 equals
the Gaussian, sample moments, conditional parameters, rsample rules."""

from __future__ import annotations

import math

import pytest
import torch
from _flowcheck import gen

from kexue.flows.mixture import GaussianMixture


def _random(gm: GaussianMixture, seed: int) -> GaussianMixture:
    g = gen(seed)
    with torch.no_grad():
        for p in gm.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.5)
    return gm


@torch.no_grad()
def test_density_integrates_to_one_1d_and_2d() -> None:
    gm1 = _random(GaussianMixture(1, 3, generator=gen(0)).double(), 1)
    t = torch.linspace(-12, 12, 20001, dtype=torch.float64)
    mass1 = torch.trapezoid(gm1.log_prob(t[:, None]).exp(), t)
    assert abs(float(mass1) - 1.0) < 1e-6
    gm2 = _random(GaussianMixture(2, 2, covariance="full", generator=gen(2)).double(), 3)
    s = torch.linspace(-10, 10, 401, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(s, s, indexing="ij"), dim=-1).reshape(-1, 2)
    dens = gm2.log_prob(grid).exp().reshape(401, 401)
    mass2 = torch.trapezoid(torch.trapezoid(dens, s, dim=1), s)
    assert abs(float(mass2) - 1.0) < 1e-6


@pytest.mark.parametrize("covariance", ["diag", "full"])
def test_one_component_equals_the_gaussian(covariance: str) -> None:
    gm = _random(GaussianMixture(3, 1, covariance=covariance).double(), 4)
    z = torch.randn(6, 3, generator=gen(5), dtype=torch.float64)
    _, loc, scale = gm._params(None, 6)
    cov = (
        torch.diag_embed(scale[0, 0].square())
        if covariance == "diag"
        else scale[0, 0] @ scale[0, 0].T
    )
    ref = torch.distributions.MultivariateNormal(loc[0, 0], covariance_matrix=cov).log_prob(z)
    torch.testing.assert_close(gm.log_prob(z), ref, atol=1e-12, rtol=0)


@pytest.mark.parametrize("covariance", ["diag", "full"])
def test_sample_moments_within_four_standard_errors(covariance: str) -> None:
    gm = _random(GaussianMixture(2, 3, covariance=covariance, generator=gen(6)).double(), 7)
    n = 40_000
    z = gm.sample(n, generator=gen(8))
    log_pi, loc, scale = gm._params(None, 1)
    pi = log_pi.exp()[0]
    covs = torch.diag_embed(scale[0].square()) if covariance == "diag" else scale[0] @ scale[0].mT
    mean = (pi[:, None] * loc[0]).sum(0)
    second = (pi[:, None, None] * (covs + loc[0][:, :, None] * loc[0][:, None, :])).sum(0)
    var = torch.diagonal(second) - mean.square()
    se = (var / n).sqrt()
    assert torch.all((z.mean(0) - mean).abs() < 4 * se)
    # temperature 0 gives the component means
    z0 = gm.sample(50, temperature=0.0, generator=gen(9))
    assert torch.all(torch.cdist(z0, loc[0]).min(1).values < 1e-12)


def test_conditional_mixture_and_rsample_rules() -> None:
    gm = GaussianMixture(2, 2, context_features=3, hidden=8, generator=gen(0)).double()
    c = torch.randn(4, 3, generator=gen(1), dtype=torch.float64)
    z = torch.randn(4, 2, generator=gen(2), dtype=torch.float64)
    base = GaussianMixture(2, 2, generator=gen(0)).double()
    torch.testing.assert_close(gm.log_prob(z, c), base.log_prob(z), atol=1e-12, rtol=0)  # zero init
    _random(gm.cond, 3)
    c.requires_grad_(True)
    gm.log_prob(z, c).sum().backward()
    assert c.grad is not None and c.grad.abs().sum() > 0
    assert gm.sample(4, context=c.detach(), generator=gen(4)).shape == (4, 2)
    with pytest.raises(ValueError, match=r"context must have shape \(4, 3\)"):
        gm.log_prob(z)
    with pytest.raises(RuntimeError, match="weights_trainable=False"):
        gm.rsample(4, context=c.detach())
    fixed = GaussianMixture(2, 2, weights_trainable=False, generator=gen(5)).double()
    assert fixed.has_rsample and not gm.has_rsample
    s = fixed.rsample(8, generator=gen(6))
    s.sum().backward()
    assert fixed.loc.grad is not None and fixed.loc.grad.abs().sum() > 0
    assert math.isclose(float(fixed._params(None, 1)[0].exp().sum()), 1.0, rel_tol=1e-12)


def test_errors() -> None:
    with pytest.raises(ValueError, match="covariance"):
        GaussianMixture(2, 2, covariance="tied")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"z must have shape \(B, 2\)"):
        GaussianMixture(2).log_prob(torch.zeros(3, 3))
