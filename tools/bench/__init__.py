"""Benchmarks against the anchor libraries, one module (or subpackage) per package.

Run from the repository root: ``python -m tools.bench.<name>`` (``hatch run bench:<name>``).
Shared pieces (machine facts, timing, markdown tables, BENCHMARKS.md blocks) are in
``tools.bench._common``.
"""
