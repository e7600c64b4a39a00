"""SplineCoupling (spec flows-splines §5 rows 1, 2, 6; §3.1): every split on vectors and images,
exact Jacobians, identity at init, feature-major layout, context gradients and bad shapes."""

from __future__ import annotations

import pytest
import torch
from _flowcheck import TinyNet, check_invertible, check_logdet_vs_jacobian, gen
from torch import nn

from kexue.flows.layers.coupling import checkerboard_mask
from kexue.flows.layers.spline_coupling import SplineCoupling
from kexue.flows.nets import MLP, ConvNet
from kexue.flows.splines import rq_spline

K = 4
P = 3 * K - 1


# (split, shape, net in, net out)
CASES = [
    ("channel", (4, 6), 3, 3 * P),
    ("parity", (4, 5), 3, 2 * P),
    ("mask", (4, 5), 5, 5 * P),
    ("channel", (3, 4, 2, 3), 2, 2 * P),
    ("parity", (3, 3, 2, 2), 2, 1 * P),
    ("checkerboard", (3, 2, 3, 3), 2, 2 * P),
]


def _coupling(
    split: str, shape: tuple[int, ...], c_in: int, c_out: int, ctx: int = 0, **kw: object
) -> SplineCoupling:
    image = len(shape) == 4
    mask = None
    if split == "mask":
        mask = torch.tensor([1, 0, 0, 1, 0])
    net = TinyNet(
        c_in, c_out, image, ctx, width=6 if image else 12, seed=c_in * 31 + c_out
    ).double()
    return SplineCoupling(net, bins=K, bound=2.5, split=split, mask=mask, **kw).double()  # type: ignore[arg-type]


@pytest.mark.parametrize(("split", "shape", "c_in", "c_out"), CASES)
def test_round_trip_and_logdet_fp64(split: str, shape, c_in: int, c_out: int) -> None:
    layer = _coupling(split, shape, c_in, c_out)
    x = torch.randn(shape, generator=gen(1), dtype=torch.float64) * 1.5
    x.view(-1)[1] = -4.0  # a tail point
    check_invertible(layer, x, atol=1e-10)
    check_logdet_vs_jacobian(layer, x[:1], atol=1e-10)


@pytest.mark.parametrize(("split", "shape", "c_in", "c_out"), [CASES[0], CASES[1], CASES[3]])
def test_unconditional_spline_on_the_kept_part(split: str, shape, c_in: int, c_out: int) -> None:
    layer = _coupling(split, shape, c_in, c_out, unconditional=True, features=shape[1])
    plain = _coupling(split, shape, c_in, c_out)
    x = torch.randn(shape, generator=gen(5), dtype=torch.float64) * 1.5
    y0, ld0 = layer(x)  # zero raw values: φ is the identity, the layer equals the plain coupling
    y1, ld1 = plain(x)
    torch.testing.assert_close(y0, y1, atol=1e-12, rtol=0)
    torch.testing.assert_close(ld0, ld1, atol=1e-12, rtol=0)
    phi = layer.identity_spline
    assert phi is not None
    with torch.no_grad():
        for p in phi.parameters():
            p.copy_(torch.randn(p.shape, generator=gen(6), dtype=torch.float64))
    check_invertible(layer, x, atol=1e-10)
    check_logdet_vs_jacobian(layer, x[:2], atol=1e-10)
    y, ld = layer(x)
    x_a = layer._split(x)[0]
    y_a_ref, ld_a = phi(x_a)
    torch.testing.assert_close(layer._split(y)[0], y_a_ref, atol=0, rtol=0)  # y_a = φ(x_a)
    torch.testing.assert_close(layer._split(y)[1], plain._split(y1)[1], atol=1e-12, rtol=0)
    torch.testing.assert_close(ld, ld1 + ld_a, atol=1e-12, rtol=0)  # the net still reads x_a
    ld.sum().backward()
    assert all(float(p.grad.abs().max()) > 0 for p in phi.parameters())  # type: ignore[union-attr]


