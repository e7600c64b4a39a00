"""gan-losses demo section: small MLP GANs on 2-D Gaussian mixtures, one loss per column.

Part 1 trains the same generator/critic MLPs with seven losses from ``kexue.gan_losses`` (each
with its published defaults, nothing tuned per loss) on two toy mixtures and reports mode
coverage and sample quality. Part 2 replays the author's "GAN third stage" recipe (post 6583,
spec §2.9): GAN-QP (L1) with and without a light L2 weight decay on D and an EMA of G, over
several seeds. The model, data, losses and training loop are in ``tools/workloads/gan_toy.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from kexue.gan_losses.__about__ import __version__ as gan_losses_version
from tools.workloads.gan_toy import (
    COVER_MIN,
    HQ_SIGMAS,
    LOSSES,
    MIXTURES,
    Config,
    RunResult,
    hq_percent,
    mode_metrics,
    modes_covered,
    train,
)

from ._report import (
    Context,
    Section,
    run_jobs,
)
from .pages.gan_losses import (
    intro_html,
    losses_part,
    third_stage_intro_html,
    third_stage_part,
)

__all__ = ["CONFIGS", "LOSSES", "MIXTURES", "Config", "mode_metrics", "run"]


CONFIGS: dict[str, Config] = {
    "full": Config(steps=8000),
    # 1500 steps is close to the 1/(1 - 0.999)-step EMA horizon: quick mode averages with 0.99.
    "quick": Config(
        steps=1500, eval_samples=2000, plot_samples=1000, trace_every=50, ema_decay=0.99
    ),
    "smoke": Config(
        steps=3,
        batch=32,
        hidden=16,
        eval_samples=200,
        plot_samples=100,
        trace_every=2,
        trace_samples=64,
        ema_decay=0.5,
        third_stage_seeds=2,
    ),
}


# --------------------------------------------------------------------------------------------------
# The section
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunSpec:
    """One training run; hashable, and picklable so that it can go to a worker process."""

    loss: str
    mixture: str
    d_weight_decay: float
    cfg: Config
    seed: int


def _train_job(spec: RunSpec, tick: Callable[[int], None]) -> RunResult:
    return train(
        LOSSES[spec.loss],
        MIXTURES[spec.mixture],
        spec.cfg,
        seed=spec.seed,
        d_weight_decay=spec.d_weight_decay,
        on_step=lambda: tick(1),
    )


def _describe(spec: RunSpec, r: RunResult) -> str:
    wd = f" + D wd {spec.d_weight_decay:g}" if spec.d_weight_decay else ""
    div = f", diverged at step {r.diverged_at}" if r.diverged_at else ""
    return (
        f"  {spec.mixture:>6} / {spec.loss}{wd} / seed {spec.seed}: {modes_covered(r.raw)} modes, "
        f"HQ {hq_percent(r.raw)}% ({r.wall_s:.1f} s{div})"
    )


def _plan(cfg: Config, seed: int) -> list[RunSpec]:
    """Table 1 runs (every loss on every mixture), then the third-stage runs not yet planned."""
    specs = [RunSpec(name, m, 0.0, cfg, seed) for m in MIXTURES for name in LOSSES]
    for m in cfg.third_stage_mixtures:
        for i in range(cfg.third_stage_seeds):
            for wd in (0.0, cfg.d_weight_decay):
                spec = RunSpec(cfg.third_stage_loss, m, wd, cfg, seed + i)
                if spec not in specs:
                    specs.append(spec)
    return specs


def run(ctx: Context) -> Section:
    """Train every loss on every mixture, then the third-stage variants; build the section."""
    cfg = CONFIGS[ctx.mode]
    specs = _plan(cfg, ctx.seed)
    results = run_jobs(
        ctx,
        _train_job,
        specs,
        label=f"gan_losses: {len(specs)} runs",
        units=[cfg.steps] * len(specs),
        describe=_describe,
    )
    runs = dict(zip(specs, results))

    def lookup(loss: str, mixture: str, d_weight_decay: float, seed: int) -> RunResult:
        return runs[RunSpec(loss, mixture, d_weight_decay, cfg, seed)]

    section = Section("gan_losses", f"kexue-gan-losses {gan_losses_version}: toy 2-D GANs")
    section.add_html(intro_html(cfg))
    loss_rows = losses_part(section, cfg, ctx.seed, lookup)
    section.add_html(third_stage_intro_html(cfg))
    third_rows = third_stage_part(section, cfg, ctx.seed, lookup)
    section.results = {
        "config": {
            **{k: list(v) if isinstance(v, tuple) else v for k, v in cfg.__dict__.items()},
            "seed": ctx.seed,
            "mode": ctx.mode,
        },
        "metrics": {
            "hq": f"distance to the nearest mode centre <= {HQ_SIGMAS:g} sigma",
            "covered": f"nearest mode of >= max(n_hq / (4 K), {COVER_MIN}) HQ samples",
            "eval_samples": cfg.eval_samples,
        },
        "losses": loss_rows,
        "third_stage": {"loss": cfg.third_stage_loss, "rows": third_rows},
    }
    return section
