"""Benchmarks of kexue-keras-compat against its anchors (a script, not a test).

Needs (for a hatch ``[envs.bench]``): torch, numpy, kexue-keras-compat (editable); optional
anchors ``ema-pytorch>=0.7`` and ``torch-ema>=0.3`` (a missing anchor is reported and its row is
skipped). Nothing else: no psutil (memory comes from ``/proc/self/status``), no pytest.

What it measures (details in ``packages/keras-compat/BENCHMARKS.md``):

(a) EMA update time of ``kexue.keras_compat.ema.EMA`` (fixed decay; power-function profile
    σ_rel 0.10; fixed decay with ``skip_nonfinite``) vs ``ema_pytorch.EMA`` (every step, no
    warm-up delay, foreach path) vs ``torch_ema.ExponentialMovingAverage`` on a ~100M-parameter
    stack of ``Linear`` layers (fp32), same decay: median over N updates after warm-up, ratio to
    the fastest anchor, the shadow's byte size and the peak memory of building it plus a few
    updates (CPU: VmHWM − VmRSS in a fresh subprocess; CUDA: ``max_memory_allocated`` delta).
(b) Overhead of ``capture(model, names)`` (two layers, entered every step) on a training step
    (forward + backward + Adam step of an MLP) vs the plain step; target < 2 %.
(c) Overhead of ``extend(opt, GradClip(...))`` (per-parameter norm clip in a step pre-hook) vs the
    plain step; target < 2 %; the manual ``clip_grad_norm_`` loop per parameter and the global
    ``clip_grad_norm_`` for context.

The variants of (a), and of (b) + (c), are interleaved (round robin, rotating the order every
repetition) so that drift of the machine hits them alike; a second, identical plain step ("A/A")
shows the noise floor of the overhead column. Seeded; ``torch.set_num_threads(--threads)``
(default 2).

    python -m tools.bench.keras_compat --quick            # smoke check (~1 min on 2 cores)
    python -m tools.bench.keras_compat                    # full measurement
    python -m tools.bench.keras_compat --write            # ... and rewrite BENCHMARKS.md's results
    python -m tools.bench.keras_compat --device cuda      # on a GPU (shadow and model on it)
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import sys
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from tools.bench._common import (
    BenchBlock,
    interleaved,
    json_from_child,
    markdown_table,
    proc_status_bytes,
    quartiles,
)

BLOCK = BenchBlock(
    "keras-compat", "bench:results", __spec__.name, anchors=("ema-pytorch", "torch-ema")
)
SEED = 0
DECAY = 0.999
POWER_SIGMA_REL = 0.10  # (b) of issue 19: the power-function EMA costs at most 10 % more
MAX_NORM = 1.0
CAPTURED = ("act1", "act3")  # the two layers captured in (b)


@dataclass(frozen=True)
class Sizes:
    ema_width: int  # (a): ema_depth Linear(ema_width, ema_width) layers
    ema_depth: int
    ema_warmup: int
    ema_reps: int
    step_width: int  # (b), (c): MLP ema_depth hidden layers, batch step_batch
    step_depth: int
    step_batch: int
    step_warmup: int
    step_reps: int


SIZES = {
    # 96 × (1024² + 1024) = 100.76M parameters, 192 tensors (403 MB in fp32).
    "full": Sizes(1024, 96, 3, 25, 1024, 6, 256, 10, 60),
    "quick": Sizes(512, 16, 2, 5, 256, 4, 64, 5, 15),
}


# --------------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------------


def _result(
    caption: str, table: str, skipped: list[str], records: list[dict[str, Any]], n_params: int
) -> dict[str, Any]:
    """What each measurement returns to the driver: its table, caption, skips and raw records."""
    return {
        "caption": caption,
        "table": table,
        "skipped": skipped,
        "records": records,
        "params": n_params,
    }


# --------------------------------------------------------------------------------------------------
# (a) EMA update
# --------------------------------------------------------------------------------------------------


def linear_stack(width: int, depth: int, device: torch.device) -> nn.Module:
    torch.manual_seed(SEED)
    return nn.Sequential(*(nn.Linear(width, width) for _ in range(depth))).to(device)


def ema_variants() -> tuple[dict[str, Callable[[nn.Module], tuple[Any, Callable[[], None]]]], list]:
    """name → factory(model) returning (ema object, update callable); and skip messages."""
    variants: dict[str, Callable[[nn.Module], tuple[Any, Callable[[], None]]]] = {}
    skipped: list[str] = []
    try:
        from kexue.keras_compat.ema import EMA as KexueEMA

        def kexue(model: nn.Module) -> tuple[Any, Callable[[], None]]:
            ema = KexueEMA(model, decay=DECAY)
            return ema, lambda: ema.update(model)

        def kexue_power(model: nn.Module) -> tuple[Any, Callable[[], None]]:
            ema = KexueEMA(model, sigma_rel=POWER_SIGMA_REL)
            return ema, lambda: ema.update(model)

        def kexue_guarded(model: nn.Module) -> tuple[Any, Callable[[], None]]:
            ema = KexueEMA(model, decay=DECAY, skip_nonfinite=True)
            return ema, lambda: ema.update(model)

        variants["kexue EMA"] = kexue
        variants[f"kexue power EMA (σ_rel {POWER_SIGMA_REL})"] = kexue_power
        variants["kexue EMA, skip_nonfinite"] = kexue_guarded
    except ImportError as exc:
        skipped.append(f"kexue.keras_compat.ema.EMA not importable ({exc}): row skipped")
    try:
        from ema_pytorch import EMA as LucidEMA

        def lucid(model: nn.Module) -> tuple[Any, Callable[[], None]]:
            # Update every call from the first one, foreach lerp; min_value = beta pins the decay
            # (its warm-up ramp off), so every variant lerps with weight 1 − DECAY.
            ema = LucidEMA(
                model,
                beta=DECAY,
                update_after_step=0,
                update_every=1,
                min_value=DECAY,
                use_foreach=True,
            )
            return ema, ema.update

        variants["ema-pytorch EMA (foreach)"] = lucid
    except ImportError:
        skipped.append("ema-pytorch not installed (pip install ema-pytorch): row skipped")
    try:
        from torch_ema import ExponentialMovingAverage

        def fadel(model: nn.Module) -> tuple[Any, Callable[[], None]]:
            ema = ExponentialMovingAverage(model.parameters(), decay=DECAY, use_num_updates=False)
            return ema, ema.update

        variants["torch-ema ExponentialMovingAverage"] = fadel
    except ImportError:
        skipped.append("torch-ema not installed (pip install torch-ema): row skipped")
    return variants, skipped


def shadow_tensors(name: str, ema: Any) -> list[torch.Tensor]:
    """The tensors an EMA object holds for its averages (what its memory cost is made of)."""
    if name.startswith("kexue"):
        module = ema.module
    elif name.startswith("ema-pytorch"):
        module = ema.ema_model
    else:
        return list(ema.shadow_params)
    return [*module.parameters(), *module.buffers()]


def memory_probe(name: str, width: int, depth: int, device: torch.device) -> dict[str, Any]:
    """Peak memory of building one EMA and running 3 updates, in this (fresh) process.

    One-time costs (lazy imports on the first construction) are paid on a tiny model first.

    CPU: the peak RSS (VmHWM) is reset through ``/proc/self/clear_refs`` after the model is built,
    then the result is VmHWM − VmRSS(before). CUDA: ``max_memory_allocated`` − allocated(before).
    """
    factory = ema_variants()[0][name]
    tiny = nn.Linear(2, 2).to(device)
    _, tiny_update = factory(tiny)  # one-time lazy imports (e.g. torch._dynamo) happen here
    tiny_update()
    model = linear_stack(width, depth, device)
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
    else:
        reset = True
        try:
            with open("/proc/self/clear_refs", "w", encoding="utf-8") as f:
                f.write("5")  # reset the peak RSS (Linux >= 4.0)
        except OSError:
            reset = False
        before = proc_status_bytes("VmRSS")
    ema, update = factory(model)
    for _ in range(3):
        update()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        peak = torch.cuda.max_memory_allocated(device) - before
        how = "CUDA max_memory_allocated delta"
    else:
        peak = proc_status_bytes("VmHWM") - before
        how = "VmHWM - VmRSS" + ("" if reset else " (peak not reset: upper bound)")
    shadow = sum(t.numel() * t.element_size() for t in shadow_tensors(name, ema))
    return {"peak_bytes": peak, "shadow_bytes": shadow, "how": how}


def run_memory_probe(name: str, args: argparse.Namespace) -> dict[str, Any] | None:
    cmd = [
        sys.executable,
        "-m",
        __spec__.name,
        "--_memory-probe",
        name,
        "--threads",
        str(args.threads),
    ]
    cmd += ["--device", args.device, "--quick"] if args.quick else ["--device", args.device]
    if args.ema_depth:
        cmd += ["--ema-depth", str(args.ema_depth)]
    return json_from_child(cmd, what=f"  memory probe for {name}")


def ema_verdict(records: list[dict[str, Any]], medians: dict[str, float]) -> str:
    """The two EMA targets: kexue EMA ≤ fastest anchor; power-function EMA ≤ 1.10 × fixed decay."""
    kexue_ratio = next(
        (r["ratio_to_fastest_anchor"] for r in records if r["variant"] == "kexue EMA"), None
    )
    verdict = (
        "n/a (kexue EMA or all anchors missing)"
        if kexue_ratio is None
        else f"{'met' if kexue_ratio <= 1.0 else 'NOT met'} (kexue / fastest anchor = {kexue_ratio:.2f})"
    )
    power = next((m for n, m in medians.items() if n.startswith("kexue power")), None)
    if power is not None and "kexue EMA" in medians:
        ratio = power / medians["kexue EMA"]
        verdict += (
            f"; power-function EMA at most 10 % over the fixed decay: "
            f"{'met' if ratio <= 1.10 else 'NOT met'} (power / fixed = {ratio:.3f})"
        )
    return verdict


def bench_ema(sizes: Sizes, args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    variants, skipped = ema_variants()
    for msg in skipped:
        print(f"[ema] {msg}", file=sys.stderr)
    model = linear_stack(sizes.ema_width, sizes.ema_depth, device)
    n_params = sum(p.numel() for p in model.parameters())
    n_tensors = len(list(model.parameters()))
    print(
        f"[ema] {n_params / 1e6:.2f}M parameters in {n_tensors} tensors, decay {DECAY}",
        file=sys.stderr,
    )
    emas: dict[str, Any] = {}
    fns: dict[str, Callable[[], None]] = {}
    for name, factory in variants.items():
        emas[name], fns[name] = factory(model)
    times = interleaved(fns, warmup=sizes.ema_warmup, reps=sizes.ema_reps, device=device)
    del emas, fns
    gc.collect()
    memory = {name: run_memory_probe(name, args) for name in variants}

    medians = {name: quartiles(t)[1] for name, t in times.items()}
    anchors = [m for name, m in medians.items() if not name.startswith("kexue")]
    fastest = min(anchors) if anchors else None
    rows, records = [], []
    how = next((m["how"] for m in memory.values() if m), "n/a")
    for name, t in times.items():
        p25, med, p75 = quartiles(t)
        mem = memory.get(name)
        ratio = med / fastest if fastest else float("nan")
        rows.append(
            [
                name,
                f"{1e3 * med:.1f}",
                f"{1e3 * p25:.1f}–{1e3 * p75:.1f}",
                f"{ratio:.2f}" if fastest else "n/a",
                f"{mem['shadow_bytes'] / 2**20:.0f}" if mem else "n/a",
                f"{mem['peak_bytes'] / 2**20:.0f}" if mem else "n/a",
            ]
        )
        records.append(
            {
                "variant": name,
                "median_s": med,
                "p25_s": p25,
                "p75_s": p75,
                "ratio_to_fastest_anchor": ratio if fastest else None,
                **(mem or {}),
            }
        )
    headers = [
        "EMA",
        "update median ms",
        "IQR ms",
        "× fastest anchor",
        "shadow MiB",
        "peak MiB",
    ]
    verdict = ema_verdict(records, medians)
    caption = (
        f"EMA update, {n_params / 1e6:.1f}M fp32 parameters ({sizes.ema_depth} × "
        f"Linear({sizes.ema_width}, {sizes.ema_width}), {n_tensors} tensors, no buffers) on "
        f"{device.type}, decay {DECAY}; median (and interquartile range) of {sizes.ema_reps} "
        f"interleaved updates after {sizes.ema_warmup} warm-up updates each. Peak MiB: {how}, "
        "building the EMA plus 3 updates in a fresh process. Target "
        f"(at least as fast as the fastest anchor): {verdict}."
    )
    return _result(caption, markdown_table(headers, rows), skipped, records, n_params)


# --------------------------------------------------------------------------------------------------
# (b), (c) training-step overhead
# --------------------------------------------------------------------------------------------------


def mlp(width: int, depth: int) -> nn.Module:
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    for i in range(depth):
        layers[f"fc{i}"] = nn.Linear(width, width)
        layers[f"act{i}"] = nn.GELU()
    layers["head"] = nn.Linear(width, width)
    return nn.Sequential(layers)


def step_variants(
    base: nn.Module, x: torch.Tensor, y: torch.Tensor
) -> tuple[dict[str, Callable[[], None]], list[str], list[Any]]:
    """name → one training step on its own copy of ``base`` (same initial weights)."""
    import copy

    fns: dict[str, Callable[[], None]] = {}
    skipped: list[str] = []
    handles: list[Any] = []
    loss_fn = nn.MSELoss()

    def setup() -> tuple[nn.Module, torch.optim.Optimizer]:
        model = copy.deepcopy(base)
        return model, torch.optim.Adam(model.parameters(), lr=1e-4)

    def plain_step(model: nn.Module, opt: torch.optim.Optimizer) -> Callable[[], None]:
        def step() -> None:
            opt.zero_grad(set_to_none=True)
            loss_fn(model(x), y).backward()
            opt.step()

        return step

    fns["plain step"] = plain_step(*setup())
    fns["plain step, A/A control"] = plain_step(*setup())

    try:
        from kexue.keras_compat.capture import capture

        model, opt = setup()

        def capture_step() -> None:
            opt.zero_grad(set_to_none=True)
            with capture(model, list(CAPTURED)) as outputs:
                out = model(x)
            loss_fn(out, y).backward()
            opt.step()
            assert len(outputs) == len(CAPTURED)

        fns[f"capture({', '.join(CAPTURED)}) per step"] = capture_step
    except ImportError as exc:
        skipped.append(f"kexue.keras_compat.capture not importable ({exc}): row skipped")

    try:
        try:
            from kexue.keras_compat.optim import GradClip, extend
        except ImportError:  # before the package facade exists: the implementation modules
            from kexue.keras_compat.optim._chain import extend
            from kexue.keras_compat.optim.transforms import GradClip

        model, opt = setup()
        handles.append(extend(opt, GradClip(max_norm=MAX_NORM)))
        fns[f"extend(opt, GradClip({MAX_NORM:g})) per param"] = plain_step(model, opt)
    except ImportError as exc:
        skipped.append(f"kexue.keras_compat.optim not importable ({exc}): row skipped")

    model, opt = setup()
    params = [p for p in model.parameters() if p.requires_grad]

    def manual_loop_step() -> None:
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        for p in params:
            torch.nn.utils.clip_grad_norm_(p, MAX_NORM)
        opt.step()

    fns[f"manual clip_grad_norm_({MAX_NORM:g}) loop per param"] = manual_loop_step

    model2, opt2 = setup()
    params2 = list(model2.parameters())

    def global_clip_step() -> None:
        opt2.zero_grad(set_to_none=True)
        loss_fn(model2(x), y).backward()
        torch.nn.utils.clip_grad_norm_(params2, MAX_NORM)
        opt2.step()

    fns[f"global clip_grad_norm_({MAX_NORM:g}) (context)"] = global_clip_step
    return fns, skipped, handles


def bench_steps(sizes: Sizes, device: torch.device) -> dict[str, Any]:
    torch.manual_seed(SEED)
    base = mlp(sizes.step_width, sizes.step_depth).to(device)
    gen = torch.Generator().manual_seed(SEED + 1)
    x = torch.randn(sizes.step_batch, sizes.step_width, generator=gen).to(device)
    y = torch.randn(sizes.step_batch, sizes.step_width, generator=gen).to(device)
    fns, skipped, handles = step_variants(base, x, y)
    for msg in skipped:
        print(f"[step] {msg}", file=sys.stderr)
    n_params = sum(p.numel() for p in base.parameters())
    times = interleaved(fns, warmup=sizes.step_warmup, reps=sizes.step_reps, device=device)
    for handle in handles:
        handle.remove()
    plain = quartiles(times["plain step"])[1]
    rows, records = [], []
    targets = {"capture": "< 2 %", "extend": "< 2 %"}
    for name, t in times.items():
        p25, med, p75 = quartiles(t)
        overhead = 100 * (med / plain - 1)
        target = next((v for k, v in targets.items() if name.startswith(k)), "")
        met = ""
        if target:
            met = "met" if overhead < 2.0 else "NOT met"
        rows.append(
            [
                name,
                f"{1e3 * med:.2f}",
                f"{1e3 * p25:.2f}–{1e3 * p75:.2f}",
                "—" if name == "plain step" else f"{overhead:+.1f}",
                f"{target} {met}".strip(),
            ]
        )
        records.append(
            {"variant": name, "median_s": med, "p25_s": p25, "p75_s": p75, "overhead_pct": overhead}
        )
    headers = ["training step", "median ms", "IQR ms", "overhead vs plain %", "target"]
    caption = (
        f"Training step (zero_grad, forward, MSE, backward, Adam step) of an MLP "
        f"{sizes.step_depth} × (Linear({sizes.step_width}, {sizes.step_width}) + GELU) + head, "
        f"{n_params / 1e6:.1f}M parameters, batch {sizes.step_batch}, on {device.type}; each "
        f"variant trains its own copy; median (IQR) of {sizes.step_reps} interleaved steps after "
        f"{sizes.step_warmup} warm-up steps each. The A/A row repeats the plain step: its "
        "overhead is the noise floor."
    )
    return _result(caption, markdown_table(headers, rows), skipped, records, n_params)


# --------------------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = BLOCK.parser(
        __doc__, quick_help="small models, few reps (smoke)", devices=("cpu", "cuda")
    )
    parser.add_argument(
        "--only", choices=("ema", "step"), default=None, help="run one part only (default both)"
    )
    parser.add_argument("--ema-depth", type=int, default=None, help="(a): Linear layers (override)")
    parser.add_argument("--ema-reps", type=int, default=None, help="(a): timed updates (override)")
    parser.add_argument("--_memory-probe", dest="memory_probe", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def results_markdown(
    args: argparse.Namespace,
    argv: list[str],
    device: torch.device,
    parts: list[dict[str, Any]],
    wall_s: float,
) -> str:
    mode = (
        "quick (smoke check: small models, numbers are not the benchmark)" if args.quick else "full"
    )
    lines = BLOCK.opening(
        "## Results", argv, mode=f"{mode}; wall time {wall_s:.0f} s", device=device
    )
    for part in parts:
        lines += [part["caption"], "", part["table"], ""]
        lines += [f"- skipped: {s}" for s in part["skipped"]]
        if part["skipped"]:
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    sizes = SIZES["quick" if args.quick else "full"]
    if args.ema_depth or args.ema_reps:
        sizes = dataclasses.replace(
            sizes,
            ema_depth=args.ema_depth or sizes.ema_depth,
            ema_reps=args.ema_reps or sizes.ema_reps,
        )
    if args.memory_probe:
        torch.set_num_threads(args.threads)
        device = torch.device(args.device)
        print(json.dumps(memory_probe(args.memory_probe, sizes.ema_width, sizes.ema_depth, device)))
        return 0
    t0 = time.perf_counter()
    device = BLOCK.begin(args)
    parts = []
    if args.only in (None, "ema"):
        parts.append(bench_ema(sizes, args, device))
        print(f"[ema] done after {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    if args.only in (None, "step"):
        parts.append(bench_steps(sizes, device))
    wall_s = time.perf_counter() - t0
    text = results_markdown(args, argv, device, parts, wall_s)
    BLOCK.publish(text, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
