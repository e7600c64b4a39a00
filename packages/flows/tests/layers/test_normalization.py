"""ActNorm, AffineBatchNorm and DiagonalScale (spec §2.1, §2.4 ActNorm, §4 tests #1–3 and #6)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.autograd.functional import jacobian

from kexue.flows.layers.normalization import ActNorm, AffineBatchNorm, DiagonalScale


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _jacobian_logdet(layer, x1: torch.Tensor) -> torch.Tensor:
    """ln|det ∂y/∂x| of one sample by brute force: autograd Jacobian (D×D) and slogdet."""
    shape = x1.shape

    def f(v: torch.Tensor) -> torch.Tensor:
        return layer(v.view(shape))[0].flatten()

    jac = jacobian(f, x1.flatten())
    return torch.linalg.slogdet(jac).logabsdet


def _images(shape=(6, 3, 4, 5), dtype=torch.float64, seed=0) -> torch.Tensor:
    g = _gen(seed)
    x = torch.randn(shape, generator=g, dtype=dtype)
    # per-channel offsets and scales so that the init has something to undo
    c = shape[1]
    return x * torch.linspace(0.5, 3.0, c, dtype=dtype).view(1, c, *([1] * (len(shape) - 2))) + (
        torch.arange(c, dtype=dtype).view(1, c, *([1] * (len(shape) - 2)))
    )


# ----------------------------------------------------------------------------------- ActNorm


@pytest.mark.parametrize("shape", [(6, 3, 4, 5), (40, 7)])
def test_actnorm_data_init_gives_zero_mean_unit_std_float64(shape) -> None:
    x = _images(shape)
    layer = ActNorm(shape[1]).double()
    y, _ = layer(x)
    dims = [0, *range(2, x.dim())]
    std_x = x.std(dim=dims, unbiased=False)
    torch.testing.assert_close(
        y.mean(dim=dims), torch.zeros(shape[1], dtype=x.dtype), atol=1e-10, rtol=0
    )
    # population std of y is std/(std + 1e-6) exactly (openai/glow's +1e-6)
    torch.testing.assert_close(
        y.std(dim=dims, unbiased=False), std_x / (std_x + 1e-6), atol=1e-10, rtol=0
    )
    torch.testing.assert_close(layer.bias, -x.mean(dim=dims), atol=1e-12, rtol=0)
    assert bool(layer.initialized)


@settings(max_examples=20, deadline=None)
@given(
    b=st.integers(2, 5),
    c=st.integers(1, 4),
    spatial=st.sampled_from([(), (1, 1), (2, 3), (5,)]),
    seed=st.integers(0, 2**16),
)
def test_actnorm_init_property(b: int, c: int, spatial: tuple, seed: int) -> None:
    x = 3.0 * torch.randn(b, c, *spatial, generator=_gen(seed), dtype=torch.float64) - 2.0
    layer = ActNorm(c).double()
    y, ld = layer(x)
    dims = [0, *range(2, x.dim())]
    std = x.std(dim=dims, unbiased=False)
    torch.testing.assert_close(y.mean(dim=dims), torch.zeros(c, dtype=x.dtype), atol=1e-10, rtol=0)
    torch.testing.assert_close(
        y.std(dim=dims, unbiased=False), std / (std + 1e-6), atol=1e-10, rtol=0
    )
    torch.testing.assert_close(layer.inverse(y)[0], x, atol=1e-10, rtol=0)
    assert ld.shape == (b,)


def test_actnorm_data_init_float32_mean_atol() -> None:
    x = _images((16, 4, 6, 6), dtype=torch.float32)
    y, _ = ActNorm(4)(x)
    torch.testing.assert_close(y.mean(dim=(0, 2, 3)), torch.zeros(4), atol=1e-6, rtol=0)
    torch.testing.assert_close(
        y.std(dim=(0, 2, 3), unbiased=False), torch.ones(4), atol=1e-5, rtol=0
    )


def test_actnorm_init_runs_once_and_only_in_training() -> None:
    x = _images()
    layer = ActNorm(3).double()
    layer.eval()
    y, ld = layer(x)  # eval: no init, identity
    torch.testing.assert_close(y, x, atol=0, rtol=0)
    torch.testing.assert_close(ld, torch.zeros(6, dtype=torch.float64), atol=0, rtol=0)
    assert not bool(layer.initialized)
    layer.train()
    layer(x)
    b, logs = layer.bias.detach().clone(), layer.logs.detach().clone()
    layer(3.0 * x + 1.0)  # a second batch must not re-initialise
    torch.testing.assert_close(layer.bias.detach(), b, atol=0, rtol=0)
    torch.testing.assert_close(layer.logs.detach(), logs, atol=0, rtol=0)


def test_actnorm_logscale_factor_stores_divided_logs() -> None:
    x = _images()
    a1, a3 = ActNorm(3).double(), ActNorm(3, logscale_factor=3.0).double()
    y1, ld1 = a1(x)
    y3, ld3 = a3(x)
    torch.testing.assert_close(y3, y1, atol=1e-12, rtol=0)
    torch.testing.assert_close(ld3, ld1, atol=1e-12, rtol=0)
    torch.testing.assert_close(a3.logs_param * 3.0, a1.logs_param, atol=1e-12, rtol=0)


@pytest.mark.parametrize("shape", [(4, 3, 3, 2), (5, 6)])
def test_actnorm_round_trip_and_jacobian_logdet(shape) -> None:
    x = _images(shape, seed=1)
    layer = ActNorm(shape[1]).double()
    layer(x)  # data init
    with torch.no_grad():  # move away from the init so logs is not tied to the data
        layer.logs_param.add_(torch.linspace(-0.3, 0.4, shape[1], dtype=torch.float64))
    y, ld = layer(x)
    x_back, ld_inv = layer.inverse(y)
    torch.testing.assert_close(x_back, x, atol=1e-10, rtol=0)
    torch.testing.assert_close(ld + ld_inv, torch.zeros_like(ld), atol=1e-10, rtol=0)
    expected = _jacobian_logdet(layer, x[:1])
    torch.testing.assert_close(ld[0], expected, atol=1e-8, rtol=0)
    spatial = math.prod(shape[2:])
    torch.testing.assert_close(ld, layer.logs.sum().expand(shape[0]) * spatial, atol=1e-12, rtol=0)


def test_actnorm_zero_std_channel_raises() -> None:
    x = _images()
    x[:, 1] = 0.25  # constant channel (FrEIA#121)
    layer = ActNorm(3).double()
    with pytest.raises(ValueError, match=r"x: channel\(s\) \[1\] are constant"):
        layer(x)
    assert not bool(layer.initialized)
    # a single vector sample has zero std in every channel
    with pytest.raises(ValueError, match="x"):
        ActNorm(4)(torch.randn(1, 4, generator=_gen()))


def test_actnorm_zero_init_is_identity_without_data_step() -> None:
    x = _images()
    layer = ActNorm(3, init="zero").double()
    y, ld = layer(x)
    torch.testing.assert_close(y, x, atol=0, rtol=0)
    torch.testing.assert_close(ld, torch.zeros(6, dtype=torch.float64), atol=0, rtol=0)
    assert bool(layer.initialized)


def test_actnorm_state_dict_round_trip_keeps_init() -> None:
    x = _images()
    layer = ActNorm(3).double()
    layer(x)
    state = layer.state_dict()
    assert "initialized" in state
    fresh = ActNorm(3).double()
    fresh.load_state_dict(state)
    assert bool(fresh.initialized)
    y_ref, ld_ref = layer(x * 2.0)
    y, ld = fresh(x * 2.0)  # training forward on new data must not re-initialise
    torch.testing.assert_close(y, y_ref, atol=0, rtol=0)
    torch.testing.assert_close(ld, ld_ref, atol=0, rtol=0)


def test_actnorm_bad_inputs() -> None:
    with pytest.raises(ValueError, match="x"):
        ActNorm(3)(torch.randn(2, 4, 5, 5))
    with pytest.raises(ValueError, match="y"):
        ActNorm(3, init="zero").inverse(torch.randn(2, 4))
    x = _images(dtype=torch.float32)
    x[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="x contains NaN"):
        ActNorm(3)(x)
    with pytest.raises(ValueError, match="init"):
        ActNorm(3, init="ones")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="logscale_factor"):
        ActNorm(3, logscale_factor=0.0)
    with pytest.raises(ValueError, match="sync"):
        ActNorm(3, sync="always")  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="sync=True"):
        ActNorm(3, sync=True)(_images(dtype=torch.float32))


def test_actnorm_logdet_dtype_float32_for_half_storage() -> None:
    layer = ActNorm(3, init="zero")
    _, ld = layer(torch.randn(2, 3, 2, 2, dtype=torch.bfloat16))
    assert ld.dtype == torch.float32 and ld.shape == (2,)


# --------------------------------------------------------------------------- AffineBatchNorm


def test_affine_batchnorm_training_normalises_and_updates_running_stats() -> None:
    x = _images((8, 3, 4, 4))
    layer = AffineBatchNorm(3, momentum=0.25).double()
    with torch.no_grad():
        layer.log_gamma.copy_(torch.tensor([0.0, 0.5, -0.3]))
        layer.beta.copy_(torch.tensor([1.0, -2.0, 0.5]))
    y, ld = layer(x)
    mean = x.mean(dim=(0, 2, 3))
    var = x.var(dim=(0, 2, 3), unbiased=False)
    gamma = layer.log_gamma.detach().exp()
    torch.testing.assert_close(y.mean(dim=(0, 2, 3)), layer.beta.detach(), atol=1e-10, rtol=0)
    torch.testing.assert_close(
        y.std(dim=(0, 2, 3), unbiased=False),
        gamma * (var / (var + 1e-5)).sqrt(),
        atol=1e-10,
        rtol=0,
    )
    expected = 16 * (layer.log_gamma.detach() - 0.5 * torch.log(var + 1e-5)).sum()
    torch.testing.assert_close(ld, expected.expand(8), atol=1e-10, rtol=0)
    n = 8 * 16
    torch.testing.assert_close(layer.running_mean, 0.25 * mean, atol=1e-12, rtol=0)
    torch.testing.assert_close(
        layer.running_var, 0.75 + 0.25 * var * n / (n - 1), atol=1e-12, rtol=0
    )


@pytest.mark.parametrize("shape", [(4, 3, 2, 3), (10, 5)])
def test_affine_batchnorm_eval_round_trip_and_jacobian(shape) -> None:
    x = _images(shape, seed=2)
    layer = AffineBatchNorm(shape[1]).double()
    with torch.no_grad():
        layer.log_gamma.copy_(torch.linspace(-0.5, 0.5, shape[1]))
        layer.beta.copy_(torch.linspace(1.0, -1.0, shape[1]))
    for _ in range(3):
        layer(x)  # running statistics move away from (0, 1)
    layer.eval()
    y, ld = layer(x)
    x_back, ld_inv = layer.inverse(y)
    torch.testing.assert_close(x_back, x, atol=1e-10, rtol=0)
    torch.testing.assert_close(ld + ld_inv, torch.zeros_like(ld), atol=1e-10, rtol=0)
    torch.testing.assert_close(ld[0], _jacobian_logdet(layer, x[:1]), atol=1e-8, rtol=0)


def test_affine_batchnorm_bad_inputs() -> None:
    with pytest.raises(ValueError, match="x"):
        AffineBatchNorm(3)(torch.randn(4, 2, 3, 3))
    with pytest.raises(ValueError, match="x"):
        AffineBatchNorm(3)(torch.randn(1, 3))  # one value per channel in training
    with pytest.raises(ValueError, match="momentum"):
        AffineBatchNorm(3, momentum=0.0)
    with pytest.raises(ValueError, match="eps"):
        AffineBatchNorm(3, eps=0.0)


# ----------------------------------------------------------------------------- DiagonalScale


@pytest.mark.parametrize(
    ("scale_shape", "x_shape", "spatial"),
    [((6,), (5, 6), 1), ((3,), (4, 3, 2, 2), 4), ((2, 3, 3), (4, 2, 3, 3), 1)],
)
def test_diagonal_scale_round_trip_and_logdet(scale_shape, x_shape, spatial) -> None:
    layer = DiagonalScale(scale_shape).double()
    with torch.no_grad():
        layer.s.copy_(torch.randn(scale_shape, generator=_gen(3), dtype=torch.float64))
    x = torch.randn(x_shape, generator=_gen(4), dtype=torch.float64)
    y, ld = layer(x)
    x_back, ld_inv = layer.inverse(y)
    torch.testing.assert_close(x_back, x, atol=1e-10, rtol=0)
    torch.testing.assert_close(ld, (layer.s.sum() * spatial).expand(x_shape[0]), atol=1e-12, rtol=0)
    torch.testing.assert_close(ld_inv, -ld, atol=0, rtol=0)
    torch.testing.assert_close(ld[0], _jacobian_logdet(layer, x[:1]), atol=1e-8, rtol=0)


def test_diagonal_scale_glorot_normal_init() -> None:
    d = 784
    layer = DiagonalScale(d, init="glorot_normal", generator=_gen(5))
    std = math.sqrt(2.0 / (1 + d))
    assert layer.s.abs().max() <= 2 * std + 1e-7
    # truncated at ±2σ: the std of the truncated normal is 0.8796·σ
    torch.testing.assert_close(layer.s.std().item(), 0.8796 * std, atol=0.06 * std, rtol=0)
    again = DiagonalScale(d, init="glorot_normal", generator=_gen(5))
    torch.testing.assert_close(again.s, layer.s, atol=0, rtol=0)
    torch.testing.assert_close(DiagonalScale(d).s, torch.zeros(d), atol=0, rtol=0)


def test_diagonal_scale_bad_inputs() -> None:
    with pytest.raises(ValueError, match="x"):
        DiagonalScale(6)(torch.randn(2, 5))
    with pytest.raises(ValueError, match="y"):
        DiagonalScale((2, 3, 3)).inverse(torch.randn(2, 2, 3, 4))
    with pytest.raises(ValueError, match="shape"):
        DiagonalScale((0,))
    with pytest.raises(ValueError, match="init"):
        DiagonalScale(3, init="ones")  # type: ignore[arg-type]
