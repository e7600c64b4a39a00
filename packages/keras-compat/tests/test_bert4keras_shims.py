"""bert4keras-compatible ``extend_with_*`` shims (spec §2.17, §3.1 "Shims")."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from kexue.keras_compat.optim import bert4keras as b4k
from kexue.keras_compat.optim._chain import extend
from kexue.keras_compat.optim.schedules import piecewise_linear
from kexue.keras_compat.optim.transforms import (
    DeltaScale,
    LayerAdaptation,
    LazyRows,
    Lookahead,
    LRMultiplier,
    WeightDecay,
)


def _model() -> nn.Module:
    torch.manual_seed(1)
    return nn.ModuleDict(
        {"emb": nn.Embedding(6, 4), "dense": nn.Linear(4, 3), "out": nn.Linear(3, 1)}
    ).double()


def _loss(m: nn.Module, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, 6, (2, 3), generator=g)
    return m["out"](torch.tanh(m["dense"](m["emb"](idx)))).pow(2).mean()


def _train(m: nn.Module, opt: torch.optim.Optimizer, steps: int = 6) -> None:
    for i in range(steps):
        opt.zero_grad()
        _loss(m, i).backward()
        opt.step()


def _assert_same(a: nn.Module, b: nn.Module) -> None:
    for (n, p), q in zip(a.named_parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q), n


CASES = [
    (
        b4k.extend_with_weight_decay,
        {"weight_decay_rate": 0.1, "exclude_from_weight_decay": ["bias"]},
        lambda: [WeightDecay(0.1, exclude=["bias"])],
    ),
    (b4k.extend_with_weight_decay, {}, lambda: [WeightDecay(0.01)]),
    (
        b4k.extend_with_layer_adaptation,
        {"exclude_from_layer_adaptation": ["emb"]},
        lambda: [LayerAdaptation(exclude=["emb"])],
    ),
    (
        b4k.extend_with_piecewise_linear_lr,
        {"lr_schedule": {"2": 1.0, 4: 0.2}},
        lambda: [LRMultiplier(piecewise_linear({2: 1.0, 4: 0.2}))],
    ),
    (b4k.extend_with_lookahead, {}, lambda: [Lookahead(5, 0.5)]),
    (
        b4k.extend_with_lookahead,
        {"steps_per_slow_update": 2, "slow_step_size": 0.3},
        lambda: [Lookahead(2, 0.3)],
    ),
    (
        b4k.extend_with_lazy_optimization,
        {"include_in_lazy_optimization": ["emb"]},
        lambda: [LazyRows(include=["emb"])],
    ),
    (
        b4k.extend_with_parameter_wise_lr,
        {"paramwise_lr_schedule": {"dense": 0.5, "weight": 0.2}},
        lambda: [DeltaScale({"dense": 0.5, "weight": 0.2}, match="substring")],
    ),
]


@pytest.mark.parametrize(("shim", "kwargs", "core"), CASES)
def test_shim_equals_core_transform_bitwise(shim, kwargs, core) -> None:
    a, b = _model(), _model()
    cls = shim(torch.optim.Adam, name="MyAdam")
    assert cls.__name__ == "MyAdam" and issubclass(cls, torch.optim.Adam)
    opt_a = cls(a.named_parameters(), lr=0.05, **kwargs)
    for k, v in kwargs.items():  # kwargs kept as attributes (lr_schedule keys made int)
        assert getattr(opt_a, k) == (v if k != "lr_schedule" else {2: 1.0, 4: 0.2})
    _train(a, opt_a)
    opt_b = torch.optim.Adam(b.named_parameters(), lr=0.05)
    extend(opt_b, *core())
    _train(b, opt_b)
    _assert_same(a, b)


def test_defaults_are_bert4keras_defaults() -> None:
    p = [nn.Parameter(torch.zeros(2))]
    o = b4k.extend_with_weight_decay(torch.optim.SGD)(p, lr=0.1)
    assert (o.weight_decay_rate, o.exclude_from_weight_decay) == (0.01, [])
    o = b4k.extend_with_lookahead(torch.optim.SGD)(p, lr=0.1)
    assert (o.steps_per_slow_update, o.slow_step_size) == (5, 0.5)
    assert b4k.extend_with_piecewise_linear_lr(torch.optim.SGD)(p, lr=0.1).lr_schedule == {0: 1}
    assert (
        b4k.extend_with_lazy_optimization(torch.optim.SGD)(p, lr=0.1).include_in_lazy_optimization
        == []
    )
    assert b4k.extend_with_parameter_wise_lr(torch.optim.SGD)(p, lr=0.1).paramwise_lr_schedule == {}
    assert (
        b4k.extend_with_layer_adaptation(torch.optim.SGD)(p, lr=0.1).exclude_from_layer_adaptation
        == []
    )
    assert (
        b4k.extend_with_exponential_moving_average(torch.optim.SGD)(p, lr=0.1).ema_momentum == 0.999
    )
    # defaults are not shared between instances
    o1 = b4k.extend_with_weight_decay(torch.optim.SGD)(p, lr=0.1)
    o1.exclude_from_weight_decay.append("x")
    assert b4k.extend_with_weight_decay(torch.optim.SGD)(p, lr=0.1).exclude_from_weight_decay == []


def test_weight_decay_shim_on_adam_equals_adamw() -> None:
    a, b = _model(), _model()
    _train(
        a,
        b4k.extend_with_weight_decay(torch.optim.Adam)(
            a.parameters(), lr=0.05, weight_decay_rate=0.1
        ),
    )
    _train(b, torch.optim.AdamW(b.parameters(), lr=0.05, weight_decay=0.1))
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-14)


def test_stacking_order_innermost_first() -> None:
    """LAMB-style: extend_with_layer_adaptation(extend_with_weight_decay(SGD)) decays first."""
    lamb = b4k.extend_with_layer_adaptation(b4k.extend_with_weight_decay(torch.optim.SGD))
    reverse = b4k.extend_with_weight_decay(b4k.extend_with_layer_adaptation(torch.optim.SGD))
    a, b, c, d = _model(), _model(), _model(), _model()
    _train(a, lamb(a.parameters(), lr=0.05, weight_decay_rate=0.3))
    opt_b = torch.optim.SGD(b.parameters(), lr=0.05)
    extend(opt_b, WeightDecay(0.3), LayerAdaptation())
    _train(b, opt_b)
    _assert_same(a, b)
    _train(c, reverse(c.parameters(), lr=0.05, weight_decay_rate=0.3))
    opt_d = torch.optim.SGD(d.parameters(), lr=0.05)
    extend(opt_d, LayerAdaptation(), WeightDecay(0.3))
    _train(d, opt_d)
    _assert_same(c, d)
    assert not torch.allclose(a["dense"].weight, c["dense"].weight)


def test_lookahead_always_last_whatever_the_nesting() -> None:
    # bert4keras's lookahead/EMA wrap the inner updates, so the shims insert Δ-rewrites before them
    cls = b4k.extend_with_weight_decay(
        b4k.extend_with_exponential_moving_average(b4k.extend_with_lookahead(torch.optim.SGD))
    )
    opt = cls(_model().parameters(), lr=0.1, steps_per_slow_update=2)
    chain = opt._kexue_bert4keras_chain
    assert [type(t).__name__ for t in chain.transforms] == [
        "WeightDecay",
        "Lookahead",
        "_EMATransform",
    ]
    assert chain.names == ["weight_decay", "lookahead", "ema"]
    assert set(opt.state_dict()["kexue_chain"]) == {"weight_decay", "lookahead", "ema"}


def test_lookahead_shim_no_zero_start_shrink() -> None:
    p = nn.Parameter(torch.tensor([2.0], dtype=torch.float64))
    opt = b4k.extend_with_lookahead(torch.optim.SGD)([p], lr=0.1, steps_per_slow_update=1)
    p.grad = torch.zeros_like(p)
    opt.step()
    assert p.item() == 2.0  # bert4keras's zero start would give 1.0


def test_ema_shim_zero_init_bias_corrected_closed_form_and_restore() -> None:
    m = 0.9
    p = nn.Parameter(torch.tensor([1.0, -2.0], dtype=torch.float64))
    opt = b4k.extend_with_exponential_moving_average(torch.optim.SGD)([p], lr=0.1, ema_momentum=m)
    values = []
    for t in range(5):
        p.grad = torch.full_like(p, float(t + 1))
        opt.step()
        values.append(p.detach().clone())
    shadow = sum((1 - m) * m ** (len(values) - 1 - i) * v for i, v in enumerate(values))
    live = p.detach().clone()
    opt.apply_ema_weights()  # bias_correction=True by default
    torch.testing.assert_close(p.detach(), shadow / (1 - m**5), rtol=1e-12, atol=0)
    opt.reset_old_weights()
    assert torch.equal(p.detach(), live)
    opt.apply_ema_weights(bias_correction=False)
    torch.testing.assert_close(p.detach(), shadow, rtol=1e-12, atol=0)
    opt.reset_old_weights()
    assert torch.equal(p.detach(), live)


def test_gradient_accumulation_points_to_accumulate() -> None:
    with pytest.raises(NotImplementedError, match="accumulate"):
        b4k.extend_with_gradient_accumulation(torch.optim.Adam)
    with pytest.raises(NotImplementedError, match="accumulate"):
        b4k.extend_with_gradient_accumulation_v2(torch.optim.Adam)


def test_v2_aliases() -> None:
    for name in b4k.__all__:
        if name.endswith("_v2"):
            assert getattr(b4k, name) is getattr(b4k, name[:-3])


@pytest.mark.parametrize(
    "shim",
    [b4k.extend_with_weight_decay, b4k.extend_with_lookahead, b4k.extend_with_lazy_optimization],
)
def test_bad_input(shim) -> None:
    with pytest.raises(ValueError, match="base_optimizer"):
        shim(torch.optim.Adam(nn.Linear(1, 1).parameters()))
    with pytest.raises(ValueError, match="name"):
        shim(torch.optim.Adam, name="not valid")


def test_bad_kwargs_and_missing_names() -> None:
    with pytest.raises(ValueError, match="lr_schedule"):
        b4k.extend_with_piecewise_linear_lr(torch.optim.SGD)(
            [nn.Parameter(torch.zeros(1))], lr=0.1, lr_schedule={"a": 1}
        )
    with pytest.raises(ValueError, match="names"):  # patterns need named_parameters()
        b4k.extend_with_weight_decay(torch.optim.SGD)(
            _model().parameters(), lr=0.1, exclude_from_weight_decay=["bias"]
        )
