"""GAN-QP's claim on real images: six losses on scikit-learn's 8×8 digits, each with its recipe.

The question of post 6163: does GAN-QP, without a Lipschitz constraint, train at least as well
as WGAN(-GP)? Small DCGAN-style G and D (``tools/workloads/gan_digits.py``) train with GAN-QP
(L1, RMS-L2), WGAN-GP, WGAN-div, SGAN + R1 and hinge, each with its published recipe (critic
steps per G step, optimiser, lr, betas; sources in the table), the same networks and initial
weights, and the same CPU-time budget per run (process CPU seconds, one torch thread: fair on a
shared machine, where wall-clock budgets are not). Scores: FD, KID and PRDC over the 64-d features
of a small classifier trained in this script, and the classifier's confident share and class
balance of the samples. Mean ± sd over seeds.

    python -m tools.bench.gan_losses.digits --quick            # smoke check, seconds per run
    OMP_NUM_THREADS=1 python -m tools.bench.gan_losses.digits --write   # BENCHMARKS.md block
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import torch

from tools.bench._common import BenchBlock, markdown_table
from tools.workloads.gan_digits import (
    DIGITS_LOSSES,
    Classifier,
    DigitsConfig,
    digits_data,
    score_samples,
    train_classifier,
    train_digits_gan,
)

BLOCK = BenchBlock(
    "gan-losses", "bench:gan-losses-digits", __spec__.name, anchors=("scikit-learn",)
)

_STATE: dict[str, Any] = {}


def _init(clf_state: dict[str, Any], real_feats: torch.Tensor) -> None:
    torch.set_num_threads(1)
    clf = Classifier()
    clf.load_state_dict(clf_state)
    clf.eval()
    x_train = digits_data()[0]
    _STATE.update(clf=clf, real_feats=real_feats, x_train=x_train)


def _job(args: tuple[str, int, DigitsConfig]) -> dict[str, Any]:
    name, seed, cfg = args
    r = train_digits_gan(
        DIGITS_LOSSES[name], _STATE["x_train"], _STATE["real_feats"], _STATE["clf"], cfg, seed=seed
    )
    return {
        "loss": r.loss,
        "seed": r.seed,
        "recipe": r.recipe,
        "g_steps": r.g_steps,
        "cpu_s": r.cpu_s,
        "wall_s": r.wall_s,
        "scores": r.scores,
        "diverged_at": r.diverged_at,
        "samples": r.samples,
    }


def mean_sd(values: list[float], fmt: str) -> str:
    """``mean ± sd`` of the finite values (one value alone; ``—`` if none)."""
    values = [v for v in values if v == v]
    if not values:
        return "—"
    if len(values) == 1:
        return format(values[0], fmt)
    return f"{format(statistics.mean(values), fmt)} ± {format(statistics.stdev(values), fmt)}"


_KEYS = ("fd", "kid", "precision", "recall", "density", "coverage", "confident", "class_entropy")
_FMTS = {"fd": ".1f", "kid": ".0f", "class_entropy": ".2f"}
_HEADERS = [
    "loss",
    "recipe (D steps : G step, optimiser — source)",
    "G steps",
    "FD ↓",
    "KID ↓",
    "precision",
    "recall",
    "density",
    "coverage",
    "confident",
    "class entropy",
    "diverged at",
]


def _table_rows(
    names: list[str], results: list[dict[str, Any]], reference: dict[str, float]
) -> list[list[str]]:
    """One row per loss (mean ± sd over seeds) and the held-out real digits as the last row."""
    rows = []
    for n in names:
        rs = [r for r in results if r["loss"] == n]
        loss = DIGITS_LOSSES[n]
        cells = [
            n,
            f"{loss.recipe.describe()} — {loss.recipe.source}",
            mean_sd([float(r["g_steps"]) for r in rs], ".0f"),
        ]
        cells += [
            mean_sd([r["scores"].get(k, float("nan")) for r in rs], _FMTS.get(k, ".3f"))
            for k in _KEYS
        ]
        div = [str(r["diverged_at"]) for r in rs if r["diverged_at"]]
        cells.append(", ".join(div) if div else "—")
        rows.append(cells)
    ref_cells = ["real test digits (360)", "—", "—"]
    ref_cells += [format(reference[k], _FMTS.get(k, ".3f")) for k in _KEYS] + ["—"]
    return [*rows, ref_cells]


def run(args: argparse.Namespace) -> tuple[str, list[dict[str, Any]]]:
    torch.set_num_threads(1)
    cfg = DigitsConfig(budget_cpu_s=args.budget)
    t0 = time.perf_counter()
    x_tr, y_tr, x_te, y_te = digits_data()
    clf, acc = train_classifier(x_tr, y_tr, x_te, y_te, epochs=cfg.classifier_epochs)
    with torch.no_grad():
        real_feats = clf.features(x_tr)
    reference = score_samples(x_te, real_feats, clf, cfg=cfg, seed=0)
    seeds = list(range(args.seeds))
    names = [n for n in DIGITS_LOSSES if not args.losses or n in args.losses.split(",")]
    jobs = [(n, s, cfg) for s in seeds for n in names]
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        args.jobs, mp_context=ctx, initializer=_init, initargs=(clf.state_dict(), real_feats)
    ) as pool:
        results = list(pool.map(_job, jobs))
    for r in results:
        print(
            f"{r['loss']:>12} seed {r['seed']}: {r['g_steps']} G steps, FD {r['scores']['fd']:.1f}",
            flush=True,
        )
    wall = time.perf_counter() - t0
    facts = BLOCK.facts(
        args.argv,
        mode=f"{'quick' if args.quick else 'full'}; {len(jobs)} runs, {args.jobs} worker "
        f"processes; wall time {wall / 60:.1f} min",
        threads=1,
        load=True,
    )
    lines = [
        "## Digits: GAN-QP against WGAN-GP, WGAN-div, SGAN + R1 and hinge (8×8 sklearn digits)",
        "",
        *facts,
        f"- Budget: {args.budget:g} CPU seconds per run (process time, 1 thread), {args.seeds} "
        f"seeds (0…{args.seeds - 1}); batch {cfg.batch}, z {cfg.z_dim}; G: 2 ConvT + BN, D: 2 "
        "convs + linear, no normalisation; same initial weights for every loss",
        f"- Scores: {cfg.n_samples} samples against the 1437 training digits over the 64-d "
        f"features of a CNN classifier trained here (test accuracy {acc:.3f}); KID "
        f"{cfg.kid_subsets} subsets of {cfg.kid_subset_size}; PRDC k = 5; confident = share of "
        "samples the classifier labels with p ≥ 0.9; class entropy of its labels (uniform = "
        "2.303). The last row scores the 360 held-out real digits the same way (FD there is "
        "inflated by the smaller N).",
        "",
        markdown_table(_HEADERS, _table_rows(names, results, reference)),
        "",
    ]
    return "\n".join(lines), results


def main(argv: list[str] | None = None) -> int:
    ap = BLOCK.parser(__doc__, quick_help="2 CPU seconds per run, 1 seed", threads=None)
    ap.add_argument("--budget", type=float, default=15.0, help="CPU seconds per run")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=2, help="worker processes")
    ap.add_argument("--losses", default="", help="comma-separated subset (default all)")
    args = ap.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if args.quick:
        args.budget, args.seeds = 2.0, 1
    text, _ = run(args)
    BLOCK.publish(text, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
