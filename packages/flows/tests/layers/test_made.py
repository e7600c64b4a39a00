"""MADE masks (spec flows-splines §5 row 10): the autoregressive property by the exact Jacobian."""

from __future__ import annotations

import pytest
import torch

from kexue.flows.layers.made import MADE, MaskedLinear, made_degrees


def _randomise(module: torch.nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.5)


def _dependency(made: MADE, x: torch.Tensor, ctx: torch.Tensor | None) -> torch.Tensor:
    """Σ_batch Σ_p |∂out[d, p]/∂(x, context)[j]|: (D, D + C)."""
    d = made.features
    v = x if ctx is None else torch.cat([x, ctx], dim=1)

    def f(vi: torch.Tensor) -> torch.Tensor:
        c = None if ctx is None else vi[d:].unsqueeze(0)
        return made(vi[:d].unsqueeze(0), c).reshape(d, -1)

    return sum(torch.autograd.functional.jacobian(f, vi).abs().sum(1) for vi in v)


@pytest.mark.parametrize(
    ("features", "hidden", "order", "random_degrees", "context"),
    [
        (5, (16, 16), None, False, 0),
        (6, (12, 9, 8), [3, 0, 5, 1, 4, 2], False, 0),
        (5, (20, 20), [4, 2, 0, 1, 3], True, 0),
        (4, (10, 10), [1, 3, 0, 2], False, 3),
        (7, 24, None, True, 2),
    ],
)
def test_made_jacobian_is_strictly_triangular_in_the_order(
    features: int, hidden, order, random_degrees: bool, context: int
) -> None:
    made = MADE(
        features,
        hidden,
        3,
        context_features=context,
        order=order,
        random_degrees=random_degrees,
        activation="tanh",  # no dead units: every allowed dependency is visible
        zero_init=False,
        generator=torch.Generator().manual_seed(1),
    ).double()
    _randomise(made, 2)
    g = torch.Generator().manual_seed(3)
    x = torch.randn(4, features, generator=g, dtype=torch.float64)
    ctx = torch.randn(4, context, generator=g, dtype=torch.float64) if context else None
    dep = _dependency(made, x, ctx)
    rank = torch.arange(features) if order is None else torch.as_tensor(order)
    allowed = rank[:, None] > rank[None, :]  # out d may depend on x_j iff rank(j) < rank(d)
    assert torch.all(dep[:, :features][~allowed] == 0)  # exact zeros
    if not random_degrees:  # cycled degrees with widths >= D - 1: every allowed edge exists
        assert torch.all(dep[:, :features][allowed] > 0)
    if context:
        assert torch.all(dep[:, features:] > 0)  # context columns are unmasked


def test_made_output_layout_and_zero_init() -> None:
    made = MADE(3, (8, 8), 5, generator=torch.Generator().manual_seed(0))
    out = made(torch.randn(7, 3))
    assert out.shape == (7, 3, 5)
    assert torch.equal(out, torch.zeros_like(out))  # zero-initialised output layer
    assert torch.equal(made.degrees, torch.tensor([1, 2, 3]))


def test_made_single_feature_depends_on_context_only() -> None:
    made = MADE(1, (4,), 2, context_features=2, zero_init=False).double()
    _randomise(made, 0)
    x = torch.randn(3, 1, dtype=torch.float64)
    c = torch.randn(3, 2, dtype=torch.float64)
    a = made(x, c)
    b = made(x + 5.0, c)
    assert torch.equal(a, b)
    assert not torch.equal(a, made(x, c + 1.0))


def test_made_degrees_and_errors() -> None:
    deg_in, hidden = made_degrees(4, [6], order=[2, 0, 3, 1])
    assert deg_in.tolist() == [3, 1, 4, 2] and hidden[0].tolist() == [1, 2, 3, 1, 2, 3]
    with pytest.raises(ValueError, match="permutation"):
        made_degrees(3, [4], order=[0, 0, 1])
    made = MADE(3, 8, 2, context_features=2)
    with pytest.raises(ValueError, match=r"x must have shape \(B, 3\)"):
        made(torch.randn(2, 4), torch.randn(2, 2))
    with pytest.raises(ValueError, match=r"context must have shape \(2, 2\)"):
        made(torch.randn(2, 3))
    with pytest.raises(ValueError, match="context_features=0"):
        MADE(3, 8, 2)(torch.randn(2, 3), torch.randn(2, 1))
    with pytest.raises(ValueError, match="mask must have shape"):
        MaskedLinear(3, 2, torch.ones(3, 2))
