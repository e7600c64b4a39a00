"""Linear-chain CRF of kexue-textkit vs pytorch-crf (torchcrf), side by side on CPU (a script).

Needs: torch, kexue-textkit (editable); optional anchor ``pytorch-crf`` (import ``torchcrf``; a
missing anchor is reported and its rows are skipped). Nothing else.

What it measures (targets: nll forward+backward ≥ 5× faster than pytorch-crf, Viterbi ≥ 3×
(issue 5), at B=64, T=128, K=20 and B=32, T=512, K=50, full and random masks):

- ``nll fwd+bwd``: the summed NLL of random gold tags plus ``backward()`` into the emissions and
  the CRF parameters: pytorch-crf ``-CRF.forward(..., reduction="sum")`` vs kexue ``CRF`` with
  ``algorithm="auto"`` (the default; it resolves to ``matmul`` for these parameters),
  ``"matmul"`` and ``"lse"`` (the log-semiring reference), all with pytorch-crf's weights copied
  in (``CRF.from_pytorch_crf``).
- ``viterbi``: pytorch-crf ``CRF.decode`` (lists) vs kexue ``CRF.decode`` (a tensor; Viterbi
  ``"auto"`` = the length-sorted fast path) and ``viterbi_decode(..., algorithm="max")`` (the
  max-semiring reference).

Random masks: lengths uniform in [T/4, T] (seeded), right padding. Variants are interleaved round
robin (``_common.interleaved``); the table gives medians and quartiles. Peak memory is measured in
a fresh child process per setting: ``VmHWM − VmRSS`` around one call (after a warm-up call), the
peak reset through ``/proc/self/clear_refs``, with ``MALLOC_MMAP_THRESHOLD_=65536`` so freed blocks
go back to the OS. Agreement: max |ΔLL| (per sequence) and the share of sequences decoded
identically to pytorch-crf.

    python -m tools.bench.textkit.crf --quick          # smoke check
    nice python -m tools.bench.textkit.crf --write     # full run, writes BENCHMARKS.md
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from typing import Any

import torch

from tools.bench._common import (
    BenchBlock,
    cpu_model,
    importable,
    interleaved,
    markdown_table,
    quartiles,
    run_facts,
    usable_cores,
)
from tools.bench.textkit._crf_variants import DECODE, NLL, agreement, build, memory

BLOCK = BenchBlock("textkit", "textkit_crf", __spec__.name, anchors=("pytorch-crf",))
SETTINGS = [(64, 128, 20), (32, 512, 50)]
QUICK_SETTINGS = [(8, 32, 5)]


def fmt(seconds: float) -> str:
    ms = 1e3 * seconds
    return f"{ms:.0f}" if ms >= 100 else f"{ms:.1f}" if ms >= 1 else f"{ms:.3f}"


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    device = torch.device("cpu")
    records = []
    for shape in QUICK_SETTINGS if args.quick else SETTINGS:
        for masked in (False, True):
            t0 = time.perf_counter()
            parts = build(*shape, masked, args.has_ref)
            agree = agreement(parts, args.has_ref)
            rec: dict[str, Any] = {"shape": shape, "masked": masked, "agree": agree, "times": {}}
            for kind in ("nll", "decode"):
                times = interleaved(parts[kind], warmup=args.warmup, reps=args.reps, device=device)
                for name, ts in times.items():
                    rec["times"][f"{kind}:{name}"] = quartiles(ts)
            rec["peaks"] = memory(shape, masked, args)
            records.append(rec)
            print(
                f"B,T,K={shape} masked={masked}: {time.perf_counter() - t0:.0f} s, "
                f"load {os.getloadavg()[0]:.1f}",
                file=sys.stderr,
            )
    return records


def table(records: list[dict[str, Any]]) -> str:
    headers = ["B", "T", "K", "mask", "op", "variant", "median ms", "p25–p75 ms", "speed-up",
               "peak extra MiB", "agreement"]  # fmt: skip
    rows = []
    for rec in records:
        b, t, k = rec["shape"]
        for kind, names in (("nll", NLL), ("decode", DECODE)):
            base = rec["times"].get(f"{kind}:pytorch-crf")
            for name in names:
                key = f"{kind}:{name}"
                if key not in rec["times"]:
                    continue
                p25, med, p75 = rec["times"][key]
                ratio = f"{base[1] / med:.2f}×" if base else "n/a"
                peak = rec["peaks"].get(key)
                agree = ""
                if rec["agree"] and name != "pytorch-crf":
                    agree = (
                        f"max abs ΔLL {rec['agree']['dll'][name]:.1e}"
                        if kind == "nll"
                        else f"{100 * rec['agree']['same'][name]:.0f} % same paths"
                    )
                rows.append([
                    b, t, k, "random" if rec["masked"] else "full",
                    "nll fwd+bwd" if kind == "nll" else "viterbi", name, fmt(med),
                    f"{fmt(p25)}–{fmt(p75)}", ratio,
                    "" if peak is None else f"{peak / 2**20:.1f}", agree,
                ])  # fmt: skip
    return markdown_table(headers, rows)


def headline(records: list[dict[str, Any]]) -> list[str]:
    lines = []
    for rec in records:
        tm = rec["times"]
        if "nll:pytorch-crf" not in tm:
            continue
        b, t, k = rec["shape"]
        nll = tm["nll:pytorch-crf"][1] / tm["nll:kexue auto"][1]
        dec = tm["decode:pytorch-crf"][1] / tm["decode:kexue"][1]
        ref_dec = tm["decode:pytorch-crf"][1] / tm["decode:kexue max"][1]
        lse = tm["nll:kexue lse"][1] / tm["nll:kexue matmul"][1]
        lines.append(
            f"- B={b}, T={t}, K={k}, {'random' if rec['masked'] else 'full'} mask: nll fwd+bwd "
            f"{fmt(tm['nll:kexue auto'][1])} vs {fmt(tm['nll:pytorch-crf'][1])} ms "
            f"(**{nll:.1f}×**, target ≥ 5×: {'met' if nll >= 5 else 'NOT met'}); Viterbi "
            f"{fmt(tm['decode:kexue'][1])} vs {fmt(tm['decode:pytorch-crf'][1])} ms "
            f"(**{dec:.1f}×**, target ≥ 3×: {'met' if dec >= 3 else 'NOT met'}; the max-semiring "
            f"reference {ref_dec:.1f}×); matmul {lse:.1f}× faster than lse."
        )
    return lines


def results_markdown(args: argparse.Namespace, argv: list[str], records: list, wall: float,
                     load: tuple[tuple[float, ...], tuple[float, ...]]) -> str:  # fmt: skip
    mode = "quick (smoke check, not the benchmark)" if args.quick else "full"
    machine = (
        f"{platform.system()} {platform.machine()}, {cpu_model()}, {usable_cores()} "
        f"usable cores, torch threads {args.threads}; load average (1, 5, 15 min, "
        f"`/proc/loadavg`) {' '.join(f'{x:.2f}' for x in load[0])} at the start, "
        f"{' '.join(f'{x:.2f}' for x in load[1])} at the end (the machine was shared: absolute "
        "times are noisy, the interleaved ratios less so)"
    )
    lines = [
        "## CRF vs pytorch-crf (CPU)",
        "",
        *run_facts(
            BLOCK.command(argv),
            mode=f"{mode} (niceness {os.nice(0)}); {args.reps} timed calls per variant after {args.warmup} warm-up "
            f"calls, interleaved; wall time {wall:.0f} s",
            machine=machine,
            versions=BLOCK.versions(),
        ),
        "",
        "Headline (targets: nll fwd+bwd ≥ 5×, Viterbi ≥ 3× pytorch-crf):",
        "",
        *(headline(records) or ["- pytorch-crf not installed: no comparison"]),
        "",
        "fp32; `nll fwd+bwd` = summed NLL + backward into emissions and CRF parameters; "
        "`viterbi` = best paths (pytorch-crf: lists, kexue: a (B, T) tensor); speed-up = "
        "pytorch-crf median / variant median; peak extra = VmHWM − VmRSS around one call in a "
        "fresh process; agreement = max |ΔLL| per sequence vs pytorch-crf (fp32) and the share "
        "of identical decodes. `kexue auto` resolves to `matmul` here; `kexue` Viterbi is the "
        'length-sorted fast path, `kexue max` the max-semiring reference (`algorithm="max"`).',
        "",
        table(records),
        "",
    ]
    return "\n".join(lines)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = BLOCK.parser(__doc__, quick_help="one tiny setting (smoke)")
    parser.add_argument("--reps", type=int, default=10, help="timed calls per variant")
    parser.add_argument("--warmup", type=int, default=2, help="warm-up calls per variant")
    args = parser.parse_args(argv)
    args.has_ref = importable("torchcrf")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    BLOCK.begin(args)  # threads, the machine line on stderr
    if not args.has_ref:
        print("pytorch-crf (torchcrf) not installed: its rows are skipped", file=sys.stderr)
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    records = run(args)
    text = results_markdown(args, argv, records, time.perf_counter() - t0,
                            (load0, os.getloadavg()))  # fmt: skip
    BLOCK.publish(text, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
