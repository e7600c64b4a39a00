"""Conditional LayerNorm: LayerNorm at init for any condition, the gradient facts, shapes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from kexue.textkit.seq2seq.cln import ConditionalLayerNorm


@pytest.mark.parametrize("hidden_units", [None, 6])
def test_equals_layer_norm_at_init_for_any_condition(hidden_units: int | None) -> None:
    g = torch.Generator().manual_seed(0)
    cln = ConditionalLayerNorm(8, 5, hidden_units=hidden_units, hidden_activation="relu").double()
    ln = nn.LayerNorm(8, eps=1e-12).double()
    x = torch.randn(3, 7, 8, generator=g, dtype=torch.float64) * 3 + 1
    for cond in (
        torch.zeros(3, 5, dtype=torch.float64),
        torch.randn(3, 5, generator=g, dtype=torch.float64) * 10,
        torch.randn(3, 7, 5, generator=g, dtype=torch.float64),
    ):
        torch.testing.assert_close(cln(x, cond), ln(x), atol=1e-12, rtol=1e-12)
    # loaded γ₀, β₀ are plain LN's affine parameters
    with torch.no_grad():
        ln.weight.uniform_(0.5, 1.5, generator=g)
        ln.bias.uniform_(-1, 1, generator=g)
    cln.load_layer_norm(ln)
    torch.testing.assert_close(
        cln(x, torch.ones(3, 5, dtype=torch.float64)), ln(x), atol=1e-12, rtol=1e-12
    )


def test_formula_with_nonzero_maps() -> None:
    g = torch.Generator().manual_seed(1)
    cln = ConditionalLayerNorm(4, 3, eps=1e-6).double()
    with torch.no_grad():
        cln.gamma_dense.weight.normal_(generator=g)
        cln.beta_dense.weight.normal_(generator=g)
    x = torch.randn(2, 5, 4, generator=g, dtype=torch.float64)
    c = torch.randn(2, 3, generator=g, dtype=torch.float64)
    mu = x.mean(-1, keepdim=True)
    var = x.var(-1, unbiased=False, keepdim=True)
    xhat = (x - mu) / torch.sqrt(var + 1e-6)
    gamma = 1 + c @ cln.gamma_dense.weight.T
    beta = c @ cln.beta_dense.weight.T
    expected = gamma[:, None] * xhat + beta[:, None]
    torch.testing.assert_close(cln(x, c), expected, atol=1e-12, rtol=1e-12)
    # a per-position condition equal to the broadcast one gives the same output
    torch.testing.assert_close(cln(x, c[:, None].expand(2, 5, 3)), expected, atol=1e-12, rtol=1e-12)


def test_gradient_facts_at_init() -> None:
    g = torch.Generator().manual_seed(2)
    cln = ConditionalLayerNorm(6, 4, hidden_units=5, hidden_activation="tanh")
    x = torch.randn(3, 4, 6, generator=g)
    c = torch.randn(3, 4, generator=g)
    target = torch.randn(3, 4, 6, generator=g)
    loss = (cln(x, c) - target).square().sum()
    loss.backward()
    assert cln.gamma_dense.weight.grad.abs().sum() > 1e-3
    assert cln.beta_dense.weight.grad.abs().sum() > 1e-3
    # the hidden Dense reaches the loss only through W_γ = W_β = 0: exactly zero gradient
    assert torch.equal(cln.hidden_dense.weight.grad, torch.zeros_like(cln.hidden_dense.weight))
    # after one step on W_γ, W_β the hidden Dense receives gradient (one zeroed map only)
    with torch.no_grad():
        for p in cln.parameters():
            p -= 0.1 * p.grad
    cln.zero_grad()
    (cln(x, c) - target).square().sum().backward()
    assert cln.hidden_dense.weight.grad.abs().sum() > 1e-4


def test_projection_computed_once_per_call() -> None:
    cln = ConditionalLayerNorm(6, 4, hidden_units=5)
    calls: list[tuple[int, ...]] = []
    cln.hidden_dense.register_forward_hook(lambda m, i, o: calls.append(tuple(i[0].shape)))
    gamma_inputs: list[tuple[int, ...]] = []
    cln.gamma_dense.register_forward_hook(lambda m, i, o: gamma_inputs.append(tuple(i[0].shape)))
    cln(torch.randn(2, 9, 6), torch.randn(2, 4))
    assert calls == [(2, 4)]  # once, shared by γ and β, not per position
    assert gamma_inputs == [(2, 5)]


def test_bad_input() -> None:
    cln = ConditionalLayerNorm(6, 4)
    with pytest.raises(ValueError, match="cond shape"):
        cln(torch.randn(2, 3, 6), torch.randn(2, 5))
    with pytest.raises(ValueError, match="cond shape"):
        cln(torch.randn(2, 3, 6), torch.randn(2, 4, 4))
    with pytest.raises(ValueError, match="x last dim"):
        cln(torch.randn(2, 3, 5), torch.randn(2, 4))
    with pytest.raises(ValueError, match="hidden_activation"):
        ConditionalLayerNorm(6, 4, hidden_activation="swish2")
