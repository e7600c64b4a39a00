"""Tests for kexue.flows.nets: zero-init properties, padding modes, context handling."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from kexue.flows.nets import MLP, Conv2dZeros, ConvNet, LinearZeros, ResNet, make_activation


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_conv2dzeros_zero_at_init_and_logscale() -> None:
    layer = Conv2dZeros(3, 4)
    x = torch.randn(2, 3, 5, 5, generator=_gen(1))
    out = layer(x)
    assert out.shape == (2, 4, 5, 5) and torch.equal(out, torch.zeros_like(out))
    with torch.no_grad():
        layer.bias.copy_(torch.tensor([1.0, 2.0, 3.0, 4.0]))
        layer.logs.fill_(0.1)
    expected = torch.tensor([1.0, 2.0, 3.0, 4.0]).view(1, 4, 1, 1) * torch.exp(torch.tensor(0.3))
    torch.testing.assert_close(layer(x), expected.expand(2, 4, 5, 5), atol=1e-6, rtol=0)
    # gradients reach the zero-initialised weight
    layer(x).sum().backward()
    assert float(layer.conv.conv.weight.grad.abs().max()) > 0  # type: ignore[union-attr]


def test_conv2dzeros_padding_modes() -> None:
    x = torch.randn(1, 2, 4, 4, generator=_gen(2))
    edge = Conv2dZeros(2, 1, padding="edge_channel")
    assert edge.conv.conv.in_channels == 3
    with torch.no_grad():
        edge.conv.conv.weight.zero_()
        edge.conv.conv.weight[0, 2, 1, 1] = 1.0  # read the border-marker channel at the centre
    assert torch.equal(edge(x), torch.zeros(1, 1, 4, 4))  # centre is never padding
    with torch.no_grad():
        edge.conv.conv.weight.zero_()
        edge.conv.conv.weight[0, 2, 0, 0] = 1.0  # top-left neighbour: padding on row/col 0
    out = edge(x)[0, 0]
    assert out[0].eq(1).all() and out[:, 0].eq(1).all() and out[1:, 1:].eq(0).all()
    one = Conv2dZeros(2, 1, padding="pad_one")
    with torch.no_grad():
        one.conv.conv.weight.zero_()
        one.conv.conv.weight[0, 0, 0, 0] = 1.0
    out = one(x)[0, 0]
    assert out[0].eq(1).all() and torch.equal(out[1:, 1:], x[0, 0, :-1, :-1])
    with pytest.raises(ValueError, match="padding"):
        Conv2dZeros(2, 1, padding="reflect")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="kernel_size"):
        Conv2dZeros(2, 1, 2)


def test_linear_zeros() -> None:
    layer = LinearZeros(3, 2)
    x = torch.randn(4, 3, generator=_gen(3))
    assert torch.equal(layer(x), torch.zeros(4, 2))


def test_mlp_shapes_context_and_zero_init() -> None:
    net = MLP(4, 6, hidden=8, depth=2, context_features=3, zero_init=True)
    x = torch.randn(5, 4, generator=_gen(4))
    ctx = torch.randn(5, 3, generator=_gen(5))
    assert torch.equal(net(x, ctx), torch.zeros(5, 6))
    lin = [m for m in net.modules() if isinstance(m, nn.Linear)]
    assert len(lin) == 3 and lin[0].in_features == 7
    relu_out = MLP(4, 6, hidden=8, depth=1, out_activation="relu")(x)
    assert bool((relu_out >= 0).all())
    with pytest.raises(ValueError, match="context"):
        net(x)
    with pytest.raises(ValueError, match="context"):
        net(x, torch.zeros(4, 3))
    with pytest.raises(ValueError, match="context"):
        MLP(4, 6, hidden=8, depth=1)(x, ctx)
    with pytest.raises(ValueError, match="x"):
        net(torch.zeros(5, 5), ctx)
    with pytest.raises(ValueError, match="depth"):
        MLP(4, 6, depth=0)
    with pytest.raises(ValueError, match="activation"):
        make_activation("swishy")
    assert isinstance(make_activation(nn.Tanh), nn.Tanh)


@pytest.mark.parametrize("actnorm", [True, False])
def test_convnet_zero_output_at_init(actnorm: bool) -> None:
    net = ConvNet(2, 4, hidden=8, actnorm=actnorm, context_channels=1, padding="edge_channel")
    x = torch.randn(3, 2, 4, 4, generator=_gen(6))
    ctx = torch.randn(3, 1, 4, 4, generator=_gen(7))
    assert torch.equal(net(x, ctx), torch.zeros(3, 4, 4, 4))
    with pytest.raises(ValueError, match="context"):
        net(x, torch.zeros(3, 1, 2, 2))
    with pytest.raises(ValueError, match="x"):
        net(torch.zeros(3, 3, 4, 4), ctx)


def test_convnet_actnorm_data_init() -> None:
    net = ConvNet(2, 4, hidden=8, actnorm=True)
    x = torch.randn(16, 2, 4, 4, generator=_gen(8)) * 3 + 1
    net(x)
    hidden = net.net[1](net.net[0](x))  # first conv + its ActNorm, after initialisation
    torch.testing.assert_close(hidden.mean((0, 2, 3)), torch.zeros(8), atol=1e-5, rtol=0)
    torch.testing.assert_close(
        hidden.std((0, 2, 3), unbiased=False), torch.ones(8), atol=1e-4, rtol=0
    )


def test_resnet_zero_output_and_grads() -> None:
    net = ResNet(2, 4, hidden=8, blocks=2, context_channels=2)
    x = torch.randn(2, 2, 4, 4, generator=_gen(9))
    ctx = torch.randn(2, 2, 4, 4, generator=_gen(10))
    out = net(x, ctx)
    assert torch.equal(out, torch.zeros(2, 4, 4, 4))
    (out * torch.randn(out.shape, generator=_gen(11))).sum().backward()
    last = net.net[-1]
    assert float(last.conv.conv.weight.grad.abs().max()) > 0
    with pytest.raises(ValueError, match="kernel_size"):
        ResNet(2, 4, kernel_size=4)
