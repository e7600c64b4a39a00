"""Tests for kexue.flows.bits and Flow.bpd: the closed-form bits/dim checks of spec §4."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn
from torch.distributions import Normal

from kexue.flows.base import Compose, FlowLayer, logdet_dtype
from kexue.flows.bits import bits_per_dim, dequantize, reduce_bits, resolve_levels
from kexue.flows.flow import Flow
from kexue.flows.layers.logit import LogitTransform
from kexue.flows.priors import Logistic, StandardNormal

HALF_LOG2_2PI = 0.5 * math.log2(2 * math.pi)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


class _ElementwiseAffine(FlowLayer):
    """z = a·y + c elementwise (test-only), a > 0 given directly."""

    def __init__(self, a: Tensor, c: Tensor) -> None:
        super().__init__()
        self.a = nn.Parameter(a.clone())
        self.c = nn.Parameter(c.clone())

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        ld = torch.log(self.a).sum().to(logdet_dtype(x)).expand(x.shape[0])
        return self.a * x + self.c, ld

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        ld = -torch.log(self.a).sum().to(logdet_dtype(y)).expand(y.shape[0])
        return (y - self.c) / self.a, ld


def test_constant_value() -> None:
    assert abs(HALF_LOG2_2PI - 1.3257481) < 1e-7


@pytest.mark.parametrize("b", [1, 5, 8])
@pytest.mark.parametrize(("dtype", "atol"), [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_identity_normal_on_zeros(b: int, dtype: torch.dtype, atol: float) -> None:
    flow = Flow(Compose(), StandardNormal((3, 4, 4))).to(dtype)
    y = torch.zeros(2, 3, 4, 4, dtype=dtype)
    bpd = flow.bpd(y, n_bits=b, dequantize=False)
    assert bpd.shape == (2,) and bpd.dtype == dtype
    torch.testing.assert_close(
        bpd, torch.full((2,), b + HALF_LOG2_2PI, dtype=dtype), atol=atol, rtol=0
    )


@pytest.mark.parametrize(("dtype", "atol"), [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_logit_logistic_is_exactly_b(dtype: torch.dtype, atol: float) -> None:
    flow = Flow(LogitTransform(0.0), Logistic((2, 3, 3))).to(dtype)
    y = torch.rand(5, 2, 3, 3, generator=_gen(1), dtype=dtype) * 0.98 + 0.01
    bpd = flow.bpd(y, n_bits=8, dequantize=False)
    torch.testing.assert_close(bpd, torch.full((5,), 8.0, dtype=dtype), atol=atol, rtol=0)
    # Integer pixels with dequantisation: still exactly b, whatever the noise.
    x_int = torch.randint(0, 32, (5, 2, 3, 3), generator=_gen(2))
    bpd5 = (
        Flow(LogitTransform(0.0), Logistic((2, 3, 3)))
        .double()
        .bpd(x_int, n_bits=5, generator=_gen(3))
    )
    torch.testing.assert_close(bpd5, torch.full((5,), 5.0, dtype=torch.float64), atol=1e-12, rtol=0)
    # n_levels = 17 (sklearn digits): log2(17) bits.
    bpd17 = flow.bpd(y, n_levels=17, dequantize=False)
    torch.testing.assert_close(
        bpd17, torch.full((5,), math.log2(17), dtype=dtype), atol=atol, rtol=0
    )


def test_elementwise_affine_gaussian() -> None:
    g = _gen(4)
    d = 6
    a = torch.rand(d, generator=g, dtype=torch.float64) + 0.5
    c = torch.randn(d, generator=g, dtype=torch.float64)
    flow = Flow(_ElementwiseAffine(a, c), StandardNormal(d)).double()
    y = torch.rand(7, d, generator=g, dtype=torch.float64)
    # z = a·y + c ~ N(0, 1)  ⇔  y ~ N(−c/a, 1/a)
    log_p = Normal(-c / a, 1 / a).log_prob(y).sum(1)
    torch.testing.assert_close(flow.log_prob(y), log_p, atol=1e-12, rtol=0)
    expected = -log_p / (d * math.log(2)) + 8
    torch.testing.assert_close(
        flow.bpd(y, n_bits=8, dequantize=False), expected, atol=1e-12, rtol=0
    )


def test_range_consistency() -> None:
    g = _gen(5)
    d, b = 5, 8
    a = torch.rand(d, generator=g, dtype=torch.float64) + 0.5
    c = torch.randn(d, generator=g, dtype=torch.float64)
    flow01 = Flow(_ElementwiseAffine(a, c), StandardNormal(d)).double()
    to01 = _ElementwiseAffine(
        torch.full((d,), 0.5, dtype=torch.float64), torch.full((d,), 0.5, dtype=torch.float64)
    )
    flow_pm = Flow(Compose(to01, _ElementwiseAffine(a, c)), StandardNormal(d)).double()
    y = torch.rand(4, d, generator=g, dtype=torch.float64)
    y_pm = 2 * y - 1
    bpd01 = flow01.bpd(y, n_bits=b, dequantize=False)
    bpd_pm = flow_pm.bpd(y_pm, n_bits=b, data_range=(-1.0, 1.0), dequantize=False)
    torch.testing.assert_close(bpd_pm, bpd01, atol=1e-12, rtol=0)
    # Su's convention (no dequantisation constant) is off by exactly b − 1 bits/dim.
    su_loss = -flow_pm.log_prob(y_pm) / (d * math.log(2))
    torch.testing.assert_close(su_loss + (b - 1), bpd_pm, atol=1e-12, rtol=0)
    # The same integers dequantised onto either range with the same noise give the same bpd.
    x_int = torch.randint(0, 256, (4, d), generator=g)
    bq01 = flow01.bpd(x_int, n_bits=b, generator=_gen(9))
    bqpm = flow_pm.bpd(x_int, n_bits=b, data_range=(-1.0, 1.0), generator=_gen(9))
    torch.testing.assert_close(bqpm, bq01, atol=1e-12, rtol=0)


def test_bits_per_dim_formula() -> None:
    log_p = torch.tensor([-100.0, 3.0], dtype=torch.float64)
    out = bits_per_dim(log_p, num_dims=10, n_levels=256, data_range=(-1.0, 1.0))
    expected = -(log_p - 10 * math.log(128)) / (10 * math.log(2))
    torch.testing.assert_close(out, expected, atol=1e-12, rtol=0)
    with pytest.raises(ValueError, match="log_p_y"):
        bits_per_dim(log_p[:, None], num_dims=10, n_levels=256)
    with pytest.raises(ValueError, match="num_dims"):
        bits_per_dim(log_p, num_dims=0, n_levels=256)
    with pytest.raises(ValueError, match="n_levels"):
        bits_per_dim(log_p, num_dims=3, n_levels=1)
    with pytest.raises(ValueError, match="data_range"):
        bits_per_dim(log_p, num_dims=3, n_levels=4, data_range=(1.0, 1.0))


def test_dequantize_bins_and_generator() -> None:
    x = torch.randint(0, 17, (200, 8), generator=_gen(6))
    y = dequantize(x, n_levels=17, generator=_gen(7))
    assert y.dtype == torch.float32 and y.shape == x.shape
    assert bool((y >= x / 17).all()) and bool((y < (x + 1) / 17).all())
    assert torch.equal(torch.floor(y * 17).long(), x)
    assert torch.equal(y, dequantize(x, n_levels=17, generator=_gen(7)))
    ypm = dequantize(x, n_levels=17, generator=_gen(7), data_range=(-1.0, 1.0))
    torch.testing.assert_close(ypm, 2 * y - 1, atol=1e-6, rtol=0)
    # The noise is uniform over the bin: mean offset ≈ 1/2 bin.
    torch.testing.assert_close((y * 17 - x).mean(), torch.tensor(0.5), atol=0.02, rtol=0)
    y64 = dequantize(x, n_levels=17, dtype=torch.float64)
    assert y64.dtype == torch.float64


def test_dequantize_bad_input() -> None:
    with pytest.raises(ValueError, match="x_int"):
        dequantize(torch.tensor([[0.5]]), n_levels=4)
    with pytest.raises(ValueError, match="x_int"):
        dequantize(torch.tensor([[4]]), n_levels=4)
    with pytest.raises(ValueError, match="x_int"):
        dequantize(torch.tensor([[-1]]), n_levels=4)
    with pytest.raises(ValueError, match="n_levels"):
        dequantize(torch.tensor([[1]]), n_levels=1)


def test_resolve_levels_and_reduce_bits() -> None:
    assert resolve_levels(n_bits=5) == 32
    assert resolve_levels(n_levels=17) == 17
    with pytest.raises(ValueError, match="n_bits"):
        resolve_levels()
    with pytest.raises(ValueError, match="n_bits"):
        resolve_levels(n_bits=3, n_levels=8)
    x = torch.tensor([0, 7, 8, 255])
    assert torch.equal(reduce_bits(x, n_bits=5), torch.tensor([0, 0, 1, 31]))
    with pytest.raises(ValueError, match="n_bits"):
        reduce_bits(x, n_bits=9)
    flow = Flow(Compose(), StandardNormal(2))
    with pytest.raises(ValueError, match="n_bits"):
        flow.bpd(torch.zeros(1, 2), dequantize=False)


def test_dequantize_stays_below_the_top_of_the_range() -> None:
    """issue 18 probe: x + u rounded up to n, so y = hi exactly, outside the documented [lo, hi).

    With 2^20 levels the fp32 ulp at n − 1 is 1/8, so x + u rounds to n for about 1 draw in 16.
    """
    n = 2**20
    x = torch.full((4096,), n - 1)
    y = dequantize(x, n_levels=n, generator=torch.Generator().manual_seed(0))
    assert y.max() < 1.0 and y.min() >= (n - 1) / n - 1e-6
    y = dequantize(
        x, n_levels=n, data_range=(-1.0, 1.0), generator=torch.Generator().manual_seed(1)
    )
    assert y.max() < 1.0
    y8 = dequantize(torch.full((4096,), 255), n_levels=256, dtype=torch.bfloat16)
    assert y8.dtype == torch.bfloat16 and y8.max() < 1.0


def test_bpd_of_an_empty_batch() -> None:
    """issue 18 probe: bpd and log_prob of an empty batch crashed (y[0], reshape of 0 elements)."""
    flow = Flow(Compose(LogitTransform(0.05)), StandardNormal(3))
    bpd = flow.bpd(torch.zeros(0, 3, dtype=torch.long), n_bits=3)
    assert bpd.shape == (0,)
    assert flow.log_prob(torch.zeros(0, 3)).shape == (0,)
