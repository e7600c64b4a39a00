"""The gan-losses section's fair comparison: each loss with its published recipe, the same CPU
budget per run, several seeds (mean ± sd), and the short digits comparison with sample grids."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

import torch

from tools.workloads.gan_toy import (
    LOSSES,
    MIXTURES,
    Config,
    RunResult,
    hq_percent,
    metrics_json,
    modes_covered,
)

from .._report import ScatterPanel, Section, figure_html, html_table, scatter_panels, text_table

__all__ = ["digits_part", "fair_intro_html", "fair_part"]

FairLookup = Callable[[str, int], RunResult]  # (loss, seed) -> the published-recipe run


def _mean_sd(values: list[float], fmt: str = ".1f") -> str:
    if len(values) == 1:
        return format(values[0], fmt)
    return f"{format(statistics.mean(values), fmt)} ± {format(statistics.stdev(values), fmt)}"


def fair_intro_html(cfg: Config, budget: float, seeds: int) -> str:
    return f"""
<h3>Table 1: each loss with its published recipe, the same budget</h3>
<p>Every loss trains with the recipe of the paper or code it comes from — critic steps per
generator step, optimiser, learning rate, betas (sources in the table) — on the same networks and
initial weights, for the same <b>{budget:g} CPU seconds</b> per run (process time with one torch
thread: equal to wall-clock time on an idle core, and fair on a shared machine, where wall-clock
budgets are not). A recipe with 5 critic steps per generator step therefore makes fewer generator
steps. {seeds} seed(s) per loss, mean ± sd; 8 Gaussians on a ring. The second table keeps the old
view: one recipe (Adam {cfg.lr:g}, 1:1) for every loss.</p>
<p><b>This is a shortened run</b>: {budget:g} CPU seconds is far from convergence (HQ shares stay
low, and WGAN-GP's 5 critic steps leave it a few hundred G steps). The converging version, 90 CPU
seconds per run, is <code>python -m tools.bench.gan_losses.fair_table</code>; its table is in the
package's BENCHMARKS.md. WGAN-GP uses λ = 0.1, the value of its own toy script (gan_toy.py); with
the paper's image value λ = 10 it covered 0/8 ring modes after 4343 G steps (seed 0, 120 CPU s).</p>
"""


def fair_part(
    section: Section, cfg: Config, seeds: list[int], get: FairLookup
) -> list[dict[str, Any]]:
    """The published-recipe table (mean ± sd over seeds) and the first seed's samples."""
    m = MIXTURES["ring8"]
    headers = [
        "loss",
        "recipe — source",
        "G steps",
        "modes per seed",
        "modes",
        "HQ %",
    ]
    rows, json_rows = [], []
    for name, loss in LOSSES.items():
        rs = [get(name, s) for s in seeds]
        cells = [
            name,
            f"{loss.recipe.describe()}; {loss.settings} — {loss.recipe.source}",
            _mean_sd([float(r.g_steps) for r in rs], ".0f"),
            ", ".join(modes_covered(r.raw) for r in rs),
            _mean_sd([float(r.raw["modes_covered"]) for r in rs]),
            _mean_sd([100 * r.raw["hq_fraction"] for r in rs]),
        ]
        rows.append(cells)
        json_rows.append(
            {
                "loss": name,
                "recipe": loss.recipe.describe(),
                "source": loss.recipe.source,
                "seeds": seeds,
                "g_steps": [r.g_steps for r in rs],
                "cpu_s": [round(r.cpu_s, 2) for r in rs],
                "diverged_at": [r.diverged_at for r in rs],
                "raw_g": [metrics_json(r.raw) for r in rs],
                "ema_g": [metrics_json(r.ema) for r in rs],
            }
        )
    caption = (
        f"Table 1. Published recipes, equal CPU budget, seeds {seeds}: modes covered and HQ share "
        f"of the raw G ({cfg.eval_samples} samples)."
    )
    section.add_html(html_table(headers, rows, caption=caption, numeric_from=2))
    section.text.append(caption + "\n" + text_table(headers, rows))
    real = m.sample(cfg.plot_samples, torch.Generator().manual_seed(5))
    row = [ScatterPanel("real data", real.numpy(), m.centers.numpy(), m.limit)]
    for name in LOSSES:
        r = get(name, seeds[0])
        row.append(
            ScatterPanel(
                f"{name} ({r.g_steps} G steps)\n{modes_covered(r.raw)} modes · HQ {hq_percent(r.raw)}%",
                r.raw_samples[: cfg.plot_samples].numpy(),
                m.centers.numpy(),
                m.limit,
            )
        )
    section.add_html(
        figure_html(
            scatter_panels([row]),
            alt="samples per loss, published recipes",
            caption=f"Table 1 runs, seed {seeds[0]}: raw G samples; red + = mode centres.",
        )
    )
    return json_rows


def _digit_grid(samples: list[tuple[str, torch.Tensor]]) -> Any:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(samples), figsize=(1.9 * len(samples), 2.2), squeeze=False)
    for ax, (title, x) in zip(axes[0], samples):
        x = x[:36].clamp(-1, 1).view(6, 6, 8, 8).permute(0, 2, 1, 3).reshape(48, 48)
        ax.imshow(x.numpy(), cmap="gray_r", vmin=-1, vmax=1)
        ax.set_title(title, fontsize=8)
        ax.axis("off")
    fig.tight_layout()
    return fig


def digits_part(
    section: Section,
    results: list[Any],
    reference: dict[str, float],
    real: torch.Tensor,
    accuracy: float,
    budget: float,
) -> list[dict[str, Any]]:
    """The short digits comparison: one table and one grid of samples per loss."""
    section.add_html(f"""
<h3>On real images: 8×8 digits</h3>
<p>The question of post 6163 on real data, shortened (the full comparison, 3 seeds, is
<code>python -m tools.bench.gan_losses.digits</code>, written to the package's BENCHMARKS.md):
small DCGAN-style G and D on scikit-learn's digits, each loss with its recipe, {budget:g} CPU
seconds per run, one seed. Scores over the 64-d features of a small CNN classifier trained here
(test accuracy {accuracy:.3f}): FD and KID against the 1437 training digits (lower is better),
precision / recall / coverage (k = 5), and the share of samples the classifier labels with
confidence ≥ 0.9. The last row scores the 360 held-out real digits.</p>""")
    keys = ("fd", "kid", "precision", "recall", "coverage", "confident")
    headers = ["loss", "G steps", "FD", "KID", "precision", "recall", "coverage", "confident"]
    rows, json_rows = [], []
    for r in results:
        s = r.scores
        rows.append([r.loss, r.g_steps, *(f"{s.get(k, float('nan')):.3g}" for k in keys)])
        json_rows.append(
            {"loss": r.loss, "seed": r.seed, "recipe": r.recipe, "g_steps": r.g_steps, "scores": s}
        )
    rows.append(["real test digits", "—", *(f"{reference[k]:.3g}" for k in keys)])
    caption = "Digits: one seed per loss, published recipes, equal CPU budget."
    section.add_html(html_table(headers, rows, caption=caption, numeric_from=1))
    section.text.append(caption + "\n" + text_table(headers, rows))
    grid = [("real", real)] + [
        (f"{r.loss}\nFD {r.scores.get('fd', float('nan')):.0f}", r.samples) for r in results
    ]
    section.add_html(
        figure_html(
            _digit_grid(grid),
            alt="generated digits per loss",
            caption="36 samples per loss (fixed latents), the first panel real training digits.",
        )
    )
    return json_rows
