"""Tests for kexue.flows.layers.reshape: parity/channel splits, squeeze, reshape (exact, logdet 0)."""

from __future__ import annotations

import pytest
import torch
from _flowcheck import check_exact_roundtrip, check_logdet_vs_jacobian, gen
from hypothesis import given, settings
from hypothesis import strategies as st

from kexue.flows.layers.logit import LogitTransform
from kexue.flows.layers.permutation import Permutation
from kexue.flows.layers.reshape import (
    Flatten,
    Interleave,
    ParitySplit,
    Reshape,
    Squeeze,
    Unsqueeze,
    channel_merge,
    channel_split,
    parity_merge,
    parity_split,
)

# ----------------------------------------------------------------------------- parity / channel


def test_parity_split_layer_values_and_interleave() -> None:
    x = torch.arange(12.0).reshape(2, 6)
    y = check_exact_roundtrip(ParitySplit(), x)
    assert torch.equal(y[0], torch.tensor([0.0, 2, 4, 1, 3, 5]))
    z = check_exact_roundtrip(Interleave(), y)
    assert torch.equal(z, x)
    check_logdet_vs_jacobian(ParitySplit(), x.double(), 1e-12)


def test_parity_and_channel_functions() -> None:
    x = torch.randn(2, 8, 3, generator=gen(4))
    e, o = parity_split(x)
    assert torch.equal(e, x[:, 0::2]) and torch.equal(o, x[:, 1::2])
    assert torch.equal(parity_merge(e, o), x)
    a, b = channel_split(x)
    assert torch.equal(a, x[:, :4]) and torch.equal(b, x[:, 4:])
    assert torch.equal(channel_merge(a, b), x)
    e2, o2 = parity_split(x.transpose(1, 2).contiguous()[:, :2], dim=1)
    assert e2.shape == (2, 1, 8)
    assert torch.equal(parity_merge(e2, o2, dim=1), x.transpose(1, 2)[:, :2])


def test_odd_split_raises() -> None:
    with pytest.raises(ValueError, match="x"):
        parity_split(torch.zeros(2, 5))
    with pytest.raises(ValueError, match="x"):
        channel_split(torch.zeros(2, 3, 4, 4))
    with pytest.raises(ValueError, match="x"):
        ParitySplit()(torch.zeros(2, 7))
    with pytest.raises(ValueError, match="x_odd"):
        parity_merge(torch.zeros(2, 3), torch.zeros(2, 4))


# ----------------------------------------------------------------------------- squeeze


@pytest.mark.parametrize("order", ["default", "su"])
def test_squeeze_roundtrip_exact(order: str) -> None:
    x = torch.randn(3, 2, 4, 6, generator=gen(6))
    sq = Squeeze(order=order)  # type: ignore[arg-type]
    y = check_exact_roundtrip(sq, x)
    assert y.shape == (3, 8, 2, 3)
    uq = Unsqueeze(order=order)  # type: ignore[arg-type]
    assert torch.equal(uq(y)[0], x)
    assert torch.equal(uq.inverse(x)[0], y)
    check_logdet_vs_jacobian(sq, x[:1].double(), 1e-12)


def test_squeeze_layouts() -> None:
    # x[0, c, 2p + i, 2q + j] = 100c + 10i + j at block (p, q) = (0, 0).
    c, h, w = 2, 2, 2
    x = torch.zeros(1, c, h, w)
    for ci in range(c):
        for i in range(2):
            for j in range(2):
                x[0, ci, i, j] = 100 * ci + 10 * i + j
    y_def = Squeeze()(x)[0][0, :, 0, 0]
    y_su = Squeeze(order="su")(x)[0][0, :, 0, 0]
    for ci in range(c):
        for i in range(2):
            for j in range(2):
                v = 100 * ci + 10 * i + j
                assert y_def[4 * ci + 2 * i + j] == v  # openai / rosinality
                assert y_su[(2 * i + j) * c + ci] == v  # Su (channels-last (0,1,3,2,4,5))


def test_squeeze_bad_input() -> None:
    with pytest.raises(ValueError, match="x"):
        Squeeze()(torch.zeros(2, 3, 5, 4))
    with pytest.raises(ValueError, match="x"):
        Squeeze()(torch.zeros(2, 3, 4, 3))
    with pytest.raises(ValueError, match="x"):
        Squeeze()(torch.zeros(2, 3, 4))
    with pytest.raises(ValueError, match="y"):
        Squeeze().inverse(torch.zeros(2, 6, 2, 2))
    with pytest.raises(ValueError, match="order"):
        Squeeze(order="tf")  # type: ignore[arg-type]


@settings(max_examples=20, deadline=None)
@given(
    b=st.integers(1, 3),
    c=st.integers(1, 4),
    h=st.integers(1, 4),
    w=st.integers(1, 4),
    order=st.sampled_from(["default", "su"]),
)
def test_squeeze_property(b: int, c: int, h: int, w: int, order: str) -> None:
    x = torch.randn(b, c, 2 * h, 2 * w, generator=gen(b * 100 + c * 10 + h))
    y, ld = Squeeze(order=order)(x)  # type: ignore[arg-type]
    assert torch.equal(ld, torch.zeros(b))
    assert y.shape == (b, 4 * c, h, w) and y.dtype == x.dtype
    assert torch.equal(Squeeze(order=order).inverse(y)[0], x)  # type: ignore[arg-type]
    # A permutation of the values: same multiset per sample.
    assert torch.equal(y.reshape(b, -1).sort(1).values, x.reshape(b, -1).sort(1).values)


# ----------------------------------------------------------------------------- reshape


def test_reshape_and_flatten() -> None:
    x = torch.randn(2, 3, 2, 2, generator=gen(9))
    y = check_exact_roundtrip(Flatten((3, 2, 2)), x)
    assert y.shape == (2, 12) and torch.equal(y, x.reshape(2, 12))
    y2 = check_exact_roundtrip(Reshape((3, 2, 2), (6, 2)), x)
    assert y2.shape == (2, 6, 2)
    with pytest.raises(ValueError, match="out_shape"):
        Reshape((3, 2), (5,))
    with pytest.raises(ValueError, match="x"):
        Flatten((3, 2, 2))(torch.zeros(2, 12))


def test_low_precision_dtype_preserved_logdet_fp32() -> None:
    x = torch.randn(2, 4, 4, 4, generator=gen(13)).to(torch.bfloat16)
    for layer in (Squeeze(), Permutation(4), ParitySplit(), Flatten((4, 4, 4))):
        y, ld = layer(x)
        assert y.dtype == torch.bfloat16 and ld.dtype == torch.float32
        assert torch.equal(layer.inverse(y)[0], x)
    z, ld = LogitTransform(0.05)(x.float().sigmoid().to(torch.bfloat16))
    assert z.dtype == torch.bfloat16 and ld.dtype == torch.float32
