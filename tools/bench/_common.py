"""Shared pieces of the benchmark scripts (and the demo's machine line): machine and version
facts, optional anchors, memory from ``/proc``, interleaved timing, quartiles, markdown tables,
where a package's BENCHMARKS.md and its marked blocks are, the facts that open a block, and
rewriting one. The benchmarks run as modules from the repository root
(``python -m tools.bench.<name>``) and import this as ``tools.bench._common``."""

from __future__ import annotations

import datetime as dt
import importlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = [
    "ROOT",
    "benchmarks_header",
    "benchmarks_md",
    "block_markers",
    "cpu_model",
    "importable",
    "interleaved",
    "json_from_child",
    "load_average",
    "machine_line",
    "markdown_table",
    "proc_status_bytes",
    "publish",
    "quartiles",
    "run_facts",
    "sync",
    "usable_cores",
    "versions",
    "write_block",
]

ROOT = Path(__file__).resolve().parents[2]
"""The repository root (the benchmarks' subprocesses run there)."""


def benchmarks_md(package: str) -> Path:
    """``packages/<package>/BENCHMARKS.md``, the file a benchmark's ``--write`` rewrites."""
    return ROOT / "packages" / package / "BENCHMARKS.md"


def block_markers(name: str) -> tuple[str, str]:
    """The ``<!-- name:start -->`` / ``<!-- name:end -->`` markers of a block (for write_block)."""
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


def benchmarks_header(dist: str) -> str:
    """The opening text of a BENCHMARKS.md that a benchmark's ``--write`` creates."""
    return (
        f"# {dist} benchmarks\n\n"
        "Measured tables are rewritten by the scripts named in each block; text outside the\n"
        "`<!-- bench:... -->` markers is kept.\n"
    )


def importable(module: str) -> bool:
    """Whether an optional anchor imports (a missing one has its rows skipped)."""
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), or what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def usable_cores() -> int:
    """Cores this process may run on (its affinity mask on Linux)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def machine_line(device: Any = None, *, threads: int | None = None) -> str:
    """OS, CPU, usable cores, torch threads (``threads`` or torch's current number), and the GPU
    when ``device`` is a CUDA device: the "Machine" line of a benchmark's block."""
    import torch

    text = (
        f"{platform.system()} {platform.machine()}, {cpu_model()}, {usable_cores()} usable cores "
        f"({os.cpu_count()} in the machine), torch threads "
        f"{torch.get_num_threads() if threads is None else threads}"
    )
    if device is not None and device.type == "cuda":
        text += f"; GPU {torch.cuda.get_device_name(device)}"
    return text


def json_from_child(
    cmd: list[str],
    *,
    what: str,
    env: dict[str, str] | None = None,
    timeout: float | None = None,
    tail: int = 2000,
) -> Any:
    """Run ``cmd`` (a benchmark's own ``python -m`` child) from the repository root and return the
    JSON of the last line it prints; ``None``, after printing the end of its stderr, if it fails."""
    proc = subprocess.run(
        cmd, capture_output=True, text=True, check=False, cwd=ROOT, env=env, timeout=timeout
    )
    if proc.returncode != 0:
        print(f"{what} failed:\n{proc.stderr[-tail:]}", file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def load_average() -> str:
    """1/5/15-minute load averages: other jobs on a shared machine widen the p25–p75 spread."""
    try:
        return "/".join(f"{v:.1f}" for v in os.getloadavg())
    except OSError:
        return "unknown"


def versions(*dists: str) -> dict[str, str]:
    """Python, torch and the given distributions' versions ("not installed" when absent)."""
    from importlib import metadata

    import torch

    out = {"python": platform.python_version(), "torch": torch.__version__}
    for dist in dists:
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def proc_status_bytes(field: str) -> int:
    """A memory field of ``/proc/self/status`` (``VmRSS``, ``VmHWM``, ...) in bytes (Linux)."""
    with open("/proc/self/status", encoding="utf-8") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def quartiles(times: list[float]) -> tuple[float, float, float]:
    """(p25, median, p75) of ``times``."""
    if len(times) < 2:
        return times[0], times[0], times[0]
    q = statistics.quantiles(times, n=4, method="inclusive")
    return q[0], q[1], q[2]


def sync(device: Any) -> None:
    """Wait for queued CUDA work on ``device`` (a no-op elsewhere)."""
    if device.type == "cuda":
        import torch

        torch.cuda.synchronize(device)


def interleaved(
    fns: dict[str, Callable[[], Any]], *, warmup: int, reps: int, device: Any
) -> dict[str, list[float]]:
    """Time each zero-argument callable ``reps`` times after ``warmup`` calls, round robin.

    The order rotates every repetition, so no variant always runs right after the same other one.
    """
    names = list(fns)
    for _ in range(warmup):
        for name in names:
            fns[name]()
    sync(device)
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(reps):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            sync(device)
            t0 = time.perf_counter()
            fns[name]()
            sync(device)
            times[name].append(time.perf_counter() - t0)
    return times


def markdown_table(headers: list[str], rows: list[list[Any]]) -> str:
    """A padded GitHub markdown table."""
    cols = [[str(h)] + [str(r[j]) for r in rows] for j, h in enumerate(headers)]
    widths = [max(len(c) for c in col) for col in cols]

    def line(cells: list[Any]) -> str:
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(headers), sep, *(line(r) for r in rows)])


def run_facts(command: str, *, mode: str, machine: str, versions: dict[str, str]) -> list[str]:
    """The Date / Command / Mode / Machine / Versions lines that open a benchmark's block."""
    return [
        f"- Date: {dt.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}",
        f"- Command: `{command}`",
        f"- Mode: {mode}",
        f"- Machine: {machine}",
        "- Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()),
    ]


def write_block(path: Path, start: str, end: str, text: str, *, header: str = "") -> None:
    """Replace the text between the ``start`` and ``end`` markers of ``path`` with ``text``.

    A file without both markers (or a missing file, which starts as ``header``) gets the block
    appended; a file with only one of them is left alone and the script exits with an error.
    """
    old = path.read_text(encoding="utf-8") if path.exists() else header
    if (start in old) != (end in old):
        raise SystemExit(f"{path}: only one of {start} / {end} found; not rewriting")
    if start in old:
        head, rest = old.split(start, 1)
        _, tail = rest.split(end, 1)
    else:
        head, tail = (old.rstrip("\n") + "\n\n" if old.strip() else ""), "\n"
    path.write_text(f"{head}{start}\n{text}{end}{tail}", encoding="utf-8")


def publish(text: str, path: Path, start: str, end: str, *, write: bool, header: str = "") -> None:
    """Print a benchmark's block; with ``write``, also put it between ``start`` and ``end`` of
    ``path`` (see :func:`write_block`) and say so on stderr."""
    print(text)
    if write:
        write_block(path, start, end, text, header=header)
        print(f"wrote the {start} block of {path}", file=sys.stderr)
