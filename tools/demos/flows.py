"""flows demo section: NICE, RealNVP, Glow and i-ResNet from ``kexue.flows`` on scikit-learn digits.

Each model (the builders of ``kexue.flows.models``, small sizes) trains briefly on the 8×8
digits (17 grey levels, dequantised y = (x + u)/17), then the section shows sample grids at
temperatures 0.5 / 0.8 / 1.0 (every level's ε scaled by T) and a test bits/dim table. Data,
models, training and the bpd formula are those of the quality benchmark
(``python -m tools.bench.flows.quality``, via ``tools/workloads/flows_digits.py``); the demo's budget is a fraction of the
benchmark's, so its bpd are higher (the benchmark's table is in ``packages/flows/BENCHMARKS.md``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

import torch
from torch import Tensor

from kexue.flows.__about__ import __version__ as flows_version
from tools.workloads.flows_digits import (
    Sizes,
    build,
    count_parameters,
    evaluate,
    independent_gaussian_bpd,
    load_digits_split,
    train,
    uniform_bpd,
)

from ._report import Context, Section, figure_html, html_table, run_jobs, text_table

__all__ = ["CONFIGS", "MODELS", "TEMPERATURES", "run"]

MODELS: tuple[str, ...] = ("NICE", "RealNVP", "Glow", "i-ResNet")
TEMPERATURES: tuple[float, ...] = (0.5, 0.8, 1.0)
GRID = (4, 8)  # rows × columns of samples per panel

CONFIGS: dict[str, Sizes] = {
    "full": Sizes(steps=300, eval_draws=2),
    "quick": Sizes(steps=20, eval_draws=1),
    "smoke": Sizes(
        steps=3,
        eval_draws=1,
        nice_hidden=32,
        nice_depth=1,
        realnvp_hidden=8,
        glow_steps=2,
        glow_hidden=16,
        iresnet_blocks=2,
        iresnet_hidden=16,
    ),
}
BENCH_STEPS = 1000  # tools.bench.flows.quality full budget, for the note below the table


@dataclass(frozen=True)
class RunSpec:
    """One model's run; picklable, so that it can go to a worker process."""

    model: str
    sizes: Sizes
    seed: int


@dataclass
class RunResult:
    model: str
    params: int
    train_s: float
    median_step_ms: float
    final_train_bpd: float
    test_bpd: float
    samples: dict[float, Tensor]  # temperature -> (n, 1, 8, 8) in [0, 1]
    nonfinite_steps: int


def _train_job(spec: RunSpec, tick: Callable[[int], None]) -> RunResult:
    train_x, test_x = load_digits_split()
    model = build(spec.model, spec.sizes, seed=spec.seed)
    res = train([model], train_x, sizes=spec.sizes, seed=spec.seed, tick=tick)[0]
    bpd = evaluate(model, test_x, draws=spec.sizes.eval_draws, seed=spec.seed + 1)
    n = GRID[0] * GRID[1]
    samples = {}
    with torch.no_grad():
        for i, t in enumerate(TEMPERATURES):
            gen = torch.Generator().manual_seed(1000 * spec.seed + i)
            samples[t] = model.sample(n, temperature=t, generator=gen).clamp(0.0, 1.0)
    summary = res.summary()
    return RunResult(
        model=spec.model,
        params=count_parameters(model.module),
        train_s=res.train_s,
        median_step_ms=res.median_step_ms,
        final_train_bpd=summary["final_train_bpd"],
        test_bpd=bpd,
        samples=samples,
        nonfinite_steps=res.nonfinite_steps,
    )


def _describe(spec: RunSpec, r: RunResult) -> str:
    return f"  {spec.model}: test bpd {r.test_bpd:.3f} ({r.train_s:.1f} s training)"


