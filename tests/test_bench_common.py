"""tools.bench._common.BenchBlock: the block every benchmark script names once."""

from __future__ import annotations

from pathlib import Path

import pytest

from tools.bench._common import ROOT, BenchBlock, block_markers, run_facts

BLOCK = BenchBlock("flows", "bench:coupling", "tools.bench.flows.coupling", anchors=("triton",))


def test_paths_markers_header_and_command() -> None:
    assert BLOCK.md == ROOT / "packages" / "flows" / "BENCHMARKS.md"
    assert (BLOCK.start, BLOCK.end) == block_markers("bench:coupling")
    assert BLOCK.header.startswith("# kexue-flows benchmarks\n")
    assert BLOCK.command(["--quick", "--write"]) == (
        "python -m tools.bench.flows.coupling --quick --write"
    )
    # a package's __main__ is run as the package
    assert BenchBlock("vq", "bench:results", "tools.bench.vq.__main__").command() == (
        "python -m tools.bench.vq"
    )
    assert list(BLOCK.versions()) == ["python", "torch", "triton", "kexue-flows"]


def test_parser_standard_options_and_own_ones() -> None:
    parser = BLOCK.parser("Coupling benchmark.\n\nMore text.", devices=("cpu", "cuda"))
    parser.add_argument("--reps", type=int, default=None)
    args = parser.parse_args(["--quick", "--reps", "3"])
    assert parser.description == "Coupling benchmark."
    assert (args.quick, args.write, args.threads, args.device, args.reps) == (
        True, False, 2, "cpu", 3
    )  # fmt: skip
    assert args.benchmarks_md == BLOCK.md
    bare = BLOCK.parser(None, threads=None).parse_args([])
    assert not hasattr(bare, "threads") and not hasattr(bare, "device")
    with pytest.raises(SystemExit):
        parser.parse_args(["--device", "tpu"])


def test_facts_match_run_facts() -> None:
    lines = BLOCK.facts(["--quick"], mode="quick", threads=1)
    assert lines[1] == "- Command: `python -m tools.bench.flows.coupling --quick`"
    assert lines[2] == "- Mode: quick"
    assert lines[3].startswith("- Machine: ") and "torch threads 1" in lines[3]
    expected = run_facts(BLOCK.command(["--quick"]), mode="quick", machine="m", versions={})
    assert len(lines) == len(expected)
    opening = BLOCK.opening("## Coupling", ["--quick"], mode="quick", load=True)
    assert opening[:2] == ["## Coupling", ""] and opening[-1] == ""
    assert "load average (1/5/15 min) at the end" in opening[5]


def test_publish_prints_and_writes_only_with_write(tmp_path: Path, capsys) -> None:
    path = tmp_path / "BENCHMARKS.md"
    args = BLOCK.parser(None).parse_args(["--benchmarks-md", str(path)])
    BLOCK.publish("table 1\n", args)
    assert capsys.readouterr().out == "table 1\n\n" and not path.exists()
    args.write = True
    BLOCK.publish("table 1\n", args)
    BLOCK.publish("table 2\n", args)  # rewrites its own block only
    text = path.read_text(encoding="utf-8")
    assert text.startswith(BLOCK.header)
    assert text.count(BLOCK.start) == 1 and "table 2\n" in text and "table 1" not in text
