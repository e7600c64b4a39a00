"""IWAE bound, importance-sampled log-likelihood and bits/dim (spec §4.3–4)."""

from __future__ import annotations

import itertools
import math

import torch
from torch.testing import assert_close

from kexue.vae import (
    bits_per_dim,
    dequantize,
    gaussian_kl_sampled,
    gaussian_nll,
    iwae_bound,
    log_likelihood_is,
)
from kexue.vae.functional import gaussian_log_prob

# Linear-Gaussian model: p(z) = N(0, 1), p(x|z) = N(a·z, s²), so p(x) = N(0, a² + s²).
A, S, X = 2.0, 0.5, 1.3
POST_VAR = 1.0 / (1.0 + A * A / (S * S))
POST_MEAN = POST_VAR * A * X / (S * S)
LOG_PX = -0.5 * (X * X / (A * A + S * S) + math.log(2 * math.pi * (A * A + S * S)))


def _log_px_z(x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    return gaussian_log_prob(x, A * z, torch.tensor(2 * math.log(S), dtype=x.dtype))


def _encoder(mean: float, var: float):
    def encode(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b = x.shape[0]
        return (
            torch.full((b, 1), mean, dtype=x.dtype),
            torch.full((b, 1), math.log(var), dtype=x.dtype),
        )

    return encode


def test_k1_is_the_sampled_elbo_with_the_same_eps() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(5, 3, generator=g)
    mu, lv, eps = (torch.randn(5, 2, generator=g) for _ in range(3))
    z = mu + (0.5 * lv).exp() * eps
    w = torch.randn(2, 3, generator=g)
    mean = z @ w
    log_px_z = -gaussian_nll(x, mean, lam=4.0, reduction="none")
    elbo = log_px_z - gaussian_kl_sampled(z, mu, lv, reduction="none")
    bound = iwae_bound(
        log_px_z[None],
        gaussian_log_prob(z, torch.zeros(()), torch.zeros(()))[None],
        gaussian_log_prob(z, mu, lv)[None],
    )
    assert_close(bound, elbo, rtol=1e-5, atol=1e-5)


def test_iwae_is_monotone_in_k_and_below_log_px() -> None:
    g = torch.Generator().manual_seed(1)
    reps = 10_000
    x = torch.full((reps, 1), X, dtype=torch.float64)
    encode = _encoder(POST_MEAN - 0.15, 2.0 * POST_VAR)
    means = []
    for k in (1, 2, 5, 50, 500):
        lk = log_likelihood_is(x, encode, _log_px_z, k=k, chunk=50, generator=g)
        means.append(lk.mean().item())
    se = lk.std().item() / math.sqrt(reps)
    assert all(b >= a for a, b in itertools.pairwise(means)), means
    assert means[-1] <= LOG_PX + 4 * se  # a bound, up to Monte-Carlo error of the mean
    assert means[0] < means[-1] - 0.01  # the bound really moves


def test_iwae_gap_vanishes_at_k_5000() -> None:
    g = torch.Generator().manual_seed(2)
    x = torch.full((200, 1), X, dtype=torch.float64)
    encode = _encoder(POST_MEAN - 0.15, 2.0 * POST_VAR)
    lk = log_likelihood_is(x, encode, _log_px_z, k=5000, chunk=1000, generator=g)
    assert abs(LOG_PX - lk.mean().item()) < 1e-3  # bias + Monte-Carlo error of the mean


def test_exact_posterior_proposal_gives_log_px_with_zero_variance() -> None:
    g = torch.Generator().manual_seed(3)
    x = torch.full((7, 1), X, dtype=torch.float64)
    for k in (1, 10):
        lk = log_likelihood_is(x, _encoder(POST_MEAN, POST_VAR), _log_px_z, k=k, generator=g)
        assert_close(lk, torch.full((7,), LOG_PX, dtype=torch.float64), rtol=0, atol=1e-10)


def test_chunked_estimate_equals_one_logsumexp_over_all_draws() -> None:
    x = torch.full((3, 1), X, dtype=torch.float64)
    mean, var = 0.2, 0.3
    got = log_likelihood_is(
        x, _encoder(mean, var), _log_px_z, k=60, chunk=7, generator=torch.Generator().manual_seed(4)
    )
    g = torch.Generator().manual_seed(4)
    eps = torch.cat(
        [torch.randn((c, 3, 1), generator=g, dtype=torch.float64) for c in [7] * 8 + [4]]
    )
    z = mean + math.sqrt(var) * eps  # (60, 3, 1)
    log_w = (
        -0.5 * ((X - A * z) ** 2 / S**2 + math.log(2 * math.pi * S**2))
        - 0.5 * (z**2 + math.log(2 * math.pi))
        + 0.5 * ((z - mean) ** 2 / var + math.log(2 * math.pi * var))
    ).squeeze(-1)
    expected = torch.logsumexp(log_w, dim=0) - math.log(60)
    assert_close(got, expected, rtol=0, atol=1e-10)


def test_bits_per_dim_of_the_uniform_density_is_log2_17() -> None:
    bpd = bits_per_dim(torch.zeros(3), num_dims=64, n_levels=17)
    assert_close(bpd, torch.full((3,), math.log2(17.0)), rtol=0, atol=1e-6)
    assert abs(math.log2(17.0) - 4.0875) < 1e-4
    # on [-1, 1] the constant loses one bit of width
    wide = bits_per_dim(torch.zeros(1), num_dims=64, n_levels=17, data_range=(-1.0, 1.0))
    assert_close(wide, torch.tensor([math.log2(17.0) - 1.0]), rtol=0, atol=1e-6)


def test_dequantize_stays_in_its_bin() -> None:
    g = torch.Generator().manual_seed(5)
    x = torch.randint(0, 17, (100, 64), generator=g)
    y = dequantize(x, generator=g)
    assert torch.equal(torch.floor(y * 17).long(), x)
