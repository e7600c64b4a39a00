"""GaussianVAE and ClusteringVAE: losses equal the functional pieces, sampling, presets."""

from __future__ import annotations

import math

import pytest
import torch
from torch.testing import assert_close

from kexue.vae import (
    PRESETS,
    ClusteringVAE,
    GaussianVAE,
    cluster_vae_loss,
    gaussian_kl,
    gaussian_nll,
    reparameterize,
)


def _x(b: int = 5, seed: int = 0) -> torch.Tensor:
    return torch.rand(b, 1, 8, 8, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize(
    "decoder", ["gaussian_learned", "gaussian_fixed", "gaussian_z", "bernoulli"]
)
def test_vae_elbo_is_log_px_z_minus_analytic_kl(decoder: str) -> None:
    torch.manual_seed(0)
    model = GaussianVAE(latent=4, hidden=(32,), decoder=decoder, lam=7.0)
    x = _x()
    got = model.elbo(x, generator=torch.Generator().manual_seed(1))
    mu, lv = model.encode(x)
    z = reparameterize(mu, lv, generator=torch.Generator().manual_seed(1))
    assert_close(got, model.log_px_z(x, z) - gaussian_kl(mu, lv, reduction="none"))
    if decoder == "gaussian_fixed":
        mean, _ = model.decode(z)
        assert_close(model.log_px_z(x, z), -gaussian_nll(x, mean, lam=7.0, reduction="none"))
    assert model.sample(3, generator=torch.Generator().manual_seed(2)).shape == (3, 1, 8, 8)
    assert model.log_likelihood(x, k=7, chunk=3).shape == (5,)


def test_learned_variance_is_clamped() -> None:
    model = GaussianVAE(latent=2, hidden=(8,))
    with torch.no_grad():
        model.pixel_logvar.fill_(-30.0)
    _, logvar = model.decode(torch.zeros(1, 2))
    assert_close(logvar, torch.full((1, 8, 8), math.log(1e-4)))


def test_clustering_vae_loss_is_the_functional_loss() -> None:
    torch.manual_seed(0)
    model = ClusteringVAE(clusters=3, latent=4, hidden=(32,), lam=60.0, classifier_hidden=16)
    with torch.no_grad():
        model.means.normal_()
    x = _x()
    got = model.loss(x, generator=torch.Generator().manual_seed(3))
    mu, lv = model.encode(x)
    z = reparameterize(mu, lv, generator=torch.Generator().manual_seed(3))
    ref = cluster_vae_loss(
        x, model.decode(z), mu, lv, z, model.classifier(z), model.means, lam=60.0
    )
    assert_close(got, ref)
    assert model.cluster(x).shape == (5,)
    assert_close(model.responsibilities(x).sum(1), torch.ones(5))


def test_balance_term_is_zero_for_uniform_batch_means_and_positive_otherwise() -> None:
    torch.manual_seed(0)
    model = ClusteringVAE(clusters=2, latent=2, hidden=(8,), classifier_hidden=4, balance=3.0)
    plain = ClusteringVAE(clusters=2, latent=2, hidden=(8,), classifier_hidden=4)
    plain.load_state_dict(model.state_dict())
    x = _x(4)
    diff = model.loss(x, generator=torch.Generator().manual_seed(0)) - plain.loss(
        x, generator=torch.Generator().manual_seed(0)
    )
    assert diff.item() >= 0.0
    with torch.no_grad():  # a classifier that outputs constant logits: c̄ uniform, term 0
        for p in model.classifier.parameters():
            p.zero_()
    plain.load_state_dict(model.state_dict())
    diff = model.loss(x, generator=torch.Generator().manual_seed(0)) - plain.loss(
        x, generator=torch.Generator().manual_seed(0)
    )
    assert abs(diff.item()) < 1e-5


def test_conditional_sampling_decodes_mean_plus_noise() -> None:
    torch.manual_seed(0)
    model = ClusteringVAE(clusters=3, latent=4, hidden=(16,), classifier_hidden=8)
    with torch.no_grad():
        model.means.copy_(torch.arange(12.0).reshape(3, 4))
    got = model.sample(6, cluster=2, generator=torch.Generator().manual_seed(5))
    eps = torch.randn(6, 4, generator=torch.Generator().manual_seed(5))
    assert_close(got, model.decode(model.means[2] + eps))
    mixed = model.sample(3, cluster=torch.tensor([0, 1, 2]))
    assert mixed.shape == (3, 1, 8, 8)
    with pytest.raises(ValueError, match="cluster must be in"):
        model.sample(2, cluster=3)


def test_presets() -> None:
    assert PRESETS["author_mnist"].lam == 5.0 and PRESETS["digits"].lam == 60.0
    model = ClusteringVAE.from_preset("author_mnist")
    x = torch.rand(2, 1, 28, 28)
    assert model.encode(x)[0].shape == (2, 20)
    assert model.decode(torch.zeros(2, 20)).shape == (2, 1, 28, 28)
    assert model.sample(2, cluster=0).shape == (2, 1, 28, 28)
    assert not model.means.any()  # the author's zero init
    digits = ClusteringVAE.from_preset("digits", lam=30.0)
    assert digits.lam == 30.0 and digits.latent == 10
    with pytest.raises(ValueError, match="name"):
        ClusteringVAE.from_preset("mnist")


def test_optimal_posterior_model_has_no_classifier() -> None:
    model = ClusteringVAE(clusters=3, latent=2, hidden=(8,), posterior="optimal")
    assert model.classifier is None
    x = _x(4)
    assert torch.isfinite(model.loss(x))
    assert model.cluster(x).shape == (4,)
