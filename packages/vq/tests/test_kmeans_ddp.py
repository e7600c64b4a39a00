"""k-means and CodebookStats under 2-process gloo DDP (spec §2.11, §4 item 12).

Each rank holds a different shard (different sizes) of one Gaussian mixture. k-means must give
bitwise identical centroids on both ranks, equal to single-process k-means on the concatenated
shards with the same seed (k-means++ seeding on rank 0 over the gathered samples, statistics
all-reduced), and CodebookStats.sync() must give the global counts on both ranks.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from kexue.vq.kmeans import kmeans
from kexue.vq.stats import CodebookStats

WORLD = 2
K = 5
SIZES = (70, 50)


def _shards() -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(1234)
    centres = torch.randn(K, 3, generator=g) * 4
    x = centres[torch.randint(K, (sum(SIZES),), generator=g)] + torch.randn(
        sum(SIZES), 3, generator=g
    )
    return list(torch.split(x, SIZES))


def _indices(rank: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(rank)
    return [torch.randint(0, 7, (10 + rank,), generator=g) for _ in range(3)]


def _worker(rank: int, world: int, init_method: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=init_method, rank=rank, world_size=world)
    try:
        torch.set_num_threads(1)
        # Different generator states on the two ranks: only rank 0's must matter.
        g = torch.Generator().manual_seed(7 if rank == 0 else 999)
        cent, counts = kmeans(_shards()[rank], K, iters=6, generator=g, backend="torch")
        ema = CodebookStats(7, decay=0.8)
        total = CodebookStats(7)
        for step, idx in enumerate(_indices(rank)):
            ema.update(idx)
            total.update(idx)
            if step != 1:  # sync after some steps only: still exact
                ema.sync()
        total.sync()
        torch.save(
            {"cent": cent, "counts": counts, "ema": ema.counts, "total": total.counts},
            Path(out_dir) / f"rank{rank}.pt",
        )
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_kmeans_and_stats_ddp_match_single_process(tmp_path: Path, run_ranks) -> None:
    out = run_ranks(__file__, tmp_path, world=WORLD)
    r0, r1 = (torch.load(out / f"rank{r}.pt") for r in range(WORLD))
    for key in ("cent", "counts", "ema", "total"):
        assert torch.equal(r0[key], r1[key]), key
    cent, counts = kmeans(
        torch.cat(_shards()), K, iters=6, generator=torch.Generator().manual_seed(7)
    )
    assert torch.equal(r0["counts"], counts)
    # Sums are added in a different order (per-rank partial sums): fp32 rounding only.
    torch.testing.assert_close(r0["cent"], cent, rtol=0, atol=1e-5)
    # Stats: the global sum, and the EMA of the global per-step counts.
    gamma = 0.8
    ema = torch.zeros(7, dtype=torch.float64)
    tot = torch.zeros(7, dtype=torch.float64)
    for step_idx in zip(*(_indices(r) for r in range(WORLD)), strict=True):
        n = sum(torch.bincount(i, minlength=7).double() for i in step_idx)
        ema = gamma * ema + (1 - gamma) * n
        tot += n
    assert r0["total"].tolist() == tot.tolist()
    torch.testing.assert_close(r0["ema"].double(), ema, rtol=1e-6, atol=1e-6)


if __name__ == "__main__":
    from kexue.testing import worker_main

    worker_main(_worker)
