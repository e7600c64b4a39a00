"""Decoding speed of kexue-textkit's UniLMTransformer + AutoRegressiveDecoder (a script, not a test).

Needs: torch, kexue-textkit (editable); optional anchor ``transformers`` (its rows are skipped when
it is missing). No weights are downloaded: both models are built from a config with seeded random
weights.

What it measures (results in ``packages/textkit/BENCHMARKS.md``): greedy decoding of exactly
``--new-tokens`` (128) tokens after a random prompt of ``--prompt-len`` (16) tokens, batch 1 and
32, fp32 on CPU, for

- kexue ``UniLMDecoder.greedy`` with the KV cache (``use_cache=True``: the prompt is encoded
  once, each step feeds the newest token only);
- the same without the cache (every step recomputes the whole sequence);
- HF ``transformers`` ``GPT2LMHeadModel.generate(do_sample=False, num_beams=1, use_cache=True)``
  on a GPT-2 model of the same size (same width, depth, heads, FFN width, vocabulary, tied
  embeddings; GELU).

Model: dim 256, 4 layers, 4 heads, FFN 1024, vocabulary 8000, learned positions, causal LM mode
(``seq2seq=False``, which is what GPT-2 does); 5.3 M parameters (kexue: + 8000 output biases and 2
segment rows). End tokens cannot stop a run early (``minlen`` / ``min_new_tokens`` = 128), so every
variant produces the same number of tokens. Tokens/s = batch × new tokens / median time of one full
call (prompt encoding included), measured as the process's CPU time with one torch thread (the
2-core machine is shared: wall time there mostly measures waiting; it is reported too). Variants
are interleaved round robin.

    python -m tools.bench.textkit.decode --quick               # smoke check
    nice python -m tools.bench.textkit.decode --write          # full measurement
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import resource
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
    cpu_model,
    importable,
    markdown_table,
    publish,
    quartiles,
    usable_cores,
)
from tools.bench._common import versions as _versions
from tools.bench.textkit import HEADER

BENCHMARKS_MD = benchmarks_md("textkit")
START, END = block_markers("textkit_decode")
SEED = 0
VOCAB, DIM, DEPTH, HEADS, FFN = 8000, 256, 4, 4, 1024
CACHED, UNCACHED, HF = "kexue greedy, KV cache", "kexue greedy, no cache", "HF generate, use_cache"


def build_kexue(max_len: int) -> Any:
    from kexue.textkit.seq2seq.transformer import UniLMTransformer

    torch.manual_seed(SEED)
    model = UniLMTransformer(VOCAB, dim=DIM, depth=DEPTH, heads=HEADS, ffn_dim=FFN, max_len=max_len)
    return model.eval()


def build_hf(max_len: int) -> Any:
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(SEED)
    config = GPT2Config(
        vocab_size=VOCAB,
        n_positions=max_len,
        n_embd=DIM,
        n_layer=DEPTH,
        n_head=HEADS,
        n_inner=FFN,
        activation_function="gelu",
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )
    return GPT2LMHeadModel(config).eval()


def variants(batch: int, args: argparse.Namespace) -> tuple[dict[str, Callable[[], Any]], dict]:
    from kexue.textkit.seq2seq.decoding.decoder import UniLMDecoder

    max_len = args.prompt_len + args.new_tokens + 8
    g = torch.Generator().manual_seed(SEED + batch)
    prompt = torch.randint(3, VOCAB, (batch, args.prompt_len), generator=g)
    lengths = torch.full((batch,), args.prompt_len)
    model = build_kexue(max_len)
    n = args.new_tokens
    info = {"kexue_params": sum(p.numel() for p in model.parameters())}

    def kexue(use_cache: bool) -> Callable[[], Any]:
        dec = UniLMDecoder(
            model,
            start_id=None,
            end_id=2,
            maxlen=n,
            minlen=n + 1,
            use_cache=use_cache,
            seq2seq=False,
        )

        def run() -> Any:
            with torch.inference_mode():
                return torch.stack(dec.greedy([prompt, lengths]))

        return run

    fns: dict[str, Callable[[], Any]] = {CACHED: kexue(True)}
    if batch in args.uncached_batches:
        fns[UNCACHED] = kexue(False)
    if args.has_hf:
        hf = build_hf(max_len)
        info["hf_params"] = sum(p.numel() for p in hf.parameters())
        mask = torch.ones_like(prompt)

        def hf_run() -> Any:
            with torch.inference_mode():
                out = hf.generate(
                    input_ids=prompt,
                    attention_mask=mask,
                    do_sample=False,
                    num_beams=1,
                    max_new_tokens=n,
                    min_new_tokens=n,
                    use_cache=True,
                    pad_token_id=0,
                )
            return out[:, args.prompt_len :]

        fns[HF] = hf_run
    return fns, info


def measure(batch: int, args: argparse.Namespace) -> dict[str, Any]:
    fns, info = variants(batch, args)
    # warm-up (and the outputs to compare); the uncached variant is too slow to run twice at a
    # large batch: its first timed call gives its output
    outs = {name: fn() for name, fn in fns.items() if name != UNCACHED}
    uncached_reps = args.uncached_reps if batch < 8 else 1
    times: dict[str, list[float]] = {name: [] for name in fns}  # process CPU seconds
    walls: dict[str, list[float]] = {name: [] for name in fns}  # wall seconds
    names = list(fns)
    for r in range(args.reps):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            if name == UNCACHED and r >= uncached_reps:
                continue
            c0, t0 = time.process_time(), time.perf_counter()
            out = fns[name]()
            times[name].append(time.process_time() - c0)
            walls[name].append(time.perf_counter() - t0)
            outs.setdefault(name, out)
        print(f"  batch {batch} rep {r + 1}/{args.reps} done", file=sys.stderr)
    for name, out in outs.items():
        assert out.shape == (batch, args.new_tokens), (name, tuple(out.shape))
    same = bool(torch.equal(outs[CACHED], outs[UNCACHED])) if UNCACHED in outs else None
    return {"batch": batch, "times": times, "walls": walls, "same": same, **info}


def table(results: list[dict[str, Any]], args: argparse.Namespace) -> str:
    rows = []
    for res in results:
        b = res["batch"]
        med = {name: statistics.median(t) for name, t in res["times"].items()}
        for name, ts in res["times"].items():
            p25, p50, p75 = quartiles(ts)
            tok_s = b * args.new_tokens / p50
            wall = statistics.median(res["walls"][name])
            vs_cached = f"{med[CACHED] / p50:.2f}×"
            vs_hf = f"{med[HF] / p50:.2f}×" if HF in med else "—"
            rows.append(
                [
                    b,
                    name,
                    len(ts),
                    f"{p50 * 1e3:.0f}",
                    f"{p25 * 1e3:.0f}–{p75 * 1e3:.0f}",
                    f"{wall * 1e3:.0f}",
                    f"{tok_s:,.0f}",
                    vs_cached,
                    vs_hf,
                ]
            )
    headers = [
        "batch",
        "variant",
        "calls",
        "median CPU ms / call",
        "p25–p75 CPU ms",
        "median wall ms",
        "new tokens / CPU s",
        "speed vs kexue cached",
        "speed vs HF",
    ]
    return markdown_table(headers, rows)


def headline(results: list[dict[str, Any]]) -> list[str]:
    lines = []
    for res in results:
        med = {name: statistics.median(t) for name, t in res["times"].items()}
        b = res["batch"]
        if UNCACHED in med:
            ratio = med[UNCACHED] / med[CACHED]
            lines.append(
                f"- batch {b}: KV cache {ratio:.1f}× faster than full recomputation (target ≥ 3×: "
                f"{'met' if ratio >= 3 else 'NOT met'}); cached and uncached tokens identical: "
                f"{'yes' if res['same'] else 'NO'}"
            )
        if HF in med:
            ratio = med[CACHED] / med[HF]
            verdict = "met" if ratio <= 1.5 else "NOT met"
            faster = "faster" if ratio < 1 else "slower"
            lines.append(
                f"- batch {b}: kexue cached greedy takes {ratio:.2f}× HF generate's time "
                f"({1 / ratio:.2f}× its speed, {faster}; target ≤ 1.5×: {verdict})"
            )
    return lines


def results_markdown(
    args: argparse.Namespace,
    argv: list[str],
    results: list[dict[str, Any]],
    wall: float,
    load: tuple[float, float],
) -> str:
    vers = ", ".join(f"{k} {v}" for k, v in _versions("kexue-textkit", "transformers").items())
    mode = "quick (smoke check, not the benchmark)" if args.quick else "full"
    params = results[0]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    nice = "nice " if os.nice(0) > 0 else ""
    lines = [
        "## Decoding speed (`python -m tools.bench.textkit.decode`)",
        "",
        f"- Date: {dt.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}",
        f"- Command: `{nice}python -m tools.bench.textkit.decode {' '.join(argv)}`".rstrip()
        + (f" (niceness {os.nice(0)})" if nice else ""),
        f"- Mode: {mode}; wall time {wall:.0f} s",
        f"- Machine: {platform.system()} {platform.machine()}, {cpu_model()}, {usable_cores()} "
        f"usable cores ({os.cpu_count()} in the machine), torch threads {args.threads}; "
        f"1-min load average {load[0]:.1f} at the start, {load[1]:.1f} at the end (the machine "
        "is shared with other jobs: absolute figures are noisy, the interleaved ratios less so)",
        f"- Versions: {vers}",
        f"- Model: dim {DIM}, {DEPTH} layers, {HEADS} heads, FFN {FFN}, vocabulary {VOCAB}, "
        f"learned positions, fp32; kexue {params['kexue_params'] / 1e6:.2f} M parameters"
        + (f", HF GPT-2 {params['hf_params'] / 1e6:.2f} M" if "hf_params" in params else "")
        + f"; prompt {args.prompt_len} tokens, exactly {args.new_tokens} new tokens (greedy)",
        f"- Peak RSS of the benchmark process: {peak:.0f} MiB; KV cache at the last step "
        f"(batch 32): {2 * DEPTH * 32 * (args.prompt_len + args.new_tokens) * DIM * 4 / 2**20:.1f} "
        "MiB (keys + values, fp32)",
        "",
        "Headline (issue 7 targets):",
        "",
        *headline(results),
        "",
        "Table. Greedy decoding, one full call (prompt encoding included), median of `calls` "
        "interleaved calls after one warm-up. Times are the process's CPU time "
        "(`time.process_time`, one torch thread): on this shared, niced run the wall time "
        "mostly measures how long the scheduler kept the process waiting (wall medians are "
        "listed for reference). `speed vs X` = X's median CPU time / this median (> 1 is faster). The uncached variant recomputes every step from scratch, so it runs "
        f"only {args.uncached_reps} time(s) at batch < 8 and once above, without a warm-up call.",
        "",
        table(results, args),
        "",
    ]
    if not args.has_hf:
        lines += ["- skipped: transformers not installed: its rows are left out", ""]
    return "\n".join(lines)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="small run (smoke check)")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch.set_num_threads (default 1: the 2-core machine is shared)",
    )
    parser.add_argument("--write", action="store_true", help="rewrite the block in BENCHMARKS.md")
    parser.add_argument("--benchmarks-md", type=Path, default=BENCHMARKS_MD)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--prompt-len", type=int, default=16)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--reps", type=int, default=5, help="timed calls per variant")
    parser.add_argument(
        "--uncached-reps",
        type=int,
        default=2,
        help="timed calls of the uncached variant at batch < 8 (1 above)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.new_tokens, args.batches, args.reps, args.uncached_reps = 16, [1, 4], 2, 1
    args.uncached_batches = set(args.batches)
    args.has_hf = importable("transformers")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    results = []
    for batch in args.batches:
        print(f"batch {batch} ...", file=sys.stderr)
        results.append(measure(batch, args))
    text = results_markdown(
        args, argv, results, time.perf_counter() - t0, (load0, os.getloadavg()[0])
    )
    publish(text, args.benchmarks_md, START, END, write=args.write, header=HEADER)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
