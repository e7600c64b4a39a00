"""The digits GAN comparison: small DCGAN-style G and D on scikit-learn's 8×8 digits.

Used by ``tools/bench/gan_losses/digits.py`` (the full comparison behind the package's
BENCHMARKS.md) and ``tools/demos/gan_losses.py`` (a shortened version); one copy of the pipeline.

- **Data.** scikit-learn's digits (1797 images, 8×8, values 0..16) scaled to [−1, 1]; the fixed
  split of the flows workload (``train_test_split(test_size=0.2, random_state=0)``: 1437 train,
  360 test). G trains on the train split.
- **Networks.** G: z (32) → 128·2·2 → ConvT 4×4/2 → 64·4·4 → ConvT 4×4/2 → 1·8·8, BN + ReLU in
  G, tanh out. D: Conv 4×4/2 (64) → Conv 4×4/2 (128) → linear, LeakyReLU 0.2, no normalisation
  (WGAN-GP forbids batch norm in the critic). Every loss gets the same networks and initial
  weights; only the loss and its published recipe (steps per G step, optimiser) differ.
- **Budget.** Each run stops after the same process CPU time (one torch thread): equal to
  wall-clock time on an idle core, and unaffected by other jobs on a shared machine.
- **Scores.** A small CNN classifier trained here on the train split (its test accuracy is
  reported); its 64-d penultimate features give FD, KID and PRDC of 1437 generated digits against
  the 1437 training digits (``kexue.gan_losses.metrics``). As G is unconditional there is no
  "accuracy on samples"; the classifier's view is reported as the share of samples it labels
  with confidence ≥ 0.9 and the class-balance entropy of its labels (log 10 = 2.303 is uniform).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import kexue.gan_losses as gl
from kexue.gan_losses.metrics import frechet_distance, kernel_inception_distance, prdc
from tools.workloads.gan_toy import GAN_QP, LOSSES, GANLoss, Recipe, make_optimizers

__all__ = [
    "DIGITS_LOSSES",
    "DigitsConfig",
    "DigitsResult",
    "digits_data",
    "score_samples",
    "train_classifier",
    "train_digits_gan",
]


def _d_gan_qp_l2(d: nn.Module, xr: Tensor, xf: Tensor, _: torch.Generator) -> Tensor:
    # RMS-L2 distance, λ = 10 [bojone/gan-qp]
    return gl.gan_qp_discriminator_loss(d(xr), d(xf), xr, xf, norm="l2", lam=10.0)


_QP = LOSSES["GAN-QP (L1)"]
DIGITS_LOSSES: dict[str, GANLoss] = {
    "GAN-QP (L1)": _QP,
    "GAN-QP (L2)": GANLoss("GAN-QP (L2)", "λ = 10, RMS L2", _d_gan_qp_l2, _QP.g_loss, GAN_QP),
    "WGAN-GP": LOSSES["WGAN-GP"],
    "WGAN-div": LOSSES["WGAN-div"],
    "SGAN + R1": LOSSES["SGAN + R1"],
    "Hinge": LOSSES["Hinge"],
}
"""The losses compared on digits, each with its published recipe (see ``gan_toy``)."""


@dataclass(frozen=True)
class DigitsConfig:
    budget_cpu_s: float = 60.0  # per run
    batch: int = 64
    z_dim: int = 32
    n_samples: int = 1437  # generated digits scored (= the train split)
    kid_subsets: int = 50
    kid_subset_size: int = 500
    classifier_epochs: int = 12
    max_steps: int = 10**7


@dataclass
class DigitsResult:
    loss: str
    seed: int
    recipe: str
    g_steps: int
    cpu_s: float
    wall_s: float
    scores: dict[str, float]
    samples: Tensor = field(repr=False)  # (64, 1, 8, 8) in [−1, 1], for figures
    diverged_at: int | None = None


def digits_data() -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(x_train, y_train, x_test, y_test)``: float images in [−1, 1], (N, 1, 8, 8)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 8.0 - 1.0
    y = torch.tensor(d.target, dtype=torch.int64)
    idx = torch.arange(len(x)).numpy()
    tr, te = train_test_split(idx, test_size=0.2, random_state=0)
    return x[tr], y[tr], x[te], y[te]


class Classifier(nn.Module):
    """Small CNN; ``features`` is the 64-d penultimate layer used by the metrics."""

    def __init__(self) -> None:
        super().__init__()
        self.trunk = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(32 * 4 * 4, 64),
            nn.ReLU(),
        )
        self.head = nn.Linear(64, 10)

    def features(self, x: Tensor) -> Tensor:
        return self.trunk(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.trunk(x))


def train_classifier(
    x: Tensor, y: Tensor, x_test: Tensor, y_test: Tensor, *, epochs: int = 12, seed: int = 0
) -> tuple[Classifier, float]:
    """Train the feature classifier (Adam 1e-3, batch 64); return it (eval mode) and test accuracy."""
    torch.manual_seed(seed)
    net = Classifier()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for idx in torch.randperm(len(x), generator=g).split(64):
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(net(x[idx]), y[idx]).backward()
            opt.step()
    net.eval()
    with torch.no_grad():
        acc = (net(x_test).argmax(1) == y_test).float().mean().item()
    return net, acc


def make_gan(z_dim: int) -> tuple[nn.Module, nn.Module]:
    g = nn.Sequential(
        nn.Linear(z_dim, 128 * 2 * 2),
        nn.Unflatten(1, (128, 2, 2)),
        nn.BatchNorm2d(128),
        nn.ReLU(),
        nn.ConvTranspose2d(128, 64, 4, 2, 1),
        nn.BatchNorm2d(64),
        nn.ReLU(),
        nn.ConvTranspose2d(64, 1, 4, 2, 1),
        nn.Tanh(),
    )
    d = nn.Sequential(
        nn.Conv2d(1, 64, 4, 2, 1),
        nn.LeakyReLU(0.2),
        nn.Conv2d(64, 128, 4, 2, 1),
        nn.LeakyReLU(0.2),
        nn.Flatten(),
        nn.Linear(128 * 2 * 2, 1),
        nn.Flatten(0),
    )
    return g, d


def score_samples(
    fake: Tensor, real_feats: Tensor, classifier: Classifier, *, cfg: DigitsConfig, seed: int
) -> dict[str, float]:
    """FD, KID (mean, sd), PRDC and the classifier's confidence / class balance on ``fake``."""
    with torch.no_grad():
        feats = classifier.features(fake)
        probs = classifier(fake).softmax(1)
    kid, kid_sd = kernel_inception_distance(
        real_feats,
        feats,
        subsets=cfg.kid_subsets,
        subset_size=cfg.kid_subset_size,
        generator=torch.Generator().manual_seed(seed),
    )
    counts = torch.bincount(probs.argmax(1), minlength=10).double()
    p = counts / counts.sum()
    entropy = -(p[p > 0] * p[p > 0].log()).sum().item()
    return {
        "fd": frechet_distance(real_feats, feats).item(),
        "kid": kid.item(),
        "kid_sd": kid_sd.item(),
        **prdc(real_feats, feats, k=5),
        "confident": (probs.max(1).values >= 0.9).double().mean().item(),
        "class_entropy": entropy,
    }


