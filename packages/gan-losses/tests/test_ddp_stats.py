"""Device statistics under DDP, 2 gloo processes on CPU with unequal batches per rank.

LeCam anchors, the ADA controller and ``FeatureStats.all_reduce_`` must hold, on every rank, what
one process sees for the full batch: means from all-reduced sums and counts, not means of means.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from kexue.gan_losses import LeCamAnchors
from kexue.gan_losses.augment import ADAController
from kexue.gan_losses.metrics import FeatureStats

WORLD = 2
SPLIT = 5  # rank 0 holds rows [0, 5), rank 1 rows [5, 8): unequal halves


def _data() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(4)
    real = torch.randn(2, 8, generator=g) + 0.5  # two steps of 8 scores
    fake = torch.randn(2, 8, generator=g) - 0.5
    feats = torch.randn(8, 3, generator=g, dtype=torch.float64) * 3 + 10
    return real, fake, feats


def _run(real: torch.Tensor, fake: torch.Tensor, feats: torch.Tensor) -> dict[str, torch.Tensor]:
    anchors = LeCamAnchors(decay=0.9, start_step=1)
    ada = ADAController(interval=2, speed_kimg=0.001)
    for step in range(2):
        anchors.update(real[step], fake[step])
        ada.update(real[step] + 2.0)  # r_t above the target: p rises
    stats = FeatureStats().update(feats).all_reduce_()
    return {
        "alpha_r": anchors.real_anchor.clone(),
        "alpha_f": anchors.fake_anchor.clone(),
        "p": ada.p.clone(),
        "n": torch.tensor(stats.n),
        "mean": stats.mean,
        "cov": stats.cov,
        "features": stats.features,
    }


def _worker(rank: int, world: int, init_method: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=init_method, rank=rank, world_size=world)
    try:
        torch.set_num_threads(1)
        real, fake, feats = _data()
        rows = slice(0, SPLIT) if rank == 0 else slice(SPLIT, None)
        out = _run(real[:, rows], fake[:, rows], feats[rows])
        torch.save(out, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_ddp_statistics_equal_single_process_full_batch(tmp_path: Path, run_ranks) -> None:
    run_ranks(__file__, tmp_path, world=WORLD)
    expected = _run(*_data())
    for rank in range(WORLD):
        got = torch.load(tmp_path / f"rank{rank}.pt")
        for key, value in expected.items():
            torch.testing.assert_close(got[key], value, rtol=1e-6, atol=1e-9, msg=key)
    assert expected["p"].item() > 0  # the controller moved


if __name__ == "__main__":
    from kexue.testing import worker_main

    worker_main(_worker)
