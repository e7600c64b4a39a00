"""vae demo section: the one-step clustering VAE, conditional samples, VAE vs GLANN (kexue.vae).

Recipes and data are those of the benchmark (``tools/workloads/vae_digits.py``); the demo's budget is
a fraction of the benchmark's (``python -m tools.bench.vae``), so its scores are lower than the
tables in ``packages/vae/BENCHMARKS.md``.
"""

from __future__ import annotations

import time
from typing import Any

import torch

from kexue.vae import evaluate_clustering, sample_quality
from kexue.vae.__about__ import __version__ as vae_version
from tools.workloads.vae_digits import (
    CLUSTER_RECIPE,
    digits,
    loss_net,
    metric_net,
    train_clustering,
    train_glann,
    train_vae,
)

from ._report import Context, Section, figure_html, html_table, text_table
from .pages.vae import grids_figure, intro_html

__all__ = ["BUDGETS", "run"]

BUDGETS: dict[str, dict[str, int]] = {
    "full": {"cluster": 2500, "gmm": 10, "vae": 1500, "nets": 600, "glo": 1200, "imle": 600},
    "quick": {"cluster": 300, "gmm": 2, "vae": 200, "nets": 150, "glo": 150, "imle": 100},
    "smoke": {"cluster": 3, "gmm": 1, "vae": 3, "nets": 3, "glo": 3, "imle": 3},
}


def _cluster_panels(model: Any, x_test: torch.Tensor) -> tuple[list[Any], list[Any]]:
    pred = model.cluster(x_test)
    members = [x_test[pred == k][:16] for k in range(model.clusters)]
    gen = torch.Generator().manual_seed(0)
    samples = [model.sample(16, cluster=k, generator=gen) for k in range(model.clusters)]
    return members, samples


def run(ctx: Context) -> Section:
    """Train the clustering VAE, a Gaussian VAE and GLANN briefly; grids and scores."""
    b = BUDGETS[ctx.mode]
    t0 = time.perf_counter()
    data = digits()
    ctx.progress.note(f"vae: clustering VAE, {b['cluster']} steps")
    half = max(b["cluster"] // 2, 1)  # warm-up, then the clustering loss
    model = train_clustering(
        data, CLUSTER_RECIPE, ctx.seed, steps=half, warmup=half, gmm_inits=b["gmm"],
        classifier_steps=min(CLUSTER_RECIPE.classifier_steps, half // 2),
    )  # fmt: skip
    scores = evaluate_clustering(model.cluster(data.x_test), data.y_test)
    ctx.progress.note("vae: Gaussian VAE, feature nets, GLANN")
    vae = train_vae(data, "gaussian_learned", ctx.seed, steps=b["vae"])
    metric, perceptual = metric_net(data, steps=b["nets"]), loss_net(data, steps=b["nets"])
    glann = train_glann(
        data, ctx.seed, net=perceptual, glo_steps=b["glo"], imle_steps=b["imle"], pool=256
    )
    n = data.x_test.shape[0]
    gen = torch.Generator().manual_seed(ctx.seed + 7)
    candidates = {
        "Gaussian VAE": vae.sample(n, generator=gen),
        "clustering VAE (per-cluster)": model.sample(n, generator=gen),
        "GLANN": glann.sample(n, generator=gen),
    }
    quality = {
        k: sample_quality(metric, data.x_test, v, generator=torch.Generator().manual_seed(1))
        for k, v in candidates.items()
    }
    members, samples = _cluster_panels(model, data.x_test)
    section = Section("vae", f"kexue-vae {vae_version}: clustering VAE, conditional samples, GLANN")
    section.add_html(intro_html(b))
    fig = grids_figure(
        [("test digits by cluster", members), ("samples per cluster", samples)], per_row=4
    )
    section.add_html(figure_html(fig, alt="digits grouped by cluster and conditional samples"))
    fig = grids_figure([(k, [v[:16]]) for k, v in candidates.items()], per_row=4)
    section.add_html(figure_html(fig, alt="unconditional samples of three models"))
    headers = ["clusters", "Hungarian ACC", "purity", "NMI", "ARI", "clusters used"]
    rows = [["test (360)", *(f"{scores[k]:.3f}" for k in ("acc", "purity", "nmi", "ari")),
             scores["clusters_used"]]]  # fmt: skip
    caption = "clustering of the held-out digits (k-means on pixels: ACC 0.805)"
    section.add_html(html_table(headers, rows, caption=caption))
    section.text.append(caption + "\n" + text_table(headers, rows))
    headers = ["samples (360)", "FD ×100", "KID ×1e3", "precision", "recall", "coverage"]
    rows = [
        [k, f"{100 * q['fd']:.2f}", f"{1e3 * q['kid']:.2f} ± {1e3 * q['kid_sd']:.2f}",
         f"{q['precision']:.2f}", f"{q['recall']:.2f}", f"{q['coverage']:.2f}"]
        for k, q in quality.items()
    ]  # fmt: skip
    caption = "sample quality vs the 360 test digits over the metric classifier's features"
    section.add_html(html_table(headers, rows, caption=caption))
    section.text.append(caption + "\n" + text_table(headers, rows))
    section.results = {
        "mode": ctx.mode, "budget": b, "clustering": scores, "samples": quality,
        "wall_s": round(time.perf_counter() - t0, 2),
    }  # fmt: skip
    return section
