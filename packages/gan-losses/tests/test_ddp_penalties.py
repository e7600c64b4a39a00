"""Gradient penalties under DistributedDataParallel (spec §1.5, §3.2 item 3), 2 gloo processes on CPU.

The penalties take input gradients with ``autograd.grad(create_graph=True)`` and are trained by an
ordinary ``backward()``: under DDP the parameter gradients of (loss + penalty), all-reduced over
two ranks holding half a batch each, must equal the single-process full-batch gradients.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from kexue.gan_losses import (
    gradient_penalty,
    r1_penalty,
    wgan_discriminator_loss,
    wgan_div_penalty,
)

WORLD = 2
BATCH = 8  # full batch; each rank holds BATCH // WORLD samples


def _critic() -> nn.Module:
    torch.manual_seed(3)
    return nn.Sequential(
        nn.Linear(3, 16), nn.Tanh(), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 1)
    ).double()


def _data() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(11)
    x_real = torch.randn(BATCH, 3, generator=g, dtype=torch.float64)
    x_fake = torch.randn(BATCH, 3, generator=g, dtype=torch.float64) + 1.0
    u = torch.rand(BATCH, 1, generator=g, dtype=torch.float64)
    return x_real, x_fake, u


def _d_objective(critic: nn.Module, x_real, x_fake, u) -> torch.Tensor:
    """WGAN loss + one-centred GP on fixed interpolates + R1 + WGAN-div: every penalty kind."""
    x_hat = (u * x_real + (1 - u) * x_fake).requires_grad_()
    x_r = x_real.clone().requires_grad_()
    x_f = x_fake.clone().requires_grad_()
    r, f = critic(x_r).squeeze(1), critic(x_f).squeeze(1)
    loss = wgan_discriminator_loss(r, f)
    loss = loss + gradient_penalty(critic(x_hat), x_hat, weight=10.0)
    loss = loss + r1_penalty(r, x_r, gamma=1.0)
    loss = loss + wgan_div_penalty(r, x_r, f, x_f, k=2.0, p=6.0)
    return loss


def _worker(rank: int, world: int, init_method: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=init_method, rank=rank, world_size=world)
    try:
        torch.set_num_threads(1)
        model = DistributedDataParallel(_critic())
        x_real, x_fake, u = (t.chunk(WORLD)[rank] for t in _data())
        for step in range(2):  # two steps: the second runs after an optimiser update
            model.zero_grad(set_to_none=True)
            loss = _d_objective(model, x_real, x_fake, u)
            loss.backward()
            grads = [p.grad.clone() for p in model.parameters()]
            torch.save(grads, Path(out_dir) / f"rank{rank}-step{step}.pt")
            with torch.no_grad():
                for p in model.parameters():
                    p -= 0.1 * p.grad
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_ddp_penalty_gradients_equal_single_process_full_batch(tmp_path: Path, run_ranks) -> None:
    run_ranks(__file__, tmp_path, world=WORLD)

    # Reference: one process, full batch. With equal halves, the mean over ranks of the
    # per-rank mean losses is the full-batch mean loss, so DDP's averaged gradients must match.
    critic = _critic()
    x_real, x_fake, u = _data()
    for step in range(2):
        critic.zero_grad(set_to_none=True)
        _d_objective(critic, x_real, x_fake, u).backward()
        expected = [p.grad.clone() for p in critic.parameters()]
        for rank in range(WORLD):
            got = torch.load(tmp_path / f"rank{rank}-step{step}.pt")
            for g, e in zip(got, expected, strict=True):
                torch.testing.assert_close(g, e, rtol=1e-10, atol=1e-12)
        with torch.no_grad():
            for p in critic.parameters():
                p -= 0.1 * p.grad
    # The penalties matter here: without them the gradients would differ.
    critic = _critic()
    wgan_discriminator_loss(critic(x_real).squeeze(1), critic(x_fake).squeeze(1)).backward()
    plain = [p.grad for p in critic.parameters()]
    assert not all(torch.allclose(a, b) for a, b in zip(plain, expected, strict=True))


if __name__ == "__main__":
    from kexue.testing import worker_main

    worker_main(_worker)
