"""capture / Tap / record and AuxLosses / add_loss (spec §2.11, §2.12, §3.1)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from kexue.keras_compat.capture import AuxLosses, Tap, add_loss, capture, record


class _Block(nn.Module):
    """Linear → softmax "attention" published with record(), plus an aux loss."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(4, 4)
        self.tap = Tap("pre_act")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.proj(x)
        attn = record("attn", torch.softmax(h, dim=-1))
        add_loss(h.pow(2).mean(), weight=0.5, name="l2")
        return torch.tanh(self.tap(h * attn))


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(_Block(), nn.Linear(4, 2)).double()


def _x() -> torch.Tensor:
    return torch.randn(5, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)


def _hooks_empty(net: nn.Module) -> bool:
    return all(not m._forward_hooks for m in net.modules())


def test_captured_values_equal_hand_recomputation() -> None:
    net, x = _net(), _x()
    with capture(net, ["0.proj", "0", "pre_act"], records=["attn"]) as out:
        y = net(x)
    block = net[0]
    h = x @ block.proj.weight.T + block.proj.bias
    attn = torch.softmax(h, dim=-1)
    torch.testing.assert_close(out["0.proj"], h, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(out["attn"], attn, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(out["pre_act"], h * attn, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(out["0"], torch.tanh(h * attn), rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(y, net[1](torch.tanh(h * attn)), rtol=1e-12, atol=1e-14)
    assert not out["0.proj"].requires_grad  # detach=True by default
    assert _hooks_empty(net)


def test_outputs_and_gradients_bitwise_identical() -> None:
    net, x = _net(), _x()
    y0 = net(x)
    y0.square().sum().backward()
    g0 = [p.grad.clone() for p in net.parameters()]
    net.zero_grad()
    with capture(net, ["0.proj", "1", "pre_act"], records=["attn"]) as out:
        y1 = net(x)
        y1.square().sum().backward()
    g1 = [p.grad.clone() for p in net.parameters()]
    assert torch.equal(y0, y1)
    assert all(torch.equal(a, b) for a, b in zip(g0, g1, strict=True))
    assert set(out) == {"0.proj", "1", "pre_act", "attn"}


def test_detach_false_keeps_graph_and_keep_all() -> None:
    net, x = _net(), _x()
    with capture(net, ["0.proj"], detach=False, keep="all") as out:
        net(x)
        net(2 * x)
    assert len(out["0.proj"]) == 2
    assert out["0.proj"][0].requires_grad
    out["0.proj"][1].sum().backward()
    torch.testing.assert_close(
        net[0].proj.weight.grad, (2 * x).sum(0).expand(4, 4), rtol=1e-12, atol=1e-12
    )


def test_hooks_removed_on_exception_and_record_inactive_after() -> None:
    net, x = _net(), _x()
    with pytest.raises(RuntimeError, match="boom"), capture(net, ["0.proj"], records=["attn"]):
        net(x)
        raise RuntimeError("boom")
    assert _hooks_empty(net)
    t = torch.ones(2)
    assert record("attn", t) is t  # no active capture: identity no-op


def test_works_under_no_grad_and_wrappers() -> None:
    net, x = _net(), _x()
    with torch.no_grad(), capture(nn.DataParallel(net), ["1"]) as out:
        y = net(x)
    assert torch.equal(out["1"], y)


def test_record_only_reaches_captures_that_asked() -> None:
    net, x = _net(), _x()
    with capture(net, ["0.proj"]) as outer:
        with capture(net, [], records=["attn"]) as inner:
            net(x)
        assert "attn" in inner and "attn" not in outer
        assert "0.proj" in outer and "0.proj" not in inner


def test_unknown_names_raise() -> None:
    net = _net()
    with pytest.raises(ValueError, match=r"names: '0.prj'.*did you mean"):
        with capture(net, ["0.prj"]):
            pass
    with pytest.raises(ValueError, match="records="):
        with capture(net, ["attn"]):
            pass
    with pytest.raises(ValueError, match="keep"):
        with capture(net, ["1"], keep="first"):  # type: ignore[arg-type]
            pass
    with pytest.raises(ValueError, match="name"):
        Tap("")
    assert _hooks_empty(net)


# ---------------------------------------------------------------- aux losses
def test_aux_sum_equals_manual_sum_and_gradients_flow() -> None:
    net, x = _net(), _x()
    with AuxLosses() as aux:
        y = net(x)
        add_loss(y.abs().mean(), weight=2.0, name="l1")
    h = net[0].proj(x)
    manual = 0.5 * h.pow(2).mean() + 2.0 * y.abs().mean()
    torch.testing.assert_close(aux.total(), manual, rtol=1e-12, atol=1e-14)
    assert len(aux) == 2 and set(aux.by_name()) == {"l2", "l1"}
    g = torch.autograd.grad(manual, net[0].proj.weight, retain_graph=True)[0]
    aux.total().backward()
    assert net[0].proj.weight.grad is not None and net[0].proj.weight.grad.abs().sum() > 0
    torch.testing.assert_close(net[0].proj.weight.grad, g, rtol=1e-12, atol=1e-14)


def test_aux_inactive_after_exit_cleared_on_reentry_and_nested_isolated() -> None:
    aux = AuxLosses()
    with aux:
        add_loss(torch.tensor(1.0))
    add_loss(torch.tensor(5.0))  # outside: silent no-op
    assert len(aux) == 1 and aux.total().item() == 1.0
    with aux:
        pass
    assert len(aux) == 0 and aux.total().item() == 0.0
    with AuxLosses() as outer:
        add_loss(torch.tensor(1.0))
        with AuxLosses() as inner:
            add_loss(torch.tensor(10.0), weight=3.0)
        add_loss(torch.tensor(2.0))
    assert outer.total().item() == 3.0
    assert inner.total().item() == 30.0


def test_add_loss_strict_and_bad_input() -> None:
    with pytest.raises(RuntimeError, match="outside an AuxLosses"):
        add_loss(torch.tensor(1.0), strict=True)
    with AuxLosses(), pytest.raises(ValueError, match="loss must be a scalar"):
        add_loss(torch.ones(3))


def test_works_with_torch_compile() -> None:
    net = nn.Sequential(nn.Linear(4, 4), Tap("h"), nn.Tanh(), nn.Linear(4, 2))
    x = torch.randn(3, 4, generator=torch.Generator().manual_seed(2))
    compiled = torch.compile(net, backend="eager")  # graph breaks allowed; results equal
    with capture(compiled, ["0", "h"]) as out:
        y = compiled(x)
    h = net[0](x)
    torch.testing.assert_close(y, net(x), rtol=0, atol=0)
    torch.testing.assert_close(out["0"], h, rtol=0, atol=0)
    torch.testing.assert_close(out["h"], h, rtol=0, atol=0)
    assert _hooks_empty(net)
