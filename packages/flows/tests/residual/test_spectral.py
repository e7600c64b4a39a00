"""Spectral normalisation: power iteration on the operator, rescaling rule, state and freezing."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from kexue.flows.residual.spectral import (
    SpectralNormConv2d,
    SpectralNormLinear,
    frozen_spectral_norm,
)

DT = torch.float64


def _conv_operator_matrix(
    layer: SpectralNormConv2d, input_shape: tuple[int, int, int]
) -> torch.Tensor:
    """Explicit (D_out, D_in) matrix of x ↦ conv2d(x, W̃) (no bias), column by column."""
    d_in = input_shape[0] * input_shape[1] * input_shape[2]
    basis = torch.eye(d_in, dtype=DT).reshape(d_in, *input_shape)
    with torch.no_grad():
        w = layer.normalized_weight()
        out = F.conv2d(basis, w, None, layer.stride, layer.padding)
        raw = F.conv2d(basis, layer.weight, None, layer.stride, layer.padding)
    return out.reshape(d_in, -1).T, raw.reshape(d_in, -1).T


def test_linear_sigma_matches_matrix_norm_and_rescales_to_coeff() -> None:
    gen = torch.Generator().manual_seed(1)
    layer = SpectralNormLinear(6, 5, coeff=0.9, n_power_iter=200, generator=gen).to(DT)
    with torch.no_grad():
        layer.weight.mul_(4.0)
    layer.train()
    layer(torch.randn(3, 6, dtype=DT, generator=gen))
    true_sigma = torch.linalg.matrix_norm(layer.weight.detach(), ord=2)
    torch.testing.assert_close(layer.spectral_norm_estimate(), true_sigma, rtol=1e-9, atol=0)
    w_norm = torch.linalg.matrix_norm(layer.normalized_weight().detach(), ord=2)
    torch.testing.assert_close(w_norm, torch.tensor(0.9, dtype=DT), rtol=1e-9, atol=0)


def test_linear_not_rescaled_when_sigma_below_coeff() -> None:
    gen = torch.Generator().manual_seed(2)
    layer = SpectralNormLinear(4, 4, coeff=0.97, n_power_iter=100, generator=gen).to(DT)
    with torch.no_grad():
        layer.weight.mul_(0.3 / torch.linalg.matrix_norm(layer.weight, ord=2))
    layer(torch.randn(2, 4, dtype=DT, generator=gen))
    torch.testing.assert_close(layer.normalized_weight(), layer.weight, rtol=0, atol=0)
    x = torch.randn(5, 4, dtype=DT, generator=gen)
    torch.testing.assert_close(layer(x), F.linear(x, layer.weight, layer.bias), rtol=0, atol=1e-15)


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("kernel_size", [3, 1])
def test_conv_power_iteration_on_operator_matches_explicit_matrix(
    stride: int, kernel_size: int
) -> None:
    gen = torch.Generator().manual_seed(3)
    shape = (2, 5, 4)
    layer = SpectralNormConv2d(
        2,
        3,
        kernel_size,
        stride=stride,
        coeff=0.8,
        n_power_iter=300,
        input_shape=shape,
        generator=gen,
    ).to(DT)
    with torch.no_grad():
        layer.weight.mul_(5.0)
    layer.train()
    layer(torch.randn(1, *shape, dtype=DT, generator=gen))
    normed, raw = _conv_operator_matrix(layer, shape)
    true_sigma = torch.linalg.matrix_norm(raw, ord=2)
    sigma_hat = layer.spectral_norm_estimate()
    # the Rayleigh quotient of unit vectors never overestimates σ; 300 steps get within 1e-5
    assert sigma_hat <= true_sigma * (1 + 1e-12)
    torch.testing.assert_close(sigma_hat, true_sigma, rtol=1e-5, atol=0)
    op_norm = torch.linalg.matrix_norm(normed, ord=2)
    assert op_norm <= 0.8 * (1 + 1e-5)
    torch.testing.assert_close(op_norm, torch.tensor(0.8, dtype=DT), rtol=1e-5, atol=0)


def test_conv_kernel_reshape_norm_is_not_the_operator_norm() -> None:
    # the reason for iterating on the operator: the reshaped kernel's norm differs
    gen = torch.Generator().manual_seed(4)
    shape = (2, 6, 6)
    layer = SpectralNormConv2d(2, 2, 3, coeff=0.9, input_shape=shape, generator=gen).to(DT)
    _, raw = _conv_operator_matrix(layer, shape)
    kernel_norm = torch.linalg.matrix_norm(layer.weight.detach().reshape(2, -1), ord=2)
    op_norm = torch.linalg.matrix_norm(raw, ord=2)
    assert abs(op_norm - kernel_norm) > 0.05 * op_norm


def test_conv_lazy_vectors_follow_state_dict_and_eval_does_not_advance() -> None:
    gen = torch.Generator().manual_seed(5)
    src = SpectralNormConv2d(3, 4, 3, coeff=0.5, n_power_iter=2, generator=gen).to(DT)
    assert src.input_shape is None
    x = torch.randn(2, 3, 4, 4, dtype=DT, generator=gen)
    src.train()
    src(x)
    assert src.input_shape == (3, 4, 4)
    assert tuple(src.u.shape) == (1, 4, 4, 4)
    dst = SpectralNormConv2d(3, 4, 3, coeff=0.5, generator=torch.Generator().manual_seed(9))
    dst = dst.to(DT)
    dst.load_state_dict(src.state_dict())
    src.eval()
    dst.eval()
    u_before = dst.u.clone()
    torch.testing.assert_close(dst(x), src(x), rtol=0, atol=0)
    torch.testing.assert_close(dst.u, u_before, rtol=0, atol=0)


def test_frozen_context_stops_power_iteration_in_training() -> None:
    gen = torch.Generator().manual_seed(6)
    layer = SpectralNormLinear(3, 3, n_power_iter=3, generator=gen)
    with torch.no_grad():
        layer.u.copy_(torch.tensor([1.0, 0.0, 0.0]))
    x = torch.randn(2, 3, generator=gen)
    with frozen_spectral_norm(layer):
        layer(x)
    torch.testing.assert_close(layer.u, torch.tensor([1.0, 0.0, 0.0]), rtol=0, atol=0)
    layer(x)
    assert not torch.equal(layer.u, torch.tensor([1.0, 0.0, 0.0]))


def test_gradient_flows_through_sigma() -> None:
    # d/dW of sum(W̃ x) with W̃ = c·W/σ(W) (u, v fixed) matches autograd of the closed form
    gen = torch.Generator().manual_seed(7)
    layer = SpectralNormLinear(3, 2, coeff=0.5, bias=False, n_power_iter=0, generator=gen).to(DT)
    with torch.no_grad():
        layer.weight.mul_(10.0)
    x = torch.randn(4, 3, dtype=DT, generator=gen)
    layer(x).sum().backward()
    w = layer.weight.detach().clone().requires_grad_(True)
    sigma = layer.u @ w @ layer.v
    ((0.5 * w / sigma) @ x.T).sum().backward()
    torch.testing.assert_close(layer.weight.grad, w.grad, rtol=1e-12, atol=1e-12)


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match="coeff"):
        SpectralNormLinear(3, 3, coeff=0.0)
    with pytest.raises(ValueError, match="n_power_iter"):
        SpectralNormLinear(3, 3, n_power_iter=-1)
    with pytest.raises(ValueError, match="x"):
        SpectralNormLinear(3, 3)(torch.randn(2, 4))
    conv = SpectralNormConv2d(2, 2, 3)
    with pytest.raises(ValueError, match="x"):
        conv(torch.randn(2, 3, 4, 4))
    with pytest.raises(ValueError, match="input_shape"):
        SpectralNormConv2d(2, 2, 3, input_shape=(3, 4, 4))
    with pytest.raises(ValueError, match="input_shape"):
        conv.power_iteration_(1)
