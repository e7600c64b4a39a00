"""Shared set-ups of the kexue-vae benchmark and demo on scikit-learn digits (8×8, 17 levels).

One copy of the recipes, so that ``tools/bench/vae`` (behind ``packages/vae/BENCHMARKS.md``) and
the demo section report numbers from the same code:

- data: ``kexue.vae.data.load_digits_split()`` (1437 train / 360 test, the flows split), pixels /16;
- the clustering VAE recipe (:data:`CLUSTER_RECIPE`) and the author's plain loss
  (:data:`AUTHOR_RECIPE`, the ``digits`` preset);
- the two digits classifiers: the *metric* net (seed 0, widths (32, 64), 64 features) that FD /
  KID / PRDC use, and an *independent loss* net (seed 1, widths (16, 32), 48 features) for
  GLANN's perceptual distance; the "leaky" GLANN uses the metric net as its loss;
- GLO (+ perceptual or Lap1 distance) then IMLE (GLANN).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor

from kexue.vae import (
    GLANN,
    GLO,
    ClusteringVAE,
    DigitsFeatureNet,
    GaussianVAE,
    digits_generator,
    fit_cluster_vae,
    fit_glann,
    fit_glo,
    fit_vae,
    gmm_partition,
    lap1_loss,
    perceptual_distance,
    train_feature_net,
)
from kexue.vae.data import load_digits_split, scale

__all__ = [
    "AUTHOR_RECIPE",
    "CLUSTER_RECIPE",
    "KMEANS_RECIPE",
    "ClusterRecipe",
    "Digits",
    "digits",
    "loss_net",
    "metric_net",
    "train_best_digits_gan",
    "train_clustering",
    "train_glann",
    "train_vae",
]


@dataclass(frozen=True)
class Digits:
    x_train: Tensor  # float (N, 1, 8, 8) in [0, 1]
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    int_train: Tensor  # int pixels 0..16
    int_test: Tensor


def digits() -> Digits:
    s = load_digits_split()
    return Digits(scale(s.x_train), s.y_train, scale(s.x_test), s.y_test, s.x_train, s.x_test)


@dataclass(frozen=True)
class ClusterRecipe:
    """A ClusteringVAE training recipe (model options + loop options)."""

    steps: int = 6000
    lam: float = 60.0
    latent: int = 10
    hidden: tuple[int, ...] = (256, 256)
    kl: str = "analytic"
    posterior: str = "classifier"
    balance: float = 0.0
    shift: int = 0  # random shifts during the clustering phase
    warmup: int = 0  # plain-VAE steps before k-means initialises the class means
    warmup_shift: int = 0  # random shifts during the warm-up
    cluster_lam: float | None = None  # λ after the warm-up (default: lam)
    gmm_inits: int = 0  # > 0: class means from kexue.vae.gmm_partition (this many inits)
    classifier_steps: int = 0  # classifier steps towards the GMM partition after the warm-up
    restart_optimizer: bool = False  # fresh Adam moments for the clustering phase
    batch: int = 100
    lr: float = 1e-3


AUTHOR_RECIPE = ClusterRecipe()  # the post's loss, `digits` preset sizes (spec §5.2)
# kexue-vae 0.1.0's recipe (6000 steps in all, as the author's row): a plain-VAE warm-up on 1-pixel
# shifted digits, k-means on the encoder means for the class means, then the post's loss at λ = 10.
KMEANS_RECIPE = ClusterRecipe(steps=3000, warmup=3000, warmup_shift=1, cluster_lam=10.0)
# The package recipe (kexue.vae.DIGITS_CLUSTER_FIT / fit_cluster_vae_digits): the same, with the
# class means and the classifier's start from a likelihood-selected pixel GMM (30 inits).
CLUSTER_RECIPE = replace(KMEANS_RECIPE, gmm_inits=30, classifier_steps=500, restart_optimizer=True)


def train_clustering(
    data: Digits, recipe: ClusterRecipe, seed: int, **override: Any
) -> ClusteringVAE:
    r = replace(recipe, **override)
    torch.manual_seed(seed)
    model = ClusteringVAE(
        latent=r.latent, hidden=r.hidden, lam=r.lam, kl=r.kl, posterior=r.posterior,
        balance=r.balance,
    )  # fmt: skip
    labels = None
    if r.gmm_inits:
        labels = gmm_partition(data.x_train, model.clusters, n_init=r.gmm_inits, seed=seed)
    fit_cluster_vae(
        model, data.x_train, steps=r.steps, batch=r.batch, lr=r.lr, seed=seed, shift=r.shift,
        warmup=r.warmup, warmup_shift=r.warmup_shift, cluster_lam=r.cluster_lam,
        init_labels=labels, classifier_steps=r.classifier_steps,
        restart_optimizer=r.restart_optimizer,
    )  # fmt: skip
    return model


def train_vae(
    data: Digits, decoder: str, seed: int, *, steps: int = 4000, latent: int = 16, lam: float = 5.0
) -> GaussianVAE:
    """A GaussianVAE on dequantised digits (Bernoulli: on binarised digits)."""
    torch.manual_seed(seed)
    model = GaussianVAE(latent=latent, decoder=decoder, lam=lam)
    if decoder == "bernoulli":
        from kexue.vae.data import binarize

        fit_vae(model, binarize(data.int_train), steps=steps, seed=seed, data="as_is")
    else:
        fit_vae(model, data.int_train, steps=steps, seed=seed)
    return model


def metric_net(data: Digits, *, steps: int = 1500) -> DigitsFeatureNet:
    """The feature net of FD / KID / PRDC (seed 0, widths (32, 64), 64 features)."""
    return train_feature_net(data.x_train, data.y_train, seed=0, steps=steps)


def loss_net(data: Digits, *, steps: int = 1500) -> DigitsFeatureNet:
    """An independent net for GLANN's perceptual loss (seed 1, widths (16, 32), 48 features)."""
    return train_feature_net(
        data.x_train, data.y_train, seed=1, widths=(16, 32), features=48, steps=steps
    )


