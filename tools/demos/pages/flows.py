"""The flows section's page: the sample grids per temperature, the bits/dim table, and the text
around them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from tools.workloads.flows_digits import Sizes

if TYPE_CHECKING:
    from ..flows import RunResult

BENCH_STEPS = 1000  # python -m tools.bench.flows.quality full budget, for the note below the table


def grid_figure(
    runs: list[RunResult], temperatures: tuple[float, ...], grid: tuple[int, int]
) -> Any:
    """Samples of every model (rows) at every temperature (columns), clipped to [0, 1]."""
    import matplotlib.pyplot as plt

    rows, cols = grid
    fig, axes = plt.subplots(
        len(runs),
        len(temperatures),
        figsize=(2.6 * len(temperatures), 1.45 * len(runs)),
        squeeze=False,
    )
    for ax_row, r in zip(axes, runs):
        for ax, t in zip(ax_row, temperatures):
            # 1-pixel white gaps between the 8×8 samples (digits have blank side columns only)
            s = torch.nn.functional.pad(r.samples[t].reshape(rows, cols, 8, 8), (0, 1, 0, 1))
            s = s.permute(0, 2, 1, 3).reshape(rows * 9, cols * 9)[:-1, :-1]
            ax.imshow(s.numpy(), cmap="gray_r", vmin=0.0, vmax=1.0, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r is runs[0]:
                ax.set_title(f"T = {t:g}", fontsize=9)
            if t == temperatures[0]:
                ax.set_ylabel(r.model, fontsize=9)
    fig.tight_layout()
    return fig


def bpd_table(
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


def intro_html(sizes: Sizes, n_train: int, n_test: int) -> str:
    return f"""
<p>Five normalising flows built with <code>kexue.flows.models</code> — NICE (additive couplings,
{sizes.nice_depth}×{sizes.nice_hidden} MLPs, logistic prior;
<a href="https://kexue.fm/archives/5776">post 5776</a>), RealNVP (2 scales, affine tanh·w
couplings, checkerboard and channel masks, logit pre-processing), Glow (L = {sizes.glow_levels}
levels × K = {sizes.glow_steps} steps of ActNorm → LU 1×1 conv → affine coupling, hidden
{sizes.glow_hidden}, conditional split priors; <a href="https://kexue.fm/archives/5807">post
5807</a>), the same Glow with rational-quadratic spline couplings at a matched parameter count
(4 steps per level, width 24, 8 bins; Durkan et al. 2019) and an i-ResNet ({sizes.iresnet_blocks} spectral-normalised residual blocks on the
flattened image, log-det by power series + Hutchinson;
<a href="https://kexue.fm/archives/6482">post 6482</a>) — trained by maximum likelihood on
scikit-learn's 8×8 digits ({n_train} train / {n_test} test images, 17 grey levels). Pixels are
dequantised as y = (x + u)/17 with u ~ U(0, 1), and bits/dim are
−(log p(y) − 64·ln 17)/(64·ln 2). Samples are drawn at temperature T: every latent's ε is scaled
by T (z = μ + σ·T·ε), which trades diversity for cleaner strokes.</p>
"""


def reading_html(sizes: Sizes) -> str:
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
