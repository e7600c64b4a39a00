"""Likelihood of Gaussian VAEs on digits: ELBO and IWAE-k bits/dim (spec §5.3; a script, not a test).

Models (``kexue.vae.GaussianVAE``, MLP 64-256-256-(2·16), Adam 1e-3, batch 100) train on dequantised
train digits y = (x + u)/17 with fresh noise each step; every Gaussian model is then scored on the
*same* dequantised test set (one fixed noise draw) by the analytic-KL ELBO and the IWAE-k bound
(k = 10, 100, 1000; encoder proposal, chunked, log space), as bits/dim with the kexue-flows constant
bpd = −(log p(y) − 64 ln 17)/(64 ln 2). Bernoulli decoders train and test on binarised digits
(x ≥ 8): their "bits per pixel" are of binary data, in a separate table, never compared with the
Gaussian rows. "active dims": latent dimensions whose mean KL over the test set exceeds 0.01 nats.

    python -m tools.bench.vae.likelihood --quick      # smoke (< 1 min)
    python -m tools.bench.vae.likelihood              # full (≈ 12 min on 2 busy cores)
    python -m tools.bench.vae.likelihood --write      # ... and rewrite its block of BENCHMARKS.md
"""

from __future__ import annotations

import itertools
import sys
import time
from typing import Any

import torch

from kexue.vae import dequantize, evaluate_likelihood
from kexue.vae.data import binarize
from tools.bench._common import markdown_table
from tools.bench.vae._shared import facts as run_facts_vae
from tools.bench.vae._shared import parser, publish_block
from tools.workloads.vae_digits import digits, train_vae

# (label, decoder, λ, seeds)
GAUSSIAN = [
    ("learned per-pixel variance", "gaussian_learned", 5.0, (0, 1)),
    ("learned z-dependent variance", "gaussian_z", 5.0, (0,)),
    ("fixed s² = 0.05 (λ = 20)", "gaussian_fixed", 20.0, (0,)),
    ("fixed s² = 0.2 (λ = 5)", "gaussian_fixed", 5.0, (0,)),
]


def _active_dims(model: Any, y: torch.Tensor) -> int:
    with torch.no_grad():
        mu, lv = model.encode(y)
        per_dim = 0.5 * (mu.pow(2) + lv.exp() - lv - 1.0).mean(0)
    return int((per_dim > 0.01).sum())


def _row(label: str, seed: int, res: dict[str, float], active: int, secs: float) -> list[Any]:
    keys = [k for k in res if k.startswith("iwae_")]
    chain = [res["elbo"], *(res[k] for k in keys)]
    # at the printed precision (a collapsed posterior makes every bound equal up to noise)
    ordered = all(round(a, 3) >= round(b, 3) for a, b in itertools.pairwise(chain))
    cells = [f"{v:.3f}" for v in chain]
    return [label, seed, *cells, "yes" if ordered else "NO", active, f"{secs:.0f}"]


def measure(quick: bool) -> tuple[list[list[Any]], list[list[Any]], list[str]]:
    data = digits()
    steps, ks = (200, (10, 100)) if quick else (4000, (10, 100, 1000))
    y_test = dequantize(data.int_test, generator=torch.Generator().manual_seed(1234))
    b_test = binarize(data.int_test)
    heads = ["ELBO", *(f"IWAE-{k}" for k in ks)]
    rows, brows = [], []
    for label, decoder, lam, seeds in GAUSSIAN:
        for seed in seeds[:1] if quick else seeds:
            t0 = time.perf_counter()
            model = train_vae(data, decoder, seed, steps=steps, lam=lam)
            res = evaluate_likelihood(model, y_test, ks=ks, seed=seed)
            rows.append(
                _row(label, seed, res, _active_dims(model, y_test), time.perf_counter() - t0)
            )
            print(rows[-1], file=sys.stderr, flush=True)
    for seed in (0,) if quick else (0, 1):
        t0 = time.perf_counter()
        model = train_vae(data, "bernoulli", seed, steps=steps)
        # binary data: no dequantisation constant; bits per pixel = −log₂ p(x)/64
        res = evaluate_likelihood(model, b_test, ks=ks, seed=seed, n_levels=2, num_dims=64)
        res = {k: v - 1.0 for k, v in res.items()}  # undo the log₂(n_levels = 2) = 1 bit constant
        brows.append(
            _row(
                "Bernoulli, binarised",
                seed,
                res,
                _active_dims(model, b_test),
                time.perf_counter() - t0,
            )
        )
        print(brows[-1], file=sys.stderr, flush=True)
    return rows, brows, heads


def main(argv: list[str] | None = None) -> int:
    ap = parser(__doc__)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    rows, brows, heads = measure(args.quick)
    facts = run_facts_vae("likelihood", args.quick, "kexue-gan-losses")
    headers = [
        "decoder",
        "seed",
        *(f"{h} bpd" for h in heads),
        "ELBO ≥ … ≥ IWAE",
        "active dims",
        "s",
    ]
    learned = [r for r in rows if r[0].startswith("learned per-pixel")]
    best = min(float(r[len(heads) + 1]) for r in learned)
    text = "\n".join(
        [
            "## Likelihood (spec §5.3)",
            "",
            *facts,
            f"- Wall time: {time.perf_counter() - t0:.0f} s",
            "",
            "Gaussian decoders, dequantised test digits (one fixed noise draw shared by every row), "
            "bits/dim (lower is better; each column is an upper bound on the model's −log₂ p):",
            "",
            markdown_table(headers, rows),
            "",
            f"Target: learned-variance IWAE-{heads[-1].split('-')[-1]} ≤ 2.75 bpd — best run "
            f"{best:.3f}, every learned run: "
            + ", ".join(f"{float(r[len(heads) + 1]):.3f}" for r in learned)
            + ". References (kexue-flows, same split and constant): RealNVP 2.045, Glow 2.306, "
            "independent Gaussian 3.399, uniform 4.088.",
            "",
            "Bernoulli decoder on binarised digits (x ≥ 8), bits per binary pixel — a different "
            "data set, not comparable with the table above:",
            "",
            markdown_table(
                [
                    "decoder",
                    "seed",
                    *(f"{h} bits" for h in heads),
                    "ELBO ≥ … ≥ IWAE",
                    "active dims",
                    "s",
                ],
                brows,
            ),
            "",
        ]
    )
    publish_block(text, "likelihood", write=args.write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