def train_glann(
    data: Digits,
    seed: int,
    *,
    net: DigitsFeatureNet | None,
    nz: int = 16,
    glo_steps: int = 3000,
    imle_steps: int = 2000,
    pool: int = 512,
) -> GLANN:
    """GLO with a perceptual distance over ``net`` (Lap1 when ``net`` is None), then IMLE."""
    torch.manual_seed(seed)
    if net is None:

        def distance(x: Tensor, y: Tensor) -> Tensor:
            return lap1_loss(x, y, reduction="none")

    else:

        def distance(x: Tensor, y: Tensor) -> Tensor:
            return perceptual_distance(x, y, features=net.taps, reduction="none")

    glo = GLO(
        digits_generator(nz),
        data.x_train.shape[0],
        nz,
        distance=distance,
        generator_rng=torch.Generator().manual_seed(seed),
    )
    fit_glo(glo, data.x_train, steps=glo_steps, seed=seed)
    glann = GLANN(glo)
    fit_glann(glann, steps=imle_steps, pool=pool, seed=seed + 1)
    return glann


def train_gan(data: Digits, seed: int, *, steps: int = 3000, nz: int = 32, batch: int = 128) -> Any:
    """A small MLP GAN for the samples table: hinge loss of ``kexue.gan_losses``, Adam (2e-4,
    β = (0.5, 0.999)), a G-EMA (decay 0.999) whose copy is returned (``(n, gen) → images``).

    Not the author's model; a comparator trained with the sibling package (there is no digits GAN
    benchmark in kexue-gan-losses to take a row from).
    """
    import copy

    from torch import nn

    import kexue.gan_losses as gl
    from kexue.vae import MLP

    torch.manual_seed(seed)
    gen_net = digits_generator(nz)
    critic = MLP([64, 256, 256, 1], nn.LeakyReLU)
    ema = copy.deepcopy(gen_net).requires_grad_(False)
    opt_g = torch.optim.Adam(gen_net.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(critic.parameters(), lr=2e-4, betas=(0.5, 0.999))
    g = torch.Generator().manual_seed(seed)
    x = data.x_train * 2 - 1  # critic sees [-1, 1]
    for _ in range(steps):
        real = x[torch.randint(0, x.shape[0], (batch,), generator=g)]
        fake = gen_net(torch.randn(batch, nz, generator=g)) * 2 - 1
        d_loss = gl.hinge_discriminator_loss(critic(real), critic(fake.detach()))
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        g_loss = gl.hinge_generator_loss(critic(fake))
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
        with torch.no_grad():
            for pe, p in zip(ema.parameters(), gen_net.parameters()):
                pe.lerp_(p, 0.001)

    @torch.no_grad()
    def sample(n: int, generator: torch.Generator | None = None) -> Tensor:
        return ema(torch.randn(n, nz, generator=generator))

    return sample


def train_best_digits_gan(seed: int, *, budget_cpu_s: float = 20.0) -> Any:
    """The best GAN of kexue-gan-losses' digits benchmark (``tools/bench/gan_losses/digits.py``:
    SGAN + R1 with its recipe, FD 21.9 there at 20 CPU seconds a run), trained by that benchmark's
    own loop ``tools.workloads.gan_digits.train_digits_gan`` with the same seed and budget, so that
    it can be scored under this package's metric net. Returns ``(n, gen) → images in [0, 1]``.

    That loop returns 64 samples only, so its generator is captured by wrapping ``make_gan`` for
    the call; its in-loop scores (over an untrained classifier here) are discarded.
    """
    from tools.workloads import gan_digits as gd

    made: list[torch.nn.Module] = []
    make_gan = gd.make_gan

    def recording(z_dim: int) -> tuple[torch.nn.Module, torch.nn.Module]:
        g, d = make_gan(z_dim)
        made.append(g)
        return g, d

    cfg = gd.DigitsConfig(budget_cpu_s=budget_cpu_s, n_samples=500)
    x_train = gd.digits_data()[0]
    clf = gd.Classifier().eval()
    with torch.no_grad():
        feats = clf.features(x_train)
    gd.make_gan = recording
    try:
        gd.train_digits_gan(gd.DIGITS_LOSSES["SGAN + R1"], x_train, feats, clf, cfg, seed=seed)
    finally:
        gd.make_gan = make_gan
    g_net = made[0].eval()

    @torch.no_grad()
    def sample(n: int, generator: torch.Generator | None = None) -> Tensor:
        return (g_net(torch.randn(n, cfg.z_dim, generator=generator)) + 1) / 2  # [−1, 1] → [0, 1]

    return sample
