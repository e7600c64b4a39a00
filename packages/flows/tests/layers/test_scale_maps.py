"""Scale maps: closed forms, bounds, finiteness up to |ĥ| = 1e4, log-scale = log of the derivative."""

from __future__ import annotations

import math

import pytest
import torch

from kexue.flows.layers.scale_maps import (
    SCALE_MAPS,
    apply_scale_map,
    get_scale_map,
    log_scale_derivative,
)

BOUNDED = ["tanh_w", "sigmoid2", "sigmoid2_eps", "atan_clamp", "soft_clip"]
GRID = [-1e4, -1e3, -60.0, -3.0, -0.5, 0.0, 0.7, 4.0, 60.0, 1e3, 1e4]


def test_registry_has_the_six_maps() -> None:
    assert set(SCALE_MAPS) == {
        "tanh_w",
        "sigmoid2",
        "sigmoid2_eps",
        "atan_clamp",
        "soft_clip",
        "exp",
    }
    assert get_scale_map("sigmoid2") is SCALE_MAPS["sigmoid2"]


def test_bad_names_and_weights_raise() -> None:
    with pytest.raises(ValueError, match="scale_map"):
        get_scale_map("softplus")
    with pytest.raises(ValueError, match="scale_weight"):
        apply_scale_map("sigmoid2", torch.zeros(3), weight=torch.ones(3))


@pytest.mark.parametrize("name", BOUNDED)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_bounded_maps_finite_up_to_1e4(name: str, dtype: torch.dtype) -> None:
    h = torch.tensor(GRID, dtype=dtype)
    scale, log_scale = apply_scale_map(name, h)
    assert torch.isfinite(scale).all() and torch.isfinite(log_scale).all()
    assert (scale >= 0).all()


def test_exp_is_unbounded_as_documented() -> None:
    scale, log_scale = apply_scale_map("exp", torch.tensor([1e4, -3.0]))
    assert torch.isinf(scale[0]) and log_scale[0] == 1e4
    torch.testing.assert_close(scale[1], torch.tensor(math.exp(-3.0)), rtol=1e-6, atol=0)


def test_closed_forms() -> None:
    h = torch.tensor([0.0, 1.5, -2.0], dtype=torch.float64)
    s, ls = apply_scale_map("sigmoid2", h)
    torch.testing.assert_close(s, 1 / (1 + torch.exp(-(h + 2))), rtol=1e-14, atol=0)
    assert abs(s[0].item() - 0.8807970779778823) < 1e-15  # σ(2), the Glow init scale
    s, ls = apply_scale_map("sigmoid2_eps", h)
    torch.testing.assert_close(s, 1 / (1 + torch.exp(-(h + 2))) + 1e-3, rtol=1e-14, atol=0)
    _, ls = apply_scale_map("atan_clamp", h)
    torch.testing.assert_close(ls, 4 / math.pi * torch.atan(h), rtol=1e-14, atol=0)
    _, ls = apply_scale_map("soft_clip", h)
    torch.testing.assert_close(ls, h / (1 + h.abs() / -math.log(1e-3)), rtol=1e-14, atol=0)
    w = torch.tensor([0.5, 2.0, 3.0], dtype=torch.float64)
    s, ls = apply_scale_map("tanh_w", h, weight=w)
    torch.testing.assert_close(ls, w * torch.tanh(h), rtol=1e-14, atol=0)
    torch.testing.assert_close(s, torch.exp(w * torch.tanh(h)), rtol=1e-14, atol=0)


@pytest.mark.parametrize(("name", "bound"), [("atan_clamp", 2.0), ("soft_clip", 6.907755278982137)])
def test_soft_bounds(name: str, bound: float) -> None:
    _, ls = apply_scale_map(name, torch.tensor([-1e4, 1e4], dtype=torch.float64))
    assert (ls.abs() < bound).all()
    assert (ls.abs() > 0.99 * bound).all()


@pytest.mark.parametrize("name", [*BOUNDED, "exp"])
def test_log_scale_is_log_derivative(name: str) -> None:
    """d(x·scale(ĥ))/dx by autograd equals scale, whose log is the returned log-scale."""
    grid = GRID if name != "exp" else [-60.0, -3.0, 0.0, 4.0, 60.0]
    h = torch.tensor(grid, dtype=torch.float64)
    x = torch.randn(h.shape, dtype=torch.float64, requires_grad=True)
    weight = torch.full_like(h, 1.7) if name == "tanh_w" else None
    scale, log_scale = apply_scale_map(name, h, weight=weight)
    (deriv,) = torch.autograd.grad((x * scale).sum(), x)
    assert torch.isfinite(log_scale).all()
    pos = deriv > 1e-300  # sigmoid2's scale underflows for ĥ ≲ −745 in fp64; its log does not
    torch.testing.assert_close(torch.log(deriv[pos]), log_scale[pos], rtol=1e-12, atol=1e-12)
    if name == "sigmoid2":
        torch.testing.assert_close(log_scale[~pos], h[~pos] + 2.0, rtol=1e-12, atol=0)


@pytest.mark.parametrize("name", [*BOUNDED, "exp"])
def test_log_scale_derivative_matches_autograd(name: str) -> None:
    h = torch.linspace(-8, 8, 33, dtype=torch.float64, requires_grad=True)
    weight = torch.linspace(0.5, 2.0, 33, dtype=torch.float64) if name == "tanh_w" else None
    _, ls = apply_scale_map(name, h, weight=weight)
    (auto,) = torch.autograd.grad(ls.sum(), h)
    dsdh, dsdw = log_scale_derivative(name, h.detach(), weight=weight)
    torch.testing.assert_close(dsdh, auto, rtol=1e-12, atol=1e-14)
    if name == "tanh_w":
        assert dsdw is not None
        torch.testing.assert_close(dsdw, torch.tanh(h.detach()), rtol=1e-14, atol=0)
    else:
        assert dsdw is None
