"""Benchmark of the kexue-flows fused coupling op (a script, not a test).

Needs: torch, kexue-flows (editable); triton for the fused-kernel rows (CUDA only). No numpy.

What it measures (spec §3.4; issue 4 "Coupling kernel"): forward + backward time of the affine
coupling op on the transformed half, Glow's ``sigmoid2`` scale and interleaved h, for

- ``eager``: :func:`kexue.flows.functional.coupling_forward` (torch ops, autograd backward);
- ``compile``: ``torch.compile`` of the same function (Inductor fuses the chain);
- ``fused``: :func:`kexue.flows.functional.fused_coupling` with ``backend="triton"`` (one forward
  kernel + the deterministic logdet reduce, one backward kernel). GPU only.

Sizes: B=64, C=48, 32×32 and B=256, C=12, 16×16, where C is the coupling input's channels: the
transformed half x_b has C/2 channels and h has C. fp32 and bf16 storage (fp32 math / logdet).
Each step is ``y, logdet = op(x_b, h)`` then ``backward`` with fixed upstream gradients of y and
logdet. Variants are timed round robin; medians (and p25/p75) over ``--reps`` steps.

Bandwidth (GPU): the fused traffic model of spec §3.2 is 11 element reads/writes per transformed
element (forward: x, shift, ĥ, y; backward: dy, x, shift, ĥ, dx, dshift, dĥ); "GB/s" is that byte
count over the measured time for every variant (effective bandwidth) and "% copy" compares it with a
device-to-device copy ceiling measured in the same run.

    python -m tools.bench.flows.coupling --quick           # smoke check
    python -m tools.bench.flows.coupling                   # full measurement (device auto)
    python -m tools.bench.flows.coupling --write           # ... and rewrite BENCHMARKS.md's block
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

import torch

from tools.bench._common import BenchBlock, interleaved, markdown_table, quartiles, sync

BLOCK = BenchBlock("flows", "bench:coupling", __spec__.name, anchors=("triton",))
SEED = 0
SIZES = [(64, 48, 32, 32), (256, 12, 16, 16)]  # (B, C, H, W), C = coupling input channels
ELEMS_PER_ITEM = 11  # fused fwd (4) + bwd (7) element accesses per transformed element


# --------------------------------------------------------------------------------------------------
# Measurements
# --------------------------------------------------------------------------------------------------


def copy_ceiling(device: torch.device, reps: int) -> float:
    """Device-to-device copy bandwidth in GB/s (read + write bytes over the median time)."""
    n = 64 * 2**20  # 256 MB of fp32
    src = torch.randn(n, device=device)
    dst = torch.empty_like(src)
    times = interleaved({"copy": lambda: dst.copy_(src)}, warmup=3, reps=reps, device=device)
    return 2 * src.numel() * src.element_size() / statistics.median(times["copy"]) / 1e9


def make_step(
    op: Callable[..., tuple[torch.Tensor, torch.Tensor]],
    x: torch.Tensor,
    h: torch.Tensor,
    gy: torch.Tensor,
    gl: torch.Tensor,
) -> Callable[[], None]:
    xl = x.detach().clone().requires_grad_()
    hl = h.detach().clone().requires_grad_()

    def step() -> None:
        xl.grad = None
        hl.grad = None
        y, logdet = op(xl, hl)
        torch.autograd.backward([y, logdet], [gy, gl])

    return step


def variants(device: torch.device) -> tuple[dict[str, Callable[..., Any]], list[str]]:
    from kexue.flows import coupling_forward, fused_coupling

    ops: dict[str, Callable[..., Any]] = {"eager": coupling_forward}
    notes: list[str] = []
    ops["compile"] = torch.compile(coupling_forward, dynamic=False)
    if device.type == "cuda":
        from kexue.flows._dispatch import triton_available

        if triton_available():

            def fused(x: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
                return fused_coupling(x, h, backend="triton", deterministic=True)

            ops["fused"] = fused
        else:
            notes.append("fused kernel skipped: triton is not importable")
    else:
        notes.append(
            "fused Triton kernel not measured: it needs CUDA (this run is on CPU); GPU figures "
            "pending until a GPU run"
        )
    return ops, notes


def bench_size(
    size: tuple[int, int, int, int],
    dtype: torch.dtype,
    ops: dict[str, Callable[..., Any]],
    device: torch.device,
    *,
    warmup: int,
    reps: int,
    ceiling: float | None,
) -> list[list[Any]]:
    b, c, hh, ww = size
    g = torch.Generator().manual_seed(SEED)
    x = torch.randn(b, c // 2, hh, ww, generator=g).to(device, dtype)
    h = torch.randn(b, c, hh, ww, generator=g).to(device, dtype)
    gy = torch.randn(x.shape, generator=g).to(device, dtype)
    gl = torch.randn(b, generator=g).to(device, torch.float32)
    steps: dict[str, Callable[[], None]] = {}
    failed: dict[str, str] = {}
    for name, op in ops.items():
        step = make_step(op, x, h, gy, gl)
        try:
            step()  # compile / JIT outside the timing
            sync(device)
            steps[name] = step
        except Exception as exc:  # report a variant that cannot run instead of dying
            failed[name] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
            traceback.print_exc(file=sys.stderr)
    times = interleaved(steps, warmup=warmup, reps=reps, device=device) if steps else {}
    nbytes = ELEMS_PER_ITEM * x.numel() * x.element_size()
    label = f"B={b}, C={c}, {hh}×{ww}"
    base = statistics.median(times["eager"]) if "eager" in times else None
    rows = []
    for name in ops:
        if name in failed:
            rows.append([label, str(dtype).removeprefix("torch."), name, "failed", "", "", "", ""])
            continue
        p25, med, p75 = quartiles(times[name])
        gbs = nbytes / med / 1e9
        rows.append(
            [
                label,
                str(dtype).removeprefix("torch."),
                name,
                f"{med * 1e6:.1f}",
                f"{p25 * 1e6:.1f}–{p75 * 1e6:.1f}",
                f"{base / med:.2f}×" if base else "",
                f"{gbs:.1f}",
                f"{100 * gbs / ceiling:.0f}%" if ceiling else "n/a (CPU)",
            ]
        )
    for name, why in failed.items():
        print(f"[{label} {dtype}] {name} failed: {why}", file=sys.stderr)
    return rows


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = BLOCK.parser(
        __doc__,
        quick_help="few repetitions (smoke check)",
        devices=("cuda", "cpu"),
        default_device="cuda" if torch.cuda.is_available() else "cpu",
    )
    p.add_argument("--reps", type=int, default=None, help="timed steps per variant")
    return p.parse_args(argv)


def results_markdown(
    args: argparse.Namespace,
    argv: list[str],
    device: torch.device,
    table: str,
    notes: list[str],
    ceiling: float | None,
    wall_s: float,
    reps: int,
) -> str:
    mode = "quick (smoke check, few repetitions)" if args.quick else "full"
    lines = [
        *BLOCK.opening(
            "## Coupling kernel: forward + backward",
            argv,
            mode=f"{mode}; {reps} timed steps per variant (round robin); wall time {wall_s:.0f} s",
            device=device,
            load=True,
        )[:-1],
        '- Op: affine coupling, `scale_map="sigmoid2"`, `order="glow"`, interleaved h; '
        "C = coupling input channels (x_b has C/2, h has C); one step = forward + backward "
        "w.r.t. x_b and h with fixed upstream gradients of y and logdet.",
        f"- GB/s = {ELEMS_PER_ITEM} element accesses per transformed element (spec §3.2 fused "
        "traffic) / median time, for every variant"
        + (f"; copy ceiling {ceiling:.0f} GB/s measured in this run" if ceiling else ""),
        "",
        table,
        "",
    ]
    if device.type == "cpu":
        notes = [
            *notes,
            "CPU timings on a shared 2-core machine are indicative only: a wide p25–p75 or "
            "medians clustered at round values (48 ms, 200 ms) point to other jobs and CPU-quota "
            "time slicing, not to the op.",
        ]
    lines += [f"- {n}" for n in notes]
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    device = BLOCK.begin(args)
    cuda = device.type == "cuda"
    reps = args.reps or ((10 if cuda else 3) if args.quick else (100 if cuda else 25))
    warmup = 10 if cuda else 3
    t0 = time.perf_counter()
    ceiling = copy_ceiling(device, reps=max(reps, 10)) if cuda else None
    ops, notes = variants(device)
    rows: list[list[Any]] = []
    for size in SIZES:
        for dtype in (torch.float32, torch.bfloat16):
            rows += bench_size(size, dtype, ops, device, warmup=warmup, reps=reps, ceiling=ceiling)
            print(f"[{size} {dtype}] done after {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    headers = ["size", "dtype", "variant", "median µs", "p25–p75 µs", "vs eager", "GB/s",
               "% copy"]  # fmt: skip
    table = markdown_table(headers, rows)
    text = results_markdown(
        args, argv, device, table, notes, ceiling, time.perf_counter() - t0, reps
    )
    BLOCK.publish(text, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
