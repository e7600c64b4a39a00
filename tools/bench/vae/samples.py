"""Sample quality on digits: FD / KID / PRDC over a digits classifier's features (spec §5.4).

Reference = the 360 held-out test digits; 360 candidates per model; features of the *metric* net
(``DigitsFeatureNet``, seed 0, widths (32, 64)) scaled so that the reference's mean feature norm is 1;
FD, KID (100 subsets of 300, cubic kernel, unbiased) and PRDC (k = 5) from
``kexue.gan_losses.metrics``; "nearest train" = mean pixel distance of a candidate to its nearest
training image (memorisation check). Rows, each over 3 seeds (mean ± sd):

- real oracle: 360 training digits (a fresh draw per seed);
- Gaussian VAE (learned variance): decoder means at z ~ N(0, I);
- clustering VAE (package recipe): z = μ_y + ε, y uniform;
- GLO + fitted Gaussian (the GLO of the GLANN row, sampled without IMLE);
- GLANN, clean: GLO with a perceptual distance over an *independent* classifier (seed 1, widths
  (16, 32)), IMLE from noise to the codes;
- GLANN, Lap1: the same with GLO's Laplacian-pyramid L1 instead;
- GLANN, leaky: the perceptual distance uses the *metric* net itself — the author's objection
  that FID and GLANN's loss share a network, measured;
- a small MLP GAN (hinge loss of ``kexue.gan_losses``, G-EMA), as a comparator;
- the best GAN of kexue-gan-losses' digits benchmark (SGAN + R1, its recipe and loop, 20 CPU s a
  run: ``train_best_digits_gan``), scored here under this package's metric net.

    python -m tools.bench.vae.samples --quick     # smoke (numbers are noise)
    python -m tools.bench.vae.samples [--write]   # full (≈ 50 min on 2 busy cores)
    python -m tools.bench.vae.samples --only oracle,best-gan --write   # a subset: its own block
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import torch

from kexue.vae import nearest_train_distance, sample_quality
from tools.bench._common import markdown_table
from tools.bench.vae._shared import facts as run_facts_vae
from tools.bench.vae._shared import mean_sd, parser, publish_block, run_tasks
from tools.workloads.vae_digits import (
    CLUSTER_RECIPE,
    Digits,
    digits,
    loss_net,
    metric_net,
    train_best_digits_gan,
    train_clustering,
    train_gan,
    train_glann,
    train_vae,
)

METRICS = ("fd", "kid", "precision", "recall", "density", "coverage", "nearest_train")


def _budget(quick: bool) -> dict[str, int]:
    if quick:
        return {
            "vae": 100,
            "cluster": 50,
            "warmup": 50,
            "glo": 60,
            "imle": 40,
            "nets": 100,
            "gan": 50,
            "best_gan_cpu_s": 1,
            "seeds": 1,
        }
    r = CLUSTER_RECIPE
    return {
        "vae": 3000,
        "cluster": r.steps,
        "warmup": r.warmup,
        "glo": 2000,
        "imle": 1500,
        "nets": 1500,
        "gan": 3000,
        "best_gan_cpu_s": 20,
        "seeds": 3,
    }


def _candidates(
    data: Digits, seed: int, b: dict[str, int], nets: dict[str, Any]
) -> dict[str, Callable[[], torch.Tensor]]:
    n = data.x_test.shape[0]
    gen = torch.Generator().manual_seed(100 + seed)

    def oracle() -> torch.Tensor:
        return data.x_train[torch.randperm(data.x_train.shape[0], generator=gen)[:n]]

    def vae() -> torch.Tensor:
        return train_vae(data, "gaussian_learned", seed, steps=b["vae"]).sample(n, generator=gen)

    def cluster() -> torch.Tensor:
        model = train_clustering(data, CLUSTER_RECIPE, seed, steps=b["cluster"], warmup=b["warmup"])
        return model.sample(n, generator=gen)

    glanns: dict[str, Any] = {}

    def glann(kind: str) -> Callable[[], torch.Tensor]:
        def make() -> torch.Tensor:
            net = {"clean": nets["loss"], "lap1": None, "leaky": nets["metric"]}[kind]
            glanns[kind] = train_glann(
                data, seed, net=net, glo_steps=b["glo"], imle_steps=b["imle"]
            )
            return glanns[kind].sample(n, generator=gen)

        return make

    def gan() -> torch.Tensor:
        return train_gan(data, seed, steps=b["gan"])(n, generator=gen)

    def best_gan() -> torch.Tensor:
        return train_best_digits_gan(seed, budget_cpu_s=b["best_gan_cpu_s"])(n, generator=gen)

    def glo_gauss() -> torch.Tensor:
        return glanns["clean"].glo.sample_gaussian(n, generator=gen)

    return {
        "real oracle (train digits)": oracle,
        "Gaussian VAE (learned variance)": vae,
        "clustering VAE, z = μ_y + ε": cluster,
        "GLANN, clean (independent classifier loss)": glann("clean"),
        "GLO + fitted Gaussian (same GLO)": glo_gauss,
        "GLANN, Lap1": glann("lap1"),
        "GLANN, leaky (metric net as loss)": glann("leaky"),
        "GAN (MLP, hinge, G-EMA; kexue.gan_losses)": gan,
        "best GAN of the gan-losses digits bench (SGAN + R1, 20 CPU s)": best_gan,
    }


def _seed_job(
    task: tuple[int, dict[str, int], dict[str, Any], list[str]],
) -> dict[str, dict[str, float]]:
    seed, b, nets, only = task
    torch.set_num_threads(1)
    data = digits()
    out = {}
    for name, make in _candidates(data, seed, b, nets).items():
        if only and not any(o.lower() in name.lower() for o in only):
            continue
        t0 = time.perf_counter()
        x = make().clamp(0, 1)
        gen = torch.Generator().manual_seed(seed)
        q = sample_quality(nets["metric"], data.x_test, x, generator=gen)
        q["nearest_train"] = nearest_train_distance(x, data.x_train)
        q["s"] = time.perf_counter() - t0
        out[name] = q
        print(seed, name, {k: round(v, 4) for k, v in q.items()}, file=sys.stderr, flush=True)
    return out


def measure(
    quick: bool, jobs: int, only: list[str]
) -> tuple[dict[str, list[dict[str, float]]], dict[str, float]]:
    data = digits()
    b = _budget(quick)
    nets = {"metric": metric_net(data, steps=b["nets"]), "loss": loss_net(data, steps=b["nets"])}
    accuracy = {
        k: float((net(data.x_test).argmax(1) == data.y_test).double().mean())
        for k, net in nets.items()
    }
    tasks = [(seed, b, nets, only) for seed in range(b["seeds"])]
    per_seed = run_tasks(_seed_job, tasks, jobs)
    out: dict[str, list[dict[str, float]]] = {}
    for res in per_seed:
        for name, q in res.items():
            out.setdefault(name, []).append(q)
    return out, accuracy


def main(argv: list[str] | None = None) -> int:
    ap = parser(__doc__, jobs_help="worker processes, one seed each")
    ap.add_argument(
        "--only",
        default="",
        help="comma-separated parts of row names to run (written to the samples-subset block)",
    )
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    only = [o for o in args.only.split(",") if o]
    out, accuracy = measure(args.quick, args.jobs, only)
    headers = [
        "candidates (360)",
        "FD ×100",
        "KID ×1e3",
        "precision",
        "recall",
        "density",
        "coverage",
        "nearest train",
        "s / seed",
    ]
    rows = [
        [name, mean_sd([q["fd"] for q in qs], scale=100.0, digits=2), mean_sd([q["kid"] for q in qs], scale=1e3, digits=2),
         *(mean_sd([q[k] for q in qs], digits=2) for k in ("precision", "recall", "density", "coverage", "nearest_train")),
         f"{statistics.mean(q['s'] for q in qs):.0f}"]
        for name, qs in out.items()
    ]  # fmt: skip
    facts = run_facts_vae("samples", args.quick, "kexue-gan-losses")
    if only:
        facts[1] = facts[1].rstrip("`") + f" --only {args.only}`"
    text = "\n".join(
        [
            "## Samples (spec §5.4)" + (f": rows matching {', '.join(only)}" if only else ""),
            "",
            *facts,
            f"- Wall time: {time.perf_counter() - t0:.0f} s; seeds: {len(next(iter(out.values())))}",
            f"- Test accuracy of the metric net {accuracy['metric']:.3f}, of the independent loss net "
            f"{accuracy['loss']:.3f}",
            "",
            markdown_table(headers, rows),
            "",
        ]
    )
    publish_block(text, "samples-subset" if only else "samples", write=args.write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
