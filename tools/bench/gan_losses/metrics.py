"""Benchmark of ``kexue.gan_losses.metrics`` (FD, KID, PRDC) against the reference formulas.

Needs: torch, numpy, scipy, scikit-learn (the bench and default environments have them).

What it measures, on N = M = 10,000 features of dimension 64 (real ~ N(0, I), fake ~ N(0.1, 1.1²I)
by default): the wall time of each metric, ours against the usual implementations (paraphrased
here, not imported, so that nothing is downloaded):

- FD: pytorch-fid / TTUR's route — numpy covariances, ``scipy.linalg.sqrtm`` of Σ₁Σ₂ (with the εI
  retry when non-finite) and the real part;
- KID: stylegan2-ada's ``compute_kid`` (numpy, 100 subsets of 1000, ``(xᵀy/d + 1)³``) on the
  subset indices our generator drew, so the values agree to rounding;
- PRDC: clovaai's ``compute_prdc`` (``sklearn.metrics.pairwise_distances``, ``np.partition``
  for the k-th neighbour, k = 5).

The value columns compare the two on the same data. The timings alternate ours and the reference
(``interleaved``), medians over ``--reps``; the machine is shared, so read the ratio.

    python -m tools.bench.gan_losses.metrics --quick
    python -m tools.bench.gan_losses.metrics --write      # BENCHMARKS.md block
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kexue.gan_losses.metrics import frechet_distance, kernel_inception_distance, prdc
from tools.bench._common import (
    benchmarks_header,
    benchmarks_md,
    block_markers,
    interleaved,
    load_average,
    machine_line,
    markdown_table,
    publish,
    quartiles,
    run_facts,
    versions,
)

BENCHMARKS_MD = benchmarks_md("gan-losses")
START, END = block_markers("bench:gan-losses-metrics")
HEADER = benchmarks_header("kexue-gan-losses")


def ref_fd(x: np.ndarray, y: np.ndarray) -> float:
    """pytorch-fid's ``calculate_frechet_distance`` (paraphrased): sqrtm of the product."""
    from scipy import linalg

    mu1, mu2 = x.mean(0), y.mean(0)
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    covmean, _ = linalg.sqrtm(s1.dot(s2), disp=False)
    if not np.isfinite(covmean).all():
        offset = np.eye(s1.shape[0]) * 1e-6
        covmean = linalg.sqrtm((s1 + offset).dot(s2 + offset))
    covmean = covmean.real
    diff = mu1 - mu2
    return float(diff.dot(diff) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def ref_kid(real: np.ndarray, fake: np.ndarray, indices: list[tuple[Any, Any]]) -> float:
    """stylegan2-ada's ``compute_kid`` loop (paraphrased) on given subset indices."""
    n = real.shape[1]
    m = len(indices[0][0])
    t = 0.0
    for i_fake, i_real in indices:
        x, y = fake[i_fake], real[i_real]
        a = (x @ x.T / n + 1) ** 3 + (y @ y.T / n + 1) ** 3
        b = (x @ y.T / n + 1) ** 3
        t += (a.sum() - np.diag(a).sum()) / (m - 1) - b.sum() * 2 / m
    return float(t / len(indices) / m)


def ref_prdc(real: np.ndarray, fake: np.ndarray, k: int) -> dict[str, float]:
    """clovaai's ``compute_prdc`` (paraphrased): sklearn distances, np.partition radii."""
    from sklearn.metrics import pairwise_distances

    def radii(x: np.ndarray) -> np.ndarray:
        d = pairwise_distances(x, x, n_jobs=1)
        return np.partition(d, k, axis=-1)[:, k]

    r_real, r_fake = radii(real), radii(fake)
    d = pairwise_distances(real, fake, n_jobs=1)
    return {
        "precision": float((d < r_real[:, None]).any(axis=0).mean()),
        "recall": float((d < r_fake[None, :]).any(axis=1).mean()),
        "density": float((1.0 / k) * (d < r_real[:, None]).sum(axis=0).mean()),
        "coverage": float((d.min(axis=1) < r_real).mean()),
    }


def kid_indices(n_real: int, n_fake: int, m: int, subsets: int, seed: int) -> list[Any]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(subsets):
        i_fake = torch.randperm(n_fake, generator=g)[:m].numpy()
        i_real = torch.randperm(n_real, generator=g)[:m].numpy()
        out.append((i_fake, i_real))
    return out


def _rows(
    values: dict[str, Any], times: dict[str, list[float]], cpu: dict[str, list[float]]
) -> list[list[str]]:
    """Table rows: CPU and wall medians of ours vs the reference formula, values, agreement."""
    rows = []
    for metric in ("fd", "kid", "prdc"):
        ours, ref = values[f"{metric} ours"], values[f"{metric} ref"]
        q_o, q_r = quartiles(times[f"{metric} ours"]), quartiles(times[f"{metric} ref"])
        if metric == "prdc":
            shown_o = " / ".join(f"{ours[key]:.4f}" for key in ours)
            shown_r = " / ".join(f"{ref[key]:.4f}" for key in ref)
            worst = max(abs(ours[key] - ref[key]) for key in ours)
            agree = "identical" if worst == 0 else f"max abs {worst:.1e}"
        else:
            shown_o, shown_r = f"{ours:.10g}", f"{ref:.10g}"
            agree = f"rel {abs(ours - ref) / max(abs(ref), 1e-300):.1e}"
        cpu_o = statistics.median(cpu[f"{metric} ours"][1:])
        cpu_r = statistics.median(cpu[f"{metric} ref"][1:])
        rows.append(
            [
                metric.upper(),
                f"{cpu_o:.3f}",
                f"{cpu_r:.3f}",
                f"{q_o[1]:.3f} ({q_o[0]:.3f}–{q_o[2]:.3f})",
                f"{q_r[1]:.3f} ({q_r[0]:.3f}–{q_r[2]:.3f})",
                f"{q_r[1] / q_o[1]:.2f}×",
                shown_o,
                shown_r,
                agree,
            ]
        )
    return rows


def run(args: argparse.Namespace) -> str:
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    real = torch.randn(args.n, args.dim, generator=g, dtype=torch.float64)
    fake = torch.randn(args.n, args.dim, generator=g, dtype=torch.float64) * 1.1 + 0.1
    real_np, fake_np = real.numpy(), fake.numpy()
    m = min(args.n, 1000)
    indices = kid_indices(args.n, args.n, m, args.subsets, seed=1)

    def kid_ours() -> float:
        gen = torch.Generator().manual_seed(1)
        return kernel_inception_distance(real, fake, subsets=args.subsets, generator=gen)[0].item()

    fns = {
        "fd ours": lambda: frechet_distance(real, fake).item(),
        "fd ref": lambda: ref_fd(real_np, fake_np),
        "kid ours": kid_ours,
        "kid ref": lambda: ref_kid(real_np, fake_np, indices),
        "prdc ours": lambda: prdc(real, fake, k=5),
        "prdc ref": lambda: ref_prdc(real_np, fake_np, 5),
    }
    cpu: dict[str, list[float]] = {name: [] for name in fns}

    def with_cpu(name: str, fn: Any) -> Any:
        def call() -> Any:
            c0 = time.process_time()
            out = fn()
            cpu[name].append(time.process_time() - c0)
            return out

        return call

    t0 = time.perf_counter()
    timed = {name: with_cpu(name, fn) for name, fn in fns.items()}
    times = interleaved(timed, warmup=1, reps=args.reps, device=torch.device("cpu"))
    wall = time.perf_counter() - t0
    values = {name: fn() for name, fn in fns.items()}
    rows = _rows(values, times, cpu)
    command = (
        "python -m tools.bench.gan_losses.metrics"
        + (f" --threads {args.threads}" if args.threads != 1 else "")
        + (" --write" if args.write else "")
    )
    facts = run_facts(
        command,
        mode=f"{'quick' if args.quick else 'full'}; {args.reps} timed runs per variant, round "
        f"robin; wall time {wall:.0f} s",
        machine=machine_line(threads=args.threads) + f"; load average at the end {load_average()}",
        versions=versions("kexue-gan-losses", "numpy", "scipy", "scikit-learn"),
    )
    lines = [
        f"## Sample metrics: N = M = {args.n:,} features of dimension {args.dim}",
        "",
        *facts,
        f"- Data: real ~ N(0, I), fake ~ N(0.1, 1.1²·I), float64; KID {args.subsets} subsets of "
        f"{m}; PRDC k = 5",
        "- References (paraphrased in the script): FD — pytorch-fid (`scipy.linalg.sqrtm`); KID — "
        "stylegan2-ada `compute_kid` on the same subset indices; PRDC — clovaai `compute_prdc` "
        "(sklearn distances).",
        "- CPU s: process CPU time of one call (median over the timed runs, one thread), what an "
        "idle core would take; the wall times are inflated by the other jobs on this machine.",
        "",
        markdown_table(
            [
                "metric",
                "ours CPU s",
                "reference CPU s",
                "ours wall s (p25–p75)",
                "reference wall s (p25–p75)",
                "ref / ours (wall)",
                "ours value",
                "reference value",
                "agreement",
            ],
            rows,
        ),
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="2,000 rows, 10 subsets, 1 rep")
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--subsets", type=int, default=100)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "1")))
    ap.add_argument("--write", action="store_true")
    ap.add_argument("--benchmarks-md", type=Path, default=BENCHMARKS_MD)
    args = ap.parse_args(argv)
    if args.quick:
        args.n, args.subsets, args.reps = 2000, 10, 1
    publish(run(args), args.benchmarks_md, START, END, write=args.write, header=HEADER)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
