"""ActNorm data-dependent init under DDP (spec §1.4, §4 "DDP ActNorm init"), 2 gloo processes.

Each rank holds a different shard (of different sizes) of one global batch and runs its first
training forward through a DDP-wrapped ActNorm. Both ranks must end with identical b and logs,
equal to the single-process init on the concatenated batch (rosinality/glow-pytorch#1).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.nn.parallel import DistributedDataParallel

from kexue.flows.layers.normalization import ActNorm
from kexue.testing import gloo_group

WORLD = 2
SIZES = (5, 3)  # per-rank batch sizes: unequal on purpose


def _global_batch() -> torch.Tensor:
    g = torch.Generator().manual_seed(21)
    x = torch.randn(sum(SIZES), 3, 4, 4, generator=g, dtype=torch.float64)
    return x * torch.tensor([0.5, 2.0, 4.0], dtype=torch.float64).view(1, 3, 1, 1) + 1.5


def _shard(rank: int) -> torch.Tensor:
    start = sum(SIZES[:rank])
    return _global_batch()[start : start + SIZES[rank]]


def _worker(rank: int, world: int, init_method: str, out_dir: str) -> None:
    with gloo_group(rank, world, init_method):
        layer = ActNorm(3, logscale_factor=3.0).double()
        model = DistributedDataParallel(layer)
        y, logdet = model(_shard(rank))
        (y.pow(2).sum() - logdet.sum()).backward()  # gradients flow after the in-forward init
        result = {
            "bias": layer.bias.detach().clone(),
            "logs": layer.logs.detach().clone(),
            "initialized": bool(layer.initialized),
        }
        # a constant channel over the *global* batch must raise on every rank
        bad = _shard(rank).clone()
        bad[:, 2] = 7.0
        try:
            ActNorm(3).double()(bad)
            result["raised"] = False
        except ValueError:
            result["raised"] = True
        # constant on each rank but different across ranks: the global std is not zero
        ok = _shard(rank).clone()
        ok[:, 2] = float(rank)
        ActNorm(3).double()(ok)
        torch.save(result, Path(out_dir) / f"actnorm{rank}.pt")


@pytest.mark.slow
def test_ddp_actnorm_init_uses_the_global_batch(tmp_path: Path, run_ranks) -> None:
    run_ranks(__file__, tmp_path, world=WORLD)
    results = [torch.load(tmp_path / f"actnorm{r}.pt") for r in range(WORLD)]

    reference = ActNorm(3, logscale_factor=3.0).double()
    reference(_global_batch())
    for res in results:
        assert res["initialized"]
        assert res["raised"]
    # identical on both ranks, bitwise
    assert torch.equal(results[0]["bias"], results[1]["bias"])
    assert torch.equal(results[0]["logs"], results[1]["logs"])
    # equal to the single-process init on the concatenated batch
    torch.testing.assert_close(results[0]["bias"], reference.bias.detach(), atol=1e-12, rtol=0)
    torch.testing.assert_close(results[0]["logs"], reference.logs.detach(), atol=1e-12, rtol=0)
    # and different from a rank-local init (the test is not vacuous)
    local = ActNorm(3, logscale_factor=3.0).double()
    local(_shard(0))
    assert (local.logs.detach() - results[0]["logs"]).abs().max() > 1e-3


if __name__ == "__main__":
    from kexue.testing import worker_main

    worker_main(_worker)
