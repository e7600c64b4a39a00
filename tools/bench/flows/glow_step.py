"""Glow training-step time, kexue vs normflows, on the digits set-up (a script, not a test).

Needs: torch, scikit-learn, normflows, kexue-flows.

Issue 18 target 6: kexue's Glow step (forward + backward + Adam, batch 64) at least on par with
normflows' on this CPU. Both models are the ``tools.workloads.flows_digits`` builds used by the
quality benchmark (L = 3, K = 8, hidden 64; 311,072 vs 301,312 parameters), trained in lockstep on
the same batches and dequantisation noise with ``torch.optim.Adam(lr=1e-3)`` (torch's CPU default:
the per-parameter loop), one torch thread, step order alternating. The first ``--warmup`` steps
(ActNorm's data init, allocator warm-up) are not timed. Reported: median and p25–p75 ms per step
and for each phase (forward, backward, Adam), and the ratio normflows/kexue (≥ 1.00 = kexue on par
or faster).

    python -m tools.bench.flows.glow_step --quick     # smoke check (12 steps)
    python -m tools.bench.flows.glow_step             # full measurement
    python -m tools.bench.flows.glow_step --write     # ... and rewrite BENCHMARKS.md's block
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import torch

from tools.bench._common import BenchBlock, load_average, markdown_table, quartiles
from tools.workloads.flows_digits import (
    Sizes,
    bits_per_dim,
    build,
    count_parameters,
    dequantize,
    load_digits_split,
)

BLOCK = BenchBlock("flows", "bench:glow-step", __spec__.name, anchors=("normflows",))
NAMES = ("Glow", "normflows Glow")
CL = " (channels-last)"
PHASES = ("step", "forward", "backward", "adam")


def measure(
    steps: int, warmup: int, seed: int, channels_last: bool, clock: str = "wall"
) -> tuple[dict[str, dict[str, list[float]]], dict]:
    """Per model and phase, the times of ``steps`` lockstep training steps after ``warmup``.

    ``clock="wall"``: ``time.perf_counter``; ``"cpu"``: ``time.thread_time``, the CPU time of the
    (single) torch thread, which time slices lost to other processes on a loaded machine do not
    inflate. With ``channels_last`` both models are also run as copies whose 4-D parameters and
    input are ``torch.channels_last`` (same initial weights; the log-densities are identical).
    """
    now = time.thread_time if clock == "cpu" else time.perf_counter
    torch.manual_seed(seed)
    train_x, _ = load_digits_split()
    sizes = Sizes()
    labels = list(NAMES) + ([n + CL for n in NAMES] if channels_last else [])
    models = [build(n.removesuffix(CL), sizes, seed=seed) for n in labels]
    for label, m in zip(labels, models):
        if label.endswith(CL):
            m.module.to(memory_format=torch.channels_last)
    opts = [torch.optim.Adam(m.module.parameters(), lr=sizes.lr) for m in models]
    for m in models:
        m.module.train()
    gen = torch.Generator().manual_seed(seed)
    times = {n: {p: [] for p in PHASES} for n in labels}
    for step in range(warmup + steps):
        idx = torch.randint(len(train_x), (sizes.batch,), generator=gen)
        y = dequantize(train_x[idx], generator=gen)
        ycl = y.contiguous(memory_format=torch.channels_last)
        r = step % len(models)
        for i in list(range(len(models)))[r:] + list(range(len(models)))[:r]:
            inp = ycl if labels[i].endswith(CL) else y
            t0 = now()
            loss = bits_per_dim(models[i].log_prob(inp)).mean()
            t1 = now()
            opts[i].zero_grad(set_to_none=True)
            loss.backward()
            t2 = now()
            opts[i].step()
            t3 = now()
            if step >= warmup:
                for p, dt in zip(PHASES, (t3 - t0, t1 - t0, t2 - t1, t3 - t2)):
                    times[labels[i]][p].append(dt)
    facts = {n: count_parameters(m.module) for n, m in zip(NAMES, models)}
    facts.update({f"{n} tensors": len(list(m.module.parameters())) for n, m in zip(NAMES, models)})
    return times, facts


def table(times: dict[str, dict[str, list[float]]]) -> tuple[str, float]:
    rows: list[list[Any]] = []
    for name in times:
        row: list[Any] = [name]
        for p in PHASES:
            p25, med, p75 = quartiles(times[name][p])
            row.append(f"{med * 1e3:.1f} ({p25 * 1e3:.1f}–{p75 * 1e3:.1f})")
        rows.append(row)
    ratio = statistics.median(times[NAMES[1]]["step"]) / statistics.median(times[NAMES[0]]["step"])
    headers = ["model", *(f"{p} ms, median (p25–p75)" for p in PHASES)]
    return markdown_table(headers, rows), ratio


def quartile_ratios(times: dict[str, dict[str, list[float]]]) -> str:
    """normflows/kexue step time at p25 and p75 (the spread of the ratio)."""
    (k25, _, k75), (n25, _, n75) = (quartiles(times[n]["step"]) for n in NAMES)
    return f"p25 {n25 / k25:.2f}×, p75 {n75 / k75:.2f}×"


def cl_lines(times: dict[str, dict[str, list[float]]]) -> list[str]:
    """Channels-last ratios, when measured."""
    if NAMES[0] + CL not in times:
        return []
    med = {k: statistics.median(v["step"]) for k, v in times.items()}
    k, n, kc, nc = (med[NAMES[0]], med[NAMES[1]], med[NAMES[0] + CL], med[NAMES[1] + CL])
    return [
        f"- channels-last speeds kexue up {k / kc:.2f}× and normflows {n / nc:.2f}×; both "
        f"channels-last: normflows/kexue = {nc / kc:.2f}×; kexue channels-last vs normflows "
        f"default: {n / kc:.2f}×"
    ]


def main() -> None:
    ap = BLOCK.parser(__doc__, quick_help="12 timed steps", threads=None)
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--channels-last", action="store_true", help="also time channels-last copies")
    ap.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="wall time (default) or the torch thread's CPU time (loaded machines)",
    )
    args = ap.parse_args()
    torch.set_num_threads(1)
    steps = 12 if args.quick else args.steps
    t0 = time.perf_counter()
    times, facts = measure(steps, args.warmup, args.seed, args.channels_last, args.clock)
    text, ratio = table(times)
    argv = (["--quick"] if args.quick else []) + (
        [f"--steps {steps}"] if not args.quick and steps != 150 else []
    )
    argv += (["--channels-last"] if args.channels_last else []) + (
        ["--clock cpu"] if args.clock == "cpu" else []
    )
    clock = "thread CPU time" if args.clock == "cpu" else "wall time"
    lines = BLOCK.facts(
        argv, mode=f"{steps} timed steps after {args.warmup} warm-up, batch 64, lockstep, "
        f"rotating, {clock}", device=torch.device("cpu"), threads=1,
    )  # fmt: skip
    lines.append(
        f"- Load average at the end: {load_average()}; wall {time.perf_counter() - t0:.0f} s"
    )
    verdict = "met" if ratio >= 1.0 else "NOT met"
    body = "\n".join(
        ["### Glow training step: kexue vs normflows (digits, CPU)", "", *lines, "", text, "",
         f"- normflows/kexue median step = {ratio:.2f}× ({quartile_ratios(times)}) — target "
         f"≥ 1.00 (kexue on par or faster): {verdict}",
         f"- parameters: kexue {facts['Glow']:,} in {facts['Glow tensors']} tensors; normflows "
         f"{facts['normflows Glow']:,} in {facts['normflows Glow tensors']} tensors",
         *cl_lines(times), ""]
    )  # fmt: skip
    BLOCK.publish(body, args)


if __name__ == "__main__":
    main()
