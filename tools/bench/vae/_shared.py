"""What the three kexue-vae benchmarks share: options, mean ± sd cells, the run facts and the
BENCHMARKS.md block writer."""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from tools.bench._common import (
    bench_arguments,
    benchmarks_header,
    benchmarks_md,
    block_markers,
    machine_line,
    publish,
    run_facts,
    versions,
)

__all__ = ["facts", "mean_sd", "parser", "publish_block", "run_tasks"]


def run_tasks(fn: Callable[[Any], Any], tasks: list[Any], jobs: int) -> list[Any]:
    """``[fn(t) for t in tasks]``, in ``jobs`` spawned worker processes when ``jobs`` > 1."""
    if jobs <= 1:
        return [fn(t) for t in tasks]
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
        return list(pool.map(fn, tasks))


def parser(doc: str, *, jobs_help: str | None = None) -> argparse.ArgumentParser:
    """``--quick`` / ``--write`` (and ``--jobs``, default 2, when ``jobs_help`` is given)."""
    ap = argparse.ArgumentParser(
        description=doc.splitlines()[0],
        parents=[bench_arguments(quick_help="smoke run (numbers are noise)", threads=None)],
    )
    if jobs_help is not None:
        ap.add_argument("--jobs", type=int, default=2, help=jobs_help)
    return ap


def mean_sd(values: list[float], *, scale: float = 1.0, digits: int = 3) -> str:
    """``mean ± sd`` of ``scale``·values (the value alone for one run)."""
    v = [scale * x for x in values]
    if len(v) == 1:
        return f"{v[0]:.{digits}f}"
    return f"{statistics.mean(v):.{digits}f} ± {statistics.stdev(v):.{digits}f}"


def facts(module: str, quick: bool, *dists: str) -> list[str]:
    """Date / command / mode / machine / versions lines for ``python -m tools.bench.vae.<module>``."""
    cmd = f"python -m tools.bench.vae.{module}" + (" --quick" if quick else "")
    return run_facts(
        cmd,
        mode="quick" if quick else "full",
        machine=machine_line(),
        versions=versions("torch", "kexue-vae", *dists),
    )


def publish_block(text: str, block: str, *, write: bool) -> None:
    """Print ``text``; with ``write`` put it in the ``bench:<block>`` block of packages/vae/BENCHMARKS.md."""
    start, end = block_markers(f"bench:{block}")
    publish(
        text, benchmarks_md("vae"), start, end, write=write, header=benchmarks_header("kexue-vae")
    )
