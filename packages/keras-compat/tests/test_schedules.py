"""Piecewise-linear multipliers and LRMultiplier composition (spec §2.5, §3.1)."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

from kexue.keras_compat.optim._chain import extend
from kexue.keras_compat.optim._groups import Rule, lr_scale_lambda, param_groups
from kexue.keras_compat.optim.schedules import piecewise_linear
from kexue.keras_compat.optim.transforms import LRMultiplier, WeightDecay


def _assert_float64_close(got: list[float], expected: list[float]) -> None:
    torch.testing.assert_close(
        torch.tensor(got, dtype=torch.float64),
        torch.tensor(expected, dtype=torch.float64),
        rtol=0,
        atol=1e-12,
    )


def test_spec_knots() -> None:
    f = piecewise_linear({1000: 1, 2000: 0.1})
    got = [f(t) for t in (0, 500, 1000, 1500, 2000, 3000)]
    _assert_float64_close(got, [0.0, 0.5, 1.0, 0.55, 0.1, 0.1])


def test_from_zero_false_and_default() -> None:
    f = piecewise_linear({1000: 1, 2000: 0.1}, from_zero=False)
    assert f(0) == 1.0 and f(500) == 1.0
    g = piecewise_linear({0: 1})
    assert [g(t) for t in (0, 7, 10**6)] == [1.0, 1.0, 1.0]
    # knot at 0 given explicitly: no extra (0, 0) knot
    h = piecewise_linear({0: 2.0, 10: 0.0})
    assert h(5) == 1.0


def test_lambdalr_with_piecewise() -> None:
    p = nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.2)
    sched = LambdaLR(opt, piecewise_linear({4: 1.0}))
    lrs = []
    for _ in range(6):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    _assert_float64_close(lrs, [0.0, 0.05, 0.1, 0.15, 0.2, 0.2])


def test_lr_multiplier_composes_with_lr_scale_and_external_scheduler() -> None:
    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1))
    groups = param_groups(model, [Rule(name=r"^0\.", lr_scale=0.5)], no_decay=False)
    opt = torch.optim.SGD(groups, lr=1.0)
    sched = LambdaLR(opt, lr_scale_lambda(opt, lambda s: 0.9**s))  # external schedule
    mult = LRMultiplier(piecewise_linear({2: 1.0}))
    seen: list[list[float]] = []

    class Spy(WeightDecay):  # records the lr visible to post-step transforms
        def post_step(self, optimizer, snapshot):
            seen.append([g["lr"] for g in optimizer.param_groups])

    extend(opt, mult, Spy(0.0))
    before = []
    for _ in range(4):
        model.zero_grad()
        model(torch.ones(1, 2)).sum().backward()
        before.append([g["lr"] for g in opt.param_groups])
        opt.step()
        # restored after the step: exactly the scheduler's value
        assert [g["lr"] for g in opt.param_groups] == before[-1]
        sched.step()
    m = piecewise_linear({2: 1.0})
    for step, (lrs, vis) in enumerate(zip(before, seen, strict=True)):
        for g, lr, v in zip(opt.param_groups, lrs, vis, strict=True):
            assert lr == pytest.approx(g["lr_scale"] * 0.9**step, rel=1e-12)
            assert v == pytest.approx(lr * m(step), rel=1e-12, abs=0)
    assert mult.step == 4
    assert mult.state_dict() == {"step": 4}


@pytest.mark.parametrize(
    ("schedule", "match"),
    [({}, "schedule"), ({-1: 1.0}, "schedule"), ({1: float("nan")}, "schedule"), ([1], "schedule")],
)
def test_bad_schedule(schedule, match) -> None:
    with pytest.raises(ValueError, match=match):
        piecewise_linear(schedule)


def test_lr_multiplier_bad_fn() -> None:
    with pytest.raises(ValueError, match="fn"):
        LRMultiplier(3.0)
