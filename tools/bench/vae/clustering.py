"""Clustering of digits with the one-step clustering VAE (spec §5.1–5.2; a script, not a test).

Fit on the 1437 training digits (pixels /16), score the 360 held-out digits: Hungarian accuracy
(ACC), purity, NMI (arithmetic), ARI and the number of clusters used (of K = 10), each as mean ± sd
over seeds, plus every seed's test ACC. Rows, one change at a time ("what each change bought"):

1. the post's loss with the ``digits`` preset (MLP 64-256-256, d = 10, λ = 60, analytic KL_y,
   classifier on the sampled z, class means initialised to zero), 6000 steps — spec §5.2's probe;
2. + warm-up: 3000 steps train the plain VAE, then the class means are set by k-means on the
   encoder means (VaDE / DEC pretraining), then 3000 steps of the post's loss;
3. + λ = 10 instead of 60 after the warm-up (a λ schedule: more weight on the KL_y terms);
4. + 1-pixel random shifts of the training images during the warm-up: kexue-vae 0.1.0's recipe
   (``KMEANS_RECIPE``), 5 seeds;
5. + the class means and the classifier's start from a likelihood-selected pixel GMM partition
   (``kexue.vae.gmm_partition``, 30 inits) instead of k-means on the codes: the package recipe
   (``kexue.vae.fit_cluster_vae_digits``, ``tools.workloads.vae_digits.CLUSTER_RECIPE``), 5 seeds.

k-means on pixels (scikit-learn, n_init = 10, the spec's 0.805 baseline) and the pixel GMM partition
alone (the init of row 5, test digits assigned by the same mixture) are rerun here on the same split.

    python -m tools.bench.vae.clustering --quick            # smoke
    python -m tools.bench.vae.clustering [--write]          # full (≈ 40 min on 2 busy cores)
    python -m tools.bench.vae.clustering --rows 5 --write   # baselines + the package recipe only
"""

from __future__ import annotations

import statistics
import sys
import time
from dataclasses import replace
from typing import Any

import torch

from kexue.vae import evaluate_clustering
from tools.bench._common import markdown_table
from tools.bench.vae._shared import facts as run_facts_vae
from tools.bench.vae._shared import mean_sd, parser, publish_block, run_tasks
from tools.workloads.vae_digits import (
    AUTHOR_RECIPE,
    CLUSTER_RECIPE,
    KMEANS_RECIPE,
    digits,
    train_clustering,
)

ROWS = [
    ("1. post's loss, `digits` preset (zero-init means)", AUTHOR_RECIPE, 2),
    (
        "2. + warm-up, k-means-initialised means",
        replace(CLUSTER_RECIPE, warmup_shift=0, cluster_lam=None),
        2,
    ),
    ("3. + λ = 10 after the warm-up", replace(CLUSTER_RECIPE, warmup_shift=0), 2),
    ("4. + 1-pixel shifts in the warm-up (0.1.0 recipe)", KMEANS_RECIPE, 5),
    ("5. + pixel-GMM init of means and classifier = package recipe", CLUSTER_RECIPE, 5),
]
KMEANS_ACC = 0.805  # spec §5.1, k-means n_init = 10 on pixels, test ACC


def _pixel_rows(data: Any, seeds: int, gmm_inits: int) -> dict[str, list[dict[str, Any]]]:
    """k-means (n_init 10) and the likelihood-selected full GMM on pixels, test digits assigned
    by the fitted model."""
    from sklearn.cluster import KMeans
    from sklearn.mixture import GaussianMixture

    xtr, xte = data.x_train.flatten(1).double().numpy(), data.x_test.flatten(1).double().numpy()
    out: dict[str, list[dict[str, Any]]] = {}
    for seed in range(seeds):
        models = {
            "k-means on pixels (sklearn, n_init 10)": KMeans(10, n_init=10, random_state=seed),
            f"full GMM on pixels alone (reg 0.05, best log-lik. of {gmm_inits})": GaussianMixture(
                10, covariance_type="full", reg_covar=0.05, n_init=gmm_inits, random_state=seed
            ),
        }
        for label, m in models.items():
            pred = torch.as_tensor(m.fit(xtr).predict(xte))
            out.setdefault(label, []).append(evaluate_clustering(pred, data.y_test))
    return out


