"""vq demo section: a small VQ-VAE of ``kexue.vq`` on scikit-learn's 8×8 digits.

Runs of the same ``kexue.vq.models.VQVAE`` (same data, network, optimiser, budget and seed)
differ only in the quantiser: two VQ runs differ in how the codebook learns,

- **EMA + k-means + restart**: EMA codebook (γ = 0.99, Laplace ε = 1e-5), k-means++ initialisation
  on the first batch's latents, dead-code restart from batch vectors when a code's EMA count falls
  below 1 (the recipe of spec §2.4–§2.6);
- **plain codebook loss**: the paper's learned codebook, L = ‖x − x̂‖² + ‖sg(z) − e‖² +
  0.25·‖z − sg(e)‖², N(0, 1) init, no restart;

and two runs replace the VQ by the implicit-codebook quantisers of kexue-vq 0.2 at the same 64
codes: **FSQ** [4, 4, 4] (``quantizer="fsq"``) and **LFQ** with 6 bits (``quantizer="lfq"``,
commitment 0.25, entropy weight 0.5 at inverse temperature β = 1: with the defaults 0.1 and β = 100
this small model collapsed to one code in the quick run — test MSE 0.075, the mean image's — since
the entropy gradient only reaches coordinates within 1/(4β) of 0).

The section shows originals vs reconstructions, the codebook usage on the test set, the batch
perplexity during training and a table (test MSE, PSNR, perplexity, usage); then times
``kexue.vq.functional.nearest_code`` against ``torch.cdist`` + ``argmin`` and the matmul
expansion on one shape (the full comparison lives in ``python -m tools.bench.vq``). The digits ship with
scikit-learn: nothing is downloaded.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ._report import Context, Section, html_table, run_jobs, text_table
from .pages.vq import (
    add_figures,
    intro_html,
    reading_html,
)

__all__ = ["CONFIGS", "VARIANTS", "Config", "run"]

N_TRAIN = 1437  # fixed split in the file's order: the first 1437 digits train, the last 360 test


@dataclass(frozen=True)
class Config:
    """Budget of one mode; every other setting is shared."""

    steps: int
    batch: int = 64
    lr: float = 3e-3
    hidden: int = 32
    num_codes: int = 64
    code_dim: int = 16
    trace_every: int = 10  # perplexity trace: mean batch perplexity over this many steps
    lookup_shape: tuple[int, int, int] = (16384, 1024, 64)  # (N, K, D) of the timing
    lookup_reps: int = 7


CONFIGS: dict[str, Config] = {
    "full": Config(steps=1000, lookup_reps=5),
    "quick": Config(steps=250, lookup_shape=(4096, 512, 64), lookup_reps=3),
    "smoke": Config(steps=12, trace_every=4, lookup_shape=(256, 32, 8), lookup_reps=2),
}

#: Variant name → quantiser options of VQVAE.
VARIANTS: dict[str, dict[str, Any]] = {
    "EMA + k-means + restart": {
        "decay": 0.99,
        "kmeans_init": True,
        "dead_code_threshold": 1.0,
    },
    "plain codebook loss": {"decay": None},
    "FSQ [4, 4, 4]": {"quantizer": "fsq", "levels": [4, 4, 4]},
    "LFQ 6 bits": {"quantizer": "lfq", "inv_temperature": 1.0, "entropy_weight": 0.5},
}


@dataclass(frozen=True)
class RunSpec:
    """One training run; picklable, so that it can go to a worker process."""

    variant: str
    cfg: Config
    seed: int


def load_digits() -> tuple[Tensor, Tensor]:
    """(train (1437, 1, 8, 8), test (360, 1, 8, 8)) in [0, 1] from ``sklearn.datasets``."""
    from sklearn.datasets import load_digits as sk_load_digits

    x = torch.tensor(sk_load_digits().images, dtype=torch.float32).div(16.0).unsqueeze(1)
    return x[:N_TRAIN], x[N_TRAIN:]


def _train_job(spec: RunSpec, tick: Callable[[int], None]) -> dict[str, Any]:
    from kexue.vq.models import VQVAE

    cfg = spec.cfg
    train, test = load_digits()
    torch.manual_seed(spec.seed)
    gen = torch.Generator().manual_seed(spec.seed)
    model = VQVAE(
        1,
        hidden=cfg.hidden,
        res_blocks=1,
        downsample=1,
        num_codes=cfg.num_codes,
        code_dim=cfg.code_dim,
        output_activation="sigmoid",
        **VARIANTS[spec.variant],
    )
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    trace_steps: list[int] = []
    trace_ppl: list[float] = []
    window: list[float] = []
    t0 = time.perf_counter()
    for step in range(1, cfg.steps + 1):
        batch = train[torch.randint(0, len(train), (cfg.batch,), generator=gen)]
        res = model.loss(batch)
        opt.zero_grad(set_to_none=True)
        res.total.backward()
        opt.step()
        window.append(float(res.quantizer_output.stats["perplexity"]))
        if step % cfg.trace_every == 0 or step == cfg.steps:
            trace_steps.append(step)
            trace_ppl.append(statistics.fmean(window))
            window.clear()
        tick(1)
    wall_s = time.perf_counter() - t0
    model.eval()
    with torch.no_grad():
        x_hat, out = model(test)
    mse = float(F.mse_loss(x_hat, test))
    counts = torch.bincount(out.indices.flatten(), minlength=cfg.num_codes)
    from kexue.vq.functional import perplexity, usage

    return {
        "variant": spec.variant,
        "test_mse": mse,
        "psnr_db": 10.0 * torch.log10(torch.tensor(1.0 / mse)).item(),  # pixel range 1
        "perplexity": float(perplexity(counts.float())),
        "usage": float(usage(counts.float())),
        "counts": counts.tolist(),
        "trace_steps": trace_steps,
        "trace_perplexity": trace_ppl,
        "reconstructions": x_hat[:16, 0].clone(),
        "wall_s": wall_s,
    }


def _describe(spec: RunSpec, r: dict[str, Any]) -> str:
    return (
        f"  {spec.variant}: test MSE {r['test_mse']:.4f}, perplexity {r['perplexity']:.1f}, "
        f"usage {100 * r['usage']:.0f}% ({r['wall_s']:.1f} s)"
    )


def _lookup_timings(cfg: Config, seed: int) -> list[list[Any]]:
    """Median ms of three ways to find the nearest code of N vectors among K (one thread)."""
    from kexue.vq.functional import nearest_code

    n, k, d = cfg.lookup_shape
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=gen)
    codes = torch.randn(k, d, generator=gen)

    def kexue() -> Tensor:
        return nearest_code(x, codes)[0]

    def cdist() -> Tensor:
        return torch.cdist(x, codes).argmin(dim=1)

    def matmul() -> Tensor:
        scores = x.pow(2).sum(1, keepdim=True) - 2 * x @ codes.T + codes.pow(2).sum(1)
        return scores.argmin(dim=1)

    fns = {
        "kexue nearest_code (reference, chunked)": kexue,
        "torch.cdist + argmin": cdist,
        "matmul expansion x² − 2xe + e², argmin": matmul,
    }
    ref = kexue()
    times: dict[str, list[float]] = {name: [] for name in fns}
    agree: dict[str, float] = {}
    for name, fn in fns.items():
        agree[name] = float((fn() == ref).double().mean())
    for _ in range(cfg.lookup_reps):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    base = statistics.median(times["torch.cdist + argmin"])
    rows = []
    for name in fns:
        med = statistics.median(times[name])
        extra_mib = n * k * 4 / 2**20 if name != next(iter(fns)) else None
        rows.append(
            [
                name,
                f"{1e3 * med:.1f}",
                f"{base / med:.2f}",
                f"{100 * agree[name]:.2f}",
                "N×K never formed" if extra_mib is None else f"{extra_mib:.0f} (N×K fp32)",
            ]
        )
    return rows


def _lookup_table(cfg: Config, seed: int) -> tuple[list[str], list[list[Any]], str]:
    """(headers, rows, caption) of the nearest-code search timings on ``cfg.lookup_shape``."""
    n, k, d = cfg.lookup_shape
    lookup_rows = _lookup_timings(cfg, seed)
    lookup_headers = [
        "nearest-code search",
        "median ms",
        "× cdist speed",
        "agreement %",
        "extra MiB",
    ]
    lookup_caption = (
        f"Table 2. Nearest code of N = {n} random vectors among K = {k} codes, D = {d}, fp32, "
        f"one CPU thread, median of {cfg.lookup_reps}. Agreement: share of indices equal to "
        "kexue's (exact fp32 argmin). The full comparison, with vector-quantize-pytorch and "
        "peak memory, is python -m tools.bench.vq (packages/vq/BENCHMARKS.md)."
    )
    return lookup_headers, lookup_rows, lookup_caption


def run(ctx: Context) -> Section:
    """Train both variants, then tabulate and plot them; time the lookup on one shape."""
    from kexue.vq.__about__ import __version__ as vq_version

    cfg = CONFIGS[ctx.mode]
    specs = [RunSpec(v, cfg, ctx.seed) for v in VARIANTS]
    runs = run_jobs(
        ctx,
        _train_job,
        specs,
        label=f"vq: {len(specs)} VQ-VAE runs",
        units=[cfg.steps] * len(specs),
        describe=_describe,
    )
    train, test = load_digits()
    mean_mse = float(F.mse_loss(train.mean(0, keepdim=True).expand_as(test), test))

    section = Section("vq", f"kexue-vq {vq_version}: VQ-VAE on 8×8 digits")
    section.add_html(intro_html(cfg, VARIANTS))
    headers = ["quantiser", "test MSE", "PSNR dB", "perplexity", "usage %", "time s"]
    rows = [
        [
            r["variant"],
            f"{r['test_mse']:.4f}",
            f"{r['psnr_db']:.1f}",
            f"{r['perplexity']:.1f}",
            f"{100 * r['usage']:.0f}",
            f"{r['wall_s']:.1f}",
        ]
        for r in runs
    ]
    rows.append(["(mean training image, no model)", f"{mean_mse:.4f}", "", "", "", ""])
    caption = (
        f"Table 1. Test set (360 digits, pixels in [0, 1]; PSNR = 10·log10(1/MSE)) after "
        f"{cfg.steps} steps, K = {cfg.num_codes}, D = {cfg.code_dim}, seed {ctx.seed}; "
        "perplexity and usage of the 360 × 16 test tokens."
    )
    section.add_html(html_table(headers, rows, caption=caption))
    section.text.append(caption + "\n" + text_table(headers, rows))
    add_figures(section, test, runs, cfg)
    lookup_headers, lookup_rows, lookup_caption = _lookup_table(cfg, ctx.seed)
    section.add_html(html_table(lookup_headers, lookup_rows, caption=lookup_caption))
    section.text.append(lookup_caption + "\n" + text_table(lookup_headers, lookup_rows))
    section.add_html(reading_html())
    section.results = {
        "config": {
            **{k2: list(v) if isinstance(v, tuple) else v for k2, v in cfg.__dict__.items()},
            "seed": ctx.seed,
            "mode": ctx.mode,
            "variants": VARIANTS,
        },
        "mean_image_test_mse": mean_mse,
        "runs": [{k2: v for k2, v in r.items() if k2 != "reconstructions"} for r in runs],
        "lookup": {"headers": lookup_headers, "rows": lookup_rows},
    }
    return section
