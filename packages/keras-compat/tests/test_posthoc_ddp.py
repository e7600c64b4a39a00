"""PowerEMA and Switch EMA under DistributedDataParallel, 2 gloo processes on CPU: rank 0 alone
writes snapshots, the averages and the switched live models stay identical on both ranks."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from kexue.keras_compat import EMA, PowerEMA
from kexue.testing import gloo_group

WORLD = 2
STEPS = 6


def _net() -> nn.Module:
    torch.manual_seed(7)
    return nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1)).double()


def _worker(rank: int, world: int, init_method: str, out_dir: str) -> None:
    with gloo_group(rank, world, init_method):
        model = DistributedDataParallel(_net())
        phema = PowerEMA(
            model, (0.05, 0.10), snapshot_every=2, store=Path(out_dir) / f"snaps{rank}"
        )
        switch = EMA(model, 0.5, switch_every=3)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        g = torch.Generator().manual_seed(100 + rank)  # different data on each rank
        for _ in range(STEPS):
            opt.zero_grad()
            model(torch.randn(6, 3, generator=g, dtype=torch.float64)).pow(2).mean().backward()
            opt.step()
            phema.update()
            switch.update()
        out = {
            "phema": phema.state_dict(),
            "live": {k: v.clone() for k, v in model.module.state_dict().items()},
        }
        torch.save(out, Path(out_dir) / f"rank{rank}.pt")


@pytest.mark.slow
def test_rank0_writes_and_ranks_stay_identical(tmp_path: Path, run_ranks) -> None:
    run_ranks(__file__, tmp_path, world=WORLD)
    files = sorted(p.name for p in (tmp_path / "snaps0").glob("phema-*.pt"))
    assert len(files) == 2 * STEPS // 2
    assert not (tmp_path / "snaps1").exists()
    outs = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]
    for a, b in zip(outs[0]["phema"]["emas"], outs[1]["phema"]["emas"], strict=True):
        assert all(torch.equal(a["module"][k], b["module"][k]) for k in a["module"])
    assert all(torch.equal(outs[0]["live"][k], outs[1]["live"][k]) for k in outs[0]["live"])


if __name__ == "__main__":
    from kexue.testing import worker_main

    worker_main(_worker)
