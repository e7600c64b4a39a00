"""The vq section's page: reconstructions, codebook usage and training perplexity figures, and the
text around the tables."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

from torch import Tensor

from .._report import Section, figure_html

if TYPE_CHECKING:
    from ..vq import Config


def _grid_figure(originals: Tensor, runs: list[dict[str, Any]]) -> Any:
    from .._report import _pyplot

    plt = _pyplot()
    rows = [("original", originals)] + [(r["variant"], r["reconstructions"]) for r in runs]
    n = originals.shape[0]
    fig, axes = plt.subplots(len(rows), n, figsize=(0.62 * n, 0.75 * len(rows)), squeeze=False)
    for i, (label, images) in enumerate(rows):
        for j in range(n):
            ax = axes[i][j]
            ax.imshow(images[j].numpy(), cmap="gray_r", vmin=0.0, vmax=1.0)
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(label, fontsize=7, rotation=0, ha="right", va="center")
    fig.subplots_adjust(wspace=0.05, hspace=0.05)
    return fig


def _usage_figure(runs: list[dict[str, Any]], num_codes: int) -> Any:
    from .._report import _pyplot

    plt = _pyplot()
    fig, axes = plt.subplots(1, len(runs), figsize=(5.4 * len(runs), 2.8), squeeze=False)
    for ax, r in zip(axes[0], runs):
        counts = sorted(r["counts"], reverse=True)
        ax.bar(range(num_codes), counts, color="#1f77b4", width=0.85)
        used = sum(c > 0 for c in counts)
        ax.set_title(f"{r['variant']}: {used}/{num_codes} codes used", fontsize=9)
        ax.set_xlabel("code (sorted by count)")
        ax.set_ylabel("test tokens")
        ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return fig


def _perplexity_figure(runs: list[dict[str, Any]], num_codes: int) -> Any:
    from .._report import _pyplot

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 3.0))
    for r in runs:
        ax.plot(r["trace_steps"], r["trace_perplexity"], label=r["variant"], linewidth=1.2)
    ax.axhline(num_codes, color="#888", linestyle=":", linewidth=1.0, label=f"K = {num_codes}")
    ax.set_xlabel("training step")
    ax.set_ylabel("batch perplexity")
    ax.set_ylim(0, num_codes * 1.05)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    return fig


def add_figures(section: Section, test: Tensor, runs: list[dict[str, Any]], cfg: Config) -> None:
    """Reconstructions, codebook usage and training perplexity of each run."""
    section.add_html(
        figure_html(
            _grid_figure(test[:16, 0], runs),
            alt="test digits and their reconstructions",
            caption="The first 16 test digits and their reconstructions by each run.",
        )
    )
    section.add_html(
        figure_html(
            _usage_figure(runs, cfg.num_codes),
            alt="codebook usage histograms",
            caption="Tokens per code on the test set, codes sorted by count.",
        )
    )
    section.add_html(
        figure_html(
            _perplexity_figure(runs, cfg.num_codes),
            alt="batch perplexity during training",
            caption=(
                f"Perplexity of each training batch's {cfg.batch} × 16 tokens, averaged over "
                f"{cfg.trace_every} steps."
            ),
        )
    )


def intro_html(cfg: Config, variants: dict[str, Any]) -> str:
    """The model, the data and the codebook-training variants compared."""
    variants = "; ".join(
        f"<b>{html.escape(name)}</b>: <code>{html.escape(repr(opts))}</code>"
        for name, opts in variants.items()
    )
    return f"""
<p>VQ-VAE (<a href="https://arxiv.org/abs/1711.00937">van den Oord et al. 2017</a>; Su Jianlin's
reading in <a href="https://kexue.fm/archives/6760">post 6760</a>: an autoencoder with a discrete
bottleneck) on scikit-learn's 1797 handwritten digits, 8×8 pixels in [0, 1]; the first 1437
train, the last 360 test. <code>kexue.vq.models.VQVAE(1, hidden={cfg.hidden}, res_blocks=1,
downsample=1, num_codes={cfg.num_codes}, code_dim={cfg.code_dim}, output_activation="sigmoid")</code>
turns each digit into a 4 × 4 grid of tokens; Adam (lr {cfg.lr:g}, batch {cfg.batch},
{cfg.steps} steps). The runs share everything but the quantiser (VQ with two ways of training
its codebook, and kexue-vq 0.2's FSQ and LFQ at the same {cfg.num_codes} codes): {variants}.</p>
"""


def reading_html() -> str:
    return """
<p><b>Reading the results.</b> The learned codebook starts from N(0, 1) vectors far from the
encoder's outputs: the first assignments pick a handful of codes, only those receive the codebook
loss's gradient, and the rest never come back — the index collapse that the usage histogram shows.
k-means puts the EMA codebook on the first batch's latents, but the encoder moves fast in the first
steps and many codes fall out of use again (the early dip of the perplexity curve); the dead-code
restart re-seeds every code whose EMA count falls below 1 from the current batch, so usage
recovers within a few hundred steps and the reconstruction error is lower at the same budget.
FSQ and LFQ have no codebook to collapse: their codes are a fixed grid (FSQ) or the sign patterns
(LFQ), reached through a bounded or sign-quantised latent, so their usage comes from the encoder
alone. LFQ's entropy term pushes towards uniform use of the 2⁶ sign patterns, but only for
coordinates within 1/(4β) of zero: at lucidrains' default β = 100 this model collapsed to a single
code (test MSE 0.075, the mean image's, in the quick run), so the LFQ run here uses β = 1 and
entropy weight 0.5.</p>
"""
