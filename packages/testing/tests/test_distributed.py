"""``run_ranks`` with world=2 over gloo: the ranks really talk, and a failing rank fails the test."""

from __future__ import annotations

from pathlib import Path

import pytest

from kexue.testing import gloo_group, worker_main

WORLD = 2


def test_two_gloo_ranks_all_reduce(tmp_path: Path, run_ranks) -> None:
    out = run_ranks(__file__, tmp_path, world=WORLD)
    assert [(out / f"rank{r}.txt").read_text() for r in range(WORLD)] == ["3.0", "3.0"]


def test_a_failing_rank_fails_the_test_with_its_log(tmp_path: Path, run_ranks) -> None:
    (tmp_path / "fail").write_text("1")
    with pytest.raises(
        pytest.fail.Exception, match=r"(?s)ranks \[1\] failed.*rank 1 asked to fail"
    ):
        run_ranks(__file__, tmp_path, world=WORLD)


def _worker(rank: int, world: int, init_method: str, out_dir: str) -> None:
    if rank == 1 and Path(out_dir, "fail").exists():
        raise RuntimeError("rank 1 asked to fail")
    import torch
    import torch.distributed as dist

    if Path(out_dir, "fail").exists():
        return  # rank 0 of the failing case: nothing to rendezvous with
    with gloo_group(rank, world, init_method):
        x = torch.tensor([float(rank + 1)])
        dist.all_reduce(x)
        Path(out_dir, f"rank{rank}.txt").write_text(str(x.item()))
        assert dist.is_initialized()
    assert not dist.is_initialized()  # gloo_group destroyed the group


if __name__ == "__main__":
    worker_main(_worker)
