"""Rule-based parameter groups, lr_scale and the λ re-parametrisation (spec §2.1, §2.16, §3.1)."""

from __future__ import annotations

import math
import re

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

from kexue.keras_compat.optim._chain import extend
from kexue.keras_compat.optim._groups import (
    Rule,
    SetLearningRate,
    lr_scale_lambda,
    param_groups,
    scale_parametrization,
)
from kexue.keras_compat.optim.transforms import DeltaScale

LAM = 4.0


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(3, 8), nn.LayerNorm(8), nn.Tanh())
        self.head = nn.Linear(8, 2)
        self.frozen = nn.Linear(2, 2)
        self.frozen.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x))


def _mlp() -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 1)).double()


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(2)
    return torch.randn(16, 3, generator=g, dtype=torch.float64), torch.randn(
        16, 1, generator=g, dtype=torch.float64
    )


def _by_name(groups):
    return {n: g for g in groups for n in g["param_names"]}


def test_every_trainable_parameter_in_exactly_one_group() -> None:
    net = Net()
    groups = param_groups(
        net,
        [
            Rule(name=r"^encoder\.", lr_scale=0.1),
            {"module": nn.Linear, "lr_scale": 0.5},
            Rule(name=r"weight$", weight_decay=0.3),
        ],
        weight_decay=0.05,
    )
    names = [n for g in groups for n in g["param_names"]]
    params = [p for g in groups for p in g["params"]]
    trainable = {n for n, p in net.named_parameters() if p.requires_grad}
    assert sorted(names) == sorted(trainable)
    assert len({id(p) for p in params}) == len(params) == len(trainable)
    by = _by_name(groups)
    # multipliers compose multiplicatively, unmatched scale 1
    assert by["encoder.0.weight"]["lr_scale"] == pytest.approx(0.05, rel=1e-12)
    assert by["encoder.1.weight"]["lr_scale"] == pytest.approx(0.1, rel=1e-12)
    assert by["head.weight"]["lr_scale"] == 0.5
    # no-decay rule (biases, <=1-D, norm layers) wins; last rule setting weight_decay wins
    assert by["encoder.0.weight"]["weight_decay"] == 0.3
    assert by["head.weight"]["weight_decay"] == 0.3
    for n in ("encoder.0.bias", "encoder.1.weight", "encoder.1.bias", "head.bias"):
        assert by[n]["weight_decay"] == 0.0
    # groups = distinct settings
    assert len({(g["lr_scale"], g.get("weight_decay")) for g in groups}) == len(groups)
    torch.optim.AdamW(groups, lr=1e-3)  # accepted as is


def test_unmatched_scale_one_and_no_weight_decay_key() -> None:
    groups = param_groups(_mlp(), [], no_decay=False)
    assert len(groups) == 1 and groups[0]["lr_scale"] == 1.0 and "weight_decay" not in groups[0]


def test_strict_and_duplicates_raise() -> None:
    net = Net()
    with pytest.raises(ValueError, match="rules"):
        param_groups(net, [Rule(name=r"^decoder\.")], strict=True)
    with pytest.raises(ValueError, match="rules"):  # matches only a frozen parameter
        param_groups(net, [Rule(name=r"^frozen\.")], strict=True)
    param_groups(net, [Rule(name=r"^decoder\.")])  # not strict: fine
    pairs = [*net.named_parameters(), ("again", net.head.weight)]
    with pytest.raises(ValueError, match="given twice"):
        param_groups(pairs, [])


def test_tied_parameters_once() -> None:
    emb = nn.Embedding(5, 3)
    out = nn.Linear(3, 5, bias=False)
    out.weight = emb.weight
    model = nn.ModuleDict({"emb": emb, "out": out})
    groups = param_groups(model, [])
    assert sum(len(g["params"]) for g in groups) == 1


