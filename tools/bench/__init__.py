"""Benchmarks against the anchor libraries, one module (or subpackage) per package.

Run from the repository root: ``python -m tools.bench.<name>`` (``hatch run bench:<name>``).
Shared pieces are in ``tools.bench._common``: ``BenchBlock`` (a script's BENCHMARKS.md block, its
standard command line, the facts that open the block, publishing it), machine facts, timing and
markdown tables.
"""
