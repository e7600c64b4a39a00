"""The toy GAN of the gan-losses demo: 2-D Gaussian mixtures, MLPs, losses, metrics, training.

Each loss is a pair of functions calling ``kexue.gan_losses`` with the loss's published defaults
(never a re-implementation). :func:`train` alternates critic and generator steps with a fully
seeded setup: the networks start from the same weights for every loss (``torch.manual_seed``
before they are built) and read the same data, latent and evaluation streams (separate
``torch.Generator`` objects), so the loss is the only difference between two runs.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

import kexue.gan_losses as gl
from kexue.keras_compat import EMA

__all__ = [
    "EXTRA_LOSSES",
    "GAN_QP",
    "LOSSES",
    "MIXTURES",
    "Config",
    "Critic",
    "GANLoss",
    "Mixture",
    "Recipe",
    "RunResult",
    "hq_percent",
    "make_generator",
    "make_optimizers",
    "metrics_json",
    "mode_metrics",
    "modes_covered",
    "train",
]


# --------------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    """Budget shared by every loss: networks, optimiser, steps, batch (and evaluation sizes).

    lr = 1e-3 is above the usual 1e-4..2e-4: measured on this machine, no loss reaches the 3σ
    precision of the metrics within a CPU budget at 2e-4 (≤ 15 % HQ on the ring and ≈ 2 % on the
    grid after 3000 steps), while 1e-3 brings the SGAN family to 80–90 % on the ring in 8000.
    D:G = 1:1 for every loss (WGAN-GP's paper uses 5 critic steps; it is not given them here).
    """

    steps: int  # generator steps, each after d_steps critic steps
    d_steps: int = 1
    batch: int = 256
    z_dim: int = 8
    hidden: int = 128
    lr: float = 1e-3
    betas: tuple[float, float] = (0.5, 0.9)
    eval_samples: int = 5000  # fixed latent batch used for the tables
    plot_samples: int = 2000  # first samples of that batch drawn in the scatter plots
    trace_every: int = 200  # training curves: evaluate on trace_samples every that many steps
    trace_samples: int = 1000
    ema_decay: float = 0.999  # post 6575 / spec §2.16
    d_weight_decay: float = 1e-2  # "light L2 weight decay on D" (post 6583), coupled L2 in Adam
    recipe: str = "same"  # "same": the fields above for every loss; "published": each loss's Recipe
    budget_cpu_s: float | None = None  # stop a run after this much process CPU time (1 thread)
    checkpoints_cpu_s: tuple[float, ...] = ()  # also score the eval batch at these CPU times
    third_stage_loss: str = "GAN-QP (L1)"
    third_stage_mixtures: tuple[str, ...] = ("ring8",)
    third_stage_seeds: int = 3  # seeds seed, seed + 1, ...: single runs are chaotic


# --------------------------------------------------------------------------------------------------
# Data: 2-D Gaussian mixtures with equal weights
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mixture:
    """Equal-weight isotropic Gaussian mixture in 2-D."""

    key: str
    title: str
    centers: Tensor  # (K, 2)
    sigma: float
    limit: float  # plot axes are [-limit, limit]^2

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        idx = torch.randint(len(self.centers), (n,), generator=generator)
        return self.centers[idx] + self.sigma * torch.randn(n, 2, generator=generator)


def _ring(k: int = 8, radius: float = 2.0) -> Tensor:
    angles = torch.arange(k, dtype=torch.float32) * (2 * math.pi / k)
    return radius * torch.stack([angles.cos(), angles.sin()], dim=1)


def _grid(values: tuple[float, ...] = (-4.0, -2.0, 0.0, 2.0, 4.0)) -> Tensor:
    v = torch.tensor(values)
    return torch.cartesian_prod(v, v)


MIXTURES: dict[str, Mixture] = {
    "ring8": Mixture("ring8", "8 Gaussians on a ring (r = 2, σ = 0.02)", _ring(), 0.02, 3.0),
    "grid25": Mixture("grid25", "25 Gaussians on a grid ({−4,…,4}², σ = 0.05)", _grid(), 0.05, 5.5),
}


# --------------------------------------------------------------------------------------------------
# Networks
# --------------------------------------------------------------------------------------------------


class Critic(nn.Module):
    """2 → hidden → hidden → 1 MLP with LeakyReLU(0.2); returns raw scores of shape (B,)."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(2, hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden, hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden, 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).squeeze(-1)


def make_generator(z_dim: int, hidden: int) -> nn.Module:
    """z_dim → hidden → hidden → 2 MLP with ReLU, linear output."""
    return nn.Sequential(
        nn.Linear(z_dim, hidden),
        nn.ReLU(),
        nn.Linear(hidden, hidden),
        nn.ReLU(),
        nn.Linear(hidden, 2),
    )


# --------------------------------------------------------------------------------------------------
# Losses: the package's functions with their published defaults
# --------------------------------------------------------------------------------------------------

# d_loss(D, x_real, x_fake_detached, generator) and g_loss(D, x_real, x_fake) -> scalar to minimise.
DLoss = Callable[[nn.Module, Tensor, Tensor, torch.Generator], Tensor]
GLoss = Callable[[nn.Module, Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class Recipe:
    """A loss's published training recipe: critic steps per G step, optimiser, lr, betas."""

    d_steps: int
    lr: float
    betas: tuple[float, float] = (0.5, 0.999)
    optimizer: str = "adam"  # or "rmsprop" (betas unused)
    source: str = ""

    def describe(self) -> str:
        opt = (
            f"Adam({self.lr:g}, β = {self.betas})"
            if self.optimizer == "adam"
            else f"RMSprop({self.lr:g})"
        )
        return f"{self.d_steps}:1, {opt}"


@dataclass(frozen=True)
class GANLoss:
    name: str
    settings: str  # the published defaults used, shown in the table
    d_loss: DLoss
    g_loss: GLoss
    recipe: Recipe = Recipe(1, 2e-4)


# Published recipes (critic steps per G step, optimiser); the networks stay the same for all.
DCGAN = Recipe(1, 2e-4, (0.5, 0.999), source="DCGAN, Radford et al. 2015 (arXiv 1511.06434)")
SNGAN = Recipe(5, 2e-4, (0.0, 0.9), source="SNGAN / mimicry CIFAR, Miyato et al. 2018")
WGAN_GP = Recipe(5, 1e-4, (0.5, 0.9), source="WGAN-GP toy and MNIST scripts, Gulrajani et al. 2017")
WGAN_DIV = Recipe(1, 2e-4, (0.5, 0.999), source="the author's WGAN-div code (post 6139)")
RSGAN = Recipe(
    1, 1e-4, (0.5, 0.999), source="AlexiaJM/RelativisticGAN code, Jolicoeur-Martineau 2018"
)
GAN_QP = Recipe(2, 2e-4, (0.5, 0.999), source="bojone/gan-qp (post 6163)")
R1 = Recipe(1, 1e-4, optimizer="rmsprop", source="GAN_stability, Mescheder et al. 2018")


def _d_sgan(d: nn.Module, xr: Tensor, xf: Tensor, _: torch.Generator) -> Tensor:
    return gl.sgan_discriminator_loss(d(xr), d(xf))


def _g_sgan(d: nn.Module, _: Tensor, xf: Tensor) -> Tensor:
    return gl.sgan_generator_loss(d(xf))  # non-saturating


def _d_hinge(d: nn.Module, xr: Tensor, xf: Tensor, _: torch.Generator) -> Tensor:
    return gl.hinge_discriminator_loss(d(xr), d(xf), margin=1.0)


def _g_hinge(d: nn.Module, _: Tensor, xf: Tensor) -> Tensor:
    return gl.hinge_generator_loss(d(xf))


def _wgan_gp_d_loss(weight: float) -> DLoss:
    def d_loss(d: nn.Module, xr: Tensor, xf: Tensor, gen: torch.Generator) -> Tensor:
        penalty = gl.wgan_gp_penalty(d, xr, xf, weight=weight, generator=gen)
        return gl.wgan_discriminator_loss(d(xr), d(xf)) + penalty

    return d_loss


# λ = 0.1 is the value of WGAN-GP's own toy script (igul222/improved_wgan_training gan_toy.py:
# "smaller lambda makes things faster for toy tasks, but isn't necessary if you increase
# CRITIC_ITERS enough"); λ = 10 is the paper's value for images. Measured here (seed 0, 120 CPU s,
# 5:1, Adam(1e-4, (0.5, 0.9))): λ = 10 covers 0/8 ring modes after 4343 G steps, λ = 0.1 8/8.
_d_wgan_gp = _wgan_gp_d_loss(0.1)
_d_wgan_gp_10 = _wgan_gp_d_loss(10.0)


def _d_wgan_div(d: nn.Module, xr: Tensor, xf: Tensor, _: torch.Generator) -> Tensor:
    # k = 2, p = 6 on the real and fake samples themselves [Wu et al.; post 6139]
    xr, xf = xr.requires_grad_(True), xf.requires_grad_(True)
    r, f = d(xr), d(xf)
    penalty = gl.wgan_div_penalty(r, xr, f, xf, k=2.0, p=6.0)
    return gl.wgan_discriminator_loss(r, f) + penalty


def _g_wgan(d: nn.Module, _: Tensor, xf: Tensor) -> Tensor:
    return gl.wgan_generator_loss(d(xf))


def _d_rsgan(d: nn.Module, xr: Tensor, xf: Tensor, _: torch.Generator) -> Tensor:
    return gl.rsgan_discriminator_loss(d(xr), d(xf))


def _g_rsgan(d: nn.Module, xr: Tensor, xf: Tensor) -> Tensor:
    return gl.rsgan_generator_loss(d(xr), d(xf))  # fresh real batch, D frozen


def _d_gan_qp(d: nn.Module, xr: Tensor, xf: Tensor, _: torch.Generator) -> Tensor:
    # L1 distance (per-sample mean |Δx|), λ = 10 [bojone/gan-qp]
    return gl.gan_qp_discriminator_loss(d(xr), d(xf), xr, xf, norm="l1", lam=10.0)


def _g_gan_qp(d: nn.Module, xr: Tensor, xf: Tensor) -> Tensor:
    return gl.gan_qp_generator_loss(d(xr), d(xf))


def _d_sgan_r1(d: nn.Module, xr: Tensor, xf: Tensor, _: torch.Generator) -> Tensor:
    # γ = 10 with penalty γ/2·E‖∇D(x_real)‖² [Mescheder et al. 2018; spec §2.9]
    xr = xr.requires_grad_(True)
    r = d(xr)
    return gl.sgan_discriminator_loss(r, d(xf)) + gl.r1_penalty(r, xr, gamma=10.0)


LOSSES: dict[str, GANLoss] = {
    loss.name: loss
    for loss in (
        GANLoss("NS-SGAN", "non-saturating G", _d_sgan, _g_sgan, DCGAN),
        GANLoss("Hinge", "margin 1", _d_hinge, _g_hinge, SNGAN),
        GANLoss("WGAN-GP", "λ = 0.1 (its toy script)", _d_wgan_gp, _g_wgan, WGAN_GP),
        GANLoss("WGAN-div", "k = 2, p = 6", _d_wgan_div, _g_wgan, WGAN_DIV),
        GANLoss("RSGAN", "paired r_i − f_i", _d_rsgan, _g_rsgan, RSGAN),
        GANLoss("GAN-QP (L1)", "λ = 10, L1", _d_gan_qp, _g_gan_qp, GAN_QP),
        GANLoss("SGAN + R1", "γ = 10", _d_sgan_r1, _g_sgan, R1),
    )
}


# Diagnostic variant, not in the tables by default: the paper's image value of λ on the toy ring.
EXTRA_LOSSES: dict[str, GANLoss] = {
    "WGAN-GP (λ = 10)": GANLoss(
        "WGAN-GP (λ = 10)", "λ = 10 (paper, images)", _d_wgan_gp_10, _g_wgan, WGAN_GP
    )
}


# --------------------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------------------

HQ_SIGMAS = 3.0  # a sample is high quality if within 3σ of its nearest mode
COVER_SHARE = 0.25  # a mode is covered if it gets ≥ 1/4 of the uniform share of HQ samples ...
COVER_MIN = 5  # ... and at least this many HQ samples


def mode_metrics(samples: Tensor, mixture: Mixture) -> dict[str, Any]:
    """Modes covered and fraction of high-quality samples.

    A sample is *high quality* (HQ) if its distance to the nearest mode centre is ≤ 3σ. With
    ``n_hq`` HQ samples among ``N`` and ``K`` modes, mode ``k`` is *covered* if it is the nearest
    mode of at least ``max(n_hq / (4K), 5)`` HQ samples (a quarter of its uniform share).
    Non-finite samples count as low quality. ``modes_any`` is the looser count of VEEGAN
    (Srivastava et al. 2017, §5.1, after Metz et al. 2017): modes nearest to at least one HQ sample.
    """
    samples = samples.float()
    k = len(mixture.centers)
    dist = torch.cdist(samples, mixture.centers)
    dmin, nearest = dist.min(dim=1)
    hq = torch.isfinite(dmin) & (dmin <= HQ_SIGMAS * mixture.sigma)
    counts = torch.bincount(nearest[hq], minlength=k)
    n_hq = int(hq.sum())
    threshold = max(COVER_SHARE * n_hq / k, COVER_MIN)
    return {
        "modes_covered": int((counts >= threshold).sum()),
        "modes_any": int((counts > 0).sum()),
        "modes_total": k,
        "hq_fraction": n_hq / len(samples),
        "hq_counts_per_mode": counts.tolist(),
    }


# --------------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------------


@dataclass
class RunResult:
    """Outcome of :func:`train`: metrics and samples of the raw and the EMA G, training curves."""

    loss: str
    mixture: str
    d_weight_decay: float
    wall_s: float
    raw: dict[str, Any]  # metrics of the trained G
    ema: dict[str, Any]  # metrics of the EMA of G (evaluation only: never fed back)
    raw_samples: Tensor = field(repr=False)  # (eval_samples, 2)
    ema_samples: Tensor = field(repr=False)
    trace_steps: list[int]  # HQ fraction on trace_samples latents, every trace_every steps
    trace_raw_hq: list[float]
    trace_ema_hq: list[float]
    diverged_at: int | None  # step of the first non-finite loss, if any
    g_steps: int = 0  # generator steps done (the budget may stop a run early)
    cpu_s: float = 0.0  # process CPU time of the training loop
    checkpoints: list[dict[str, Any]] = field(default_factory=list)  # cfg.checkpoints_cpu_s


def _step(
    loss: GANLoss,
    mixture: Mixture,
    cfg: Config,
    nets: tuple[nn.Module, nn.Module],
    opts: tuple[torch.optim.Optimizer, torch.optim.Optimizer],
    gens: list[torch.Generator],
) -> tuple[Tensor, Tensor]:
    """One training step: ``cfg.d_steps`` critic updates, then one generator update with D frozen.

    ``gens`` are the data, latent and penalty streams; returns the last (D loss, G loss).
    """
    (g_net, d_net), (opt_g, opt_d), (data_gen, z_gen, penalty_gen) = nets, opts, gens
    d_steps = loss.recipe.d_steps if cfg.recipe == "published" else cfg.d_steps
    for _ in range(d_steps):
        x_real = mixture.sample(cfg.batch, data_gen)
        with torch.no_grad():
            x_fake = g_net(torch.randn(cfg.batch, cfg.z_dim, generator=z_gen))
        opt_d.zero_grad(set_to_none=True)
        d_loss = loss.d_loss(d_net, x_real, x_fake, penalty_gen)
        d_loss.backward()
        opt_d.step()

    x_real = mixture.sample(cfg.batch, data_gen)
    z = torch.randn(cfg.batch, cfg.z_dim, generator=z_gen)
    d_net.requires_grad_(False)  # D frozen during the G step
    opt_g.zero_grad(set_to_none=True)
    g_loss = loss.g_loss(d_net, x_real, g_net(z))
    g_loss.backward()
    opt_g.step()
    d_net.requires_grad_(True)
    return d_loss, g_loss


def _checkpoints_due(
    pending: list[float],
    spent: float,
    g_net: nn.Module,
    z_eval: Tensor,
    mixture: Mixture,
    step: int,
) -> list[dict[str, Any]]:
    """Score the eval batch for every checkpoint CPU time now reached (popped from ``pending``)."""
    out = []
    while pending and spent >= pending[0]:
        with torch.no_grad():
            m = metrics_json(mode_metrics(g_net(z_eval), mixture))
        out.append({"cpu_s": pending.pop(0), "g_steps": step, **m})
    return out


def train(
    loss: GANLoss,
    mixture: Mixture,
    cfg: Config,
    *,
    seed: int,
    d_weight_decay: float = 0.0,
    on_step: Callable[[], None] | None = None,
    ema_factory: Callable[[nn.Module], Any] | None = None,
) -> RunResult:
    """Alternate ``cfg.d_steps`` critic steps and one generator step, ``cfg.steps`` times.

    The EMA of G (``kexue.keras_compat.EMA``) is updated after every G step; it only reads G's weights, so
    the training path is the same with or without it (spec §2.16). A non-finite loss stops the
    run (``diverged_at``); its samples are then scored as they are (non-finite ones are not HQ).
    ``ema_factory(g)`` builds the EMA instead (any object with ``.update(g)`` and ``.module``);
    default ``EMA(g, decay=cfg.ema_decay)``.
    """
    torch.manual_seed(seed)  # same initial weights for every loss
    g_net, d_net = make_generator(cfg.z_dim, cfg.hidden), Critic(cfg.hidden)
    recipe = loss.recipe if cfg.recipe == "published" else Recipe(cfg.d_steps, cfg.lr, cfg.betas)
    opt_g, opt_d = make_optimizers(recipe, g_net, d_net, d_weight_decay)
    ema = EMA(g_net, decay=cfg.ema_decay) if ema_factory is None else ema_factory(g_net)
    streams = [torch.Generator().manual_seed(1000 * seed + k) for k in range(1, 5)]
    z_eval = torch.randn(cfg.eval_samples, cfg.z_dim, generator=streams[3])
    z_trace = z_eval[: cfg.trace_samples]
    trace_steps, trace_raw, trace_ema = [], [], []  # step; HQ shares of raw and EMA G on z_trace
    diverged_at = None
    t0, c0 = time.perf_counter(), time.process_time()
    eval_cpu = 0.0  # CPU time of the training curves, not charged to the budget

    def spent() -> float:
        return time.process_time() - c0 - eval_cpu

    pending = sorted(cfg.checkpoints_cpu_s)
    checkpoints: list[dict[str, Any]] = []
    step = 0
    for step in range(1, cfg.steps + 1):
        if cfg.budget_cpu_s is not None and spent() >= cfg.budget_cpu_s:
            step -= 1
            break
        d_loss, g_loss = _step(loss, mixture, cfg, (g_net, d_net), (opt_g, opt_d), streams[:3])
        ema.update(g_net)
        if on_step is not None:
            on_step()
        if not (math.isfinite(d_loss.item()) and math.isfinite(g_loss.item())):
            diverged_at = step
            break
        last = step == cfg.steps or (cfg.budget_cpu_s is not None and spent() >= cfg.budget_cpu_s)
        e0 = time.process_time()
        checkpoints += _checkpoints_due(pending, spent(), g_net, z_eval, mixture, step)
        eval_cpu += time.process_time() - e0
        if step % cfg.trace_every == 0 or last:
            e0 = time.process_time()
            with torch.no_grad():
                trace_steps.append(step)
                trace_raw.append(mode_metrics(g_net(z_trace), mixture)["hq_fraction"])
                trace_ema.append(mode_metrics(ema.module(z_trace), mixture)["hq_fraction"])
            eval_cpu += time.process_time() - e0
    wall_s, cpu_s = time.perf_counter() - t0, spent()
    with torch.no_grad():
        raw_samples, ema_samples = g_net(z_eval), ema.module(z_eval)
    return RunResult(
        loss=loss.name,
        mixture=mixture.key,
        d_weight_decay=d_weight_decay,
        wall_s=wall_s,
        raw=mode_metrics(raw_samples, mixture),
        ema=mode_metrics(ema_samples, mixture),
        raw_samples=raw_samples,
        ema_samples=ema_samples,
        trace_steps=trace_steps,
        trace_raw_hq=trace_raw,
        trace_ema_hq=trace_ema,
        diverged_at=diverged_at,
        g_steps=step,
        cpu_s=cpu_s,
        checkpoints=checkpoints,
    )


def make_optimizers(
    recipe: Recipe, g_net: nn.Module, d_net: nn.Module, d_weight_decay: float = 0.0
) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
    """G and D optimisers of a recipe (coupled L2 ``d_weight_decay`` on D only)."""
    if recipe.optimizer == "rmsprop":
        return (
            torch.optim.RMSprop(g_net.parameters(), lr=recipe.lr),
            torch.optim.RMSprop(d_net.parameters(), lr=recipe.lr, weight_decay=d_weight_decay),
        )
    return (
        torch.optim.Adam(g_net.parameters(), lr=recipe.lr, betas=recipe.betas),
        torch.optim.Adam(
            d_net.parameters(), lr=recipe.lr, betas=recipe.betas, weight_decay=d_weight_decay
        ),
    )


def hq_percent(m: dict[str, Any]) -> str:
    """HQ share of a :func:`mode_metrics` result as a percentage string (one decimal)."""
    return f"{100 * m['hq_fraction']:.1f}"


def modes_covered(m: dict[str, Any]) -> str:
    """``covered/total`` modes of a :func:`mode_metrics` result."""
    return f"{m['modes_covered']}/{m['modes_total']}"


def metrics_json(m: dict[str, Any]) -> dict[str, Any]:
    """The JSON-serialisable part of a :func:`mode_metrics` result."""
    keys = ("modes_covered", "modes_any", "modes_total", "hq_fraction", "hq_counts_per_mode")
    return {k: m[k] for k in keys}
