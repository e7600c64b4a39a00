"""Tests for kexue.flows.layers.logit: closed-form values, Jacobian, data range, bad input."""

from __future__ import annotations

import math

import pytest
import torch
from _flowcheck import check_invertible, check_logdet_vs_jacobian, gen

from kexue.flows.layers.logit import LogitTransform

# ----------------------------------------------------------------------------- logit


@pytest.mark.parametrize("alpha", [0.0, 0.05, 1e-6])
@pytest.mark.parametrize(
    ("dtype", "atol", "jac_atol"), [(torch.float64, 1e-10, 1e-8), (torch.float32, 1e-4, 1e-4)]
)
def test_logit_invertible_and_jacobian(
    alpha: float, dtype: torch.dtype, atol: float, jac_atol: float
) -> None:
    layer = LogitTransform(alpha)
    x = torch.rand(4, 2, 3, 3, generator=gen(11), dtype=dtype) * 0.9 + 0.05
    check_invertible(layer, x, atol)
    check_logdet_vs_jacobian(layer, x, jac_atol)


def test_logit_closed_form_values() -> None:
    alpha = 0.05
    x = torch.tensor([[0.25, 0.5]], dtype=torch.float64)
    z, ld = LogitTransform(alpha)(x)
    s = alpha + (1 - 2 * alpha) * x
    torch.testing.assert_close(z, torch.log(s / (1 - s)), atol=1e-14, rtol=0)
    expected = sum(math.log(0.9) - math.log(v * (1 - v)) for v in s[0].tolist())
    torch.testing.assert_close(
        ld, torch.tensor([expected], dtype=torch.float64), atol=1e-12, rtol=0
    )


def test_logit_data_range() -> None:
    x01 = torch.rand(3, 5, generator=gen(12), dtype=torch.float64) * 0.98 + 0.01
    xpm = 2 * x01 - 1
    z01, ld01 = LogitTransform(0.05)(x01)
    zpm, ldpm = LogitTransform(0.05, data_range=(-1.0, 1.0))(xpm)
    torch.testing.assert_close(zpm, z01, atol=1e-12, rtol=0)
    torch.testing.assert_close(ldpm, ld01 - 5 * math.log(2.0), atol=1e-12, rtol=0)
    check_invertible(LogitTransform(0.05, data_range=(-1.0, 1.0)), xpm, 1e-10)
    check_logdet_vs_jacobian(LogitTransform(0.05, data_range=(-1.0, 1.0)), xpm, 1e-8)


def test_logit_bad_input() -> None:
    with pytest.raises(ValueError, match="alpha"):
        LogitTransform(0.5)
    with pytest.raises(ValueError, match="data_range"):
        LogitTransform(0.1, data_range=(1.0, 0.0))
    with pytest.raises(ValueError, match="x"):
        LogitTransform(0.05)(torch.tensor([[0.5, 1.5]]))
    with pytest.raises(ValueError, match="x"):
        LogitTransform(0.05)(torch.tensor([[0.5, float("nan")]]))


def test_logit_alpha_zero_rejects_the_range_ends() -> None:
    """issue 18 probe: the plain logit (alpha=0) mapped the accepted inputs 0 and 1 to ∓inf."""
    layer = LogitTransform(0.0)
    for bad in (0.0, 1.0):
        with pytest.raises(ValueError, match="open range"):
            layer(torch.tensor([[0.5, bad]]))
    x = torch.tensor([[1e-6, 0.5, 1 - 1e-6]], dtype=torch.float64)
    z, ld = layer(x)
    assert torch.isfinite(z).all() and torch.isfinite(ld).all()
    torch.testing.assert_close(layer.inverse(z)[0], x, atol=1e-12, rtol=0)
    # alpha > 0 keeps accepting the closed range, with finite outputs
    z, ld = LogitTransform(1e-6)(torch.tensor([[0.0, 1.0]]))
    assert torch.isfinite(z).all() and torch.isfinite(ld).all()


def test_logit_empty_batch() -> None:
    z, ld = LogitTransform(0.05)(torch.zeros(0, 3))
    assert z.shape == (0, 3) and ld.shape == (0,)
    x, ld = LogitTransform(0.05).inverse(torch.zeros(0, 3))
    assert x.shape == (0, 3) and ld.shape == (0,)
