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
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from typing import Any

import torch

from tools.bench._common import (
    BenchBlock,
    cpu_model,
    importable,
    interleaved,
    json_from_child,
    markdown_table,
    proc_status_bytes,
    quartiles,
    run_facts,
    usable_cores,
)

BLOCK = BenchBlock("textkit", "textkit_crf", __spec__.name, anchors=("pytorch-crf",))
SEED = 0
SETTINGS = [(64, 128, 20), (32, 512, 50)]
QUICK_SETTINGS = [(8, 32, 5)]
NLL = ("pytorch-crf", "kexue auto", "kexue matmul", "kexue lse")
DECODE = ("pytorch-crf", "kexue", "kexue max")


def inputs(b: int, t: int, k: int, masked: bool) -> dict[str, Any]:
    g = torch.Generator().manual_seed(SEED)
    h = torch.randn(b, t, k, generator=g)
    tags = torch.randint(0, k, (b, t), generator=g)
    if masked:
        lengths = torch.randint(t // 4, t + 1, (b,), generator=g)
    else:
        lengths = torch.full((b,), t)
    mask = torch.arange(t) < lengths[:, None]
    return {"h": h, "tags": tags, "mask": mask}


def build(b: int, t: int, k: int, masked: bool, has_ref: bool) -> dict[str, Any]:
    """Models and the zero-argument callables of one setting."""
    from kexue.textkit.tagging.crf.functional import viterbi_decode
    from kexue.textkit.tagging.crf.module import CRF

    torch.manual_seed(SEED)
    x = inputs(b, t, k, masked)
    h = x["h"].requires_grad_(True)
    tags, mask = x["tags"], x["mask"]
    if has_ref:
        import torchcrf

        ref = torchcrf.CRF(k, batch_first=True)
        ours = {n: CRF.from_pytorch_crf(ref, algorithm=n.split()[1]) for n in NLL[1:]}
    else:
        ours = {n: CRF(k, algorithm=n.split()[1]) for n in NLL[1:]}
    nll: dict[str, Callable[[], Any]] = {}
    models = {}
    if has_ref:

        def ref_nll() -> None:
            h.grad = None
            ref.zero_grad()
            (-ref(h, tags, mask, reduction="sum")).backward()

        nll[NLL[0]] = ref_nll
        models[NLL[0]] = ref
    for name, crf in ours.items():

        def our_nll(crf: Any = crf) -> None:
            h.grad = None
            crf.zero_grad()
            crf(h, tags, mask, reduction="sum").backward()

        nll[name] = our_nll
        models[name] = crf
    hd = h.detach()
    decode: dict[str, Callable[[], Any]] = {}
    if has_ref:
        decode[DECODE[0]] = lambda: ref.decode(hd, mask)
    decode[DECODE[1]] = lambda: ours["kexue auto"].decode(hd, mask)
    auto = ours["kexue auto"]
    decode[DECODE[2]] = lambda: viterbi_decode(
        hd, auto.transitions.detach(), mask=mask, start=auto.start_transitions.detach(),
        end=auto.end_transitions.detach(), algorithm="max",
    )  # fmt: skip
    return {"nll": nll, "decode": decode, "models": models, "x": x}


def agreement(parts: dict[str, Any], has_ref: bool) -> dict[str, Any]:
    if not has_ref:
        return {}
    x, models = parts["x"], parts["models"]
    h, tags, mask = x["h"].detach(), x["tags"], x["mask"]
    with torch.no_grad():
        want = models[NLL[0]](h, tags, mask, reduction="none")
        dll = {
            name: float((models[name].log_likelihood(h, tags, mask, "none") - want).abs().max())
            for name in NLL[1:]
        }
        ref_paths = models[NLL[0]].decode(h, mask)
        same = {}
        for name in DECODE[1:]:
            ours = parts["decode"][name]()
            ours = ours[0] if isinstance(ours, tuple) else ours
            hits = sum(ours[i, : len(p)].tolist() == p for i, p in enumerate(ref_paths))
            same[name] = hits / len(ref_paths)
    return {"dll": dll, "same": same}


def child_memory(job: dict[str, Any]) -> dict[str, int]:
    """Peak extra bytes of one call per variant (run in a fresh process)."""
    torch.set_num_threads(job["threads"])
    b, t, k = job["shape"]
    parts = build(b, t, k, job["masked"], job["has_ref"])
    out = {}
    for kind in ("nll", "decode"):
        for name, fn in parts[kind].items():
            fn()  # warm-up
            before = proc_status_bytes("VmRSS")
            with open("/proc/self/clear_refs", "w", encoding="utf-8") as f:
                f.write("5")
            fn()
            out[f"{kind}:{name}"] = proc_status_bytes("VmHWM") - before
    return out


def memory(shape: tuple[int, int, int], masked: bool, args: argparse.Namespace) -> dict[str, int]:
    job = {"shape": list(shape), "masked": masked, "has_ref": args.has_ref, "threads": args.threads}
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", __spec__.name, "--_child", json.dumps(job)]
    return json_from_child(cmd, what="memory child", env=env) or {}


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
    parser.add_argument("--_child", dest="child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.has_ref = importable("torchcrf")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.child:
        print(json.dumps(child_memory(json.loads(args.child))))
        return 0
    torch.set_num_threads(args.threads)
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