def test_unconditional_needs_features_and_a_channel_or_parity_split() -> None:
    with pytest.raises(ValueError, match="features"):
        SplineCoupling(nn.Identity(), unconditional=True)
    with pytest.raises(ValueError, match="split"):
        SplineCoupling(
            nn.Identity(), unconditional=True, features=4, split="mask", mask=torch.ones(4)
        )


def test_feature_major_layout_matches_the_elementwise_spline() -> None:
    net = TinyNet(3, 3 * P, image=False, width=12, seed=3 * 31 + 3 * P).double()
    layer = SplineCoupling(net, bins=K, bound=2.5, split="channel")
    x = torch.randn(5, 6, generator=gen(2), dtype=torch.float64)
    y, logdet = layer(x)
    raw = net(x[:, :3]).view(5, 3, P)  # element b owns raw[:, b, :] (contiguous)
    y_ref, ladj = rq_spline(
        x[:, 3:], raw[..., :K], raw[..., K : 2 * K], raw[..., 2 * K :], bound=2.5
    )
    torch.testing.assert_close(y[:, 3:], y_ref, atol=0, rtol=0)
    assert torch.equal(y[:, :3], x[:, :3])
    torch.testing.assert_close(logdet, ladj.sum(1), atol=1e-14, rtol=0)


def test_identity_at_init_with_zero_initialised_nets() -> None:
    vec = SplineCoupling(
        MLP(2, 2 * 23, hidden=8, depth=2, zero_init=True), split="channel"
    ).double()
    img = SplineCoupling(ConvNet(2, 2 * 23, hidden=8), split="channel").double()
    for layer, shape in ((vec, (4, 4)), (img, (2, 4, 2, 2))):
        x = torch.randn(shape, generator=gen(4), dtype=torch.float64) * 3
        y, logdet = layer(x)
        torch.testing.assert_close(y, x, atol=1e-12, rtol=0)
        torch.testing.assert_close(
            logdet, torch.zeros(shape[0], dtype=torch.float64), atol=1e-12, rtol=0
        )


@pytest.mark.parametrize(("split", "shape", "c_in", "c_out"), [CASES[0], CASES[5]])
def test_context_gradient(split: str, shape, c_in: int, c_out: int) -> None:
    layer = _coupling(split, shape, c_in, c_out, ctx=3)
    x = torch.randn(shape, generator=gen(5), dtype=torch.float64)
    c = torch.randn(shape[0], 3, generator=gen(6), dtype=torch.float64, requires_grad=True)
    check_invertible(layer, x, atol=1e-9, context=c.detach())  # steep random bins: 1e-10 rel
    y, logdet = layer(x, c)
    (y.square().sum() + logdet.sum()).backward()
    assert c.grad is not None and torch.isfinite(c.grad).all() and c.grad.abs().sum() > 0


def test_checkerboard_keeps_the_masked_pixels() -> None:
    layer = _coupling(*CASES[5])
    x = torch.randn(3, 2, 3, 3, generator=gen(8), dtype=torch.float64)
    y, _ = layer(x)
    kept = checkerboard_mask(3, 3).bool().expand(2, 3, 3)
    assert torch.equal(y[:, kept], x[:, kept]) and not torch.equal(y[:, ~kept], x[:, ~kept])


def test_bad_shapes_raise() -> None:
    layer = SplineCoupling(MLP(2, 2 * P, hidden=8, depth=1), bins=K, split="channel")
    with pytest.raises(ValueError, match=r"net output must have shape \(3, 22\)"):
        SplineCoupling(MLP(2, 2 * P + 1, hidden=8, depth=1), bins=K)(torch.randn(3, 4))
    with pytest.raises(ValueError, match="even size"):
        layer(torch.randn(3, 5))
    with pytest.raises(ValueError, match="dim 1 >= 2"):
        SplineCoupling(MLP(1, P, hidden=8, depth=1), bins=K, split="parity")(torch.randn(3, 1))
    with pytest.raises(ValueError, match="bins"):
        SplineCoupling(MLP(2, 2, hidden=8, depth=1), bins=0)
