"""MAF / IAF layers (spec flows-splines §5 rows 1, 2, 6, 11): round trips, exact Jacobians,
identity at init, the MAF/IAF duality and context gradients."""

from __future__ import annotations

import pytest
import torch
from _flowcheck import check_invertible, check_logdet_vs_jacobian, gen
from torch import nn

from kexue.flows.layers.autoregressive import MaskedAutoregressive
from kexue.flows.layers.spline_coupling import SplineCoupling

CASES = [(t, d) for t in ("affine", "spline") for d in ("maf", "iaf")]


def _layer(transformer: str, direction: str, *, features: int = 4, context: int = 0, seed: int = 0):
    layer = MaskedAutoregressive(
        features, transformer, direction, hidden=(12, 12), context_features=context,
        order=torch.randperm(features, generator=gen(seed)), bins=5, bound=3.0,
        generator=gen(seed),
    ).double()  # fmt: skip
    with torch.no_grad():  # leave the identity init: random outputs of a useful size
        last = layer.made.net[-1]
        last.weight.copy_(torch.randn(last.weight.shape, generator=gen(seed + 1)).double() * 0.7)
        last.bias.copy_(torch.randn(last.bias.shape, generator=gen(seed + 2)).double() * 0.7)
    return layer


@pytest.mark.parametrize(("transformer", "direction"), CASES)
def test_round_trip_and_logdet_fp64(transformer: str, direction: str) -> None:
    layer = _layer(transformer, direction)
    x = torch.randn(6, 4, generator=gen(3), dtype=torch.float64) * 2.0  # some points in the tails
    x[0, 0] = 7.5  # outside [−B, B]: identity tail
    check_invertible(layer, x, atol=1e-10)
    check_logdet_vs_jacobian(layer, x[:2], atol=1e-10)


@pytest.mark.parametrize(("transformer", "direction"), CASES)
def test_conditional_round_trip_jacobian_and_context_gradient(
    transformer: str, direction: str
) -> None:
    layer = _layer(transformer, direction, context=3, seed=5)
    x = torch.randn(5, 4, generator=gen(6), dtype=torch.float64)
    c = torch.randn(5, 3, generator=gen(7), dtype=torch.float64, requires_grad=True)
    check_invertible(layer, x, atol=1e-10, context=c.detach())
    check_logdet_vs_jacobian(layer, x[:1], atol=1e-10, context=c.detach()[:1])
    y, logdet = layer(x, c)
    (y.square().sum() + logdet.sum()).backward()
    assert c.grad is not None and torch.isfinite(c.grad).all() and c.grad.abs().min() > 0
    # the first feature in the order still depends on the context (degree-0 hidden units)
    first = int(torch.argmin(layer.made.degrees))
    c2 = c.detach().clone()
    c2[:, 0] += 1.0
    assert not torch.allclose(layer(x, c2)[0][:, first], y.detach()[:, first])


@pytest.mark.parametrize(("transformer", "direction"), CASES)
def test_identity_at_init(transformer: str, direction: str) -> None:
    layer = MaskedAutoregressive(3, transformer, direction, hidden=8, bins=4).double()
    x = torch.randn(5, 3, generator=gen(0), dtype=torch.float64) * 3
    y, logdet = layer(x)
    torch.testing.assert_close(y, x, atol=1e-12, rtol=0)
    torch.testing.assert_close(logdet, torch.zeros(5, dtype=torch.float64), atol=1e-12, rtol=0)


@pytest.mark.parametrize("transformer", ["affine", "spline"])
def test_iaf_is_the_inverse_of_the_maf_with_the_same_weights(transformer: str) -> None:
    maf = _layer(transformer, "maf", seed=9)
    iaf = _layer(transformer, "iaf", seed=9)
    iaf.load_state_dict(maf.state_dict())
    z = torch.randn(4, 4, generator=gen(10), dtype=torch.float64)
    x_iaf, ld_iaf = iaf.inverse(z)  # one pass
    x_maf, ld_maf = maf(z)  # the same single pass
    torch.testing.assert_close(x_iaf, x_maf, atol=0, rtol=0)
    torch.testing.assert_close(ld_iaf, ld_maf, atol=0, rtol=0)
    u, ld = iaf(x_iaf)  # D passes recover z
    torch.testing.assert_close(u, z, atol=1e-10, rtol=0)
    torch.testing.assert_close(ld, -ld_iaf, atol=1e-10, rtol=0)


def test_float32_and_errors() -> None:
    layer = _layer("spline", "maf").float()
    x = torch.randn(8, 4, generator=gen(1))
    check_invertible(layer, x, atol=1e-5)
    with pytest.raises(ValueError, match=r"x must have shape \(B, 4\)"):
        layer(torch.randn(2, 5))
    with pytest.raises(ValueError, match="transformer"):
        MaskedAutoregressive(3, "cubic")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="direction"):
        MaskedAutoregressive(3, "affine", "both")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="bins"):
        MaskedAutoregressive(3, "spline", bins=0)


