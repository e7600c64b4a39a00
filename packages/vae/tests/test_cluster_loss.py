"""Clustering-VAE loss: K = 1 reduction, Gibbs optimum, KL forms, invariances (spec §4.5)."""

from __future__ import annotations

import math

import pytest
import torch
from torch.testing import assert_close

from kexue.vae import (
    cluster_kl_matrix,
    cluster_vae_loss,
    gaussian_kl,
    gaussian_nll,
    optimal_cluster_posterior,
    vade_responsibility,
)


def _batch(seed: int, b: int = 6, d: int = 4, k: int = 3):
    g = torch.Generator().manual_seed(seed)
    x, x_rec = torch.rand(b, 1, 8, 8, generator=g), torch.rand(b, 1, 8, 8, generator=g)
    mu, lv = torch.randn(b, d, generator=g), 0.3 * torch.randn(b, d, generator=g)
    z = mu + (0.5 * lv).exp() * torch.randn(b, d, generator=g)
    logits, means = torch.randn(b, k, generator=g), torch.randn(k, d, generator=g)
    return x, x_rec, mu, lv, z, logits, means


def test_one_class_with_zero_mean_is_the_fixed_variance_vae_loss() -> None:
    x, x_rec, mu, lv, z, _, _ = _batch(0)
    lam = 5.0
    got = cluster_vae_loss(x, x_rec, mu, lv, z, torch.zeros(6, 1), torch.zeros(1, 4), lam=lam)
    vae = gaussian_nll(x, x_rec, lam=lam, reduction="none") + gaussian_kl(mu, lv, reduction="none")
    const = 32 * math.log(2 * math.pi / lam)
    assert_close(got, (vae - const).mean(), rtol=1e-6, atol=1e-5)


def test_gibbs_optimum_is_softmax_of_minus_kl() -> None:
    x, x_rec, mu, lv, z, logits, means = _batch(1)
    kl = cluster_kl_matrix(mu, lv, means)
    rec = cluster_vae_loss(x, x_rec, mu, lv, z, None, means, reduction="none") + torch.logsumexp(
        -kl, 1
    )
    at_opt = cluster_vae_loss(
        x, x_rec, mu, lv, z, torch.log(optimal_cluster_posterior(kl)), means, reduction="none"
    )
    assert_close(at_opt - rec, -torch.logsumexp(-kl, 1), rtol=1e-5, atol=1e-5)
    assert_close(cluster_vae_loss(x, x_rec, mu, lv, z, None, means, reduction="none"), at_opt)
    other = cluster_vae_loss(x, x_rec, mu, lv, z, logits, means, reduction="none")
    assert bool((other > at_opt + 1e-6).all())


def test_sampled_and_analytic_kl_agree_in_mean_up_to_half_d() -> None:
    g = torch.Generator().manual_seed(2)
    d, n = 4, 200_000
    mu, lv = torch.randn(1, d, generator=g), 0.5 * torch.randn(1, d, generator=g)
    means = torch.randn(3, d, generator=g)
    z = mu + (0.5 * lv).exp() * torch.randn(n, d, generator=g)
    sampled = cluster_kl_matrix(mu.expand(n, d), lv.expand(n, d), means, z, kl="sampled").double()
    analytic = cluster_kl_matrix(mu, lv, means).double()[0]
    se = sampled.std(0) / math.sqrt(n)
    assert bool(((sampled.mean(0) - analytic - d / 2).abs() < 4 * se).all())


def test_joint_class_permutation_invariance_and_eps_log() -> None:
    x, x_rec, mu, lv, z, logits, means = _batch(3)
    perm = torch.tensor([2, 0, 1])
    for kl in ("analytic", "sampled"):
        a = cluster_vae_loss(x, x_rec, mu, lv, z, logits, means, kl=kl, reduction="none")
        b = cluster_vae_loss(
            x, x_rec, mu, lv, z, logits[:, perm], means[perm], kl=kl, reduction="none"
        )
        assert_close(a, b, rtol=1e-6, atol=1e-6)
    exact = cluster_vae_loss(x, x_rec, mu, lv, z, logits, means, reduction="none")
    author = cluster_vae_loss(x, x_rec, mu, lv, z, logits, means, log_eps=1e-7, reduction="none")
    assert_close(author, exact, rtol=0, atol=1e-5)
    # the c log c term alone: eps-log vs log_softmax to 1e-6
    c = torch.softmax(logits, 1)
    assert_close(
        (c * torch.log(c + 1e-7)).sum(1),
        (c * torch.log_softmax(logits, 1)).sum(1),
        rtol=0,
        atol=1e-6,
    )


def test_dropping_the_prior_term_removes_the_negative_entropy() -> None:
    x, x_rec, mu, lv, z, logits, means = _batch(4)
    c = torch.softmax(logits, 1)
    with_t = cluster_vae_loss(x, x_rec, mu, lv, z, logits, means, reduction="none")
    without = cluster_vae_loss(
        x, x_rec, mu, lv, z, logits, means, prior_term=False, reduction="none"
    )
    assert_close(with_t - without, (c * c.log()).sum(1), rtol=1e-5, atol=1e-6)


def test_vade_responsibility_unit_variance_is_the_sampled_optimum() -> None:
    _, _, mu, lv, z, _, means = _batch(5)
    kl = cluster_kl_matrix(mu, lv, means, z, kl="sampled")
    assert_close(vade_responsibility(z, means), optimal_cluster_posterior(kl), rtol=1e-5, atol=1e-6)
    w = torch.log(torch.tensor([0.7, 0.2, 0.1]))
    r = vade_responsibility(z, means, torch.zeros_like(means), w)
    manual = torch.softmax(-0.5 * torch.cdist(z, means).pow(2) + w, 1)
    assert_close(r, manual, rtol=1e-4, atol=1e-5)


def test_errors_name_the_argument() -> None:
    x, x_rec, mu, lv, z, logits, means = _batch(6)
    with pytest.raises(ValueError, match="kl must be one of"):
        cluster_kl_matrix(mu, lv, means, kl="exact")
    with pytest.raises(ValueError, match="needs z"):
        cluster_kl_matrix(mu, lv, means, kl="sampled")
    with pytest.raises(ValueError, match="logits must be"):
        cluster_vae_loss(x, x_rec, mu, lv, z, logits[:, :2], means)
    with pytest.raises(ValueError, match="means"):
        cluster_kl_matrix(mu, lv, means[:, :2])
