"""Tests for the BigGAN orthogonal regulariser and SOM (spec §2.17, §3.1 "Ortho")."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.testing import assert_close

from kexue.gan_losses.regularizers import (
    inject_orthogonal_gradient_,
    model_orthogonal_regularization,
    orthogonal_regularization,
    som_regularization,
    som_similarity,
)

BETA = 1e-4


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _loop_reference(w: torch.Tensor, beta: float) -> torch.Tensor:
    m = w.reshape(w.shape[0], -1)
    total = torch.zeros((), dtype=w.dtype)
    for i in range(m.shape[0]):
        for j in range(m.shape[0]):
            if i != j:
                total = total + (m[i] @ m[j]) ** 2
    return beta * total


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_orthonormal_rows_give_zero(dtype):
    q, _ = torch.linalg.qr(torch.randn(6, 4, generator=_gen(), dtype=torch.float64))
    w = q.T.to(dtype)  # (4, 6) orthonormal rows
    assert_close(orthogonal_regularization(w), torch.zeros((), dtype=dtype), rtol=0, atol=1e-10)
    # rows of any norms, still mutually orthogonal: still zero (only off-diagonals count)
    scaled = w * torch.tensor([[1.0], [2.0], [3.0], [0.5]], dtype=dtype)
    assert_close(orthogonal_regularization(scaled), torch.zeros((), dtype=dtype), rtol=0, atol=1e-9)


def test_parallel_rows_give_two_beta():
    w = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    assert_close(orthogonal_regularization(w), torch.tensor(2 * BETA), rtol=1e-6, atol=0)
    assert_close(orthogonal_regularization(w, beta=0.5), torch.tensor(1.0), rtol=1e-6, atol=0)


@settings(max_examples=20, deadline=None)
@given(
    out=st.integers(1, 5),
    rest=st.lists(st.integers(1, 3), min_size=1, max_size=3),
    seed=st.integers(0, 1000),
)
def test_equals_pairwise_loop(out, rest, seed):
    w = torch.randn(out, *rest, generator=_gen(seed), dtype=torch.float64)
    assert_close(
        orthogonal_regularization(w, beta=0.3), _loop_reference(w, 0.3), rtol=1e-10, atol=1e-12
    )


def test_injected_gradient_equals_autograd_of_half_r():
    conv = nn.Conv2d(3, 5, 3).double()
    lin = nn.Linear(4, 6).double()
    model = nn.Sequential(conv, nn.Flatten(), lin)
    beta = 0.01
    # autograd of ½R on a copy
    ref = {}
    for name, p in model.named_parameters():
        if p.dim() >= 2:
            p_ = p.detach().clone().requires_grad_()
            (g,) = torch.autograd.grad(0.5 * orthogonal_regularization(p_, beta=beta), p_)
            ref[name] = g
    existing = torch.randn_like(conv.weight)
    conv.weight.grad = existing.clone()  # injection adds to an existing grad
    inject_orthogonal_gradient_(model, beta=beta)
    assert_close(conv.weight.grad, existing + ref["0.weight"], rtol=1e-12, atol=1e-14)
    assert_close(lin.weight.grad, ref["2.weight"], rtol=1e-12, atol=1e-14)  # grad was None
    assert conv.bias.grad is None and lin.bias.grad is None  # vectors skipped


def test_gradient_is_four_beta_gram_w():
    w = torch.randn(4, 7, generator=_gen(1), dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(orthogonal_regularization(w, beta=0.2), w)
    gram = w.detach() @ w.detach().T
    off = gram - torch.diag(torch.diagonal(gram))
    assert_close(g, 4 * 0.2 * off @ w.detach(), rtol=1e-12, atol=1e-14)


def test_model_sum_and_exclude():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2), nn.BatchNorm1d(2))
    w1, w2 = model[0].weight, model[2].weight
    expected = orthogonal_regularization(w1) + orthogonal_regularization(w2)
    assert_close(model_orthogonal_regularization(model), expected, rtol=1e-6, atol=0)
    assert_close(
        model_orthogonal_regularization(model, exclude=[w2]),
        orthogonal_regularization(w1),
        rtol=1e-6,
        atol=0,
    )
    assert_close(
        model_orthogonal_regularization([w2], beta=0.5),
        orthogonal_regularization(w2, beta=0.5),
        rtol=1e-6,
        atol=0,
    )
    value = model_orthogonal_regularization(model)
    value.backward()
    assert model[0].weight.grad is not None and model[0].bias.grad is None
    assert_close(model_orthogonal_regularization(nn.ReLU()), torch.zeros(()), rtol=0, atol=0)


def test_ortho_bad_inputs():
    with pytest.raises(ValueError, match="weight"):
        orthogonal_regularization(torch.ones(3))
    with pytest.raises(ValueError, match="weight"):
        orthogonal_regularization(torch.ones(3, 3, dtype=torch.int64))
    with pytest.raises(ValueError, match="beta"):
        orthogonal_regularization(torch.ones(3, 3), beta=-1.0)
    with pytest.raises(ValueError, match=r"weights\[0\]"):
        model_orthogonal_regularization([torch.ones(3)])
    with pytest.raises(ValueError, match="beta"):
        inject_orthogonal_gradient_(nn.Linear(2, 2), beta=-1.0)


# ---------------------------------------------------------------- SOM


def test_som_identical_filters_similarity_one():
    x = torch.randn(64, 5, generator=_gen(2), dtype=torch.float64)
    w = torch.randn(1, 5, generator=_gen(3), dtype=torch.float64).repeat(3, 1)
    theta = som_similarity(x, w)
    assert_close(theta, torch.ones(3, 3, dtype=torch.float64), rtol=0, atol=1e-12)
    # R = λ1 (k(k-1))² + λ2 k(k-1) for k = 3 identical filters
    assert_close(
        som_regularization(x, w),
        torch.tensor(100.0 * 36 + 6.0, dtype=torch.float64),
        rtol=1e-10,
        atol=0,
    )
    # normalize=True: the means are 1
    assert_close(
        som_regularization(x, w, normalize=True),
        torch.tensor(101.0, dtype=torch.float64),
        rtol=1e-10,
        atol=0,
    )
    # opposite filters: -1
    theta = som_similarity(x, torch.cat([w[:1], -w[:1]]))
    assert_close(theta[0, 1].item(), -1.0, rtol=0, atol=1e-12)


def test_som_estimates_angles():
    """ϑ_ij ≈ 1 − 2θ_ij/π for isotropic Gaussian inputs (large batch, sharp tanh)."""
    x = torch.randn(20000, 2, generator=_gen(4), dtype=torch.float64)
    angles = torch.tensor([0.0, math.pi / 4, math.pi / 2, 3 * math.pi / 4], dtype=torch.float64)
    w = torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)
    theta = som_similarity(x, w, gamma=100.0)
    expected = 1 - 2 * (angles[:, None] - angles[None, :]).abs() / math.pi
    assert_close(theta, expected, rtol=0, atol=0.03)


def test_som_gradient_reaches_weight_not_x():
    x = torch.randn(32, 6, generator=_gen(5), requires_grad=True)
    w = torch.randn(4, 6, generator=_gen(6), requires_grad=True)
    som_regularization(x, w).backward()
    assert x.grad is None
    assert w.grad is not None and w.grad.abs().sum() > 0


def test_som_matches_manual_formula_and_conv_layout():
    x = torch.randn(16, 12, generator=_gen(7), dtype=torch.float64)
    w = torch.randn(5, 3, 2, 2, generator=_gen(8), dtype=torch.float64)  # conv (k, in, kh, kw)
    y = torch.tanh(10 * x @ w.reshape(5, -1).T)
    y = y / y.norm(dim=0)
    theta = y.T @ y
    off = theta - torch.diag(torch.diagonal(theta))
    expected = 100 * off.sum() ** 2 + off.pow(2).sum()
    assert_close(som_regularization(x, w), expected, rtol=1e-10, atol=1e-12)
    assert_close(
        som_regularization(x, w, normalize=True, lambda1=2.0, lambda2=3.0),
        2 * (off.sum() / 20) ** 2 + 3 * off.pow(2).sum() / 20,
        rtol=1e-10,
        atol=1e-12,
    )


def test_som_single_filter_and_zero_column():
    x = torch.randn(8, 3, generator=_gen(9))
    assert_close(
        som_regularization(x, torch.randn(1, 3, generator=_gen(10))),
        torch.zeros(()),
        rtol=0,
        atol=0,
    )
    w = torch.zeros(2, 3)
    assert torch.isfinite(som_regularization(x, w)).all()


def test_som_bad_inputs():
    with pytest.raises(ValueError, match="x"):
        som_regularization(torch.ones(4, 3, 2), torch.ones(2, 3))
    with pytest.raises(ValueError, match="input dim"):
        som_regularization(torch.ones(4, 3), torch.ones(2, 5))
    with pytest.raises(ValueError, match="gamma"):
        som_regularization(torch.ones(4, 3), torch.ones(2, 3), gamma=0.0)
    with pytest.raises(ValueError, match="lambda1"):
        som_regularization(torch.ones(4, 3), torch.ones(2, 3), lambda1=-1.0)


def test_orthogonal_regularization_rejects_non_finite_weights() -> None:
    w = torch.eye(3)
    w[1, 2] = float("nan")
    with pytest.raises(ValueError, match="weight contains non-finite"):
        orthogonal_regularization(w)
