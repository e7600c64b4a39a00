"""Benchmarks of kexue-vq against its anchors (a script, not a test).

Needs (for a hatch ``[envs.bench]``): torch, kexue-vq (editable); optional anchor
``vector-quantize-pytorch`` (a missing anchor is reported and its rows are skipped). Nothing else:
no psutil (CPU memory comes from ``/proc/self/status``), no pytest.

What it measures (details in ``packages/vq/BENCHMARKS.md``):

(a) Nearest-code lookup of N vectors among K codes of dimension D, fp32, side by side:
    ``kexue.vq.functional.nearest_code`` (Triton on CUDA, the chunked torch reference on CPU),
    ``torch.cdist`` + ``argmin``, the matmul expansion ``‖x‖² − 2·x·eᵀ + ‖e‖²`` + ``argmin``, and
    ``vector_quantize_pytorch.VectorQuantize`` forward in eval mode (same K, D; decay 0.99,
    ``rotation_trick=False``), for N ∈ {2^14, 2^16, 2^20}, K ∈ {512, 8192, 65536},
    D ∈ {64, 256}. Each variant's time and memory are estimated first; a variant whose dense
    temporaries would not fit, or (CPU) whose call would take more than ``--max-call-s`` (30 s),
    is skipped and says so in the table.
(b) The quantiser's training step (forward + backward + EMA update) of
    ``kexue.vq.quantizer.VectorQuantizer`` vs ``VectorQuantize`` in train mode (same K, D, decay
    0.99, commitment weight 0.25, ``rotation_trick=False``).

Every shape runs in fresh subprocesses, with the variants interleaved round robin: one times the
calls (default allocator); on CPU a second one measures each variant's peak on one call —
``VmHWM − VmRSS`` around the call, the peak reset through ``/proc/self/clear_refs`` just before it,
with glibc's ``MALLOC_MMAP_THRESHOLD_=65536`` so freed blocks go back to the OS and each call's
peak is its own (that setting is kept out of the timing run: it makes every large allocation
page-fault afresh). CUDA: ``torch.cuda.max_memory_allocated`` minus the allocation before the
call.

    python -m tools.bench.vq --quick             # smoke check (a few small shapes)
    nice python -m tools.bench.vq --write        # full measurement, CPU, 2 threads
    python -m tools.bench.vq --device cuda --write
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from tools.bench._common import (
    benchmarks_md,
    block_markers,
    importable,
    json_from_child,
    machine_line,
    markdown_table,
    proc_status_bytes,
    publish,
    run_facts,
)
from tools.bench._common import versions as _versions

BENCHMARKS_MD = benchmarks_md("vq")
START, END = block_markers("bench:results")
SEED = 0
DECAY = 0.99
BETA = 0.25
LOOKUP = ("kexue nearest_code", "torch.cdist + argmin", "matmul expansion + argmin")
LUCID_EVAL = "vector-quantize-pytorch eval forward"
TRAIN = ("kexue VectorQuantizer", "vector-quantize-pytorch VectorQuantize")
# Dense temporaries of each variant, in units of one fp32 N×K matrix [estimate from their code].
DENSE = {LOOKUP[0]: 0.0, LOOKUP[1]: 2.0, LOOKUP[2]: 3.0, LUCID_EVAL: 4.0, TRAIN[0]: 0.0}
DENSE[TRAIN[1]] = 8.0  # distances, one-hot, their gradients and copies

FULL_LOOKUP = [
    (n, k, d) for n in (2**14, 2**16, 2**20) for k in (512, 8192, 65536) for d in (64, 256)
]
QUICK_LOOKUP = [(4096, 512, 64), (4096, 8192, 256)]
FULL_TRAIN = [(2**14, 512, 64), (2**14, 8192, 256), (2**16, 8192, 64)]
QUICK_TRAIN = [(4096, 512, 64)]


# --------------------------------------------------------------------------------------------------
# Machine, versions, memory
# --------------------------------------------------------------------------------------------------


def versions() -> dict[str, str]:
    return _versions("kexue-vq", "vector-quantize-pytorch", "triton")


def available_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    with open("/proc/meminfo", encoding="utf-8") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 8 * 2**30


def measured_call(
    fn: Callable[[], Any], device: torch.device, *, memory: bool
) -> tuple[float, int, Any]:
    """(seconds, peak extra bytes or 0, result) of one call (see the module docstring)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        t0 = time.perf_counter()
        out = fn()
        torch.cuda.synchronize(device)
        seconds = time.perf_counter() - t0
        return seconds, torch.cuda.max_memory_allocated(device) - before, out
    if not memory:
        t0 = time.perf_counter()
        out = fn()
        return time.perf_counter() - t0, 0, out
    before = proc_status_bytes("VmRSS")
    with open("/proc/self/clear_refs", "w", encoding="utf-8") as f:
        f.write("5")  # reset VmHWM to the current RSS (Linux >= 4.0)
    t0 = time.perf_counter()
    out = fn()
    seconds = time.perf_counter() - t0
    return seconds, proc_status_bytes("VmHWM") - before, out