@pytest.mark.parametrize("transformer", ["affine", "spline"])
def test_parity_with_zuko_given_the_same_conditioner(transformer: str) -> None:
    zuko = pytest.importorskip("zuko")
    torch.manual_seed(0)
    d, k = 3, 5
    if transformer == "affine":
        z = zuko.flows.MaskedAutoregressiveTransform(d, 2, hidden_features=(16, 16))
    else:
        z = zuko.flows.MaskedAutoregressiveTransform(
            d, 2, hidden_features=(16, 16), univariate=zuko.transforms.MonotonicRQSTransform,
            shapes=[(k,), (k,), (k - 1,)],
        )  # fmt: skip
    z = z.double()
    ours = MaskedAutoregressive(
        d, transformer, hidden=(16, 16), context_features=2, bins=k, bound=5.0, param="zuko"
    ).double()
    theirs_layers = [m for m in z.hyper if isinstance(m, torch.nn.Linear)]
    our_layers = [m for m in ours.made.net if isinstance(m, torch.nn.Linear)]
    assert [m.weight.shape for m in theirs_layers] == [m.weight.shape for m in our_layers]
    with torch.no_grad():  # same conditioner: copy zuko's weights, biases and masks
        for a, b in zip(theirs_layers, our_layers):
            b.weight.copy_(a.weight)
            b.bias.copy_(a.bias)
            b.mask.copy_(a.mask.double())
    x = torch.randn(6, d, generator=gen(0), dtype=torch.float64) * 2
    c = torch.randn(6, 2, generator=gen(1), dtype=torch.float64)
    t = z(c)
    y_ref, ladj_ref = t.call_and_ladj(x)
    y, logdet = ours(x, c)
    torch.testing.assert_close(y, y_ref, atol=1e-12, rtol=0)
    torch.testing.assert_close(logdet, ladj_ref, atol=1e-12, rtol=0)
    torch.testing.assert_close(ours.inverse(y, c)[0], t.inv(y_ref), atol=1e-10, rtol=0)


def test_two_passes_equal_the_coupling_layer_with_the_same_parameters() -> None:
    """Spec §5 row 11: a MADE over 2 feature blocks (zuko ``passes=2``) is a spline coupling
    (with nflows' unconditional spline on the kept block): same y, logdet and inverse, and the
    inverse is exact after 2 passes."""
    d, k, width = 6, 4, 10
    p = 3 * k - 1
    ar = MaskedAutoregressive(
        d, "spline", hidden=(width, width), passes=2, bins=k, bound=3.0, generator=gen(20)
    ).double()
    assert ar.made.degrees.tolist() == [1, 1, 1, 2, 2, 2] and ar.passes == 2
    first, hidden2, last = (m for m in ar.made.net if isinstance(m, nn.Linear))
    with torch.no_grad():
        last.weight.copy_(torch.randn(last.weight.shape, generator=gen(21)).double() * 0.5)
        last.bias.copy_(torch.randn(last.bias.shape, generator=gen(22)).double() * 0.5)
    # the coupling's net: the MADE's weights where its masks let them act (block 1 → block 2)
    net = nn.Sequential(
        nn.Linear(3, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 3 * p)
    ).double()
    with torch.no_grad():
        net[0].weight.copy_((first.weight * first.mask)[:, :3])
        net[0].bias.copy_(first.bias)
        net[2].weight.copy_(hidden2.weight * hidden2.mask)
        net[2].bias.copy_(hidden2.bias)
        net[4].weight.copy_((last.weight * last.mask)[3 * p :])  # block-2 rows, feature-major
        net[4].bias.copy_(last.bias[3 * p :])
    coupling = SplineCoupling(
        net, bins=k, bound=3.0, split="channel", unconditional=True, features=d
    ).double()
    phi = coupling.identity_spline
    assert phi is not None
    raw = last.bias[: 3 * p].view(3, p).detach()  # block 1 sees no input: its bias only
    assert torch.equal((last.weight * last.mask)[: 3 * p], torch.zeros(3 * p, width))
    with torch.no_grad():
        phi.widths.copy_(raw[:, :k])
        phi.heights.copy_(raw[:, k : 2 * k])
        phi.derivatives.copy_(raw[:, 2 * k :])
    x = torch.randn(7, d, generator=gen(23), dtype=torch.float64) * 1.5
    u, ld = ar(x)
    y, ld_c = coupling(x)
    torch.testing.assert_close(u, y, atol=1e-12, rtol=0)
    torch.testing.assert_close(ld, ld_c, atol=1e-12, rtol=0)
    x_ar, ldi = ar.inverse(u)  # 2 passes
    x_c, ldi_c = coupling.inverse(y)
    torch.testing.assert_close(x_ar, x, atol=1e-10, rtol=0)
    torch.testing.assert_close(x_ar, x_c, atol=1e-12, rtol=0)
    torch.testing.assert_close(ldi, ldi_c, atol=1e-12, rtol=0)
    one_pass = MaskedAutoregressive(d, "spline", hidden=(width, width), passes=1, bins=k)
    assert one_pass.made.degrees.tolist() == [1] * d  # passes=1: elementwise, no conditioning
