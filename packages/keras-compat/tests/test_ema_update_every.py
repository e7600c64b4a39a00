"""EMA ``update_every`` / ``update_after_step`` / ``decay_per`` (spec A4) and 0.1 checkpoints."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from kexue.keras_compat.ema import EMA, EMAWarmup


def _net() -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 2)).double()


def _params(net: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in net.named_parameters()}


def _run(net: nn.Module, ema: EMA, steps: int, seed: int = 5) -> list[dict[str, torch.Tensor]]:
    """SGD steps, ``ema.update()`` after each; the live parameters after each step."""
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    out = []
    for _ in range(steps):
        opt.zero_grad()
        net(torch.randn(6, 3, generator=g, dtype=torch.float64)).pow(2).mean().backward()
        opt.step()
        ema.update()
        out.append(_params(net))
    return out


def _close(ema: EMA, expected: dict[str, torch.Tensor], tol: float = 1e-12) -> None:
    for name, v in ema.module.named_parameters():
        torch.testing.assert_close(v, expected[name], rtol=tol, atol=tol, msg=name)


@pytest.mark.parametrize("warmup", [None, EMAWarmup(gamma=2.0, power=0.75)])
def test_decay_per_step_is_the_per_step_ema_of_a_piecewise_constant_theta(warmup) -> None:
    m, k, steps = 0.8, 3, 12
    net = _net()
    ema = EMA(net, m, warmup=warmup, update_every=k, decay_per="step")
    shadow = _params(net)
    snaps = _run(net, ema, steps)
    for j in range(1, steps + 1):  # per-step EMA of θ'_j = θ at the next update, k·ceil(j/k)
        held = snaps[k * math.ceil(j / k) - 1]
        mj = m if warmup is None else min(m, 1 - (1 + j / 2.0) ** -0.75)
        shadow = {n: mj * shadow[n] + (1 - mj) * held[n] for n in shadow}
    _close(ema, shadow)
    assert ema.num_updates == steps // k and ema.num_calls == steps


def test_decay_per_update_uses_one_factor_per_update_at_the_step_count() -> None:
    m, k, a, steps = 0.7, 2, 4, 11
    w = EMAWarmup(gamma=1.0, power=2 / 3)
    net = _net()
    ema = EMA(net, m, warmup=w, update_every=k, update_after_step=a)
    shadow = _params(net)
    snaps = _run(net, ema, steps)
    for c in range(1, steps + 1):
        theta = snaps[c - 1]
        if c <= a:
            if c == 1 or c % k == 0:  # copy phase: the first call and every k-th
                shadow = dict(theta)
        elif (c - a) % k == 0:  # averaging with the law at t = c - a (steps after the a-th)
            d = w.value(c - a, m)
            shadow = {n: d * shadow[n] + (1 - d) * theta[n] for n in shadow}
    _close(ema, shadow)
    assert ema.num_updates == (steps - a) // k


def test_update_after_step_copies_only_on_its_calls() -> None:
    net = _net()
    ema = EMA(net, 0.9, update_every=3, update_after_step=6)
    snaps = _run(net, ema, 2)
    _close(ema, snaps[0], 0)  # call 1 copied, call 2 did nothing
    snaps = _run(net, ema, 1, seed=6)
    _close(ema, snaps[0], 0)  # call 3 copied
    assert ema.num_updates == 0


def test_defaults_average_every_call_from_the_first() -> None:
    net = _net()
    ema = EMA(net, 0.9)
    shadow = _params(net)
    for theta in _run(net, ema, 4):
        shadow = {n: 0.9 * shadow[n] + 0.1 * theta[n] for n in shadow}
    _close(ema, shadow)


def test_matches_ema_pytorch_update_every_and_after_step(train_alongside) -> None:
    ema_pytorch = pytest.importorskip("ema_pytorch")
    torch.manual_seed(1)
    net = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 2))
    ours = EMA(net, 0.99, warmup=EMAWarmup(), update_every=2, update_after_step=4)
    ref = ema_pytorch.EMA(
        net, beta=0.99, update_after_step=4, update_every=2, include_online_model=False
    )
    ref.update()  # its first call only initialises (our construction); then call c ↔ our c − 1
    train_alongside(net, ours, ref.update, steps=13)
    for (name, a), (_, b) in zip(
        ours.module.named_parameters(), ref.ema_model.named_parameters(), strict=True
    ):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7, msg=name)


def test_state_round_trip_resumes_exactly_and_old_states_load() -> None:
    net = _net()
    ema = EMA(net, 0.9, warmup=EMAWarmup(), update_every=2, update_after_step=3)
    _run(net, ema, 6)
    state = ema.state_dict()
    assert (state["num_calls"], state["t"], state["last_call"]) == (6, 2, 5)
    other = EMA(net, 0.9, warmup=EMAWarmup(), update_every=2, update_after_step=3)
    other.load_state_dict(state)
    net2 = _net()
    net2.load_state_dict(net.state_dict())
    _run(net, ema, 5, seed=9)
    other._model = net2
    _run(net2, other, 5, seed=9)
    _close(other, dict(ema.module.named_parameters()), 0)
    # a 0.1 state: no num_calls / t / last_call -> it averaged at every call
    old = {
        k: v
        for k, v in EMA(net, 0.9).state_dict().items()
        if k not in ("num_calls", "t", "last_call")
    }
    old["num_updates"] = 7
    fresh = EMA(net, 0.9)
    fresh.load_state_dict(old)
    assert (fresh.num_calls, fresh._t, fresh._last_call) == (7, 7, 7)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"update_every": 0}, "update_every"),
        ({"update_after_step": -1}, "update_after_step"),
        ({"decay_per": "epoch"}, "decay_per"),
        ({"update_after_step": 2, "init": "zero"}, "update_after_step"),
    ],
)
def test_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        EMA(_net(), 0.9, **kwargs)


def test_cached_pairing_follows_replaced_tensors() -> None:
    """The (shadow, live) pairing is cached by tensor identity: a replaced parameter is used."""
    net = _net()
    ema = EMA(net, 0.5)
    ema.update()
    before = ema.module[0].weight.detach().clone()
    net[0].weight = nn.Parameter(torch.ones_like(net[0].weight))
    ema.update()
    torch.testing.assert_close(ema.module[0].weight, 0.5 * before + 0.5, rtol=0, atol=0)
    with pytest.raises(ValueError, match="structure"):
        ema.update(nn.Linear(3, 5))
