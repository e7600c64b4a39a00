"""flows demo section: NICE, RealNVP, Glow (affine and spline couplings) and i-ResNet from
``kexue.flows`` on scikit-learn digits, and NSF vs an affine MAF on 2-D toy densities.

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
from tools.workloads import flows_digits as fd
from tools.workloads.flows_digits import Sizes
from tools.workloads.flows_digits_splines import SPLINE_MODELS, build_spline_model

from ._flows_toys import TOY_STEPS, density_figure, run_toys, toy_table
from ._report import Context, Section, figure_html, html_table, run_jobs, text_table
from .pages.flows import (
    bpd_table,
    grid_figure,
    intro_html,
    reading_html,
)

__all__ = ["CONFIGS", "MODELS", "TEMPERATURES", "run"]

MODELS: tuple[str, ...] = ("NICE", "RealNVP", "Glow", "Glow (spline)", "i-ResNet")
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
    train_x, test_x = fd.load_digits_split()
    if spec.model in SPLINE_MODELS:
        model = build_spline_model(spec.model, seed=spec.seed)
    else:
        model = fd.build(spec.model, spec.sizes, seed=spec.seed)
    res = fd.train([model], train_x, sizes=spec.sizes, seed=spec.seed, tick=tick)[0]
    bpd = fd.evaluate(model, test_x, draws=spec.sizes.eval_draws, seed=spec.seed + 1)
    n = GRID[0] * GRID[1]
    samples = {}
    with torch.no_grad():
        for i, t in enumerate(TEMPERATURES):
            gen = torch.Generator().manual_seed(1000 * spec.seed + i)
            samples[t] = model.sample(n, temperature=t, generator=gen).clamp(0.0, 1.0)
    summary = res.summary()
    return RunResult(
        model=spec.model,
        params=fd.count_parameters(model.module),
        train_s=res.train_s,
        median_step_ms=res.median_step_ms,
        final_train_bpd=summary["final_train_bpd"],
        test_bpd=bpd,
        samples=samples,
        nonfinite_steps=res.nonfinite_steps,
    )


def _describe(spec: RunSpec, r: RunResult) -> str:
    return f"  {spec.model}: test bpd {r.test_bpd:.3f} ({r.train_s:.1f} s training)"


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
    train_x, test_x = fd.load_digits_split()
    baselines = {
        "uniform over 17 levels": fd.uniform_bpd(),
        "independent per-pixel Gaussian": fd.independent_gaussian_bpd(train_x, test_x),
    }
    section = Section(
        "flows",
        f"kexue-flows {flows_version}: NICE, RealNVP, Glow (affine, spline), i-ResNet on digits; "
        "NSF on 2-D toys",
    )
    section.add_html(intro_html(sizes, len(train_x), len(test_x)))
    section.add_html(
        figure_html(
            grid_figure(runs, TEMPERATURES, GRID),
            alt="samples of each flow at temperatures 0.5, 0.8 and 1.0",
            caption=(
                f"{GRID[0] * GRID[1]} samples per model and temperature (rows: models; columns: "
                "T; clipped to [0, 1]; the same seeds for every model)."
            ),
        )
    )
    headers, rows, caption = bpd_table(runs, sizes, baselines, len(test_x), ctx.seed)
    section.add_html(html_table(headers, rows, caption=caption))
    section.text.append(caption + "\n" + text_table(headers, rows))
    section.add_html(reading_html(sizes))
    section.results = _results(ctx, sizes, wall, baselines, runs)
    _add_toys(ctx, section)
    return section


def _add_toys(ctx: Context, section: Section) -> None:
    """The 2-D density grid (data, NSF, affine MAF) and its NLL table."""
    runs, wall = run_toys(ctx.mode, ctx.seed)
    steps = TOY_STEPS[ctx.mode]
    section.add_html(
        figure_html(
            density_figure(runs),
            alt="2-D toy densities: data, NSF and affine MAF",
            caption=(
                f"2-D toys: histogram of the data, then exp(log p) of a neural spline flow "
                f"(autoregressive) and of an affine MAF after {steps} steps, on [−4, 4]²."
            ),
        )
    )
    headers, rows, caption = toy_table(runs, steps)
    section.add_html(html_table(headers, rows, caption=caption))
    section.text.append(caption + "\n" + text_table(headers, rows))
    section.results["toys"] = {
        "steps": steps,
        "wall_s": round(wall, 2),
        "runs": [{"dataset": r.dataset, "nll": r.nll, "step_ms": r.step_ms} for r in runs],
    }
