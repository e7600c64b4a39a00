"""(c) of ``python -m tools.bench.textkit.terms --cli``: the ``kexue-terms`` console script, process
start to exit, against nlp-zero in a fresh process, interleaved rounds; its own block."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tools.bench._common import markdown_table
from tools.bench._common import versions as _versions
from tools.bench.textkit._terms_runs import (
    HAN2,
    bench_command,
    child,
    gold_lexicon,
    load_pd,
    machine,
)


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
