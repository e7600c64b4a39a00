"""Non-finite safety (issue 19 item 3, spec A5): NonFinite on the chain, GradClip, EMA guard."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from kexue.keras_compat import EMA, EMAWarmup, GradClip, Lookahead, NonFinite, extend
from kexue.testing import count_host_syncs


def _model() -> nn.Module:  # 6 parameter tensors, as in the issue
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 2))


def _backward(net: nn.Module, seed: int = 0, poison: float | None = None) -> None:
    g = torch.Generator().manual_seed(seed)
    net.zero_grad()
    net(torch.randn(5, 4, generator=g)).pow(2).mean().backward()
    if poison is not None:
        net[2].weight.grad[1, 3] = poison


def _state(net: nn.Module, opt: torch.optim.Optimizer) -> list[torch.Tensor]:
    out = [p.detach().clone() for p in net.parameters()]
    for st in opt.state.values():
        out += [v.clone() for v in st.values() if torch.is_tensor(v)]
    return out


def _bitwise(a: list[torch.Tensor], b: list[torch.Tensor]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x, y)


# ---------------------------------------------------------------- GradClip never spreads NaN
def _clipped_step(scope: str, poison: float) -> nn.Module:
    """One SGD step (lr 0.1) through ``GradClip(1.0, scope)`` with one poisoned gradient element."""
    net = _model()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    extend(opt, GradClip(max_norm=1.0, scope=scope))
    _backward(net, poison=poison)
    opt.step()
    return net


def test_global_clip_with_one_nan_element_keeps_the_other_tensors_finite() -> None:
    net = _clipped_step("global", float("nan"))
    finite = [bool(torch.isfinite(p).all()) for p in net.parameters()]
    assert finite == [True, True, False, True, True, True]  # only the poisoned tensor
    w = net[2].weight
    assert int(torch.isnan(w).sum()) == 1  # and only its poisoned element


def test_global_clip_coefficient_uses_the_finite_tensors_only() -> None:
    net = _model()
    _backward(net, poison=float("inf"))
    grads = [p.grad.clone() for p in net.parameters()]
    opt = torch.optim.SGD(net.parameters(), lr=0.0)
    clip = GradClip(max_norm=0.01, scope="global")
    extend(opt, clip)
    opt.step()
    finite = [g for i, g in enumerate(grads) if i != 2]
    total = torch.linalg.vector_norm(torch.stack([g.norm() for g in finite]))
    coef = 0.01 / (total + 1e-6)
    for i, p in enumerate(net.parameters()):
        if i != 2:
            torch.testing.assert_close(p.grad, grads[i] * coef)
    assert torch.equal(net[2].weight.grad, grads[2])  # non-finite tensor left as it was


def test_tensor_clip_with_an_inf_gradient_does_not_make_nan() -> None:
    net = _clipped_step("tensor", float("inf"))
    g = net[2].weight.grad
    assert not bool(torch.isnan(g).any())  # inf·0 would be NaN
    assert float(g[1, 3]) == float("inf")


# ---------------------------------------------------------------- NonFinite on the chain
def _adam_chain(net: nn.Module, *transforms) -> tuple[torch.optim.Optimizer, NonFinite]:
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    guard = NonFinite("skip")
    extend(opt, guard, GradClip(max_norm=1.0, scope="global"), *transforms)
    return opt, guard


def test_skip_leaves_parameters_moments_and_slow_weights_bitwise() -> None:
    net = _model()
    look = Lookahead(k=2, alpha=0.5)
    opt, guard = _adam_chain(net, look)
    _backward(net, seed=1)
    opt.step()  # lookahead step 1
    before = _state(net, opt) + [t.clone() for t in look.slow.values()]
    _backward(net, seed=2, poison=float("nan"))
    opt.step()  # lookahead step 2: a sync step, skipped
    _bitwise(_state(net, opt) + list(look.slow.values()), before)
    assert (int(guard.consecutive), int(guard.total), bool(guard.last_finite)) == (1, 1, False)
    _backward(net, seed=3)
    opt.step()
    assert all(bool(torch.isfinite(p).all()) for p in net.parameters())
    assert (int(guard.consecutive), int(guard.total), bool(guard.last_finite)) == (0, 1, True)


def test_skip_of_the_first_step_leaves_adam_at_its_zero_start() -> None:
    net = _model()
    ref = _model()
    opt, _ = _adam_chain(net)
    ref_opt, _ = _adam_chain(ref)
    _backward(net, seed=2, poison=float("nan"))
    opt.step()
    assert all(torch.equal(a, b) for a, b in zip(net.parameters(), ref.parameters()))
    for seed in (3, 4):  # the skipped step left no trace: same trajectory as never taking it
        _backward(net, seed=seed)
        opt.step()
        _backward(ref, seed=seed)
        ref_opt.step()
    _bitwise(_state(net, opt), _state(ref, ref_opt))


def test_skip_adds_no_host_sync(host_syncs) -> None:
    counts = {}
    for policy in (False, True):
        net = _model()
        opt = torch.optim.Adam(net.parameters(), lr=0.01)
        chain = (NonFinite("skip"),) if policy else ()
        extend(opt, *chain, GradClip(max_norm=1.0, scope="global"))
        _backward(net, seed=1)
        opt.step()  # creates the state
        _backward(net, seed=2, poison=float("nan"))
        host_syncs.reset()
        with count_host_syncs(dispatch=True) as dispatched:
            opt.step()
        counts[policy] = (host_syncs.count, len(dispatched))
    assert counts[True] == counts[False], counts  # torch's own Adam reads its step count


def test_max_consecutive_applies_the_update_as_optax() -> None:
    net = _model()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    guard = NonFinite("skip", max_consecutive=1)
    extend(opt, guard)
    before = [p.detach().clone() for p in net.parameters()]
    _backward(net, poison=float("nan"))
    opt.step()  # consecutive 1: skipped
    _bitwise([p.detach() for p in net.parameters()], before)
    _backward(net, poison=float("nan"))
    opt.step()  # consecutive 2 > 1: applied
    assert bool(torch.isnan(net[2].weight).any())
    assert int(guard.consecutive) == 2


def test_raise_policy_names_the_parameter_before_the_step() -> None:
    net = _model()
    opt = torch.optim.SGD(net.named_parameters(), lr=0.1)
    extend(opt, NonFinite("raise"))
    before = [p.detach().clone() for p in net.parameters()]
    _backward(net, poison=float("inf"))
    with pytest.raises(FloatingPointError, match=r"2\.weight"):
        opt.step()
    _bitwise([p.detach() for p in net.parameters()], before)


def test_counters_travel_in_the_optimizer_state_and_order_is_checked() -> None:
    net = _model()
    opt, _ = _adam_chain(net)
    _backward(net, poison=float("nan"))
    opt.step()
    state = opt.state_dict()
    opt2, guard2 = _adam_chain(_model())
    opt2.load_state_dict(state)
    assert (int(guard2.consecutive), int(guard2.total)) == (1, 1)
    with pytest.raises(ValueError, match="must come first"):
        extend(torch.optim.SGD(net.parameters(), lr=0.1), GradClip(1.0), NonFinite())
    with pytest.raises(ValueError, match="policy"):
        NonFinite("zero")  # type: ignore[arg-type]


# ---------------------------------------------------------------- EMA guard
def _poison(net: nn.Module) -> None:
    with torch.no_grad():
        net[2].weight[0, 0] = float("nan")


def test_nan_poisons_the_plain_ema_for_good() -> None:  # the report, kept as a contrast
    net = _model()
    ema = EMA(net, 0.9)
    clean = [p.detach().clone() for p in net.parameters()]
    _poison(net)
    ema.update()
    with torch.no_grad():
        for p, c in zip(net.parameters(), clean):
            p.copy_(c)
    for _ in range(50):
        ema.update()
    assert bool(torch.isnan(ema.module[2].weight).any())


@pytest.mark.parametrize("kwargs", [{}, {"warmup": EMAWarmup()}, {"sigma_rel": 0.1}])
def test_skip_nonfinite_leaves_the_average_bitwise_without_a_sync(kwargs) -> None:
    net = _model()
    ema = EMA(net, 0.9, skip_nonfinite=True, **kwargs)
    ref = EMA(net, 0.9, **kwargs)
    ema.update()
    ref.update()
    before = [t.clone() for t in ema.module.state_dict().values()]
    clean = [p.detach().clone() for p in net.parameters()]
    _poison(net)
    with count_host_syncs(dispatch=True) as syncs:
        ema.update()
    assert syncs.count == 0, syncs
    _bitwise(list(ema.module.state_dict().values()), before)
    state = ema.state_dict()
    assert (int(state["nonfinite_consecutive"]), int(state["nonfinite_total"])) == (1, 1)
    assert (float(state["t"]), int(state["last_finite"])) == (1.0, 1)  # t did not advance
    with torch.no_grad():
        for p, c in zip(net.parameters(), clean):
            p.copy_(c)
    ema.update()
    ref.update()  # the skipped update did not count: same as never seeing it
    for a, b in zip(ema.module.parameters(), ref.module.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-15, atol=0)


def test_max_consecutive_nonfinite_raises() -> None:
    net = _model()
    ema = EMA(net, 0.9, skip_nonfinite=True, max_consecutive_nonfinite=2)
    _poison(net)
    ema.update()
    ema.update()
    with pytest.raises(FloatingPointError, match="3 consecutive"):
        ema.update()


def test_nonfinite_checkpoint_is_refused() -> None:
    net = _model()
    ema = EMA(net, 0.9)
    _poison(net)
    ema.update()
    state = ema.state_dict()
    with pytest.raises(ValueError, match=r"non-finite.*2\.weight"):
        EMA(_model(), 0.9).load_state_dict(state)
    with pytest.raises(ValueError, match="non-finite"):
        EMA(_model(), 0.9).load_state_dict(state["module"])  # a bare state dict too
    EMA(_model(), 0.9).load_state_dict(state, allow_nonfinite=True)


@pytest.mark.gpu
def test_no_cuda_sync_in_skip_paths() -> None:
    """Spec A7: under ``set_sync_debug_mode("error")`` neither skip path synchronises."""
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    net = _model().cuda()
    ema = EMA(net, 0.9, skip_nonfinite=True, warmup=EMAWarmup())
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    extend(opt, NonFinite("skip"), GradClip(max_norm=1.0, scope="global"))
    x = torch.randn(5, 4, device="cuda")
    before = [p.detach().clone() for p in net.parameters()]
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        net.zero_grad()
        net(x).pow(2).mean().backward()
        net[2].weight.grad[1, 3] = float("nan")
        opt.step()
        _poison(net)
        ema.update()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    after = [p.detach() for p in net.parameters()]
    assert all(torch.equal(a, b) for i, (a, b) in enumerate(zip(after, before)) if i != 2)
    assert int(ema.state_dict()["nonfinite_total"]) == 1
