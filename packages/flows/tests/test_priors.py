"""Tests for kexue.flows.priors: closed-form densities, sampling, eps/from_eps, validation."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Normal

from kexue.flows.priors import (
    ConditionalGaussian,
    DiagonalGaussian,
    LearnedTop,
    Logistic,
    StandardNormal,
)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _normal_ref(z: torch.Tensor, mean: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
    lp = Normal(mean, torch.exp(log_scale)).log_prob(z)
    return lp.reshape(z.shape[0], -1).sum(1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_standard_normal_log_prob(dtype: torch.dtype) -> None:
    prior = StandardNormal((3, 2, 2)).to(dtype)
    z = torch.randn(5, 3, 2, 2, generator=_gen(1), dtype=dtype)
    lp = prior.log_prob(z)
    assert lp.shape == (5,) and lp.dtype == dtype
    ref = (-0.5 * z.square() - 0.5 * math.log(2 * math.pi)).reshape(5, -1).sum(1)
    torch.testing.assert_close(lp, ref, atol=1e-12 if dtype == torch.float64 else 1e-5, rtol=0)
    # zeros: exactly −D/2·ln 2π
    lp0 = prior.log_prob(torch.zeros(2, 3, 2, 2, dtype=dtype))
    torch.testing.assert_close(lp0, torch.full((2,), -6 * math.log(2 * math.pi), dtype=dtype))


def test_standard_normal_sample() -> None:
    prior = StandardNormal(4)
    s = prior.sample(4000, temperature=0.5, generator=_gen(2))
    assert s.shape == (4000, 4) and s.dtype == torch.float32
    torch.testing.assert_close(s.std(0), torch.full((4,), 0.5), atol=0.03, rtol=0)
    torch.testing.assert_close(s.mean(0), torch.zeros(4), atol=0.03, rtol=0)
    assert torch.equal(prior.sample(3, temperature=0.0), torch.zeros(3, 4))
    a = prior.sample(3, generator=_gen(5))
    b = prior.sample(3, generator=_gen(5))
    assert torch.equal(a, b)
    assert prior.double().sample(2).dtype == torch.float64
    e = torch.randn(3, 4, generator=_gen(3))
    assert torch.equal(prior.float().eps(e), e)
    torch.testing.assert_close(prior.from_eps(e, None, 0.7), 0.7 * e)


def test_logistic_log_prob_and_sample() -> None:
    prior = Logistic(6).double()
    z = torch.randn(4, 6, generator=_gen(4), dtype=torch.float64) * 3
    ref = (torch.log(torch.sigmoid(z)) + torch.log(torch.sigmoid(-z))).sum(1)
    torch.testing.assert_close(prior.log_prob(z), ref, atol=1e-12, rtol=0)
    # large |z| stays finite
    assert torch.isfinite(prior.log_prob(torch.full((1, 6), 1e4, dtype=torch.float64))).all()
    s = Logistic(2).sample(20000, temperature=0.5, generator=_gen(6))
    # Var of a standard logistic is π²/3; scaled by T².
    torch.testing.assert_close(s.var(0), torch.full((2,), 0.25 * math.pi**2 / 3), atol=0.05, rtol=0)
    assert torch.isfinite(s).all()


def test_diagonal_gaussian() -> None:
    prior = DiagonalGaussian((2, 3)).double()
    with torch.no_grad():
        prior.loc.copy_(torch.randn(2, 3, generator=_gen(7)))
        prior.log_scale.copy_(0.3 * torch.randn(2, 3, generator=_gen(8)))
    z = torch.randn(5, 2, 3, generator=_gen(9), dtype=torch.float64)
    ref = _normal_ref(z, prior.loc.detach().expand_as(z), prior.log_scale.detach().expand_as(z))
    torch.testing.assert_close(prior.log_prob(z), ref, atol=1e-12, rtol=0)
    eps = prior.eps(z)
    torch.testing.assert_close(prior.from_eps(eps), z, atol=1e-12, rtol=0)
    s0 = prior.sample(3, temperature=0.0)
    torch.testing.assert_close(s0, prior.loc.detach().expand(3, 2, 3), atol=0, rtol=0)
    # gradients reach both parameters
    prior.log_prob(z).sum().backward()
    assert prior.loc.grad is not None and prior.log_scale.grad is not None


def test_conditional_gaussian_init_is_standard_normal() -> None:
    prior = ConditionalGaussian(3, 2)
    ctx = torch.randn(4, 3, 5, 5, generator=_gen(10))
    z = torch.randn(4, 2, 5, 5, generator=_gen(11))
    torch.testing.assert_close(
        prior.log_prob(z, ctx), StandardNormal((2, 5, 5)).log_prob(z), atol=1e-5, rtol=0
    )
    assert torch.equal(prior.eps(z, ctx), z)


def test_conditional_gaussian_trained_params() -> None:
    prior = ConditionalGaussian(3, 2).double()
    with torch.no_grad():
        for p in prior.parameters():
            p.copy_(0.1 * torch.randn(p.shape, generator=_gen(p.numel())))
    ctx = torch.randn(4, 3, 4, 4, generator=_gen(12), dtype=torch.float64)
    z = torch.randn(4, 2, 4, 4, generator=_gen(13), dtype=torch.float64)
    with torch.no_grad():
        h = prior.conv(ctx)
    mean, log_scale = h[:, 0::2], h[:, 1::2]
    assert float(mean.abs().max()) > 1e-3
    torch.testing.assert_close(
        prior.log_prob(z, ctx), _normal_ref(z, mean, log_scale), atol=1e-10, rtol=0
    )
    torch.testing.assert_close(prior.from_eps(prior.eps(z, ctx), ctx), z, atol=1e-12, rtol=0)
    torch.testing.assert_close(prior.sample(4, temperature=0.0, context=ctx), mean, atol=0, rtol=0)
    s = prior.sample(4, context=ctx, generator=_gen(1))
    assert s.shape == z.shape and s.dtype == torch.float64


def test_conditional_gaussian_bad_context() -> None:
    prior = ConditionalGaussian(3, 2)
    z = torch.zeros(4, 2, 5, 5)
    for bad in (None, torch.zeros(4, 2, 5, 5), torch.zeros(3, 3, 5, 5), torch.zeros(4, 3, 4, 4)):
        with pytest.raises(ValueError, match="context"):
            prior.log_prob(z, bad)
    with pytest.raises(ValueError, match="context"):
        prior.sample(2, context=torch.zeros(4, 3, 5, 5))
    with pytest.raises(ValueError, match="z"):
        prior.log_prob(torch.zeros(4, 3, 5, 5), torch.zeros(4, 3, 5, 5))


def test_learned_top() -> None:
    prior = LearnedTop((2, 3, 3)).double()
    z = torch.randn(4, 2, 3, 3, generator=_gen(14), dtype=torch.float64)
    torch.testing.assert_close(
        prior.log_prob(z), StandardNormal((2, 3, 3)).double().log_prob(z), atol=1e-12, rtol=0
    )
    with torch.no_grad():
        prior.bias_logs[0].copy_(torch.tensor([0.5, -0.2, 1.0, 0.3], dtype=torch.float64))
    mean = torch.tensor([0.5, 1.0], dtype=torch.float64).view(1, 2, 1, 1).expand_as(z)
    log_scale = torch.tensor([-0.2, 0.3], dtype=torch.float64).view(1, 2, 1, 1).expand_as(z)
    torch.testing.assert_close(
        prior.log_prob(z), _normal_ref(z, mean, log_scale), atol=1e-10, rtol=0
    )
    torch.testing.assert_close(prior.sample(4, temperature=0.0), mean, atol=1e-14, rtol=0)


def test_learned_top_class_conditioning() -> None:
    prior = LearnedTop((2, 2, 2), context_features=3)
    z = torch.randn(2, 2, 2, 2, generator=_gen(15))
    y = torch.eye(3)[:2]
    torch.testing.assert_close(prior.log_prob(z, y), StandardNormal((2, 2, 2)).log_prob(z))
    with pytest.raises(ValueError, match="context"):
        prior.log_prob(z)
    with pytest.raises(ValueError, match="context"):
        prior.log_prob(z, torch.eye(4)[:2])


def test_prior_bad_input() -> None:
    with pytest.raises(ValueError, match="z"):
        StandardNormal(3).log_prob(torch.zeros(2, 4))
    with pytest.raises(ValueError, match="z"):
        Logistic((2, 2)).log_prob(torch.zeros(2, 4))
    with pytest.raises(ValueError, match="temperature"):
        StandardNormal(3).sample(2, temperature=-1.0)
    with pytest.raises(ValueError, match="n"):
        Logistic(3).sample(-1)
    with pytest.raises(ValueError, match="n"):
        StandardNormal(3).sample(True)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="shape"):
        StandardNormal((3, 0))
    with pytest.raises(ValueError, match="shape"):
        LearnedTop((3, 4))


@pytest.mark.parametrize(
    "prior", [StandardNormal((3, 2, 2)), Logistic((3, 2, 2)), LearnedTop((3, 2, 2))]
)
def test_prior_empty_batch(prior: torch.nn.Module) -> None:
    """issue 18 probe: sample(0) and log_prob of an empty batch give empty results."""
    z = prior.sample(0)
    assert z.shape == (0, 3, 2, 2)
    lp = prior.log_prob(z)
    assert lp.shape == (0,) and lp.dtype == torch.float32