def train_digits_gan(
    loss: GANLoss,
    x_train: Tensor,
    real_feats: Tensor,
    classifier: Classifier,
    cfg: DigitsConfig,
    *,
    seed: int,
    recipe: Recipe | None = None,
) -> DigitsResult:
    """Train one loss with its recipe for ``cfg.budget_cpu_s`` CPU seconds, then score it."""
    recipe = recipe or loss.recipe
    torch.manual_seed(seed)  # same initial weights for every loss
    g_net, d_net = make_gan(cfg.z_dim)
    opt_g, opt_d = make_optimizers(recipe, g_net, d_net)
    data_gen, z_gen, pen_gen = (torch.Generator().manual_seed(1000 * seed + k) for k in (1, 2, 3))
    t0, c0 = time.perf_counter(), time.process_time()
    step, diverged = 0, None
    while time.process_time() - c0 < cfg.budget_cpu_s and step < cfg.max_steps:
        step += 1
        for _ in range(recipe.d_steps):
            xr = x_train[torch.randint(len(x_train), (cfg.batch,), generator=data_gen)]
            with torch.no_grad():
                xf = g_net(torch.randn(cfg.batch, cfg.z_dim, generator=z_gen))
            opt_d.zero_grad(set_to_none=True)
            d_loss = loss.d_loss(d_net, xr, xf, pen_gen)
            d_loss.backward()
            opt_d.step()
        xr = x_train[torch.randint(len(x_train), (cfg.batch,), generator=data_gen)]
        d_net.requires_grad_(False)
        opt_g.zero_grad(set_to_none=True)
        g_loss = loss.g_loss(d_net, xr, g_net(torch.randn(cfg.batch, cfg.z_dim, generator=z_gen)))
        g_loss.backward()
        opt_g.step()
        d_net.requires_grad_(True)
        if not (math.isfinite(d_loss.item()) and math.isfinite(g_loss.item())):
            diverged = step
            break
    cpu_s, wall_s = time.process_time() - c0, time.perf_counter() - t0
    g_net.eval()
    with torch.no_grad():
        z = torch.randn(cfg.n_samples, cfg.z_dim, generator=torch.Generator().manual_seed(7 + seed))
        fake = g_net(z)
    if not bool(torch.isfinite(fake).all()):
        scores: dict[str, Any] = {"fd": math.nan}
    else:
        scores = score_samples(fake, real_feats, classifier, cfg=cfg, seed=seed)
    return DigitsResult(
        loss=loss.name,
        seed=seed,
        recipe=recipe.describe(),
        g_steps=step,
        cpu_s=cpu_s,
        wall_s=wall_s,
        scores=scores,
        samples=fake[:64].clone(),
        diverged_at=diverged,
    )
