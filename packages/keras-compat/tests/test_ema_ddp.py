"""EMA under DistributedDataParallel (spec §1.5 rule 1, §3.1, §3.2), 2 gloo processes on CPU.

Each rank trains a DDP-wrapped net on its own data shard and updates its EMA after every step.
The shadows must be bitwise identical on both ranks, hold the unwrapped module, and a checkpoint
saved on rank 0 must reload into an unwrapped model and into a fresh EMA.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from kexue.keras_compat.ema import EMA, EMAWarmup
from kexue.testing import gloo_group

WORLD = 2
STEPS = 4


def _net() -> nn.Module:
    torch.manual_seed(7)
    return nn.Sequential(nn.Linear(3, 8), nn.BatchNorm1d(8), nn.Tanh(), nn.Linear(8, 1)).double()


def _worker(rank: int, world: int, init_method: str, out_dir: str) -> None:
    with gloo_group(rank, world, init_method):
        model = DistributedDataParallel(_net())
        ema = EMA(model, 0.9, warmup=EMAWarmup(), buffers="average")
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        ema.attach(opt)
        g = torch.Generator().manual_seed(100 + rank)  # different data on each rank
        for _ in range(STEPS):
            opt.zero_grad()
            model(torch.randn(6, 3, generator=g, dtype=torch.float64)).pow(2).mean().backward()
            opt.step()
        info = {
            "shadow_type": type(ema.module).__name__,
            "holds_inner": ema._model is model.module,
            "num_updates": ema.num_updates,
            "live": {k: v.clone() for k, v in model.state_dict().items()},  # "module." keys
        }
        torch.save(info, Path(out_dir) / f"info{rank}.pt")
        torch.save(ema.state_dict(), Path(out_dir) / f"ema{rank}.pt")


@pytest.mark.slow
def test_ddp_identical_shadows_and_rank0_checkpoint(tmp_path: Path, run_ranks) -> None:
    run_ranks(__file__, tmp_path, world=WORLD)

    states = [torch.load(tmp_path / f"ema{r}.pt") for r in range(WORLD)]
    infos = [torch.load(tmp_path / f"info{r}.pt") for r in range(WORLD)]
    for info in infos:
        assert info["shadow_type"] == "Sequential"  # the unwrapped module, not DDP
        assert info["holds_inner"]
        assert info["num_updates"] == STEPS
    assert list(states[0]["module"]) == list(_net().state_dict())  # no "module." prefix
    # Parameters (all-reduced gradients) and integer buffers: bitwise identical on both ranks.
    # BatchNorm running statistics are rank-local in DDP (no SyncBatchNorm): they differ in the
    # live models after each forward, and the averaged ones differ exactly as much.
    params = {k for k, _ in _net().named_parameters()}
    for key, v0 in states[0]["module"].items():
        if key in params or not v0.is_floating_point():
            assert torch.equal(v0, states[1]["module"][key]), key
    live0, live1 = infos[0]["live"], infos[1]["live"]
    assert torch.equal(live0["module.1.num_batches_tracked"], live1["module.1.num_batches_tracked"])
    assert not torch.equal(live0["module.1.running_mean"], live1["module.1.running_mean"])
    # the EMA moved away from the start: the comparison is not vacuous
    assert not torch.equal(states[0]["module"]["0.weight"], _net().state_dict()["0.weight"])

    # rank 0's checkpoint into an unwrapped model and into a fresh EMA
    plain = _net()
    plain.load_state_dict(states[0]["module"])
    fresh = EMA(_net(), 0.9, warmup=EMAWarmup())
    fresh.load_state_dict(states[0])
    assert fresh.num_updates == STEPS
    for key, v in fresh.module.state_dict().items():
        assert torch.equal(v, states[0]["module"][key]), key
    # the live DDP model's checkpoint (keys "module.*") also loads into an EMA
    live = infos[0]["live"]
    assert all(k.startswith("module.") for k in live)
    fresh.load_state_dict(live)
    for key, v in fresh.module.state_dict().items():
        assert torch.equal(v, live[f"module.{key}"]), key


if __name__ == "__main__":
    from kexue.testing import worker_main

    worker_main(_worker)
