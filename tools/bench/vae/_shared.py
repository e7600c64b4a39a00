"""What the three kexue-vae benchmarks share: the run facts and the BENCHMARKS.md block writer."""

from __future__ import annotations

from tools.bench._common import (
    benchmarks_header,
    benchmarks_md,
    block_markers,
    machine_line,
    publish,
    run_facts,
    versions,
)

__all__ = ["facts", "publish_block"]


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
