"""Warm-up + decay schedules (spec A6): values at known steps against the optax / timm formulas,
written out here, and torch's ``CosineAnnealingWarmRestarts``; use as LambdaLR and in the chain."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from kexue.keras_compat import (
    LRMultiplier,
    Rule,
    as_scheduler,
    cosine_restarts,
    extend,
    join_schedules,
    param_groups,
    warmup_cosine,
    warmup_linear,
    warmup_polynomial,
    with_warmup,
)

W, T, INIT, END = 10, 100, 0.1, 0.05
STEPS = (0, W - 1, W, W + 1, 55, T, T + 10)


def _warm(t: int) -> float:  # optax linear_schedule(init, peak=1, W) == timm warmup_lr_init ramp
    return INIT + (1 - INIT) * t / W


def optax_warmup_cosine(t: int, exponent: float) -> float:
    # warmup_cosine_decay_schedule(INIT, 1, W, T, END, exponent): decay_steps T includes warm-up
    if t < W:
        return _warm(t)
    s = min(t - W, T - W) / (T - W)
    return (1 - END) * (0.5 * (1 + math.cos(math.pi * s))) ** exponent + END


def timm_cosine(t: int, prefix: bool) -> float:
    # CosineLRScheduler(t_initial, lr_min=END, warmup_t=W, warmup_lr_init=INIT, warmup_prefix)
    t_initial = T - W if prefix else T
    if t < W:
        return _warm(t)
    t_cur = t - W if prefix else t
    if t_cur >= t_initial:  # cycle_limit=1: past the cycle, lr_min
        return END
    return END + 0.5 * (1 - END) * (1 + math.cos(math.pi * t_cur / t_initial))


@pytest.mark.parametrize("exponent", [1.0, 2.0])
def test_warmup_cosine_optax(exponent: float) -> None:
    fn = warmup_cosine(W, T, init=INIT, end=END, exponent=exponent)
    for t in STEPS:
        assert fn(t) == pytest.approx(optax_warmup_cosine(t, exponent), rel=1e-14, abs=1e-15), t
    assert fn(W) == 1.0 and fn(T) == pytest.approx(END)


@pytest.mark.parametrize("prefix", [False, True])
def test_warmup_cosine_timm(prefix: bool) -> None:
    fn = warmup_cosine(W, T, init=INIT, end=END, convention="timm_prefix" if prefix else "timm")
    for t in STEPS:
        assert fn(t) == pytest.approx(timm_cosine(t, prefix), rel=1e-14, abs=1e-15), t
    if not prefix:  # part of the decay elapsed during the warm-up
        assert fn(W) == pytest.approx(END + 0.5 * (1 - END) * (1 + math.cos(math.pi * W / T)))


def test_warmup_linear_and_polynomial() -> None:
    lin = warmup_linear(W, T, init=INIT, end=END)
    poly = warmup_polynomial(W, T, power=2.0, init=INIT, end=END)
    for t in STEPS:
        frac = min(max(t - W, 0), T - W) / (T - W)
        want_lin = _warm(t) if t < W else 1 + frac * (END - 1)  # optax linear_schedule(1, END)
        want_poly = _warm(t) if t < W else (1 - END) * (1 - frac) ** 2 + END  # polynomial_schedule
        assert lin(t) == pytest.approx(want_lin, rel=1e-14), t
        assert poly(t) == pytest.approx(want_poly, rel=1e-14), t


def test_cosine_restarts_match_torch_sgdr() -> None:
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    ref = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(opt, T_0=7, T_mult=2, eta_min=END)
    fn = cosine_restarts(7, mult=2.0, end=END)
    for t in range(120):
        assert fn(t) == pytest.approx(opt.param_groups[0]["lr"], rel=1e-12, abs=1e-14), t
        opt.step()
        ref.step()
    fixed = cosine_restarts(10, decay=0.5, end=0.0, cycles=2)
    assert [fixed(t) for t in (0, 5, 10, 15, 20, 25)] == pytest.approx([1.0, 0.5, 0.5, 0.25, 0, 0])


def test_join_and_with_warmup_compose() -> None:
    fn = join_schedules([lambda t: 1.0, lambda t: 0.5 - 0.01 * t, lambda t: 0.1], [5, 20])
    assert [fn(t) for t in (0, 4, 5, 6, 19, 20, 99)] == pytest.approx(
        [1.0, 1.0, 0.5, 0.49, 0.36, 0.1, 0.1]
    )
    warm = with_warmup(lambda t: 0.5, 4, init=0.0)
    assert [warm(t) for t in range(6)] == pytest.approx([0.0, 0.25, 0.5, 0.75, 0.5, 0.5])


def _run(use_chain: bool) -> list[torch.Tensor]:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1))
    groups = param_groups(net, [Rule(name=r"^0\.", lr_scale=0.5)])
    opt = torch.optim.SGD(groups, lr=0.1)
    fn = warmup_cosine(3, 12, init=0.1, end=0.01)
    if use_chain:
        for g in opt.param_groups:  # the chain multiplies the group's own lr
            g["lr"] *= g["lr_scale"]
        extend(opt, LRMultiplier(fn))
        sched = None
    else:
        sched = as_scheduler(opt, fn)
    g = torch.Generator().manual_seed(1)
    for _ in range(14):
        opt.zero_grad()
        net(torch.randn(5, 3, generator=g)).pow(2).mean().backward()
        opt.step()
        if sched is not None:
            sched.step()
    return [p.detach().clone() for p in net.parameters()]


def test_as_scheduler_and_lr_multiplier_give_the_same_training() -> None:
    for a, b in zip(_run(False), _run(True), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: warmup_cosine(10, 10), "warmup"),
        (lambda: warmup_cosine(1, 10, convention="keras"), "convention"),
        (lambda: cosine_restarts(0), "period"),
        (lambda: cosine_restarts(5, mult=0.5), "mult"),
        (lambda: join_schedules([lambda t: 1.0], [3]), "boundaries"),
        (lambda: warmup_linear(2, 10, end=float("nan")), "end"),
    ],
)
def test_bad_arguments(call, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()
