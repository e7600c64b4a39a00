"""The fair Table 1 at a budget long enough to converge: seven losses on the 8-Gaussian ring.

Each loss trains the demo's MLPs (``tools/workloads/gan_toy.py``) with its published recipe
(critic steps per G step, optimiser, lr, betas, and WGAN-GP's λ = 0.1 from its own toy script)
for the same budget of process CPU seconds (one torch thread: fair on a shared machine, where
wall-clock budgets are not), on several seeds. Scored at checkpoints on 5000 samples of a fixed
latent batch: modes covered (≥ 3σ-HQ samples on a quarter of the mode's uniform share, at least
5), VEEGAN's looser count (modes with any HQ sample) and the HQ share. Results are appended to a
JSON-lines file as runs finish (a long run can be reported part-way with ``--report-only``).

    OMP_NUM_THREADS=1 python -m tools.bench.gan_losses.fair_table --budget 90 --seeds 3 --write
    python -m tools.bench.gan_losses.fair_table --quick      # smoke check: 2 CPU s, 1 seed
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tools.bench._common import BenchBlock, markdown_table
from tools.bench.gan_losses.digits import mean_sd as _ms
from tools.workloads.gan_toy import EXTRA_LOSSES, LOSSES, MIXTURES, Config, metrics_json, train

BLOCK = BenchBlock("gan-losses", "bench:gan-losses-fair-table", __spec__.name, anchors=())
ALL_LOSSES = {**LOSSES, **EXTRA_LOSSES}


class _NoEMA:
    """Stand-in for the EMA of G: the table scores the raw G, so no CPU goes to an EMA."""

    def __init__(self, g: nn.Module) -> None:
        self.module = g

    def update(self, g: nn.Module) -> None:
        pass


def _job(args: tuple[str, int, Config]) -> dict[str, Any]:
    name, seed, cfg = args
    torch.set_num_threads(1)
    r = train(ALL_LOSSES[name], MIXTURES["ring8"], cfg, seed=seed, ema_factory=_NoEMA)
    return {
        "loss": name,
        "seed": seed,
        "budget_cpu_s": cfg.budget_cpu_s,
        "g_steps": r.g_steps,
        "cpu_s": r.cpu_s,
        "wall_s": r.wall_s,
        "diverged_at": r.diverged_at,
        "final": metrics_json(r.raw),
        "checkpoints": r.checkpoints,
    }


def _per_seed(rs: list[dict[str, Any]], cpu: float | None, key: str) -> str:
    """``a, b, c`` of ``key`` per seed at checkpoint ``cpu`` (None: the end of the run)."""
    out = []
    for r in rs:
        if cpu is None:
            out.append(str(r["final"][key]))
            continue
        hit = [c for c in r["checkpoints"] if c["cpu_s"] == cpu]
        out.append(str(hit[0][key]) if hit else "—")
    return ", ".join(out)


def table(results: list[dict[str, Any]], checkpoints: list[float]) -> str:
    """One row per loss: recipe, G steps, modes per seed at each checkpoint and at the end, HQ."""
    names = [n for n in ALL_LOSSES if any(r["loss"] == n for r in results)]
    budget = max(r["budget_cpu_s"] for r in results)
    headers = ["loss", "recipe (D:G, optimiser)", "G steps"]
    headers += [f"modes at {c:g} s" for c in checkpoints]
    headers += [
        f"modes at {budget:g} s (per seed)",
        "mean ± sd",
        "VEEGAN modes (any HQ)",
        "HQ %",
    ]
    rows = []
    for n in names:
        rs = sorted((r for r in results if r["loss"] == n), key=lambda r: r["seed"])
        loss = ALL_LOSSES[n]
        row = [
            f"{n} ({loss.settings})",
            loss.recipe.describe(),
            _ms([float(r["g_steps"]) for r in rs], ".0f"),
        ]
        row += [_per_seed(rs, c, "modes_covered") for c in checkpoints]
        row += [
            _per_seed(rs, None, "modes_covered"),
            _ms([float(r["final"]["modes_covered"]) for r in rs], ".1f"),
            _per_seed(rs, None, "modes_any"),
            _ms([100 * r["final"]["hq_fraction"] for r in rs], ".1f"),
        ]
        rows.append(row)
    return markdown_table(headers, rows)


def _run_jobs(args: argparse.Namespace, cfg: Config, results_path: Path) -> list[dict[str, Any]]:
    names = [n for n in LOSSES if not args.losses or n in args.losses.split(",")]
    seeds = [int(s) for s in args.seed_list.split(",")] if args.seed_list else range(args.seeds)
    jobs = [(n, s, cfg) for s in seeds for n in names]
    jobs += [(n, s, cfg) for n in EXTRA_LOSSES for s in range(args.extra_seeds)]
    results = []
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(args.jobs, mp_context=ctx) as pool:
        futures = [pool.submit(_job, job) for job in jobs]
        for fut in as_completed(futures):
            r = fut.result()
            results.append(r)
            with results_path.open("a") as fh:
                fh.write(json.dumps(r) + "\n")
            final = r["final"]
            print(
                f"{r['loss']:>18} seed {r['seed']}: {r['g_steps']} G steps, modes "
                f"{final['modes_covered']}/8 (any {final['modes_any']}), HQ "
                f"{100 * final['hq_fraction']:.1f} %",
                flush=True,
            )
    return results


def run(args: argparse.Namespace) -> str:
    checkpoints = [float(c) for c in args.checkpoints.split(",") if c]
    cfg = Config(
        steps=10**9,
        recipe="published",
        budget_cpu_s=args.budget,
        checkpoints_cpu_s=tuple(checkpoints),
        trace_every=10**9,
    )
    results_path = Path(args.results)
    t0 = time.perf_counter()
    if args.report_only:
        results = [json.loads(line) for line in results_path.read_text().splitlines() if line]
    else:
        results = _run_jobs(args, cfg, results_path)
    wall = time.perf_counter() - t0
    facts = BLOCK.facts(
        args.argv,
        mode=f"{len(results)} runs, {args.jobs} worker processes; wall time {wall / 60:.1f} min",
        threads=1,
        load=True,
    )
    lines = [
        "## Fair Table 1 at a converging budget: the 8-Gaussian ring (r = 2, σ = 0.02)",
        "",
        *facts,
        f"- Budget: {max(r['budget_cpu_s'] for r in results):g} CPU seconds per run (process time, 1 thread; the EMA is "
        "off), seeds 0…; G and D MLPs 2 × 128 (LeakyReLU 0.2 in D), z 8, batch 256; each loss "
        "with its published recipe (sources: tools/workloads/gan_toy.py)",
        "- Modes: a sample is HQ within 3σ of its nearest centre (Metz et al. 2017, VEEGAN §5.1); "
        "a mode counts as covered if it holds ≥ max(¼ of its uniform share of HQ samples, 5); "
        "the VEEGAN column counts modes with any HQ sample. 5000 samples of a fixed latent batch.",
        "",
        table(results, checkpoints),
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = BLOCK.parser(__doc__, quick_help="2 CPU seconds per run, 1 seed", threads=None)
    ap.add_argument("--budget", type=float, default=90.0, help="CPU seconds per run")
    ap.add_argument("--checkpoints", default="15,30,60", help="CPU seconds (comma-separated)")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--seed-list", default="", help="explicit seeds, e.g. 1,2 (overrides --seeds)")
    ap.add_argument("--extra-seeds", type=int, default=1, help="seeds of WGAN-GP (λ = 10)")
    ap.add_argument("--jobs", type=int, default=2, help="worker processes")
    ap.add_argument("--losses", default="", help="comma-separated subset (default all)")
    ap.add_argument("--results", default="gan_fair_table.jsonl", help="JSON lines, appended")
    ap.add_argument("--report-only", action="store_true", help="table from --results, no runs")
    args = ap.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if args.quick:
        args.budget, args.seeds, args.extra_seeds, args.checkpoints = 2.0, 1, 0, "1"
    BLOCK.publish(run(args), args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