def _grid_figure(runs: list[RunResult]) -> Any:
    import matplotlib.pyplot as plt

    rows, cols = GRID
    fig, axes = plt.subplots(
        len(runs),
        len(TEMPERATURES),
        figsize=(2.6 * len(TEMPERATURES), 1.45 * len(runs)),
        squeeze=False,
    )
    for ax_row, r in zip(axes, runs):
        for ax, t in zip(ax_row, TEMPERATURES):
            # 1-pixel white gaps between the 8×8 samples (digits have blank side columns only)
            s = torch.nn.functional.pad(r.samples[t].reshape(rows, cols, 8, 8), (0, 1, 0, 1))
            s = s.permute(0, 2, 1, 3).reshape(rows * 9, cols * 9)[:-1, :-1]
            ax.imshow(s.numpy(), cmap="gray_r", vmin=0.0, vmax=1.0, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r is runs[0]:
                ax.set_title(f"T = {t:g}", fontsize=9)
            if t == TEMPERATURES[0]:
                ax.set_ylabel(r.model, fontsize=9)
    fig.tight_layout()
    return fig


def _bpd_table(
    runs: list[Any], sizes: Sizes, baselines: dict[str, float], n_test: int, seed: int
) -> tuple[list[str], list[list[Any]], str]:
    """(headers, rows, caption) of the bits/dim table: one row per model, then the baselines."""
    headers = [
        "model",
        "params",
        "train steps",
        "train s",
        "median step ms",
        "train bpd",
        "test bpd",
    ]
    rows: list[list[Any]] = []
    for r in runs:
        note = f" ({r.nonfinite_steps} non-finite steps skipped)" if r.nonfinite_steps else ""
        rows.append(
            [
                r.model + note,
                f"{r.params:,}",
                sizes.steps,
                f"{r.train_s:.1f}",
                f"{r.median_step_ms:.1f}",
                f"{r.final_train_bpd:.3f}",
                f"{r.test_bpd:.3f}",
            ]
        )
    for name, v in baselines.items():
        rows.append([f"baseline: {name}", "—", "—", "—", "—", "—", f"{v:.3f}"])
    caption = (
        f"Table. Test bits/dim on the {n_test} test digits ({sizes.eval_draws} "
        f"dequantisation draw(s)), after {sizes.steps} Adam steps (lr {sizes.lr:g}, batch "
        f"{sizes.batch}), seed {seed}; train bpd = mean of the last 20 training batches."
    )
    return headers, rows, caption


def _results(
    ctx: Context, sizes: Sizes, wall: float, baselines: dict[str, float], runs: list[Any]
) -> dict[str, Any]:
    """The numbers for ``results.json``."""
    return {
        "config": {**asdict(sizes), "seed": ctx.seed, "mode": ctx.mode, "wall_s": round(wall, 2)},
        "temperatures": list(TEMPERATURES),
        "baselines": baselines,
        "models": [
            {
                "model": r.model,
                "params": r.params,
                "train_s": round(r.train_s, 2),
                "median_step_ms": round(r.median_step_ms, 2),
                "final_train_bpd": r.final_train_bpd,
                "test_bpd": r.test_bpd,
                "nonfinite_steps": r.nonfinite_steps,
            }
            for r in runs
        ],
    }


def run(ctx: Context) -> Section:
    """Train the four models, then add the sample grids and the bits/dim table."""
    sizes = CONFIGS[ctx.mode]
    specs = [RunSpec(m, sizes, ctx.seed) for m in MODELS]
    t0 = time.perf_counter()
    # Quick and smoke runs are a few seconds of work: worker start-up (a fresh interpreter
    # importing torch, kexue and scikit-learn) would cost more than it saves, so they run here.
    runs = run_jobs(
        ctx if ctx.mode == "full" else replace(ctx, jobs=1),
        _train_job,
        specs,
        label=f"flows: {len(specs)} models",
        units=[sizes.steps] * len(specs),
        describe=_describe,
    )
    wall = time.perf_counter() - t0
    train_x, test_x = load_digits_split()
    baselines = {
        "uniform over 17 levels": uniform_bpd(),
        "independent per-pixel Gaussian": independent_gaussian_bpd(train_x, test_x),
    }
    section = Section(
        "flows", f"kexue-flows {flows_version}: NICE, RealNVP, Glow, i-ResNet on digits"
    )
    section.add_html(_intro_html(sizes, len(train_x), len(test_x)))
    section.add_html(
        figure_html(
            _grid_figure(runs),
            alt="samples of each flow at temperatures 0.5, 0.8 and 1.0",
            caption=(
                f"{GRID[0] * GRID[1]} samples per model and temperature (rows: models; columns: "
                "T; clipped to [0, 1]; the same seeds for every model)."
            ),
        )
    )
    headers, rows, caption = _bpd_table(runs, sizes, baselines, len(test_x), ctx.seed)
    section.add_html(html_table(headers, rows, caption=caption))
    section.text.append(caption + "\n" + text_table(headers, rows))
    section.add_html(_reading_html(sizes))
    section.results = _results(ctx, sizes, wall, baselines, runs)
    return section


def _intro_html(sizes: Sizes, n_train: int, n_test: int) -> str:
    return f"""
<p>Four normalising flows built with <code>kexue.flows.models</code> — NICE (additive couplings,
{sizes.nice_depth}×{sizes.nice_hidden} MLPs, logistic prior;
<a href="https://kexue.fm/archives/5776">post 5776</a>), RealNVP (2 scales, affine tanh·w
couplings, checkerboard and channel masks, logit pre-processing), Glow (L = {sizes.glow_levels}
levels × K = {sizes.glow_steps} steps of ActNorm → LU 1×1 conv → affine coupling, hidden
{sizes.glow_hidden}, conditional split priors; <a href="https://kexue.fm/archives/5807">post
5807</a>) and an i-ResNet ({sizes.iresnet_blocks} spectral-normalised residual blocks on the
flattened image, log-det by power series + Hutchinson;
<a href="https://kexue.fm/archives/6482">post 6482</a>) — trained by maximum likelihood on
scikit-learn's 8×8 digits ({n_train} train / {n_test} test images, 17 grey levels). Pixels are
dequantised as y = (x + u)/17 with u ~ U(0, 1), and bits/dim are
−(log p(y) − 64·ln 17)/(64·ln 2). Samples are drawn at temperature T: every latent's ε is scaled
by T (z = μ + σ·T·ε), which trades diversity for cleaner strokes.</p>
"""


def _reading_html(sizes: Sizes) -> str:
    return f"""
<p><b>Budget.</b> {sizes.steps} steps per model here, to keep the demo short; the quality
benchmark (<code>python -m tools.bench.flows.quality</code>, results in <code>packages/flows/BENCHMARKS.md</code>)
trains the same models on the same data for {BENCH_STEPS} steps, averages 4 dequantisation
draws, and adds normflows' Glow of the same size for comparison, so its bits/dim are lower than
these. The baselines bracket the scale: a uniform model over the 17 levels scores log₂17 ≈ 4.09
bits/dim, a per-pixel Gaussian fitted in closed form about 3.40. NICE trains slowest: its
only change of volume is the zero-initialised diagonal scaling, which Adam moves by about the
learning rate per step, so at this budget it is still above the uniform baseline (its
starting point with the logistic prior is ≈ 6.1 bits/dim) and its samples are mostly noise.</p>
"""
