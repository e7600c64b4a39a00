"""Run the kexue-vae benchmarks in turn: ``python -m tools.bench.vae [--only a,b] [options]``.

Options other than ``--only`` are passed to every benchmark (``--write``, ``--quick``).
"""

from __future__ import annotations

import argparse
import importlib
import sys

PARTS = ("likelihood", "clustering", "samples")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default=",".join(PARTS), help=f"comma-separated subset of {PARTS}")
    args, rest = ap.parse_known_args(argv)
    parts = [p for p in args.only.split(",") if p]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        ap.error(f"unknown parts {unknown}; choose from {PARTS}")
    rc = 0
    for part in parts:
        rc |= importlib.import_module(f"tools.bench.vae.{part}").main(rest)
    return rc


if __name__ == "__main__":
    sys.exit(main())
