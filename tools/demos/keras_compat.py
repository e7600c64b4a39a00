"""keras-compat demo section: the generator EMA of ``kexue.keras_compat`` on the toy 2-D GAN.

Post 6583 finds that GAN-QP, hinge and non-saturating SGAN orbit their equilibrium instead of
converging, and calls an EMA of the generator's weights "the most powerful" cheap fix: it leaves
training unchanged and averages the orbit towards its centre. This section trains two such losses
on the gan-losses toy mixtures (same networks, data, budget and seed as the gan-losses section's
Table 1, from ``tools/workloads/gan_toy.py``) and evaluates three generators of each run: the
raw G, its EMA with a fixed decay (``EMA(g, decay)``) and its EMA with the timm / ema-pytorch warm-up
(``EMA(g, decay, warmup=EMAWarmup())``). Both EMAs only read G's weights, so one training run gives
all three.

A second part (``_keras_compat_posthoc``) trains an MLP on scikit-learn's digits once with a
:class:`~kexue.keras_compat.PowerEMA` and shows validation loss vs σ_rel from post-hoc
reconstructions, checked against EMAs of untracked σ_rel values tracked directly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from kexue.keras_compat import EMA, EMAWarmup
from kexue.keras_compat.__about__ import __version__ as keras_compat_version
from tools.workloads import gan_toy

from ._keras_compat_posthoc import CONFIGS as POSTHOC_CONFIGS
from ._keras_compat_posthoc import add_posthoc, posthoc_digits
from ._report import (
    Context,
    Section,
    figure_html,
    run_jobs,
    scatter_panels,
)
from .gan_losses import CONFIGS
from .pages.keras_compat import (
    curves_html,
    intro_html,
    reading_html,
    run_panels,
    run_row,
)

__all__ = ["LOSS_NAMES", "MIXTURE_KEYS", "WARMUP", "run"]

# Two losses that orbit rather than converge (post 6583); both gain from the EMA on the 8-ring in
# the gan-losses section's full run.
LOSS_NAMES: tuple[str, ...] = ("GAN-QP (L1)", "Hinge")
MIXTURE_KEYS: dict[str, tuple[str, ...]] = {
    "full": ("ring8", "grid25"),
    "quick": ("ring8",),
    "smoke": ("ring8",),
}
# timm ModelEmaV3 / ema-pytorch defaults: γ = 1, p = 2/3 (decay 0.999 only after ~31.6k updates).
WARMUP = EMAWarmup(gamma=1.0, power=2.0 / 3.0)


@dataclass(frozen=True)
class RunSpec:
    """One training run; picklable, so that it can go to a worker process."""

    loss: str
    mixture: str
    cfg: gan_toy.Config
    seed: int


@dataclass
class EMARun:
    """A training run with the raw G and the fixed-decay EMA (``result``) plus the warm-up EMA."""

    result: gan_toy.RunResult
    warm: dict[str, Any]  # metrics of the warm-up EMA G on the evaluation latents
    warm_samples: Tensor
    warm_trace_hq: list[float]  # at result.trace_steps
    warm_final_decay: float  # the warm-up EMA's decay at its last update


class _TwoEMAs:
    """The fixed-decay EMA (``.module``, what ``train`` evaluates) and the warm-up EMA, updated
    together after every G step."""

    def __init__(self, g: nn.Module, decay: float) -> None:
        self.fixed = EMA(g, decay=decay)
        self.warm = EMA(g, decay=decay, warmup=WARMUP)

    @property
    def module(self) -> nn.Module:
        return self.fixed.module

    def update(self, g: nn.Module) -> None:
        self.fixed.update(g)
        self.warm.update(g)


def _train_job(spec: RunSpec, tick: Callable[[int], None]) -> EMARun:
    cfg, mixture = spec.cfg, gan_toy.MIXTURES[spec.mixture]
    made: list[_TwoEMAs] = []
    # The evaluation latents of train(): its 4th stream, seeded 1000·seed + 4 (checked below).
    z_eval = torch.randn(
        cfg.eval_samples, cfg.z_dim, generator=torch.Generator().manual_seed(1000 * spec.seed + 4)
    )
    z_trace = z_eval[: cfg.trace_samples]
    warm_trace: dict[int, float] = {}

    def factory(g: nn.Module) -> _TwoEMAs:
        made.append(_TwoEMAs(g, cfg.ema_decay))
        return made[-1]

    def on_step() -> None:  # runs after the EMA update of each G step, as train's own trace does
        tick(1)
        step = made[0].warm.num_updates
        if step % cfg.trace_every == 0 or step == cfg.steps:
            with torch.no_grad():
                samples = made[0].warm.module(z_trace)
            warm_trace[step] = gan_toy.mode_metrics(samples, mixture)["hq_fraction"]

    result = gan_toy.train(
        gan_toy.LOSSES[spec.loss],
        mixture,
        cfg,
        seed=spec.seed,
        on_step=on_step,
        ema_factory=factory,
    )
    emas = made[0]
    with torch.no_grad():
        if not torch.equal(emas.fixed.module(z_eval), result.ema_samples):
            raise RuntimeError("evaluation latents differ from train()'s: update _train_job")
        warm_samples = emas.warm.module(z_eval)
    return EMARun(
        result=result,
        warm=gan_toy.mode_metrics(warm_samples, mixture),
        warm_samples=warm_samples,
        warm_trace_hq=[warm_trace[s] for s in result.trace_steps],
        warm_final_decay=emas.warm.get_decay(emas.warm.num_updates),
    )


def _describe(spec: RunSpec, r: EMARun) -> str:
    hq = gan_toy.hq_percent
    return (
        f"  {spec.mixture:>6} / {spec.loss}: raw {gan_toy.modes_covered(r.result.raw)} modes, HQ "
        f"{hq(r.result.raw)}%; EMA HQ {hq(r.result.ema)}%; warm-up EMA HQ {hq(r.warm)}% "
        f"({r.result.wall_s:.1f} s)"
    )


def _posthoc(ctx: Context, section: Section) -> dict[str, Any]:
    """The post-hoc EMA experiment (digits MLP): blocks into ``section``, numbers returned."""
    pcfg = POSTHOC_CONFIGS[ctx.mode]
    ctx.progress.start("keras_compat: post-hoc EMA (digits)", pcfg.steps)
    r = posthoc_digits(pcfg, ctx.seed, tick=ctx.progress.update)
    ctx.progress.finish()
    add_posthoc(section, r)
    return {
        "steps": pcfg.steps,
        "snapshot_every": pcfg.snapshot_every,
        "raw_loss": r.raw_loss,
        "truths": r.truth_rows,
        "curve": [list(c) for c in r.curve],
        "wall_s": r.wall_s,
    }


def run(ctx: Context) -> Section:
    """Train each loss on each mixture once; tabulate and plot raw, EMA and warm-up EMA G."""
    cfg = CONFIGS[ctx.mode]
    mixtures = MIXTURE_KEYS[ctx.mode]
    specs = [RunSpec(loss, m, cfg, ctx.seed) for m in mixtures for loss in LOSS_NAMES]
    runs = run_jobs(
        ctx,
        _train_job,
        specs,
        label=f"keras_compat: {len(specs)} runs",
        units=cfg.steps,
        describe=_describe,
    )
    section = Section(
        "keras_compat",
        f"kexue-keras-compat {keras_compat_version}: generator EMA on the toy GAN, post-hoc EMA "
        "on digits",
    )
    section.add_html(intro_html(cfg, mixtures, LOSS_NAMES, WARMUP))

    warm_label = f"EMA {cfg.ema_decay:g} + warm-up"
    headers = ["loss", "mixture", "raw G modes", "raw G HQ %"]
    headers += [f"EMA {cfg.ema_decay:g} modes", f"EMA {cfg.ema_decay:g} HQ %"]
    headers += [f"{warm_label} modes", f"{warm_label} HQ %", "final warm-up decay", "time s"]
    rows, json_rows, grid = [], [], []
    for spec, r in zip(specs, runs):
        cells, entry = run_row(spec, r, cfg)
        rows.append(cells)
        json_rows.append(entry)
        grid.append(run_panels(spec, r, cfg, warm_label))
    caption = (
        f"Table. Raw G vs its EMA (decay {cfg.ema_decay:g}, fixed; and with the warm-up "
        f"γ = {WARMUP.gamma:g}, p = {WARMUP.power:.3g}), {cfg.steps} generator steps, seed "
        f"{ctx.seed}, {cfg.eval_samples} evaluation samples."
    )
    section.add_table(headers, rows, caption=caption, numeric_from=2)
    section.add_html(
        figure_html(
            scatter_panels(grid, size=2.3),
            alt="samples of the raw G and of its EMAs",
            caption=(
                f"Samples ({cfg.plot_samples} of the {cfg.eval_samples} evaluation samples) of "
                "each run's raw G, fixed-decay EMA and warm-up EMA; red + = mode centres."
            ),
        )
    )
    for key in mixtures:
        section.add_html(curves_html(key, specs, runs, cfg, warm_label))
    section.add_html(reading_html(cfg))
    posthoc = _posthoc(ctx, section)
    section.results = {
        "posthoc": posthoc,
        "config": {
            **{k: list(v) if isinstance(v, tuple) else v for k, v in cfg.__dict__.items()},
            "seed": ctx.seed,
            "mode": ctx.mode,
            "losses": list(LOSS_NAMES),
            "mixtures": list(mixtures),
            "warmup": {"gamma": WARMUP.gamma, "power": WARMUP.power, "min_decay": 0.0},
        },
        "rows": json_rows,
    }
    return section
