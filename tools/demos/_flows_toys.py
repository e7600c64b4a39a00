"""The flows section's 2-D part: NSF (autoregressive) and an affine MAF fitted to the toy
densities of the spline benchmark (``tools/workloads/flows_toys.py``), shown as density grids.

Rows: moons, 8 gaussians, checkerboard; columns: a histogram of the data, exp(log p) of kexue's
``nsf(2)`` and of ``maf(2)`` on a grid over [−4, 4]², and the test NLL of each beside the floor.
The budget is a small fraction of the benchmark's (``python -m tools.bench.flows.toys``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch

from tools.workloads.flows_toys import DATASETS, FLOORS, build_toy, sample_toy, test_nll, train_toys

from ._report import _pyplot

__all__ = ["TOY_STEPS", "ToyRun", "density_figure", "run_toys", "toy_table"]

TOY_STEPS = {"full": 400, "quick": 40, "smoke": 2}
TOY_MODELS = ("kexue NSF-AR", "kexue MAF (affine)")
LIMIT, CELLS = 4.0, 120


@dataclass
class ToyRun:
    dataset: str
    data: Any  # (N, 2) samples for the histogram
    densities: dict[str, Any]  # model -> (CELLS, CELLS) exp(log p) on the grid
    nll: dict[str, float]
    step_ms: dict[str, float]


def _grid() -> torch.Tensor:
    s = torch.linspace(-LIMIT, LIMIT, CELLS)
    return torch.stack(torch.meshgrid(s, s, indexing="xy"), dim=-1).reshape(-1, 2)


def run_toys(mode: str, seed: int) -> tuple[list[ToyRun], float]:
    """Train both models on every toy dataset; (runs, wall seconds)."""
    t0 = time.perf_counter()
    steps = TOY_STEPS[mode]
    n_test = 2_000 if mode == "smoke" else 20_000
    runs = []
    for ds in DATASETS:
        models = [build_toy(m, seed=seed) for m in TOY_MODELS]
        res = train_toys(models, ds, steps=steps, batch=256 if mode == "smoke" else 512, seed=seed)
        x_test = sample_toy(ds, n_test, generator=torch.Generator().manual_seed(7))
        dens = {}
        with torch.no_grad():
            for m in models:
                m.module.eval()
                dens[m.name] = m.log_prob(_grid()).exp().reshape(CELLS, CELLS).numpy()
        runs.append(
            ToyRun(
                ds,
                sample_toy(ds, 20_000, generator=torch.Generator().manual_seed(8)).numpy(),
                dens,
                {m.name: test_nll(m, x_test) for m in models},
                {r.name: 1e3 * sorted(r.step_s)[len(r.step_s) // 2] for r in res},
            )
        )
    return runs, time.perf_counter() - t0


def density_figure(runs: list[ToyRun]) -> Any:
    """Rows: datasets; columns: data histogram, then each model's density."""
    plt = _pyplot()
    cols = 1 + len(TOY_MODELS)
    fig, axes = plt.subplots(len(runs), cols, figsize=(2.3 * cols, 2.3 * len(runs)), squeeze=False)
    ext = (-LIMIT, LIMIT, -LIMIT, LIMIT)
    for ax_row, r in zip(axes, runs):
        ax_row[0].hist2d(r.data[:, 0], r.data[:, 1], bins=CELLS, range=[[-LIMIT, LIMIT]] * 2)
        ax_row[0].set_ylabel(r.dataset, fontsize=9)
        for ax, m in zip(ax_row[1:], TOY_MODELS):
            ax.imshow(r.densities[m], origin="lower", extent=ext, interpolation="nearest")
        for ax, title in zip(ax_row, ("data", *TOY_MODELS)):
            ax.set_xticks([])
            ax.set_yticks([])
            if r is runs[0]:
                ax.set_title(title.replace("kexue ", ""), fontsize=9)
    fig.tight_layout()
    return fig


def toy_table(runs: list[ToyRun], steps: int) -> tuple[list[str], list[list[Any]], str]:
    """(headers, rows, caption) of the toy NLL table."""
    headers = ["dataset", "floor (nats)", *(f"{m} NLL" for m in TOY_MODELS), "NSF / MAF step ms"]
    rows = []
    for r in runs:
        floor = FLOORS[r.dataset]
        ms = " / ".join(f"{r.step_ms[m]:.1f}" for m in TOY_MODELS)
        nll = [f"{r.nll[m]:.3f}" for m in TOY_MODELS]
        rows.append([r.dataset, "—" if floor is None else f"{floor:.3f}", *nll, ms])
    caption = (
        f"Table. Test NLL (nats) after {steps} Adam steps (batch 512, cosine decay), kexue "
        "nsf(2) (3 spline MADE layers, K 8, B 5) and maf(2) (3 affine MADE layers), ≈ 22k / 14k "
        "parameters. The benchmark (python -m tools.bench.flows.toys) compares them with zuko "
        "and normflows at equal parameters over 3 seeds."
    )
    return headers, rows, caption
