"""kexue-flows benchmarks: ``quality`` (digits bits/dim vs normflows), ``coupling`` (the fused
coupling kernel), ``spline`` (the spline op), ``glow_step`` (Glow step time vs normflows), ``toys``
and ``splines_digits`` (spline flows vs zuko / normflows)."""

from __future__ import annotations

import os
import shlex
from collections.abc import Sequence

import torch

from tools.bench._common import BenchBlock, machine_line, run_facts

__all__ = ["lockstep_facts"]


def lockstep_facts(block: BenchBlock, argv: Sequence[str], mode: str) -> list[str]:
    """The run facts of a single-thread lockstep training benchmark (toys, splines_digits): the
    ``OMP_NUM_THREADS=1`` command, the machine with the load average at the end, versions."""
    machine = machine_line(threads=torch.get_num_threads()) + (
        f", load average {os.getloadavg()[0]:.1f} at the end (other jobs: absolute ms are "
        "inflated, compare the interleaved ratios)"
    )
    command = f"OMP_NUM_THREADS=1 {block.command([shlex.join(argv)] if argv else [])}"
    return run_facts(command, mode=mode, machine=machine, versions=block.versions())
