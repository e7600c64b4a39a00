"""The command line shared by the vq benchmarks: ``--write``, the anchor check, publishing."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from tools.bench._common import benchmarks_md, block_markers, importable, publish

__all__ = ["bench_main"]


def bench_main(
    doc: str,
    block: str | Callable[[argparse.Namespace], str],
    argv: list[str] | None,
    build: Callable[[argparse.Namespace, list[str]], str],
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
    before: Callable[[argparse.Namespace], int | None] | None = None,
) -> int:
    """Parse ``argv`` (``--write`` plus ``add_arguments``), run ``before`` (a non-None result ends
    the run with that code), check that vector-quantize-pytorch imports, then print ``build``'s
    markdown and, with ``--write``, put it in the ``block`` (a name, or a function of the parsed
    arguments) of packages/vq/BENCHMARKS.md."""
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    parser.add_argument("--write", action="store_true", help="rewrite the BENCHMARKS.md block")
    if add_arguments is not None:
        add_arguments(parser)
    args = parser.parse_args(argv)
    if before is not None and (code := before(args)) is not None:
        return code
    if not importable("vector_quantize_pytorch"):
        print("vector-quantize-pytorch is not installed: nothing to compare", file=sys.stderr)
        return 1
    start, end = block_markers(block if isinstance(block, str) else block(args))
    publish(build(args, argv), benchmarks_md("vq"), start, end, write=args.write)
    return 0
