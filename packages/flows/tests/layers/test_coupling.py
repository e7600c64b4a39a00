"""Coupling layers and the reference coupling ops: masks, round trips, exact Jacobians, zero init."""

from __future__ import annotations

import functools
import math

import pytest
import torch
from _flowcheck import TinyNet
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from kexue.flows.functional import (
    _reference_backward,
    coupling_forward,
    coupling_inverse,
    fused_coupling,
    join_h,
    split_h,
)
from kexue.flows.layers.coupling import (
    AdditiveCoupling,
    AffineCoupling,
    channel_mask,
    checkerboard_mask,
)
from kexue.flows.layers.scale_maps import SCALE_MAPS
from kexue.flows.nets import Conv2dZeros

MAPS = sorted(SCALE_MAPS)
SIGMA2 = 1.0 / (1.0 + math.exp(-2.0))

# (split, shape) pairs: vectors (B, D) and images (B, C, H, W); odd sizes where the split allows.
CASES = [
    ("channel", (4, 6)),
    ("parity", (4, 7)),
    ("mask", (4, 5)),
    ("channel", (3, 4, 2, 3)),
    ("parity", (3, 3, 2, 3)),
    ("checkerboard", (3, 2, 3, 3)),
    ("mask", (3, 2, 3, 4)),
]


