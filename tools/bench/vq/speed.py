"""Step time and LFQ peak memory of kexue-vq's FSQ, LFQ and VQ (+ rotation) vs vector-quantize-pytorch.

(a) Quantiser step = forward + backward of ``(quantized · g).sum() + loss`` in training mode, for
    N ∈ {2^10, 2^14, 2^16} vectors, interleaved round robin (median of ``--reps`` calls after a
    warm-up; fewer, at least 5, where a cell would exceed ``--cell-budget-s``), one process, ``--threads`` torch threads (default 1):
    - FSQ [4, 4, 4, 4] (256 codes) and [8, 5, 5, 5] (1000 codes, unequal levels): ``FSQ(levels)``
      vs vqp ``FSQ(levels)`` (kexue's ``stats`` are lazy and not read here; vqp has none);
    - LFQ 8 bits, and 12 bits at N = 2^10 only (vqp's step takes minutes at 2^14 here): ``LFQ(b, commitment_weight=0.25)`` (exact entropies) vs vqp
      ``LFQ(codebook_size=2^b, commitment_loss_weight=0.25, frac_per_sample_entropy=1)``;
    - VQ K = 256, D = 8, EMA 0.99, β 0.25, STE and rotation trick: ``VectorQuantizer(256, 8,
      estimator=...)`` vs vqp ``VectorQuantize(dim=8, codebook_size=256, decay=0.99,
      commitment_weight=0.25, rotation_trick=False/True)`` (rotation rows only when this kexue has
      ``estimator=``).
(b) LFQ peak memory of one training step at b bits and N rows: a fresh subprocess per cell; glibc
    ``MALLOC_MMAP_THRESHOLD_=65536`` (freed blocks go back to the OS), the high-water mark reset
    through ``/proc/self/clear_refs`` after building the inputs, and peak = VmHWM − VmRSS before
    the step. vqp's full N × 2^b softmax at b = 16, N = 2^14 (4 GiB per fp32 tensor, about seven
    alive in the backward: ~28 GiB) does not fit this 24 GiB machine: it is measured at N = 2^10,
    2^11 and 2^12 and extrapolated linearly in N from 2^12 (its dense temporaries are N × 2^b; the
    three measured points show the linearity), and the table says so.

    python -m tools.bench.vq.speed [--quick] [--write]
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import statistics
import sys
from collections.abc import Callable
from typing import Any

import torch

from tools.bench._common import (
    interleaved,
    json_from_child,
    machine_line,
    markdown_table,
    proc_status_bytes,
    run_facts,
    versions,
)
from tools.bench.vq._cli import bench_main

MIB = 2**20


def has_rotation() -> bool:
    from kexue.vq import VectorQuantizer

    return "estimator" in inspect.signature(VectorQuantizer).parameters


def _pair(kind: str, bits: int) -> tuple[Any, Any]:
    import vector_quantize_pytorch as vqp

    from kexue.vq import FSQ, LFQ, VectorQuantizer

    if kind == "fsq":
        return FSQ([4, 4, 4, 4]), vqp.FSQ([4, 4, 4, 4])
    if kind == "fsq-mixed":  # unequal levels: per-level constants broadcast as (d,) tensors
        return FSQ([8, 5, 5, 5]), vqp.FSQ([8, 5, 5, 5])
    if kind == "lfq":
        ours = LFQ(bits, commitment_weight=0.25)
        theirs = vqp.LFQ(
            codebook_size=2**bits, commitment_loss_weight=0.25, frac_per_sample_entropy=1.0
        )
        return ours, theirs
    rotation = kind == "vq+rotation"
    extra = {"estimator": "rotation"} if rotation else {}
    ours = VectorQuantizer(256, 8, decay=0.99, beta=0.25, **extra)
    theirs = vqp.VectorQuantize(
        dim=8, codebook_size=256, decay=0.99, commitment_weight=0.25, rotation_trick=rotation
    )
    return ours, theirs


def _step(module: Any, x: torch.Tensor, g: torch.Tensor, ours: bool) -> Callable[[], None]:
    def run() -> None:
        xi = x.detach().requires_grad_()
        if ours:
            out = module(xi)
            q, loss = out.quantized, out.loss
        else:
            res = module(xi)
            q, loss = res[0], (res[2] if len(res) > 2 else 0.0)
        ((q * g).sum() + loss).backward()

    return run


def step_fns(kind: str, bits: int, n: int) -> dict[str, Callable[[], None]]:
    ours, theirs = _pair(kind, bits)
    ours.train()
    theirs.train()
    dim = {"fsq": 4, "fsq-mixed": 4, "lfq": bits}.get(kind, 8)
    g = torch.Generator().manual_seed(n)
    x = torch.randn(1, n, dim, generator=g) * (0.05 if kind == "lfq" else 1.0)
    grad = torch.randn(1, n, dim, generator=g)
    return {"kexue": _step(ours, x, grad, True), "vqp": _step(theirs, x, grad, False)}


def timed(fns: dict[str, Callable[[], None]], reps: int, budget_s: float) -> dict[str, list[float]]:
    """Interleaved times: ``reps`` calls each, fewer (at least 5) when one round of calls would
    put the cell over ``budget_s`` seconds (vqp's N × 2^b LFQ steps take seconds each here)."""
    probe = interleaved(fns, warmup=1, reps=1, device=torch.device("cpu"))
    per_round = sum(t[0] for t in probe.values())
    n = max(5, min(reps, int(budget_s / max(per_round, 1e-9))))
    return interleaved(fns, warmup=1, reps=n, device=torch.device("cpu"))


ALL_KINDS = ("fsq", "fsq-mixed", "lfq8", "lfq12", "vq", "vq+rotation")


def speed_rows(
    sizes: list[int], reps: int, budget_s: float, only: tuple[str, ...] = ALL_KINDS
) -> list[list[Any]]:
    names = [k for k in only if k != "vq+rotation" or has_rotation()]
    kinds = [(k[:3], int(k[3:])) if k.startswith("lfq") else (k, 0) for k in names]
    rows = []
    for kind, bits in kinds:
        for n in sizes:
            if kind == "lfq" and bits == 12 and n > 2**10:
                continue  # vqp: N × 2^12 fp32 tensors; one step takes minutes at 2^14 here
            times = timed(step_fns(kind, bits, n), reps, budget_s)
            ours, theirs = statistics.median(times["kexue"]), statistics.median(times["vqp"])
            name = {"fsq": "FSQ [4,4,4,4]", "fsq-mixed": "FSQ [8,5,5,5]"}.get(kind, kind.upper())
            name = f"LFQ {bits} bits" if kind == "lfq" else name
            name = "VQ K=256 D=8 + rotation" if kind == "vq+rotation" else name
            name = "VQ K=256 D=8 (STE)" if kind == "vq" else name
            rows.append(
                [
                    name,
                    f"2^{n.bit_length() - 1}",
                    f"{ours * 1e3:.2f}",
                    f"{theirs * 1e3:.2f}",
                    f"{theirs / ours:.1f}×",
                    len(times["kexue"]),
                ]
            )
            print(rows[-1], file=sys.stderr)
    return rows


def child(job: dict[str, Any]) -> dict[str, Any]:
    """One LFQ training step in this process; its peak extra resident memory in bytes."""
    torch.set_num_threads(1)
    bits, n = job["bits"], job["n"]
    if job["impl"] == "kexue":
        from kexue.vq import LFQ

        module = LFQ(bits, commitment_weight=0.25).train()
    else:
        import vector_quantize_pytorch as vqp

        module = vqp.LFQ(codebook_size=2**bits, commitment_loss_weight=0.25).train()
    x = torch.randn(1, n, bits) * 0.05
    g = torch.randn(1, n, bits)
    run = _step(module, x, g, job["impl"] == "kexue")
    run()  # warm-up: lazy buffers, allocator pools
    with open("/proc/self/clear_refs", "w", encoding="utf-8") as f:
        f.write("5")
    base = proc_status_bytes("VmRSS")
    run()
    return {"peak": proc_status_bytes("VmHWM") - base}


def peak(impl: str, bits: int, n: int) -> float | None:
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "OMP_NUM_THREADS": "1"}
    job = json.dumps({"impl": impl, "bits": bits, "n": n})
    cmd = [sys.executable, "-m", "tools.bench.vq.speed", "--child", job]
    res = json_from_child(cmd, what=f"{impl} LFQ b={bits} N={n}", env=env, timeout=600)
    return None if res is None else res["peak"] / MIB


