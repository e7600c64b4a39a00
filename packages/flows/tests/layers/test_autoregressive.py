"""MAF / IAF layers (spec flows-splines §5 rows 1, 2, 6, 11): round trips, exact Jacobians,
identity at init, the MAF/IAF duality and context gradients."""

from __future__ import annotations

import pytest
import torch
from _flowcheck import check_invertible, check_logdet_vs_jacobian, gen

from kexue.flows.layers.autoregressive import MaskedAutoregressive

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