def _mask_for(shape: tuple[int, ...], parity: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(7 + parity)
    m = (torch.rand(shape[1:] if len(shape) == 2 else shape[2:], generator=g) > 0.5).float()
    m.view(-1)[0], m.view(-1)[1] = 1.0, 0.0  # never all kept / all transformed
    return m


def _make(
    kind: str,
    split: str,
    shape: tuple[int, ...],
    *,
    parity: int = 0,
    scale_map: str = "sigmoid2",
    order: str = "glow",
    h_layout: str = "interleave",
    ctx_dim: int | None = None,
    dtype: torch.dtype = torch.float64,
) -> nn.Module:
    image = len(shape) == 4
    c = shape[1]
    probe = torch.zeros(shape)
    if split == "channel":
        c_in = c_b = c // 2
    elif split == "parity":
        c_in, c_b = probe[:, parity::2].shape[1], probe[:, 1 - parity :: 2].shape[1]
    else:
        c_in = c_b = c
    factor = 2 if kind == "affine" else 1
    net = TinyNet(c_in, factor * c_b, image, ctx_dim or 0, width=8 if image else 16)
    mask = _mask_for(shape, parity) if split == "mask" else None
    if kind == "additive":
        layer = AdditiveCoupling(net, split=split, parity=parity, mask=mask, backend="torch")
    else:
        layer = AffineCoupling(
            net, scale_map=scale_map, split=split, order=order, h_layout=h_layout,
            parity=parity, mask=mask, features=c, backend="torch",
        )  # fmt: skip
        if scale_map == "tanh_w":
            with torch.no_grad():
                layer.tanh_weight.copy_(torch.linspace(0.5, 1.5, c))
    return layer.to(dtype)


def _variants() -> list[tuple[str, str, str, str]]:
    out = [("additive", "sigmoid2", "glow", "interleave")]
    for i, sm in enumerate(MAPS):
        out.append(("affine", sm, ("glow", "realnvp")[i % 2], ("interleave", "chunk")[i // 3 % 2]))
    return out


# --------------------------------------------------------------------------- masks
def test_checkerboard_mask_values_and_alternation() -> None:
    m0 = checkerboard_mask(3, 4)
    expected = torch.tensor([[0, 1, 0, 1], [1, 0, 1, 0], [0, 1, 0, 1]], dtype=torch.float32)
    torch.testing.assert_close(m0, expected, rtol=0, atol=0)
    torch.testing.assert_close(m0 + checkerboard_mask(3, 4, parity=1), torch.ones(3, 4))


def test_channel_mask_values_and_alternation() -> None:
    torch.testing.assert_close(channel_mask(4), torch.tensor([1.0, 1.0, 0.0, 0.0]), rtol=0, atol=0)
    torch.testing.assert_close(channel_mask(4) + channel_mask(4, parity=1), torch.ones(4))


def test_mask_bad_inputs() -> None:
    with pytest.raises(ValueError, match="c must be even"):
        channel_mask(3)
    with pytest.raises(ValueError, match="parity"):
        checkerboard_mask(2, 2, parity=2)
    with pytest.raises(ValueError, match="h and w"):
        checkerboard_mask(0, 2)


@pytest.mark.parametrize("split", ["channel", "parity", "checkerboard"])
def test_alternating_parities_transform_complementary_parts(split: str) -> None:
    """Two couplings with parity 0 and 1 together change every element."""
    shape = (2, 4, 4, 4)
    x = torch.randn(shape, dtype=torch.float64)
    changed = torch.zeros(shape, dtype=torch.bool)
    for parity in (0, 1):
        layer = _make("additive", split, shape, parity=parity)
        y, _ = layer(x)
        diff = y != x
        assert not (changed & diff).any()  # disjoint transformed sets
        changed |= diff
    assert changed.all()


# --------------------------------------------------------------------------- reference ops
def test_reference_formulas_and_layouts() -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 4, generator=g, dtype=torch.float64)
    t = torch.randn(2, 3, 4, generator=g, dtype=torch.float64)
    r = torch.randn(2, 3, 4, generator=g, dtype=torch.float64)
    h_int = torch.empty(2, 6, 4, dtype=torch.float64)
    h_int[:, 0::2], h_int[:, 1::2] = t, r
    h_chk = torch.cat([r, t], dim=1)
    torch.testing.assert_close(join_h(t, r, "interleave"), h_int, rtol=0, atol=0)
    torch.testing.assert_close(split_h(h_chk, "chunk")[0], t, rtol=0, atol=0)
    sig = torch.sigmoid(r + 2)
    y, ld = coupling_forward(x, h_int)
    torch.testing.assert_close(y, (x + t) * sig, rtol=1e-14, atol=1e-14)
    torch.testing.assert_close(ld, torch.log(sig).sum(dim=(1, 2)), rtol=1e-14, atol=1e-12)
    y, ld = coupling_forward(x, h_chk, h_layout="chunk", order="realnvp", scale_map="exp")
    torch.testing.assert_close(y, x * torch.exp(r) + t, rtol=1e-14, atol=1e-14)
    torch.testing.assert_close(ld, r.sum(dim=(1, 2)), rtol=1e-14, atol=1e-12)
    y, ld = coupling_forward(x, t, kind="additive", sign=-1.0)
    torch.testing.assert_close(y, x - t, rtol=0, atol=0)
    assert ld.shape == (2,) and (ld == 0).all()


def test_reference_logdet_dtype() -> None:
    x = torch.randn(2, 3).to(torch.bfloat16)
    h = torch.randn(2, 6).to(torch.bfloat16)
    y, ld = coupling_forward(x, h)
    assert y.dtype == torch.bfloat16 and ld.dtype == torch.float32
    assert coupling_forward(x.double(), h.double())[1].dtype == torch.float64


def test_reference_bad_inputs() -> None:
    x = torch.randn(2, 3)
    with pytest.raises(ValueError, match="h must have shape"):
        coupling_forward(x, torch.randn(2, 3))
    with pytest.raises(ValueError, match="kind"):
        coupling_forward(x, torch.randn(2, 6), kind="spline")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="order"):
        coupling_inverse(x, torch.randn(2, 6), order="nvp")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="h_layout"):
        coupling_forward(x, torch.randn(2, 6), h_layout="halves")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="scale_map"):
        coupling_forward(x, torch.randn(2, 6), scale_map="relu")
    with pytest.raises(ValueError, match="scale_weight"):
        coupling_forward(x, torch.randn(2, 6), scale_map="tanh_w", scale_weight=torch.ones(2))
    with pytest.raises(ValueError, match="backend"):
        fused_coupling(x, torch.randn(2, 6), backend="cuda")


def _fused_positional(
    x: torch.Tensor, h: torch.Tensor, w: torch.Tensor | None, **cfg: object
) -> tuple[torch.Tensor, torch.Tensor]:
    return fused_coupling(x, h, scale_weight=w, **cfg)  # type: ignore[arg-type]