def memory_rows(quick: bool) -> list[list[Any]]:
    cells = [(8, 2**14), (12, 2**14), (16, 2**14)] if not quick else [(8, 2**12), (16, 2**12)]
    rows = []
    for bits, n in cells:
        ours = peak("kexue", bits, n)
        if bits == 16 and n > 2**12:
            small = [peak("vqp", bits, m) for m in (2**10, 2**11, 2**12)]
            theirs = None if small[-1] is None else small[-1] * n / 2**12
            measured = ", ".join(f"{v:.0f} MiB at 2^{10 + i}" for i, v in enumerate(small) if v)
            note = f"vqp extrapolated ×{n // 2**12} from N=2^12 (measured: {measured})"
        else:
            theirs, note = peak("vqp", bits, n), "both measured"
        ratio = f"{theirs / ours:.0f}×" if ours and theirs else "—"
        rows.append([bits, f"2^{n.bit_length() - 1}", f"{ours:.1f}", f"{theirs:.0f}", ratio, note])
        print(rows[-1], file=sys.stderr)
    return rows


def results_markdown(args: argparse.Namespace, argv: list[str]) -> str:
    torch.set_num_threads(args.threads)
    sizes = [2**10, 2**12] if args.quick else [2**10, 2**14, 2**16]
    facts = run_facts(
        f"python -m tools.bench.vq.speed {' '.join(argv)}".strip(),
        mode=f"CPU, fp32, {args.threads} thread(s), median of up to {args.reps} interleaved "
        f"steps (fewer, at least 5, where a cell would exceed {args.cell_budget_s:.0f} s)",
        machine=machine_line(),
        versions=versions("kexue-vq", "vector-quantize-pytorch"),
    )
    only = tuple(args.kinds.split(",")) if args.kinds else ALL_KINDS
    speed = markdown_table(
        ["quantiser", "N", "kexue ms", "vqp ms", "vqp / kexue", "calls each"],
        speed_rows(sizes, args.reps, args.cell_budget_s, only),
    )
    title = "### Step time and LFQ memory vs vector-quantize-pytorch"
    lines = [title if not args.kinds else f"### Step time vs vqp: {', '.join(only)}"]
    lines += ["", *facts, "", speed, ""]
    if not args.kinds:  # the memory cells belong to the full run
        mem = markdown_table(
            ["LFQ bits", "N", "kexue peak MiB", "vqp peak MiB", "vqp / kexue", "how"],
            memory_rows(args.quick),
        )
        lines += ["LFQ training-step peak memory (extra resident memory of one step):", "", mem, ""]
    return "\n".join([*lines, *([args.note, ""] if args.note else [])])


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="small sizes, few repetitions")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--reps", type=int, default=30)
    parser.add_argument("--cell-budget-s", type=float, default=60.0)
    parser.add_argument("--note", help="a paragraph (the reading of this run) ending the block")
    parser.add_argument(
        "--kinds", help=f"comma-separated subset of {','.join(ALL_KINDS)} (own block, no memory)"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)


def _before(args: argparse.Namespace) -> int | None:
    """A ``--child`` job prints its JSON and ends the run; ``--quick`` caps the repetitions."""
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return 0
    if args.quick:
        args.reps = min(args.reps, 5)
    return None


def main(argv: list[str] | None = None) -> int:
    return bench_main(__doc__, _block, argv, results_markdown, _arguments, _before)


def _block(args: argparse.Namespace) -> str:
    """The full run keeps its block; a ``--kinds`` rerun gets one of its own."""
    return "bench:vq-modern-speed" + (f"-{args.kinds.replace(',', '-')}" if args.kinds else "")


if __name__ == "__main__":
    raise SystemExit(main())
