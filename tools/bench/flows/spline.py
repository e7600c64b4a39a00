"""Micro-benchmark of the rational-quadratic spline op (a script, not a test).

Needs: torch, kexue-flows (editable); triton for the fused-kernel rows (CUDA only).

What it measures (flows-splines spec §4 and §6.3; issue 18 "Spline op micro-benchmark"): the time
of :func:`kexue.flows.rq_spline` on N = 2^20 elements with per-element raw values (a conditioner's
output layout: w, h (N, K), d (N, K − 1)), fp32, default parametrisation (nflows, identity_init,
B = 5, linear tails), inputs ~ N(0, 2²), raw values ~ N(0, 1), for

- ``eager``: the torch reference (``backend="torch"``), autograd backward;
- ``compile``: ``torch.compile`` of the reference's knots + core (Inductor, ``dynamic=False``);
- ``fused``: the Triton kernel (``backend="triton"``): one forward and one backward kernel (CUDA only).

Rows: forward only, and forward + backward (fixed upstream gradients of y and ladj). "GB/s" is the
spec §4 traffic model over the measured median: forward 4·(3K + 2) B per element (read x and
3K − 1 raw values, write y and ladj: 104 B at K = 8), backward 4·(6K + 2) B (read x, raw values,
dy, dladj; write dx and the raw gradients: 200 B at K = 8) — the bytes a fused kernel must move;
eager and compiled code move more (spec §4: ≈ 2–3 KB forward at K = 8). "% copy" compares it with a
single-thread memcpy ceiling measured in the same run (the coupling benchmark's).

    python -m tools.bench.flows.spline --quick     # smoke check (2^14 elements)
    python -m tools.bench.flows.spline             # full measurement
    python -m tools.bench.flows.spline --write     # ... and rewrite BENCHMARKS.md's block
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

from tools.bench._common import BenchBlock, interleaved, load_average, markdown_table, quartiles
from tools.bench.flows.coupling import copy_ceiling

BLOCK = BenchBlock("flows", "bench:spline", __spec__.name, anchors=("triton",))
SEED = 0


def model_bytes(k: int, backward: bool) -> int:
    """Spec §4 traffic per element (fp32): forward 4(3K + 2), plus backward 4(6K + 2)."""
    fwd = 4 * (3 * k + 2)
    return fwd + (4 * (6 * k + 2) if backward else 0)


def _core(x: torch.Tensor, w: torch.Tensor, h: torch.Tensor, d: torch.Tensor):
    from kexue.flows.splines import _rq_core, rq_knots

    xk, yk, dk = rq_knots(w, h, d)
    return _rq_core(x, xk, yk, dk, inverse=False, bound=5.0)


def variants(device: torch.device) -> tuple[dict[str, Callable], list[str]]:
    from kexue.flows import rq_spline

    def eager(x, w, h, d):
        return rq_spline(x, w, h, d, backend="torch")

    ops: dict[str, Callable] = {"eager": eager}
    notes: list[str] = []
    ops["compile"] = torch.compile(_core, dynamic=False)
    if device.type == "cuda":

        def fused(x, w, h, d):
            return rq_spline(x, w, h, d, backend="triton")

        ops["fused"] = fused
    else:
        notes.append(
            "fused Triton kernel not measured: it needs CUDA (this run is on CPU); GPU figures "
            "pending until a GPU run"
        )
    return ops, notes


def make_step(op: Callable, tensors: list[torch.Tensor], backward: bool) -> Callable[[], None]:
    x, w, h, d, gy, gl = tensors
    leaves = [t.detach().clone().requires_grad_(backward) for t in (x, w, h, d)]

    def step() -> None:
        if not backward:
            with torch.no_grad():
                op(*leaves)
            return
        for t in leaves:
            t.grad = None
        y, ladj = op(*leaves)
        torch.autograd.backward([y, ladj], [gy, gl])

    return step


def bench_k(
    k: int, n: int, ops: dict[str, Callable], device: torch.device, *, reps: int, ceiling: float
) -> tuple[list[list[Any]], dict[str, float]]:
    g = torch.Generator().manual_seed(SEED)
    x = (torch.randn(n, generator=g) * 2).to(device)
    w, h = (torch.randn(n, k, generator=g).to(device) for _ in range(2))
    d = torch.randn(n, k - 1, generator=g).to(device)
    gy, gl = (torch.randn(n, generator=g).to(device) for _ in range(2))
    rows: list[list[Any]] = []
    first: dict[str, float] = {}
    for backward in (False, True):
        steps = {}
        for name, op in ops.items():
            steps[name] = make_step(op, [x, w, h, d, gy, gl], backward)
            t0 = time.perf_counter()
            steps[name]()  # first call: compilation for "compile"
            first[f"{name}{'+bwd' if backward else ''}"] = time.perf_counter() - t0
        times = interleaved(steps, warmup=1, reps=reps, device=device)
        base = statistics.median(times["eager"])
        for name, ts in times.items():
            p25, med, p75 = quartiles(ts)
            gbs = model_bytes(k, backward) * n / med / 1e9
            rows.append([
                k, "fwd+bwd" if backward else "fwd", name, f"{med * 1e3:.1f}",
                f"{p25 * 1e3:.1f}–{p75 * 1e3:.1f}", f"{base / med:.2f}", f"{gbs:.2f}",
                f"{100 * gbs / ceiling:.0f} %",
            ])  # fmt: skip
    return rows, first


def main() -> None:
    ap = BLOCK.parser(__doc__, quick_help="2^14 elements, 2 reps", threads=None)
    ap.add_argument("--reps", type=int, default=7)
    args = ap.parse_args()
    torch.set_num_threads(1)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    n = 2**14 if args.quick else 2**20
    reps = 2 if args.quick else args.reps
    ceiling = copy_ceiling(device, reps)
    ops, notes = variants(device)
    rows: list[list[Any]] = []
    firsts: list[str] = []
    for k in (8, 16):
        r, first = bench_k(k, n, ops, device, reps=reps, ceiling=ceiling)
        rows += r
        firsts.append(f"K={k}: " + ", ".join(f"{a} {b:.1f} s" for a, b in first.items()))
    lines = BLOCK.facts(
        ["--quick"] if args.quick else [],
        mode=f"{'quick' if args.quick else 'full'}, N = {n} elements, fp32, {reps} reps",
        device=device, threads=1,
    )  # fmt: skip
    lines.append(f"- Load average at the end: {load_average()}; memcpy ceiling {ceiling:.2f} GB/s")
    table = markdown_table(
        ["K", "pass", "variant", "median ms", "p25–p75 ms", "× eager", "model GB/s", "% copy"], rows
    )
    text = "\n".join(
        ["### Spline op (rq_spline): eager vs torch.compile vs fused", "", *lines, "", table, "",
         "- First call (compile time included): " + "; ".join(firsts),
         *(f"- {n_}" for n_ in notes),
         "- Traffic model (spec §4): forward 4(3K + 2) B/element (104 B at K = 8), backward "
         "4(6K + 2) B (200 B at K = 8); eager moves ≈ 2–3 KB forward at K = 8 [spec estimate]; "
         "'model GB/s' is the model's bytes over the measured time, not the bytes actually moved.",
         ""]
    )  # fmt: skip
    BLOCK.publish(text, args)


if __name__ == "__main__":
    main()