@pytest.mark.parametrize("scale_map", MAPS)
@pytest.mark.parametrize("order", ["glow", "realnvp"])
@pytest.mark.parametrize("inverse", [False, True])
def test_gradcheck_reference_autograd_function(scale_map: str, order: str, inverse: bool) -> None:
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 2, 1, generator=g, dtype=torch.float64, requires_grad=True)
    h = torch.randn(2, 4, 1, generator=g, dtype=torch.float64, requires_grad=True)
    w = (torch.rand(2, generator=g, dtype=torch.float64) + 0.5).requires_grad_()
    w_arg = w if scale_map == "tanh_w" else None
    for layout in ("interleave", "chunk"):
        fn = functools.partial(
            _fused_positional, scale_map=scale_map, order=order, h_layout=layout,
            inverse=inverse, backend="torch",
        )  # fmt: skip
        assert torch.autograd.gradcheck(fn, (x, h, w_arg), atol=1e-8, rtol=1e-6)
        # The written-out VJP (the formulas the Triton backward implements) equals autograd's.
        cfg = {"kind": "affine", "scale_map": scale_map, "order": order, "h_layout": layout,
               "sign": 1.0, "inverse": inverse}  # fmt: skip
        out, logdet = fn(x, h, w_arg)
        g_out = torch.randn(out.shape, generator=g, dtype=torch.float64)
        g_ld = torch.randn(logdet.shape, generator=g, dtype=torch.float64)
        inputs = (x, h) if w_arg is None else (x, h, w_arg)
        expected = torch.autograd.grad((out, logdet), inputs, (g_out, g_ld))
        got = _reference_backward(x.detach(), h.detach(), w_arg, g_out, g_ld, cfg)
        for e, a in zip(expected, got, strict=False):
            torch.testing.assert_close(a, e, atol=1e-12, rtol=1e-10)
    xa = torch.randn(2, 3, generator=g, dtype=torch.float64, requires_grad=True)
    ha = torch.randn(2, 3, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda a, b: fused_coupling(a, b, kind="additive", sign=-1.0, inverse=inverse), (xa, ha)
    )


# --------------------------------------------------------------------------- layers
@pytest.mark.parametrize(("split", "shape"), CASES)
@pytest.mark.parametrize(("kind", "scale_map", "order", "h_layout"), _variants())
@pytest.mark.parametrize("parity", [0, 1])
def test_round_trip_and_logdet_sum(
    split: str, shape: tuple, kind: str, scale_map: str, order: str, h_layout: str, parity: int
) -> None:
    g = torch.Generator().manual_seed(11)
    for dtype, atol in ((torch.float64, 1e-10), (torch.float32, 1e-4)):
        layer = _make(kind, split, shape, parity=parity, scale_map=scale_map, order=order,
                      h_layout=h_layout, dtype=dtype)  # fmt: skip
        x = torch.randn(shape, generator=g, dtype=torch.float64).to(dtype)
        y, ld = layer(x)
        x2, ld_inv = layer.inverse(y)
        assert y.shape == x.shape and ld.shape == (shape[0],) and ld.dtype == dtype
        torch.testing.assert_close(x2, x, rtol=atol, atol=atol)
        torch.testing.assert_close(ld + ld_inv, torch.zeros_like(ld), rtol=0, atol=atol)
        if kind == "affine":
            assert not torch.equal(y, x)


