"""Gradient accumulation helper (spec §2.9, §3.1)."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.optim.lr_scheduler import StepLR

from kexue.keras_compat.optim._chain import extend
from kexue.keras_compat.optim.accumulate import accumulate
from kexue.keras_compat.optim.transforms import GradClip, GradTransform

K, B = 4, 3


def _mlp() -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(nn.Linear(3, 6), nn.Tanh(), nn.Linear(6, 1)).double()


def _batches(n: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(7)
    return [
        (
            torch.randn(B, 3, generator=g, dtype=torch.float64),
            torch.randn(B, 1, generator=g, dtype=torch.float64),
        )
        for _ in range(n)
    ]


def _loss(model, x, y):
    return ((model(x) - y) ** 2).mean()


def test_k_micro_batches_equal_one_big_batch_and_step_counts() -> None:
    batches = _batches(2 * K)
    a = _mlp()
    opt_a = torch.optim.Adam(a.parameters(), lr=1e-2)
    sched = StepLR(opt_a, step_size=1, gamma=0.5)
    calls = []
    opt_a.register_step_post_hook(lambda *args: calls.append(1))
    acc = accumulate(opt_a, K, model=a, scheduler=sched)
    stepped = []
    for x, y in batches:
        last = acc.sync_gradients
        with acc.micro_step():
            acc.backward(_loss(a, x, y))
        stepped.append(last)
    assert stepped == [False, False, False, True] * 2
    assert acc.micro_steps == 2 * K and acc.optimizer_steps == len(calls) == 2
    assert sched.last_epoch == 2
    assert all(p.grad is None for p in a.parameters())  # zeroed after each real step

    b = _mlp()
    opt_b = torch.optim.Adam(b.parameters(), lr=1e-2)
    sched_b = StepLR(opt_b, step_size=1, gamma=0.5)
    for i in range(2):
        chunk = batches[i * K : (i + 1) * K]
        x = torch.cat([c[0] for c in chunk])
        y = torch.cat([c[1] for c in chunk])
        opt_b.zero_grad()
        _loss(b, x, y).backward()
        opt_b.step()
        sched_b.step()
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(pa, pb, rtol=0, atol=1e-6)
    assert opt_a.param_groups[0]["lr"] == opt_b.param_groups[0]["lr"]


def test_gradient_transform_runs_once_per_optimizer_step_on_accumulated_grad() -> None:
    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    seen: list[torch.Tensor] = []

    def spy(g: torch.Tensor) -> None:
        seen.append(g.clone())

    clip = GradClip(1e-3)
    extend(opt, GradTransform(spy), clip)
    n_params = len(list(model.parameters()))
    acc = accumulate(opt, K)
    batches = _batches(3 * K)
    for x, y in batches[:K]:
        with acc.micro_step():
            acc.backward(_loss(model, x, y))
    assert len(seen) == n_params  # once per parameter for one optimizer step
    # it saw the accumulated (mean over the K micro-batches) gradient
    ref = _mlp()
    x = torch.cat([c[0] for c in batches[:K]])
    y = torch.cat([c[1] for c in batches[:K]])
    _loss(ref, x, y).backward()
    for g, p in zip(seen, ref.parameters(), strict=True):
        torch.testing.assert_close(g, p.grad, rtol=1e-12, atol=1e-15)
    for x, y in batches[K:]:
        with acc.micro_step():
            acc.backward(_loss(model, x, y))
    assert len(seen) == 3 * n_params
    assert len(clip.last_norms) == n_params


def test_flush_partial_cycle_and_exception_does_not_step() -> None:
    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    acc = accumulate(opt, K)
    (x, y), *_ = _batches(1)
    with acc.micro_step():
        acc.backward(_loss(model, x, y))
    assert acc.flush() is True and acc.optimizer_steps == 1 and acc.micro_steps == K
    assert acc.flush() is False
    with pytest.raises(RuntimeError, match="boom"), acc.micro_step():
        raise RuntimeError("boom")
    assert acc.micro_steps == K
    state = acc.state_dict()
    acc2 = accumulate(opt, K)
    acc2.load_state_dict(state)
    assert acc2.state_dict() == state


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        ((None, 2), {}, "optimizer"),
        (("opt", 0), {}, "steps"),
        (("opt", 2), {"model": 3}, "model"),
    ],
)
def test_bad_input(args, kwargs, match) -> None:
    opt = torch.optim.SGD(_mlp().parameters(), lr=0.1)
    args = tuple(opt if a == "opt" else a for a in args)
    with pytest.raises(ValueError, match=match):
        accumulate(*args, **kwargs)


def test_backward_rejects_non_scalar() -> None:
    acc = accumulate(torch.optim.SGD(_mlp().parameters(), lr=0.1), 2)
    with pytest.raises(ValueError, match="loss"):
        acc.backward(torch.ones(3))
