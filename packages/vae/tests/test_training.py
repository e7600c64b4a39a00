"""Training smoke tests on real digits (spec §4.10), small budgets; marked slow."""

from __future__ import annotations

import pytest
import torch

from kexue.vae import GLANN, GLO, digits_generator, fit_glann, fit_glo, project_codes

pytest.importorskip("sklearn")
from kexue.vae.data import load_digits_split, scale


@pytest.fixture(scope="module")
def train_x() -> torch.Tensor:
    return scale(load_digits_split().x_train[:300])


@pytest.mark.slow
def test_glo_reconstructs_better_than_the_mean_image(train_x: torch.Tensor) -> None:
    torch.manual_seed(0)
    glo = GLO(digits_generator(16, (128,)), train_x.shape[0], 16)
    fit_glo(glo, train_x, steps=400, batch=64, seed=0)
    rec = glo.reconstruct(torch.arange(train_x.shape[0]))
    err = (rec - train_x).pow(2).sum((1, 2, 3)).mean()
    mean_err = (train_x.mean(0, keepdim=True) - train_x).pow(2).sum((1, 2, 3)).mean()
    assert err < 0.5 * mean_err, (float(err), float(mean_err))


@pytest.mark.slow
def test_code_space_imle_samples_lie_nearer_the_codes_than_random_unit_vectors(
    train_x: torch.Tensor,
) -> None:
    torch.manual_seed(0)
    glo = GLO(digits_generator(8, (64,)), train_x.shape[0], 8)
    fit_glo(glo, train_x, steps=200, batch=64, seed=0)
    glann = GLANN(glo, hidden=(64,))
    fit_glann(glann, steps=300, batch=64, pool=256, seed=1)
    codes = glo.codes.detach()
    g = torch.Generator().manual_seed(2)
    mapped = glann.mapped(300, generator=g).detach()
    random = project_codes(torch.randn(300, 8, generator=g))

    def nearest(a: torch.Tensor) -> float:
        return float(torch.cdist(a, codes).min(1).values.mean())

    assert nearest(mapped) < 0.7 * nearest(random), (nearest(mapped), nearest(random))


@pytest.mark.slow
def test_learned_variance_vae_is_below_3_40_bpd_within_2000_steps() -> None:
    from kexue.vae import GaussianVAE, bits_per_dim, dequantize, fit_vae

    split = load_digits_split()
    torch.manual_seed(0)
    vae = GaussianVAE(latent=16, hidden=(256, 256))
    fit_vae(vae, split.x_train, steps=2000, seed=0)
    y = dequantize(split.x_test, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        bpd = bits_per_dim(vae.elbo(y, generator=torch.Generator().manual_seed(2))).mean()
    assert 2.0 < float(bpd) < 3.40, float(bpd)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_clustering_recipe_beats_chance_by_far_on_digits(seed: int) -> None:
    """Spec §4.10: the ``digits`` preset trained by the package recipe (shortened: 1000 warm-up
    + 500 steps, 5 GMM inits) clusters the held-out digits far above chance."""
    from kexue.vae import ClusteringVAE, fit_cluster_vae_digits, hungarian_accuracy

    split = load_digits_split()
    torch.manual_seed(seed)
    model = ClusteringVAE.from_preset("digits")
    fit_cluster_vae_digits(
        model, scale(split.x_train), seed=seed, n_init=5, warmup=1000, steps=500,
        classifier_steps=200,
    )  # fmt: skip
    acc = hungarian_accuracy(model.cluster(scale(split.x_test)), split.y_test)
    assert acc > 0.6, acc