@pytest.mark.parametrize(("split", "shape"), CASES)
@pytest.mark.parametrize(("kind", "scale_map", "order", "h_layout"), _variants())
def test_logdet_equals_slogdet_of_jacobian(
    split: str, shape: tuple, kind: str, scale_map: str, order: str, h_layout: str
) -> None:
    layer = _make(kind, split, shape, parity=1, scale_map=scale_map, order=order,
                  h_layout=h_layout)  # fmt: skip
    x = torch.randn(shape, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    _, ld = layer(x)
    for i in range(2):
        jac = torch.autograd.functional.jacobian(
            lambda v: layer(v.view(1, *shape[1:]))[0].reshape(-1), x[i].reshape(-1)
        )
        sign, logabs = torch.linalg.slogdet(jac)
        assert sign != 0
        torch.testing.assert_close(ld[i], logabs, rtol=0, atol=1e-8)


def test_glow_zero_init_is_sigma2_scale() -> None:
    """With a Conv2dZeros net: y_a = x_a, y_b = σ(2)·x_b, logdet = N·ln σ(2) (Glow init)."""
    x = torch.randn(3, 6, 4, 5, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    layer = AffineCoupling(Conv2dZeros(3, 6), backend="torch").double()
    y, ld = layer(x)
    torch.testing.assert_close(y[:, :3], x[:, :3], rtol=0, atol=0)
    torch.testing.assert_close(y[:, 3:], SIGMA2 * x[:, 3:], rtol=1e-14, atol=1e-14)
    expected = torch.full((3,), 3 * 4 * 5 * math.log(SIGMA2), dtype=torch.float64)
    torch.testing.assert_close(ld, expected, rtol=1e-14, atol=1e-12)
    additive = AdditiveCoupling(Conv2dZeros(3, 3), backend="torch").double()
    torch.testing.assert_close(additive(x)[0], x, rtol=0, atol=0)


def test_su_compat_parity_sign() -> None:
    """Su's nice.py: x1 = even indices (kept), y2 = x2 − m(x1)."""
    net = nn.Linear(4, 4).double()
    layer = AdditiveCoupling(net, split="parity", sign=-1, backend="torch")
    x = torch.randn(3, 8, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    y, ld = layer(x)
    torch.testing.assert_close(y[:, 0::2], x[:, 0::2], rtol=0, atol=0)
    torch.testing.assert_close(y[:, 1::2], x[:, 1::2] - net(x[:, 0::2]), rtol=0, atol=1e-15)
    assert torch.equal(ld, torch.zeros(3, dtype=torch.float64))


def test_context_reaches_the_net_and_is_validated() -> None:
    layer = _make("affine", "channel", (4, 6), ctx_dim=3)
    g = torch.Generator().manual_seed(8)
    x = torch.randn(4, 6, generator=g, dtype=torch.float64)
    c1, c2 = torch.randn(2, 4, 3, generator=g, dtype=torch.float64)
    y1, _ = layer(x, c1)
    y2, _ = layer(x, c2)
    assert (y1 - y2).abs().max() > 1e-3
    torch.testing.assert_close(layer.inverse(y1, c1)[0], x, rtol=1e-10, atol=1e-10)
    with pytest.raises(ValueError, match="context"):
        layer(x, torch.randn(3, 3, dtype=torch.float64))


def test_tanh_w_weight_gets_gradient() -> None:
    layer = _make("affine", "checkerboard", (2, 2, 3, 3), scale_map="tanh_w")
    x = torch.randn(2, 2, 3, 3, dtype=torch.float64)
    y, ld = layer(x)
    (y.square().sum() + ld.sum()).backward()
    assert layer.tanh_weight.grad is not None and layer.tanh_weight.grad.abs().min() > 0


def test_layer_bad_inputs() -> None:
    layer = _make("affine", "channel", (2, 4, 2, 2))
    with pytest.raises(ValueError, match="x needs an even size"):
        layer(torch.randn(2, 5, 2, 2, dtype=torch.float64))
    # NaN/inf are rejected once at the Flow's entry points (test_flow.py), not per layer
    with pytest.raises(ValueError, match="y needs an even size"):
        layer.inverse(torch.randn(2, 3, 2, 2, dtype=torch.float64))
    bad = AffineCoupling(nn.Conv2d(2, 2, 1), backend="torch")
    with pytest.raises(ValueError, match="net output"):
        bad(torch.randn(2, 4, 2, 2))
    with pytest.raises(ValueError, match="checkerboard"):
        AdditiveCoupling(nn.Identity(), split="checkerboard")(torch.randn(2, 4))
    with pytest.raises(ValueError, match="features"):
        AffineCoupling(nn.Identity(), scale_map="tanh_w")
    with pytest.raises(ValueError, match="mask"):
        AdditiveCoupling(nn.Identity(), split="mask")
    with pytest.raises(ValueError, match="mask of shape"):
        AdditiveCoupling(nn.Identity(), split="mask", mask=torch.ones(3))(torch.randn(2, 4))
    with pytest.raises(ValueError, match="split"):
        AdditiveCoupling(nn.Identity(), split="rows")
    with pytest.raises(ValueError, match="sign"):
        AdditiveCoupling(nn.Identity(), sign=2)


@settings(max_examples=20, deadline=None)
@given(
    b=st.integers(1, 5),
    d=st.integers(2, 9),
    parity=st.integers(0, 1),
    scale_map=st.sampled_from(MAPS),
    seed=st.integers(0, 2**16),
)
def test_parity_split_round_trip_property(
    b: int, d: int, parity: int, scale_map: str, seed: int
) -> None:
    torch.manual_seed(seed)
    layer = _make("affine", "parity", (b, d), parity=parity, scale_map=scale_map)
    x = torch.randn(b, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    y, ld = layer(x)
    x2, ld_inv = layer.inverse(y)
    torch.testing.assert_close(x2, x, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(ld, -ld_inv, rtol=0, atol=1e-10)


def test_flow_of_couplings_rejects_nan_once_at_entry() -> None:
    """issue 18 probe: NaN was rejected only inside couplings, and not at all on CUDA; the Flow
    entry point now checks once on every device, and a bare coupling does not sync per layer."""
    from kexue.flows.flow import Flow
    from kexue.flows.priors import StandardNormal

    layer = _make("affine", "channel", (2, 4, 2, 2))
    flow = Flow(layer, StandardNormal((4, 2, 2))).double()
    x = torch.randn(2, 4, 2, 2, dtype=torch.float64)
    x[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="x contains NaN or inf"):
        flow.log_prob(x)
    assert torch.isnan(layer(x)[0]).any()  # the layer itself trusts its caller
