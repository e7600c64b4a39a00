"""Shared pieces of the benchmark scripts (and the demo's machine line): machine and version
facts, optional anchors, memory from ``/proc``, interleaved timing, quartiles, markdown tables,
where a package's BENCHMARKS.md and its marked blocks are, the facts that open a block, and
rewriting one. The benchmarks run as modules from the repository root
(``python -m tools.bench.<name>``) and import this as ``tools.bench._common``.

A benchmark script names its block once, ``BLOCK = BenchBlock("flows", "bench:coupling",
__spec__.name, anchors=("triton",))``, and takes the rest from it: ``BLOCK.parser(__doc__)`` (the
standard ``--quick`` / ``--write`` / ``--threads`` / ``--benchmarks-md`` command line),
``BLOCK.begin(args)`` (threads, device, the machine line on stderr), ``BLOCK.opening(...)`` (the
heading and the Date / Command / Mode / Machine / Versions lines) and ``BLOCK.publish(text, args)``.
The functions underneath (``benchmarks_md``, ``block_markers``, ``run_facts``, ``publish``, ...)
stay public for scripts that need something else."""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "ROOT",
    "BenchBlock",
    "bench_arguments",
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


def bench_arguments(
    *,
    benchmarks_md: Path | None = None,
    quick_help: str = "small sizes, few repetitions (smoke check)",
    threads: int | None = 2,
    devices: Sequence[str] = (),
    default_device: str | None = None,
) -> argparse.ArgumentParser:
    """An argparse parent (``parents=[...]``) with the options every benchmark shares: ``--quick``,
    ``--write``, ``--benchmarks-md`` (when ``benchmarks_md`` is given: the file ``--write``
    rewrites), ``--threads`` (when ``threads`` is not None: its default) and ``--device`` (when
    ``devices`` names the choices; default ``default_device`` or the first choice)."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--quick", action="store_true", help=quick_help)
    parent.add_argument("--write", action="store_true", help="rewrite the BENCHMARKS.md block")
    optional: dict[str, dict[str, Any] | None] = {  # flag → add_argument keywords, None: absent
        "--benchmarks-md": None
        if benchmarks_md is None
        else {
            "type": Path,
            "default": benchmarks_md,
            "help": f"file --write rewrites (default {benchmarks_md.relative_to(ROOT)})",
        },
        "--threads": None
        if threads is None
        else {
            "type": int,
            "default": threads,
            "help": f"torch.set_num_threads (default {threads})",
        },
        "--device": {"choices": tuple(devices), "default": default_device or devices[0]}
        if devices
        else None,
    }
    for flag, keywords in optional.items():
        if keywords is not None:
            parent.add_argument(flag, **keywords)
    return parent


@dataclass(frozen=True)
class BenchBlock:
    """One marked block of a package's BENCHMARKS.md, and the script that rewrites it.

    Arguments:
        package: the folder under ``packages/`` (``"flows"``); the distribution is
            ``kexue-<package>``.
        block: the marker name (``"bench:coupling"`` → ``<!-- bench:coupling:start -->``).
        module: the script's module (pass ``__spec__.name``; a trailing ``.__main__`` is dropped),
            quoted in the block's Command line.
        anchors: distributions whose versions the block quotes before ``kexue-<package>`` (python
            and torch always come first).
    """

    package: str
    block: str
    module: str
    anchors: tuple[str, ...] = ()
    start: str = field(init=False)
    """``<!-- <block>:start -->`` (see :func:`block_markers`); ``end`` likewise."""
    end: str = field(init=False)

    def __post_init__(self) -> None:
        start, end = block_markers(self.block)
        object.__setattr__(self, "start", start)  # frozen: set once, here
        object.__setattr__(self, "end", end)

    @property
    def dist(self) -> str:
        return f"kexue-{self.package}"

    @property
    def md(self) -> Path:
        """``packages/<package>/BENCHMARKS.md``."""
        return benchmarks_md(self.package)

    @property
    def header(self) -> str:
        """The opening of a BENCHMARKS.md that ``--write`` creates."""
        return benchmarks_header(self.dist)

    def versions(self) -> dict[str, str]:
        """python, torch, the anchors and ``kexue-<package>``."""
        return versions(*self.anchors, self.dist)

    def command(self, argv: Sequence[str] = ()) -> str:
        """``python -m <module> <argv>``: the command a reader re-runs."""
        module = self.module.removesuffix(".__main__")
        return " ".join(["python -m", module, *argv])

    def parser(self, doc: str | None, **arguments: Any) -> argparse.ArgumentParser:
        """A parser described by the first line of ``doc`` with :func:`bench_arguments` (their
        keywords; ``--benchmarks-md`` defaults to this block's file); add the script's own
        options to it."""
        arguments.setdefault("benchmarks_md", self.md)
        return argparse.ArgumentParser(
            description=(doc or "").strip().split("\n", 1)[0],
            parents=[bench_arguments(**arguments)],
        )

    def begin(self, args: argparse.Namespace) -> Any:
        """Start a run: ``torch.set_num_threads(args.threads)`` (when the parser has
        ``--threads``), print the machine line on stderr and return ``torch.device(args.device)``
        (CPU without ``--device``); a CUDA device without CUDA is an error."""
        import torch

        if getattr(args, "threads", None) is not None:
            torch.set_num_threads(args.threads)
        device = torch.device(getattr(args, "device", "cpu"))
        if device.type == "cuda" and not torch.cuda.is_available():
            raise SystemExit(f"--device {device}: no CUDA device available")
        print(f"machine: {machine_line(device)}", file=sys.stderr)
        return device

    def facts(
        self,
        argv: Sequence[str],
        *,
        mode: str,
        device: Any = None,
        threads: int | None = None,
        load: bool = False,
    ) -> list[str]:
        """:func:`run_facts` for this block: the command from ``argv``, the machine line of
        ``device`` (with ``threads``; with ``load``, the load averages at the end) and
        :meth:`versions`."""
        machine = machine_line(device, threads=threads)
        if load:
            machine += f"; load average (1/5/15 min) at the end {load_average()}"
        return run_facts(self.command(argv), mode=mode, machine=machine, versions=self.versions())

    def opening(self, heading: str, argv: Sequence[str], **facts: Any) -> list[str]:
        """``[heading, "", *facts, ""]``: the first lines of the block (keywords as :meth:`facts`)."""
        return [heading, "", *self.facts(argv, **facts), ""]

    def publish(
        self, text: str, args: argparse.Namespace | None = None, *, write: bool = False
    ) -> None:
        """Print ``text``; with ``args.write`` (or ``write``) put it in this block of
        ``args.benchmarks_md`` (default :attr:`md`), creating the file with :attr:`header`."""
        path = getattr(args, "benchmarks_md", None) or self.md
        write = write or bool(getattr(args, "write", False))
        publish(text, path, self.start, self.end, write=write, header=self.header)
