"""Gradient transforms and accumulation under DistributedDataParallel: 2 gloo processes on CPU.

Spec §3.1: the clipped gradient equals clipping the *averaged* gradient (the transform runs in a
step pre-hook, after DDP's all-reduce), not the local one; DDP accumulation with ``no_sync`` on the
non-final micro-steps equals accumulation that all-reduces every micro-step.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from kexue.keras_compat.optim._chain import extend
from kexue.keras_compat.optim.accumulate import accumulate
from kexue.keras_compat.optim.transforms import GradClip, GradTransform
from kexue.testing import gloo_group

WORLD, BATCH, K, MAX_NORM = 2, 8, 2, 0.05


def _mlp() -> nn.Module:
    torch.manual_seed(3)
    return nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1)).double()


def _data(step: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(100 + step)
    x = torch.randn(BATCH, 3, generator=g, dtype=torch.float64)
    return x, torch.randn(BATCH, 1, generator=g, dtype=torch.float64) + x[:, :1] * 3


def _loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return ((model(x) - y) ** 2).mean()


def _worker(rank: int, world: int, init_method: str, out_dir: str) -> None:
    with gloo_group(rank, world, init_method):
        out: dict[str, object] = {}
        # 1) clipping in the step pre-hook sees the all-reduced gradient
        model = DistributedDataParallel(_mlp())
        opt = torch.optim.SGD(model.parameters(), lr=0.0)
        seen: list[torch.Tensor] = []
        extend(
            opt, GradClip(MAX_NORM, scope="global"), GradTransform(lambda g: seen.append(g.clone()))
        )
        x, y = (t.chunk(WORLD)[rank] for t in _data(0))
        _loss(model, x, y).backward()
        opt.step()
        out["clipped"] = seen
        # 2) accumulation: no_sync on non-final micro-steps vs syncing every micro-step
        for mode in ("no_sync", "always_sync"):
            model = DistributedDataParallel(_mlp())
            opt = torch.optim.Adam(model.parameters(), lr=1e-2)
            acc = accumulate(opt, K, model=model if mode == "no_sync" else None)
            intermediate = None
            for step in range(2 * K):
                x, y = _data(step)
                xs, ys = x.chunk(WORLD)[rank], y.chunk(WORLD)[rank]
                with acc.micro_step():
                    acc.backward(_loss(model, xs, ys))
                if step == 0:
                    intermediate = [p.grad.clone() for p in model.parameters()]
            out[f"{mode}_params"] = [p.detach().clone() for p in model.parameters()]
            out[f"{mode}_first_micro_grad"] = intermediate
            out[f"{mode}_steps"] = acc.optimizer_steps
        torch.save(out, Path(out_dir) / f"rank{rank}.pt")


@pytest.fixture(scope="module")
def ddp_results(tmp_path_factory: pytest.TempPathFactory, run_ranks) -> list[dict]:
    out = tmp_path_factory.mktemp("optim_ddp")
    run_ranks(__file__, out, world=WORLD)
    return [torch.load(out / f"rank{r}.pt") for r in range(WORLD)]


def _clip(grads: list[torch.Tensor]) -> list[torch.Tensor]:
    total = torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))
    coef = (MAX_NORM / (total + 1e-6)).clamp(max=1.0)
    return [g * coef for g in grads]


@pytest.mark.slow
def test_clip_sees_the_all_reduced_gradient(ddp_results: list[dict]) -> None:
    ref = _mlp()
    _loss(ref, *_data(0)).backward()
    full = [p.grad.clone() for p in ref.parameters()]
    expected = _clip(full)
    for res in ddp_results:
        for got, want in zip(res["clipped"], expected, strict=True):
            torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-14)
    assert torch.linalg.vector_norm(torch.stack([g.norm() for g in full])) > 10 * MAX_NORM
    # clipping each rank's local (half-batch) gradient would give something else
    for rank, res in enumerate(ddp_results):
        local_model = _mlp()
        x, y = (t.chunk(WORLD)[rank] for t in _data(0))
        _loss(local_model, x, y).backward()
        local = _clip([p.grad for p in local_model.parameters()])
        assert not torch.allclose(res["clipped"][0], local[0], rtol=1e-3, atol=0)


@pytest.mark.slow
def test_ddp_accumulation_no_sync_equals_always_sync_and_big_batch(ddp_results: list[dict]) -> None:
    r0, r1 = ddp_results
    # no_sync really skipped the all-reduce on the first micro-step: local grads differ by rank
    assert not torch.allclose(r0["no_sync_first_micro_grad"][0], r1["no_sync_first_micro_grad"][0])
    torch.testing.assert_close(
        r0["always_sync_first_micro_grad"][0], r1["always_sync_first_micro_grad"][0], rtol=0, atol=0
    )
    ref = _mlp()
    opt = torch.optim.Adam(ref.parameters(), lr=1e-2)
    for s in range(2):
        batches = [_data(s * K + i) for i in range(K)]
        opt.zero_grad()
        _loss(
            ref, torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches])
        ).backward()
        opt.step()
    for res in ddp_results:
        assert res["no_sync_steps"] == res["always_sync_steps"] == 2
        for a, b, c in zip(
            res["no_sync_params"], res["always_sync_params"], ref.parameters(), strict=True
        ):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
            torch.testing.assert_close(a, c.detach(), rtol=0, atol=1e-6)


if __name__ == "__main__":
    from kexue.testing import worker_main

    worker_main(_worker)
