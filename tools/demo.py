"""kexue demo: train small real models with the kexue packages and write an HTML report.

    python -m tools.demo                 # full demo (≤ 10 min on 2 CPU cores)
    python -m tools.demo --quick         # about a minute (CI)
    python -m tools.demo --sections gan_losses --out demo-report --seed 0

Run from the repository root (``hatch run demo`` does).

Each package contributes a section (``tools/demos/<name>.py``, listed in ``tools/demos/__init__.py``).
The report is one self-contained page, ``<out>/index.html`` (inline CSS, figures as base64 PNG),
plus ``<out>/results.json`` with the numbers. Data ship inside the code (seeded generators); nothing
is downloaded. Progress goes to stderr, the summary tables to stdout.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import os
import platform
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # before any pyplot import: no display needed

from tools.bench._common import cpu_model as _cpu_model
from tools.bench._common import usable_cores as _cpu_count
from tools.demos import SECTIONS
from tools.demos._report import Context, Progress, Section, render_page

__all__ = ["main", "parse_args"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="short run (about a minute; CI)")
    mode.add_argument(
        "--smoke", action="store_true", help="a few steps per model (tests only; numbers are noise)"
    )
    parser.add_argument("--out", default="demo-report", help="output folder (default demo-report)")
    parser.add_argument(
        "--sections",
        default=",".join(SECTIONS),
        help=f"comma-separated sections to run (default all: {','.join(SECTIONS)})",
    )
    parser.add_argument("--seed", type=int, default=0, help="base seed (default 0)")
    parser.add_argument(
        "--jobs",
        type=int,
        default=None,
        help="worker processes for independent runs (default: the number of usable CPU cores, "
        "at most 4; 1 = everything in this process)",
    )
    args = parser.parse_args(argv)
    names = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = [s for s in names if s not in SECTIONS]
    if unknown or not names:
        parser.error(f"unknown sections {unknown}; choose from {list(SECTIONS)}")
    args.sections = names
    if args.jobs is None:
        args.jobs = max(1, min(_cpu_count(), 4))
    if args.jobs < 1:
        parser.error("--jobs must be >= 1")
    return args


def _versions() -> dict[str, str]:
    from importlib import metadata

    import numpy
    import torch

    out = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "matplotlib": matplotlib.__version__,
    }
    for dist in sorted(metadata.distributions(), key=lambda d: d.metadata["Name"] or ""):
        name = dist.metadata["Name"] or ""
        if name.startswith("kexue-"):
            out[name] = dist.version
    return out


def _run_section(name: str, ctx: Context) -> tuple[Section, bool]:
    import html

    t0 = time.perf_counter()
    ctx.progress.note(f"== {name} ==")
    try:
        section = importlib.import_module(SECTIONS[name]).run(ctx)
        ok = True
    except Exception:
        tb = traceback.format_exc()
        ctx.progress.note(tb)
        section = Section(name, f"{name} (failed)")
        section.add_html(f'<pre class="error">{html.escape(tb)}</pre>')
        section.results = {"error": tb}
        ok = False
    section.wall_s = time.perf_counter() - t0
    return section, ok


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    t_start = time.perf_counter()
    started = dt.datetime.now().astimezone()
    import torch

    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    ctx = Context(mode=mode, seed=args.seed, jobs=args.jobs, progress=Progress())
    sections: list[Section] = []
    failed: list[str] = []
    # Tiny models: one intra-op thread per process; parallelism comes from --jobs workers.
    # Restored afterwards, so that calling main() (as the smoke test does) has no side effect.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for name in args.sections:
            section, ok = _run_section(name, ctx)
            sections.append(section)
            if not ok:
                failed.append(name)
    finally:
        torch.set_num_threads(threads)
    total_s = time.perf_counter() - t_start

    versions = _versions()
    meta: dict[str, Any] = {
        "date": started.strftime("%Y-%m-%d %H:%M %Z"),
        "mode": mode,
        "total wall time": f"{total_s:.1f} s",
        "sections": ", ".join(f"{s.key} ({s.wall_s:.1f} s)" for s in sections),
        "machine": (
            f"{platform.system()} {platform.machine()}, {_cpu_count()} usable CPU cores "
            f"({os.cpu_count()} in the machine)"
        ),
        "processor": _cpu_model(),
        "worker processes": f"{args.jobs} (1 torch thread each)",
        "seed": args.seed,
        "versions": ", ".join(f"{k} {v}" for k, v in versions.items()),
    }
    if torch.cuda.is_available():
        meta["note"] = "a GPU is present but the demo runs on CPU"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "index.html").write_text(render_page(meta, sections), encoding="utf-8")
    payload = {
        "meta": {**meta, "total_wall_s": round(total_s, 2), "versions": versions},
        "sections": {
            s.key: {"title": s.title, "wall_s": round(s.wall_s, 2), **s.results} for s in sections
        },
    }
    (out / "results.json").write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")

    for s in sections:
        for block in s.text:
            print(f"\n[{s.key}] {block}")
    print(f"\nkexue demo ({mode}): {total_s:.1f} s; report: {out / 'index.html'}")
    if failed:
        print(f"failed sections: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    """SIGTERM ends the demo like Ctrl-C does: ``finally`` blocks run and worker pools stop."""
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    sys.exit(main())