def gemm_rate(device: torch.device) -> float:
    """Measured fp32 GEMM FLOP/s (4096 × 4096 × 256), the ceiling the lookup is compared to."""
    a = torch.randn(4096, 256, device=device)
    b = torch.randn(256, 4096, device=device)
    times = []
    for _ in range(5):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        a @ b
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - t0)
    return 2 * 4096 * 4096 * 256 / min(times)


# --------------------------------------------------------------------------------------------------
# Variants (built inside the child process)
# --------------------------------------------------------------------------------------------------


def _lucid(k: int, d: int, device: torch.device) -> Any:
    from vector_quantize_pytorch import VectorQuantize

    return VectorQuantize(
        dim=d,
        codebook_size=k,
        decay=DECAY,
        commitment_weight=BETA,
        rotation_trick=False,
    ).to(device)


def lookup_fns(n: int, k: int, d: int, names: list[str], device: torch.device) -> dict:
    from kexue.vq.functional import nearest_code

    gen = torch.Generator().manual_seed(SEED)
    x = torch.randn(n, d, generator=gen).to(device)
    codes = torch.randn(k, d, generator=gen).to(device)
    fns: dict[str, Callable[[], torch.Tensor]] = {}
    for name in names:
        if name == LOOKUP[0]:
            fns[name] = lambda: nearest_code(x, codes)[0]
        elif name == LOOKUP[1]:
            fns[name] = lambda: torch.cdist(x, codes).argmin(dim=1)
        elif name == LOOKUP[2]:
            fns[name] = lambda: (
                x.pow(2).sum(1, keepdim=True) - 2 * (x @ codes.T) + codes.pow(2).sum(1)
            ).argmin(dim=1)
        elif name == LUCID_EVAL:
            vq = _lucid(k, d, device).eval()
            with torch.no_grad():
                vq._codebook.embed.copy_(codes.unsqueeze(0))
            vq._codebook.initted.fill_(True)

            def lucid(vq: Any = vq) -> torch.Tensor:
                with torch.no_grad():
                    return vq(x.unsqueeze(0))[1].reshape(-1)

            fns[name] = lucid
    return fns