def _run(task: tuple[int, int, bool]) -> tuple[int, dict[str, Any], float]:
    row, seed, quick = task
    torch.set_num_threads(1)
    recipe = ROWS[row][1]
    if quick:
        recipe = replace(
            recipe,
            steps=60,
            warmup=min(recipe.warmup, 40),
            gmm_inits=min(recipe.gmm_inits, 2),
            classifier_steps=min(recipe.classifier_steps, 20),
        )
    data = digits()
    t0 = time.perf_counter()
    model = train_clustering(data, recipe, seed)
    res = evaluate_clustering(model.cluster(data.x_test), data.y_test)
    res["train_acc"] = evaluate_clustering(model.cluster(data.x_train), data.y_train)["acc"]
    print(ROWS[row][0], seed, {k: round(v, 3) for k, v in res.items()}, file=sys.stderr, flush=True)
    return row, res, time.perf_counter() - t0


def measure(
    quick: bool, jobs: int, rows: list[int]
) -> list[tuple[str, list[dict[str, Any]], float]]:
    data = digits()
    t0 = time.perf_counter()
    pixel = _pixel_rows(data, 1 if quick else 5, 2 if quick else CLUSTER_RECIPE.gmm_inits)
    secs = (time.perf_counter() - t0) / (1 if quick else 5)
    results = [(label, runs, secs) for label, runs in pixel.items()]
    tasks = [
        (i, seed, quick)
        for i, (_, _, n) in enumerate(ROWS)
        if i + 1 in rows
        for seed in range(1 if quick else n)
    ]
    done = run_tasks(_run, tasks, jobs)
    for i, (label, _, _) in enumerate(ROWS):
        runs = [(res, secs) for row, res, secs in done if row == i]
        if not runs:
            continue
        results.append((label, [r for r, _ in runs], statistics.mean(s for _, s in runs)))
    return results


def main(argv: list[str] | None = None) -> int:
    ap = parser(__doc__, jobs_help="worker processes (1 torch thread each)")
    ap.add_argument("--rows", default="1,2,3,4,5", help="numbered rows to run (default all)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    results = measure(args.quick, args.jobs, [int(r) for r in args.rows.split(",") if r])
    headers = [
        "method",
        "seeds",
        "test ACC",
        "per-seed test ACC",
        "purity",
        "NMI",
        "ARI",
        "clusters used",
        "train ACC",
        "s / seed",
    ]
    rows = []
    for label, runs, secs in results:
        rows.append([
            label, len(runs), mean_sd([r["acc"] for r in runs]),
            " ".join(f"{r['acc']:.3f}" for r in runs),
            mean_sd([r["purity"] for r in runs]), mean_sd([r["nmi"] for r in runs]), mean_sd([r["ari"] for r in runs]),
            " ".join(str(r["clusters_used"]) for r in runs),
            mean_sd([r["train_acc"] for r in runs]) if "train_acc" in runs[0] else "—",
            f"{secs:.0f}",
        ])  # fmt: skip
    final = results[-1][1]
    accs = [r["acc"] for r in final]
    verdict = (
        f"Target (issue 17): every seed above k-means' {KMEANS_ACC} and mean ≥ 0.85 — package "
        f"recipe: mean {statistics.mean(accs):.3f}, min {min(accs):.3f}: "
        + ("met." if min(accs) > KMEANS_ACC and statistics.mean(accs) >= 0.85 else "NOT met.")
    )
    facts = run_facts_vae("clustering", args.quick, "scikit-learn")
    r = CLUSTER_RECIPE
    text = "\n".join(
        [
            "## Clustering (spec §5.2)",
            "",
            *facts,
            f"- Wall time: {time.perf_counter() - t0:.0f} s",
            f"- Package recipe: a full GMM on pixels (reg 0.05, best training log-likelihood of "
            f"{r.gmm_inits} inits); warm-up {r.warmup} steps (plain VAE, λ = {r.lam:g}, shifts ≤ "
            f"{r.warmup_shift} px); class means = mean code per GMM component; "
            f"{r.classifier_steps} classifier steps towards the GMM partition; then {r.steps} "
            f"steps of the clustering loss at λ = {r.cluster_lam:g}; d = {r.latent}, MLP "
            f"{r.hidden}, KL_y {r.kl}, "
            f"posterior {r.posterior}, batch {r.batch}, Adam {r.lr:g}; seeds 0..n−1, {args.jobs} "
            "worker processes",
            "",
            "Held-out digits (360), K = 10:",
            "",
            markdown_table(headers, rows),
            "",
            verdict,
            "",
        ]
    )
    publish_block(text, "clustering", write=args.write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
