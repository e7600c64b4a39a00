"""Digits VQ-VAE at equal bits (spec vq-modern.md §3): kexue vs vector-quantize-pytorch, 5 seeds.

sklearn ``load_digits`` (1797 8×8 images, /16 → [0, 1]), a seeded 1500/297 split. One MLP
autoencoder for every quantiser: 64 → 256 → T·d with T = 4 tokens of d = 8, and back; Adam lr
1e-3, batch 256, loss = MSE + the quantiser's loss. b = 8 bits per token:

- VQ: K = 256, EMA 0.99, β = 0.25, k-means init, STE (and + rotation trick when this kexue has
  ``VectorQuantizer(estimator=...)``);
- FSQ [4, 4, 4, 4] (256 codes), projections 8 → 4 → 8;
- LFQ 8 bits, entropy weight 0.1, commitment 0.25 (kexue: exact entropies; vqp: its clamped log,
  ``frac_per_sample_entropy=1``);
- SimVQ K = 256 (STE on both sides: vqp ``rotation_trick=False``);
- residual FSQ [4, 4] × 2 stages (4 + 4 bits).

Reported on the test split in eval mode: MSE (mean ± sd over seeds), PSNR of the mean MSE, usage
(fraction of the K codes per stage seen on the test tokens) and perplexity.

    OMP_NUM_THREADS=1 python -m tools.bench.vq.digits [--steps 3000] [--seeds 5] [--write]
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tools.bench._common import machine_line, markdown_table, run_facts, versions
from tools.bench.vq._cli import bench_main

TOKENS, DIM, BITS = 4, 8, 8
ANCHOR = {"VQ": 0.0129, "VQ + rotation": 0.0159, "FSQ": 0.0116, "LFQ": 0.0202}
Quantise = Callable[[Tensor], tuple[Tensor, Tensor, Tensor]]


def digits() -> tuple[Tensor, Tensor]:
    from sklearn.datasets import load_digits

    x = torch.tensor(load_digits().data, dtype=torch.float32) / 16.0
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    return x[perm[:1500]], x[perm[1500:]]


def kexue_quantiser(kind: str) -> tuple[nn.Module, Quantise]:
    from kexue.vq import FSQ, LFQ, ResidualFSQ, SimVQ, VectorQuantizer

    if kind in ("VQ", "VQ + rotation"):
        extra = {"estimator": "rotation"} if kind != "VQ" else {}
        m: nn.Module = VectorQuantizer(256, DIM, decay=0.99, beta=0.25, kmeans_init=True, **extra)
    elif kind == "FSQ":
        m = FSQ([4, 4, 4, 4], DIM)
    elif kind == "LFQ":
        m = LFQ(BITS, DIM, entropy_weight=0.1, commitment_weight=0.25)
    elif kind == "SimVQ":
        m = SimVQ(256, DIM)
    else:
        m = ResidualFSQ([4, 4], 2, dim=DIM)

    def run(z: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        out = m(z)
        return out.quantized, out.indices, out.loss

    return m, run


def vqp_quantiser(kind: str) -> tuple[nn.Module, Quantise]:
    import vector_quantize_pytorch as vqp

    if kind in ("VQ", "VQ + rotation"):
        m: nn.Module = vqp.VectorQuantize(
            dim=DIM,
            codebook_size=256,
            decay=0.99,
            commitment_weight=0.25,
            kmeans_init=True,
            rotation_trick=kind != "VQ",
        )
    elif kind == "FSQ":
        m = vqp.FSQ([4, 4, 4, 4], dim=DIM)
    elif kind == "LFQ":
        m = vqp.LFQ(
            codebook_size=2**BITS, dim=DIM, entropy_loss_weight=0.1, commitment_loss_weight=0.25
        )
    elif kind == "SimVQ":
        m = vqp.SimVQ(dim=DIM, codebook_size=256, rotation_trick=False)
    else:
        m = vqp.ResidualFSQ(dim=DIM, levels=[4, 4], num_quantizers=2)

    def run(z: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        res = m(z)
        loss = res[2] if len(res) > 2 else z.new_zeros(())
        return res[0], res[1].long(), loss.sum()

    return m, run


def train_one(impl: str, kind: str, seed: int, steps: int, data: tuple[Tensor, Tensor]) -> dict:
    torch.manual_seed(seed)
    train, test = data
    enc = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, TOKENS * DIM))
    dec = nn.Sequential(nn.Linear(TOKENS * DIM, 256), nn.ReLU(), nn.Linear(256, 64))
    quant, run = (kexue_quantiser if impl == "kexue" else vqp_quantiser)(kind)
    params = [*enc.parameters(), *dec.parameters(), *quant.parameters()]
    opt = torch.optim.Adam(params, lr=1e-3)
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        x = train[torch.randint(0, len(train), (256,), generator=g)]
        q, _, aux = run(enc(x).view(-1, TOKENS, DIM))
        loss = F.mse_loss(dec(q.reshape(-1, TOKENS * DIM)), x) + aux
        opt.zero_grad()
        loss.backward()
        opt.step()
    for m in (enc, dec, quant):
        m.eval()
    with torch.no_grad():
        q, idx, _ = run(enc(test).view(-1, TOKENS, DIM))
        mse = float(F.mse_loss(dec(q.reshape(-1, TOKENS * DIM)), test))
    return {"mse": mse, **code_stats(idx, kind)}


def code_stats(idx: Tensor, kind: str) -> dict[str, float]:
    """Usage and perplexity per stage (residual FSQ: 2 stages of 16 codes), averaged."""
    k = 16 if kind == "residual FSQ" else 256
    cols = idx.reshape(-1, idx.shape[-1]) if kind == "residual FSQ" else idx.reshape(-1, 1)
    use, ppl = [], []
    for c in range(cols.shape[1]):
        counts = torch.bincount(cols[:, c], minlength=k).double()
        p = counts / counts.sum()
        use.append(float((counts > 0).sum()) / k)
        ppl.append(math.exp(float(-(p[p > 0] * p[p > 0].log()).sum())))
    return {"usage": statistics.fmean(use), "ppl": statistics.fmean(ppl)}


def kinds() -> list[str]:
    from kexue.vq import VectorQuantizer

    out = ["VQ", "FSQ", "LFQ", "SimVQ", "residual FSQ"]
    if "estimator" in inspect.signature(VectorQuantizer).parameters:
        out.insert(1, "VQ + rotation")
    return out


def _cell(runs: list[dict], key: str, fmt: str) -> str:
    vals = [r[key] for r in runs]
    sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
    return f"{statistics.fmean(vals):{fmt}} ± {sd:{fmt}}"


def row(kind: str, ours: list[dict], theirs: list[dict]) -> list[Any]:
    m_o = statistics.fmean(r["mse"] for r in ours)
    m_t = statistics.fmean(r["mse"] for r in theirs)
    sd_t = statistics.stdev([r["mse"] for r in theirs]) if len(theirs) > 1 else 0.0
    verdict = "yes" if m_o <= m_t + sd_t else "no"
    return [
        kind,
        _cell(ours, "mse", ".4f"),
        _cell(theirs, "mse", ".4f"),
        verdict,
        f"{10 * math.log10(1 / m_o):.1f} / {10 * math.log10(1 / m_t):.1f}",
        f"{_cell(ours, 'usage', '.2f')} / {_cell(theirs, 'usage', '.2f')}",
        f"{statistics.fmean(r['ppl'] for r in ours):.0f} / "
        f"{statistics.fmean(r['ppl'] for r in theirs):.0f}",
        str(ANCHOR.get(kind, "—")),
    ]


def train_all(args: argparse.Namespace) -> dict[str, dict[str, list[dict]]]:
    """{kind: {"kexue": runs, "vqp": runs}} for ``--kinds`` (default all), seeds interleaved."""
    data = digits()
    chosen = args.kinds.split(",") if args.kinds else kinds()
    results, t0 = {}, time.perf_counter()
    for kind in chosen:
        runs: dict[str, list[dict]] = {"kexue": [], "vqp": []}
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            for impl in ("kexue", "vqp"):  # interleaved
                runs[impl].append(train_one(impl, kind, seed, args.steps, data))
                print(
                    kind,
                    impl,
                    seed,
                    runs[impl][-1],
                    f"{time.perf_counter() - t0:.0f}s",
                    file=sys.stderr,
                    flush=True,
                )
        results[kind] = runs
        if args.save_json:  # after every kind, so a capped run keeps what it finished
            Path(args.save_json).write_text(json.dumps(results), encoding="utf-8")
    return results


def results_markdown(args: argparse.Namespace, argv: list[str]) -> str:
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    if args.from_json:  # merge runs saved by parallel --save-json processes; no training
        results: dict[str, dict[str, list[dict]]] = {}
        for path in args.from_json:  # runs of one quantiser may come from several files (seeds)
            for kind, runs in json.loads(Path(path).read_text(encoding="utf-8")).items():
                merged = results.setdefault(kind, {"kexue": [], "vqp": []})
                for impl in ("kexue", "vqp"):
                    merged[impl] += runs[impl]
        results = {k: results[k] for k in kinds() if k in results}
    else:
        results = train_all(args)
    rows = [row(kind, r["kexue"], r["vqp"]) for kind, r in results.items()]
    facts = run_facts(
        f"OMP_NUM_THREADS=1 python -m tools.bench.vq.digits {' '.join(argv)}".strip(),
        mode=f"CPU, fp32, 1 thread, {args.steps} Adam steps (lr 1e-3, batch 256), "
        f"seeds 0..{args.seeds - 1}; wall {args.wall_s or time.perf_counter() - t0:.0f} s",
        machine=machine_line(),
        versions=versions("kexue-vq", "vector-quantize-pytorch", "scikit-learn"),
    )
    table = markdown_table(
        [
            "quantiser (8 bits/token)",
            "kexue test MSE",
            "vqp test MSE",
            "kexue ≤ vqp + 1 sd",
            "PSNR dB kexue / vqp",
            "usage kexue / vqp",
            "perplexity kexue / vqp",
            "vqp 1-seed ref (3000 steps)",
        ],
        rows,
    )
    title = f"### Digits VQ-VAE at equal bits ({args.seeds} seed{'s' if args.seeds > 1 else ''})"
    lines = [title, "", *facts]
    if args.from_json:
        lines.append(
            "- Runs: trained by parallel processes with the same `--steps`/`--seeds`, one per "
            "`--kinds` subset, each with `--save-json`; this command only tabulates them"
        )
    return "\n".join([*lines, "", table, ""])


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--kinds", help="comma-separated subset of the quantisers (default all)")
    parser.add_argument("--first-seed", type=int, default=0, help="seeds first..first+seeds-1")
    parser.add_argument("--save-json", help="also save the raw runs here (after every quantiser)")
    parser.add_argument("--from-json", nargs="+", help="build the table from saved runs instead")
    parser.add_argument("--wall-s", type=float, help="wall-clock seconds of the saved runs")


def _block(args: argparse.Namespace) -> str:
    """The 500-step table keeps its block; other schedules get their own."""
    return "bench:vq-modern-digits" + ("" if args.steps == 500 else f"-{args.steps}")


def main(argv: list[str] | None = None) -> int:
    return bench_main(__doc__, _block, argv, results_markdown, _arguments)


if __name__ == "__main__":
    raise SystemExit(main())