def train_fns(n: int, k: int, d: int, names: list[str], device: torch.device) -> dict:
    from kexue.vq.quantizer import VectorQuantizer

    gen = torch.Generator().manual_seed(SEED)
    b = 16
    x = torch.randn(b, n // b, d, generator=gen).to(device).requires_grad_(True)
    fns: dict[str, Callable[[], torch.Tensor]] = {}
    for name in names:
        if name == TRAIN[0]:
            q = VectorQuantizer(k, d, beta=BETA, decay=DECAY).to(device).train()

            def kexue(q: Any = q) -> torch.Tensor:
                out = q(x)
                (out.loss + out.quantized.square().mean()).backward()
                x.grad = None
                return out.indices.reshape(-1)

            fns[name] = kexue
        elif name == TRAIN[1]:
            vq = _lucid(k, d, device).train()

            def lucid(vq: Any = vq) -> torch.Tensor:
                quantized, indices, loss = vq(x)
                (loss.sum() + quantized.square().mean()).backward()
                x.grad = None
                return indices.reshape(-1)

            fns[name] = lucid
    return fns


def child(job: dict[str, Any]) -> dict[str, Any]:
    """Run one shape's variants interleaved; return per-variant times, peaks and agreement."""
    torch.set_num_threads(job["threads"])
    torch.manual_seed(SEED)
    device = torch.device(job["device"])
    n, k, d = job["shape"]
    build = lookup_fns if job["kind"] == "lookup" else train_fns
    fns = build(n, k, d, job["variants"], device)
    names = list(fns)
    est = job["estimates"]
    memory = job["memory"]
    reps = {
        name: 1
        if memory
        else max(
            2 if est[name] <= 15.0 else 1,
            min(job["max_reps"], int(job["budget_s"] / max(est[name], 1e-3))),
        )
        for name in names
    }
    for name in names:  # warm-up (lazy imports, first-touch): only where a call is cheap
        if est[name] < 2.0:
            fns[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    peaks: dict[str, int] = {name: 0 for name in names}
    indices: dict[str, torch.Tensor] = {}
    for r in range(max(reps.values())):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            if len(times[name]) >= reps[name]:
                continue
            seconds, peak, idx = measured_call(fns[name], device, memory=memory)
            times[name].append(seconds)
            peaks[name] = max(peaks[name], peak)
            indices.setdefault(name, idx.detach().to("cpu", torch.int64))
    ref = indices.get(names[0])
    agree = {
        name: float((idx == ref).double().mean()) if ref is not None else None
        for name, idx in indices.items()
    }
    return {"times": times, "peaks": peaks, "agree": agree}


# --------------------------------------------------------------------------------------------------
# Parent: plan, run, format
# --------------------------------------------------------------------------------------------------


def estimate(
    name: str, n: int, k: int, d: int, rate: float, device: torch.device
) -> tuple[float, float]:
    """(seconds, bytes) of one call [estimate]: GEMM FLOPs at the measured rate, plus dense
    N×K passes at ~5 GB/s (CPU) / ~2 TB/s (CUDA); training variants count 3 GEMMs (lucidrains:
    distances, one-hot × codebook, one-hot × inputs) or 1 (kexue)."""
    dense = DENSE[name] * n * k * 4
    gemms = 3 if name == TRAIN[1] else 1
    bandwidth = 5e9 if device.type == "cpu" else 2e12
    seconds = gemms * 2 * n * k * d / rate + 2 * dense / bandwidth
    return seconds, dense + 4 * n * d * 4


def plan(
    kind: str,
    shape: tuple[int, int, int],
    names: list[str],
    args: argparse.Namespace,
    rate: float,
    mem: int,
) -> tuple[list[str], dict[str, float], dict[str, str]]:
    n, k, d = shape
    device = torch.device(args.device)
    run, est, skipped = [], {}, {}
    for name in names:
        seconds, nbytes = estimate(name, n, k, d, rate, device)
        if nbytes > 0.6 * mem:
            skipped[name] = f"skipped: needs ~{nbytes / 2**30:.0f} GiB (est.)"
        elif seconds > args.max_call_s:
            skipped[name] = f"skipped: ~{seconds:.0f} s per call (est.) > {args.max_call_s:g} s"
        else:
            run.append(name)
            est[name] = seconds
    return run, est, skipped


def run_child(job: dict[str, Any]) -> dict[str, Any] | None:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    if job["memory"]:  # blocks > 64 KiB go back to the OS when freed: each call's peak is its own
        env["MALLOC_MMAP_THRESHOLD_"] = "65536"
    cmd = [sys.executable, "-m", __spec__.name, "--_child", json.dumps(job)]
    return json_from_child(cmd, what=f"  child {job['shape']}", env=env, tail=3000)


def fmt_ms(seconds: float) -> str:
    ms = 1e3 * seconds
    return f"{ms:.0f}" if ms >= 100 else f"{ms:.1f}" if ms >= 1 else f"{ms:.3f}"


def bench(
    kind: str, shapes: list[tuple[int, int, int]], args: argparse.Namespace, rate: float
) -> list[dict[str, Any]]:
    device = torch.device(args.device)
    mem = available_bytes(device)
    names = [*LOOKUP, LUCID_EVAL] if kind == "lookup" else list(TRAIN)
    if not args.has_lucid:
        names = [n for n in names if "vector-quantize" not in n]
    records = []
    for shape in shapes:
        run, est, skipped = plan(kind, shape, names, args, rate, mem)
        t0 = time.perf_counter()
        result = None
        if run:
            job = {
                "kind": kind,
                "shape": list(shape),
                "variants": run,
                "estimates": est,
                "device": args.device,
                "threads": args.threads,
                "max_reps": args.max_reps,
                "budget_s": args.budget_s,
            }
            result = run_child({**job, "memory": False})
            if result is not None and device.type == "cpu":
                mem_result = run_child({**job, "memory": True})
                result["peaks"] = mem_result["peaks"] if mem_result else dict.fromkeys(run, -1)
        print(
            f"[{kind}] N={shape[0]} K={shape[1]} D={shape[2]}: {time.perf_counter() - t0:.0f} s",
            file=sys.stderr,
        )
        for name in names:
            rec: dict[str, Any] = {"kind": kind, "shape": list(shape), "variant": name}
            if name in skipped:
                rec["skipped"] = skipped[name]
            elif result is None:
                rec["skipped"] = "failed (see stderr)"
            else:
                t = result["times"][name]
                rec.update(
                    median_s=statistics.median(t),
                    calls=len(t),
                    peak_bytes=result["peaks"][name],
                    agree=result["agree"].get(name),
                    estimate_s=est[name],
                )
            records.append(rec)
    return records


def table(kind: str, records: list[dict[str, Any]], rate: float) -> str:
    headers = [
        "N",
        "K",
        "D",
        "variant",
        "median ms",
        "calls",
        "× cdist time" if kind == "lookup" else "× anchor time",
        "peak extra MiB",
    ]
    if kind == "lookup":
        headers += ["GFLOP/s", "idx = kexue %"]
    rows = []
    by_shape: dict[tuple, dict[str, dict]] = {}
    for r in records:
        by_shape.setdefault(tuple(r["shape"]), {})[r["variant"]] = r
    for (n, k, d), recs in by_shape.items():
        base = recs.get(LOOKUP[1] if kind == "lookup" else TRAIN[1], {}).get("median_s")
        for name, r in recs.items():
            row = [f"2^{int(math.log2(n))}", k, d, name]
            if "skipped" in r:
                row += [r["skipped"], "", "", ""] + (["", ""] if kind == "lookup" else [])
            else:
                ratio = f"{r['median_s'] / base:.2f}" if base else "n/a"
                row += [fmt_ms(r["median_s"]), r["calls"], ratio, f"{r['peak_bytes'] / 2**20:.1f}"]
                if kind == "lookup":
                    row += [
                        f"{2 * n * k * d / r['median_s'] / 1e9:.0f}",
                        f"{100 * r['agree']:.2f}" if r["agree"] is not None else "",
                    ]
            rows.append(row)
    return markdown_table(headers, rows)


def find(records: list[dict[str, Any]], shape: tuple[int, int, int], name: str) -> dict | None:
    for r in records:
        if tuple(r["shape"]) == shape and r["variant"] == name and "skipped" not in r:
            return r
    return None


def headline(lookups: list[dict], trains: list[dict], device: torch.device) -> list[str]:
    """The issue's targets (CPU: N=16384, K=8192, D=256), met or not, with the figures."""
    shape = (2**14, 8192, 256)
    lines = []
    ours, cdist = find(lookups, shape, LOOKUP[0]), find(lookups, shape, LOOKUP[1])
    if ours and cdist:
        ratio = cdist["median_s"] / ours["median_s"]
        peak = ours["peak_bytes"] / 2**20
        ok = ratio >= 1.0 and peak <= 64
        lines.append(
            f"- Lookup, {device.type}, N=16384, K=8192, D=256: kexue {fmt_ms(ours['median_s'])} ms "
            f"vs cdist + argmin {fmt_ms(cdist['median_s'])} ms (kexue {ratio:.2f}× as fast), "
            f"peak extra {peak:.1f} MiB vs {cdist['peak_bytes'] / 2**20:.0f} MiB. Target "
            f"(no slower, ≤ 64 MiB): {'met' if ok else 'NOT met'}."
        )
    ours, lucid = find(trains, shape, TRAIN[0]), find(trains, shape, TRAIN[1])
    if ours and lucid:
        ratio = lucid["median_s"] / ours["median_s"]
        lines.append(
            f"- Training step, {device.type}, N=16384, K=8192, D=256: kexue "
            f"{fmt_ms(ours['median_s'])} ms vs vector-quantize-pytorch "
            f"{fmt_ms(lucid['median_s'])} ms ({ratio:.2f}× faster; peak extra "
            f"{ours['peak_bytes'] / 2**20:.0f} vs {lucid['peak_bytes'] / 2**20:.0f} MiB). "
            f"Target (≥ 3×): {'met' if ratio >= 3 else 'NOT met'}."
        )
    return lines


def results_markdown(
    args: argparse.Namespace,
    argv: list[str],
    device: torch.device,
    rate: float,
    lookups: list[dict],
    trains: list[dict],
    wall_s: float,
) -> str:
    mode = "quick (smoke check: small shapes, not the benchmark)" if args.quick else "full"
    backend = "Triton kernel" if device.type == "cuda" else "chunked torch reference"
    lines = [
        "## Results",
        "",
        *run_facts(
            f"python -m tools.bench.vq {' '.join(argv)}",
            mode=f"{mode}; wall time {wall_s:.0f} s",
            machine=f"{machine_line(device, threads=args.threads)}",
            versions=versions(),
        ),
        f"- Measured fp32 GEMM ceiling (4096 × 4096 × 256 matmul): {rate / 1e9:.0f} GFLOP/s",
        "",
        "Headline (issue 3 targets):",
        "",
        *(headline(lookups, trains, device) or ["- target shape not measured in this mode"]),
        "",
        f"Table 1. Nearest-code lookup, fp32 on {device.type} (kexue: {backend}); median of "
        "`calls` interleaved calls; `× cdist time` = median / cdist's median (< 1 is faster); "
        "peak extra = memory allocated by a call beyond its inputs (CPU: VmHWM − VmRSS around "
        "the call, CUDA: max_memory_allocated delta); GFLOP/s counts 2·N·K·D; `idx = kexue %` "
        "= share of indices equal to kexue's exact fp32 argmin. Skipped rows give the estimate "
        f"that ruled them out (> 60 % of free memory, or > {args.max_call_s:g} s per call).",
        "",
        table("lookup", lookups, rate),
        "",
        f"Table 2. Quantiser training step (forward + backward + EMA update, decay {DECAY}, "
        f"β = {BETA}), input (16, N/16, D) fp32 on {device.type}; `× anchor time` = median / "
        "vector-quantize-pytorch's median.",
        "",
        table("train", trains, rate),
        "",
    ]
    if not args.has_lucid:
        lines += ["- skipped: vector-quantize-pytorch not installed: its rows are left out", ""]
    return "\n".join(lines).rstrip() + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="a few small shapes (smoke)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    parser.add_argument(
        "--write", action="store_true", help="rewrite the results section of BENCHMARKS.md"
    )
    parser.add_argument("--benchmarks-md", type=Path, default=BENCHMARKS_MD)
    parser.add_argument(
        "--only", choices=("lookup", "train"), default=None, help="run one part only"
    )
    parser.add_argument(
        "--max-call-s",
        type=float,
        default=30.0,
        help="skip a variant whose estimated call time exceeds this (default 30 s)",
    )
    parser.add_argument("--max-reps", type=int, default=7, help="timed calls per variant, at most")
    parser.add_argument(
        "--budget-s",
        type=float,
        default=4.0,
        help="timed calls per variant ≈ budget / estimated call time (at least 1)",
    )
    parser.add_argument("--_child", dest="child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device available")
    args.has_lucid = importable("vector_quantize_pytorch")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return 0
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if not args.has_lucid:
        print("vector-quantize-pytorch not installed: its rows are skipped", file=sys.stderr)
    t0 = time.perf_counter()
    print(f"machine: {machine_line(device, threads=args.threads)}", file=sys.stderr)
    rate = gemm_rate(device)
    print(f"fp32 GEMM: {rate / 1e9:.0f} GFLOP/s", file=sys.stderr)
    lookups: list[dict] = []
    trains: list[dict] = []
    if args.only in (None, "lookup"):
        lookups = bench("lookup", QUICK_LOOKUP if args.quick else FULL_LOOKUP, args, rate)
    if args.only in (None, "train"):
        trains = bench("train", QUICK_TRAIN if args.quick else FULL_TRAIN, args, rate)
    text = results_markdown(args, argv, device, rate, lookups, trains, time.perf_counter() - t0)
    publish(text, args.benchmarks_md, START, END, write=args.write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
