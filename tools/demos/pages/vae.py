"""The vae section's page: image grids per cluster, conditional samples, VAE vs GLANN samples."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


def _mosaic(images: Tensor, rows: int, cols: int) -> Tensor:
    """``(rows·cols, 1, 8, 8)`` (missing cells blank) → one image with 1-pixel gaps."""
    cells = torch.zeros(rows * cols, 8, 8)
    cells[: images.shape[0]] = images[: rows * cols, 0]
    s = torch.nn.functional.pad(cells.reshape(rows, cols, 8, 8), (0, 1, 0, 1))
    return s.permute(0, 2, 1, 3).reshape(rows * 9, cols * 9)[:-1, :-1]


def grids_figure(panels: list[tuple[str, list[Tensor]]], per_row: int) -> Any:
    """One figure row per panel (a title and a list of image groups: one group per column)."""
    import matplotlib.pyplot as plt

    n_cols = max(len(groups) for _, groups in panels)
    fig, axes = plt.subplots(
        len(panels), n_cols, figsize=(1.1 * n_cols, 1.25 * len(panels) * per_row / 4),
        squeeze=False,
    )  # fmt: skip
    for ax_row, (title, groups) in zip(axes, panels):
        for j, ax in enumerate(ax_row):
            ax.set_xticks([])
            ax.set_yticks([])
            if j < len(groups):
                ax.imshow(
                    _mosaic(groups[j].clamp(0, 1), per_row, 4).numpy(),
                    cmap="gray_r", vmin=0.0, vmax=1.0, interpolation="nearest",
                )  # fmt: skip
            else:
                ax.axis("off")
            if j == 0:
                ax.set_ylabel(title, fontsize=8)
    fig.tight_layout()
    return fig


def intro_html(steps: dict[str, int]) -> str:
    return (
        "<p>The one-step clustering VAE of <a href='https://kexue.fm/archives/5887'>VAE IV</a> "
        "(encoder, a classifier on z, one Gaussian N(μ<sub>y</sub>, I) per class, a decoder) trained "
        f"for {steps['cluster']} steps on the 1437 training digits, with the package's recipe "
        "(a plain-VAE warm-up at λ = 60 on 1-pixel shifted digits, class means and classifier "
        f"started from a likelihood-selected pixel GMM of {steps['gmm']} inits, then the post's "
        "loss at λ = 10; see packages/vae/BENCHMARKS.md for what each change buys). Top: held-out test digits grouped by their cluster; middle: "
        "conditional samples z = μ<sub>y</sub> + ε decoded per cluster. Bottom: unconditional "
        f"samples of a Gaussian VAE ({steps['vae']} steps) and of GLANN (GLO with a perceptual "
        "loss over an independent digits classifier, then IMLE from noise to the GLO codes), "
        "scored by FD and KID over a separate classifier's features against the 360 test "
        "digits.</p>"
    )
