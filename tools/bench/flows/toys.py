"""2-D toy densities: kexue NSF (autoregressive and coupling) vs zuko ``NSF`` and normflows' AR
spline at ≈ equal parameters and equal steps (spec flows-splines §6.1; issue 18's target).

For every dataset and seed, all models train in lockstep on the same fresh batches (Adam with
cosine decay, batch 512) and are scored by the mean test NLL on a seeded test set; step time is
the median wall time of forward + backward + Adam, interleaved. The target: kexue's test NLL
within one standard deviation (over seeds) of the best anchor or better, and its step time no
worse than zuko's. kexue's affine MAF (``--models``) can be added as a non-spline reference.

    OMP_NUM_THREADS=1 python -m tools.bench.flows.toys --quick   # smoke (< 1 min)
    OMP_NUM_THREADS=1 python -m tools.bench.flows.toys --write   # full, rewrites the block
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

from tools.bench._common import BenchBlock, markdown_table, quartiles
from tools.bench.flows import lockstep_facts
from tools.workloads.flows_toys import (
    DATASETS,
    FLOORS,
    MODELS,
    build_toy,
    count_parameters,
    sample_toy,
    test_nll,
    train_toys,
)

BLOCK = BenchBlock(
    "flows", "bench:toys", __spec__.name, anchors=("zuko", "normflows", "scikit-learn")
)
KEXUE_SPLINES = ("kexue NSF-AR", "kexue NSF-coupling")
ANCHORS = ("zuko NSF", "normflows AR-RQS")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = BLOCK.parser(__doc__, quick_help="smoke: 30 steps, 1 seed, 10k test points", threads=None)
    p.add_argument("--steps", type=int, default=1500, help="training steps per run (default 1500)")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--test-size", type=int, default=100_000)
    p.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    p.add_argument("--save", type=Path, help="also write the raw results as JSON here")
    p.add_argument(
        "--load",
        type=Path,
        nargs="+",
        help="render (and --write) results saved by runs with --save (e.g. one per dataset run "
        "in parallel) instead of training",
    )
    args = p.parse_args(argv)
    if args.quick:
        args.steps, args.seeds, args.test_size = 30, 1, 10_000
    return args


def run(args: argparse.Namespace) -> dict[str, Any]:
    t_start = time.perf_counter()
    out: dict[str, Any] = {"datasets": {}, "params": {}}
    for ds in args.datasets:
        x_test = sample_toy(ds, args.test_size, generator=torch.Generator().manual_seed(12345))
        per: dict[str, dict[str, list[float]]] = {m: {"nll": [], "step": []} for m in args.models}
        for seed in range(args.seeds):
            models = [build_toy(m, seed=seed) for m in args.models]
            out["params"] = {m.name: count_parameters(m.module) for m in models}
            res = train_toys(models, ds, steps=args.steps, seed=seed)
            for m, r in zip(models, res):
                per[m.name]["nll"].append(test_nll(m, x_test))
                per[m.name]["step"] += r.step_s
                if r.nonfinite_steps:
                    per[m.name].setdefault("nonfinite", []).append(r.nonfinite_steps)
            line = ", ".join(f"{n} {per[n]['nll'][-1]:.3f}" for n in args.models)
            print(
                f"  {ds} seed {seed}: {line} ({time.perf_counter() - t_start:.0f} s)",
                file=sys.stderr,
            )
        out["datasets"][ds] = per
    out["wall_s"] = time.perf_counter() - t_start
    return out


def _merge(parts: list[dict[str, Any]]) -> dict[str, Any]:
    out = dict(parts[0])
    out["datasets"] = {k: v for p in parts for k, v in p["datasets"].items()}
    out["wall_s"] = max(p["wall_s"] for p in parts)
    return out


def _mean_sd(v: list[float]) -> tuple[float, float]:
    return statistics.fmean(v), (statistics.stdev(v) if len(v) > 1 else 0.0)


def results_markdown(args: argparse.Namespace, argv: list[str], out: dict[str, Any]) -> str:
    mode = "quick (smoke: numbers are not the benchmark)" if args.quick else "full"
    lines = [
        "## 2-D toy densities: NSF vs zuko and normflows",
        "",
        *lockstep_facts(BLOCK, argv, f"{mode}; wall time {out['wall_s']:.0f} s"),
        f"- Budget: {args.steps} steps per run (the spec's 20k does not fit the shared 2-core "
        f"CPU), batch 512, Adam lr 1e-3 with cosine decay, {args.seeds} seeds; all models in "
        "lockstep on the same fresh batches, step order alternating",
        f"- Test NLL (nats) = mean −log p on {args.test_size:,} seeded test points; mean ± sd "
        "over seeds. Step = forward + backward + Adam, median (p25–p75) over all runs",
        "- Models: kexue `nsf(2)` (3 MADE spline layers, hidden (64, 64), K 8, B 5), kexue "
        "`nsf(2, kind='coupling', hidden=(72, 72))` (3 parity spline couplings), kexue `maf(2)` "
        "(affine reference, when run), zuko `NSF(2)` defaults (3 transforms, (64, 64), K 8, B 5), normflows "
        "`AutoregressiveRationalQuadraticSpline(2, 1, 48, num_bins=8, tail_bound=3)` × 3 (B = 3 "
        "as the spec says: the checkerboard reaches ±4, where its splines are identity tails)",
        "",
    ]
    params = out["params"]
    verdicts = []
    for ds, per in out["datasets"].items():
        floor = FLOORS[ds]
        lines += [f"**{ds}** (floor {floor:.3f} nats)" if floor else f"**{ds}**", ""]
        rows = []
        for m in per:
            mu, sd = _mean_sd(per[m]["nll"])
            p25, med, p75 = quartiles(per[m]["step"])
            rows.append(
                [m, f"{params[m]:,}", f"{mu:.4f} ± {sd:.4f}", f"{1e3 * med:.2f}",
                 f"{1e3 * p25:.2f}–{1e3 * p75:.2f}"]
            )  # fmt: skip
        lines += [markdown_table(["model", "params", "test NLL", "step ms", "p25–p75"], rows), ""]
        best = min(ANCHORS, key=lambda a: statistics.fmean(per[a]["nll"]))
        b_mu, b_sd = _mean_sd(per[best]["nll"])
        zuko_ms = quartiles(per["zuko NSF"]["step"])[1]
        for k in KEXUE_SPLINES:
            mu, _ = _mean_sd(per[k]["nll"])
            ms = quartiles(per[k]["step"])[1]
            ok_nll = mu <= b_mu + b_sd
            ok_t = ms <= zuko_ms
            verdicts.append(
                f"- {ds}, {k}: NLL {mu:.4f} vs best anchor {best} {b_mu:.4f} ± {b_sd:.4f} — "
                f"{'met' if ok_nll else 'NOT met'}; step {1e3 * ms:.2f} ms vs zuko "
                f"{1e3 * zuko_ms:.2f} ms (zuko/kexue = {zuko_ms / ms:.2f}×) — "
                f"{'met' if ok_t else 'NOT met'}"
            )
    lines += ["Targets (NLL within one sd of the best anchor or better; step no slower than zuko):",
              "", *verdicts]  # fmt: skip
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    torch.set_num_threads(1)
    if args.load:
        out = _merge([json.loads(p.read_text()) for p in args.load])
        args.steps, args.seeds, args.test_size = out["steps"], out["seeds"], out["test_size"]
        saved, keep, skip = out["argv"], [], 0
        for a in saved:  # drop the per-process --datasets X / --save Y
            if skip:
                skip -= 1
            elif a in ("--datasets", "--save"):
                skip = 1
            else:
                keep.append(a if " " not in a else f'"{a}"')
        argv = [
            *keep,
            "--datasets <one each> --save <dataset>.json (one process per dataset, in "
            "parallel), then --load <the JSON files> --write",
        ]
    else:
        out = run(args)
        out.update(steps=args.steps, seeds=args.seeds, test_size=args.test_size, argv=argv)
        if args.save:
            args.save.write_text(json.dumps(out))
    text = results_markdown(args, argv, out)
    BLOCK.publish(text, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