@pytest.mark.parametrize(
    ("rules", "kwargs", "match"),
    [
        ([Rule(name="x")], {"weight_decay": -1.0}, "weight_decay"),
        ([{"name": "("}], {}, "rules"),
        ([{"bogus": 1}], {}, "rules"),
        ([{"module": int}], {}, "rules"),
        ([{"name": "a", "lr_scale": float("inf")}], {}, "lr_scale"),
        ([{}], {}, "rules"),
        (Rule(name="x"), {}, "rules"),
    ],
)
def test_bad_rules(rules, kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        param_groups(Net(), rules, **kwargs)


def test_bad_model() -> None:
    with pytest.raises(ValueError, match="model"):
        param_groups(3, [])


def _train(model, opt, sched=None, steps=5):
    x, y = _data()
    for _ in range(steps):
        opt.zero_grad()
        ((model(x) - y) ** 2).mean().backward()
        opt.step()
        if sched is not None:
            sched.step()
    return [p.detach().clone() for p in model.parameters()]


def _effective(model: nn.Module) -> list[torch.Tensor]:
    """θ of every layer (the parametrised value when parametrised)."""
    out = []
    for layer in (model[0], model[2]):
        out += [layer.weight.detach().clone(), layer.bias.detach().clone()]
    return out


@pytest.mark.parametrize(("opt_name", "scale"), [("adam", LAM), ("sgd", LAM**2)])
def test_lr_scale_equals_reparametrisation(opt_name: str, scale: float) -> None:
    make = {
        "adam": lambda ps: torch.optim.Adam(ps, lr=1e-2, eps=1e-16),
        "sgd": lambda ps: torch.optim.SGD(ps, lr=1e-2),
    }[opt_name]
    # (a) lr_scale on layer 0 through the scheduler adapter
    a = _mlp()
    opt_a = make(param_groups(a, [Rule(name=r"^0\.", lr_scale=scale)], no_decay=False))
    sched = LambdaLR(opt_a, lr_scale_lambda(opt_a))
    _train(a, opt_a, sched)
    # (b) θ = λφ re-parametrisation of layer 0, plain optimizer
    b = _mlp()
    w0 = b[0].weight.detach().clone()
    scale_parametrization(b[0], LAM)
    torch.testing.assert_close(b[0].parametrizations.weight.original, w0 / LAM, rtol=0, atol=0)
    torch.testing.assert_close(b[0].weight, w0, rtol=1e-15, atol=0)
    _train(b, make(b.parameters()))
    for pa, pb in zip(_effective(a), _effective(b), strict=True):
        torch.testing.assert_close(pa, pb, rtol=0, atol=1e-6)
    # and without the scale the trajectories differ
    c = _mlp()
    _train(c, make(c.parameters()))
    assert not torch.allclose(_effective(c)[0], _effective(b)[0], atol=1e-6)


def test_set_learning_rate_shim() -> None:
    a, b = _mlp(), _mlp()
    opt_a = torch.optim.SGD(param_groups(a, [Rule(name=r"^0\.", lr_scale=9.0)]), lr=1e-2)
    _train(a, opt_a, LambdaLR(opt_a, lr_scale_lambda(opt_a)))
    wrapped = SetLearningRate(b[0], 9.0, is_ada=False)  # sqrt(9) = 3 for SGD
    assert wrapped.layer.parametrizations.weight[0].lam == 3.0
    b[0] = wrapped
    _train(b, torch.optim.SGD(b.parameters(), lr=1e-2))
    torch.testing.assert_close(a[0].weight, b[0].layer.weight, rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="lamb"):
        SetLearningRate(nn.Linear(2, 2), 0.0)
    with pytest.raises(ValueError, match="lam"):
        scale_parametrization(nn.Linear(2, 2), -1.0)
    with pytest.raises(ValueError, match="names"):
        scale_parametrization(nn.Linear(2, 2), 2.0, names="kernel")


def test_constant_ratio_between_groups_after_scheduler_steps() -> None:
    model = Net()
    groups = param_groups(model, [Rule(name=r"^encoder\.", lr_scale=0.1)], no_decay=False)
    opt = torch.optim.SGD(groups, lr=0.3)
    sched = LambdaLR(opt, lr_scale_lambda(opt, lambda s: math.cos(s / 20)))
    for _ in range(7):
        opt.step()
        sched.step()
    lr = {g["lr_scale"]: g["lr"] for g in opt.param_groups}
    assert lr[0.1] / lr[1.0] == pytest.approx(0.1, rel=1e-12)
    assert lr[1.0] == pytest.approx(0.3 * math.cos(7 / 20), rel=1e-12)
    with pytest.raises(ValueError, match="optimizer"):
        lr_scale_lambda(None)


@pytest.mark.parametrize("opt_name", ["sgd", "adam"])
def test_delta_scale_equals_lr_scale(opt_name: str) -> None:
    cls = torch.optim.SGD if opt_name == "sgd" else torch.optim.Adam
    a, b = _mlp(), _mlp()
    opt_a = cls(param_groups(a, [Rule(name=r"^2\.", lr_scale=0.3)], no_decay=False), lr=1e-2)
    _train(a, opt_a, LambdaLR(opt_a, lr_scale_lambda(opt_a)))
    opt_b = cls(b.named_parameters(), lr=1e-2)
    extend(opt_b, DeltaScale({r"^2\.": 0.3}))
    _train(b, opt_b)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(pa, pb, rtol=0, atol=1e-12)


_PATTERNS = [r"^encoder\.", r"weight$", r"bias$", r"^head\.", r"\.1\."]


@settings(max_examples=25, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(_PATTERNS),
            st.sampled_from([0.5, 2.0, 3.0]),
            st.one_of(st.none(), st.sampled_from([0.0, 0.1])),
        ),
        max_size=4,
    ),
    st.booleans(),
)
def test_partition_and_multiplicative_composition_property(rules, no_decay) -> None:
    net = Net()
    groups = param_groups(
        net, [Rule(name=n, lr_scale=s, weight_decay=w) for n, s, w in rules], no_decay=no_decay
    )
    by = _by_name(groups)
    trainable = [n for n, p in net.named_parameters() if p.requires_grad]
    assert sorted(by) == sorted(trainable)
    assert sum(len(g["params"]) for g in groups) == len(trainable)
    for name in trainable:
        want = math.prod(s for n, s, _ in rules if re.search(n, name))
        assert by[name]["lr_scale"] == pytest.approx(want, rel=1e-12)
