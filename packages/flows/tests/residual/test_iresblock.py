"""i-ResNet / Residual Flow blocks: inverse, exact and stochastic log-dets, Neumann gradient."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from kexue.flows.residual.iresblock import (
    InverseNotConverged,
    IResBlock,
    LipSwish,
    conv_residual,
    mlp_residual,
)
from kexue.flows.residual.roulette import (
    exact_logdet,
    exact_series_logdet,
    jacobian_matrix,
    neumann_logdet,
    truncation_bound,
)
from kexue.flows.residual.spectral import SpectralNormLinear

DT = torch.float64


def _linear_tanh_g(dim: int, coeff: float, seed: int) -> nn.Sequential:
    """g = tanh(W̃x + b) with ‖W̃‖₂ = coeff exactly (weight inflated so the rescale is active)."""
    layer = SpectralNormLinear(
        dim, dim, coeff=coeff, n_power_iter=100, generator=torch.Generator().manual_seed(seed)
    )
    with torch.no_grad():
        layer.weight.mul_(10.0)
    g = nn.Sequential(layer, nn.Tanh()).to(DT)
    g.train()
    g(torch.zeros(1, dim, dtype=DT))  # converge the power iteration on the inflated weight
    return g


def _block(g: nn.Module, coeff: float, **kwargs: object) -> IResBlock:
    return IResBlock(g, coeff=coeff, n_power_iter=None, **kwargs)  # type: ignore[arg-type]


def _exact_logdet_of(g: nn.Module, x0: torch.Tensor) -> torch.Tensor:
    """ln|det ∂(x + g(x))/∂x| at one sample by torch.autograd.functional.jacobian + slogdet."""
    jac = torch.autograd.functional.jacobian(lambda z: z + g(z[None])[0], x0, create_graph=True)
    return torch.linalg.slogdet(jac).logabsdet


def test_lipswish_is_one_lipschitz_and_matches_formula() -> None:
    for beta_raw in (-3.0, 0.5, 4.0):
        act = LipSwish(beta_init=beta_raw).to(DT)
        beta = math.log1p(math.exp(beta_raw))
        # grid in t = βx so the maximiser (t ≈ 2.4) is resolved for every β
        x = (torch.linspace(-30.0, 30.0, 60001, dtype=DT) / beta).requires_grad_(True)
        y = act(x)
        torch.testing.assert_close(y, x * torch.sigmoid(beta * x) / 1.1, rtol=1e-14, atol=1e-14)
        (deriv,) = torch.autograd.grad(y.sum(), x)
        # sup_x d/dx[x·σ(βx)] ≈ 1.0998 for every β, so the maximum is just below 1
        assert deriv.abs().max() <= 1.0
        assert deriv.abs().max() >= 0.999
    torch.testing.assert_close(LipSwish().beta_raw.detach(), torch.tensor(0.5))


@pytest.mark.parametrize("coeff", [0.5, 0.9])
def test_inverse_converges_float64(coeff: float) -> None:
    g = _linear_tanh_g(6, coeff, seed=1)
    block = _block(g, coeff, inverse_tol=1e-11, logdet_mode="exact").eval()
    x = torch.randn(5, 6, dtype=DT, generator=torch.Generator().manual_seed(2)) * 2
    y, ld = block(x)
    x_rec, ld_inv = block.inverse(y)
    info = block.last_inverse_info
    assert info is not None and info.converged
    torch.testing.assert_close(x_rec, x, rtol=0, atol=1e-8)
    torch.testing.assert_close(ld + ld_inv, torch.zeros(5, dtype=DT), rtol=0, atol=1e-10)
    assert info.residual <= 1e-10
    # Banach: c^k/(1−c)·‖x₁−x₀‖ ≤ tol after ≈ ln(tol(1−c)/‖g(y)‖)/ln c steps
    step0 = g(y).abs().max().item()
    bound = math.log(1e-11 * (1 - coeff) / step0) / math.log(coeff) + 2
    assert info.iterations <= bound
    if coeff == 0.5:
        assert info.iterations <= 60


def test_inverse_float32_c09() -> None:
    g = _linear_tanh_g(6, 0.9, seed=3).float()
    block = _block(g, 0.9, inverse_tol=1e-6).eval()
    x = torch.randn(4, 6, generator=torch.Generator().manual_seed(4))
    y, _ = block(x)
    x_rec, ld_inv = block.inverse(y)
    torch.testing.assert_close(x_rec, x, rtol=1e-4, atol=1e-4)
    assert ld_inv.dtype == torch.float32 and ld_inv.shape == (4,)


def test_non_convergence_is_reported_and_strict_raises() -> None:
    g = _linear_tanh_g(4, 0.9, seed=5)
    block = _block(g, 0.9, inverse_tol=1e-12, inverse_max_iter=3).eval()
    y = torch.randn(3, 4, dtype=DT, generator=torch.Generator().manual_seed(6)) * 3
    with pytest.warns(InverseNotConverged, match="did not converge"):
        block.inverse(y)
    info = block.last_inverse_info
    assert info is not None and not info.converged and info.iterations == 3
    assert info.step > 1e-12 and block.last_inverse_residual > 1e-12
    block.strict = True
    with pytest.raises(InverseNotConverged):
        block.inverse(y)


@pytest.mark.parametrize("dim", [2, 5, 8])
@pytest.mark.parametrize("coeff", [0.5, 0.9])
@pytest.mark.parametrize("n_terms", [1, 3, 10])
def test_exact_series_within_truncation_bound(dim: int, coeff: float, n_terms: int) -> None:
    g = _linear_tanh_g(dim, coeff, seed=dim)
    x = torch.randn(6, dim, dtype=DT, generator=torch.Generator().manual_seed(7))
    series = _block(g, coeff, logdet_mode="exact_series", n_terms_eval=n_terms).eval()
    exact = _block(g, coeff, logdet_mode="exact").eval()
    err = (series(x)[1] - exact(x)[1]).abs()
    assert err.max() <= truncation_bound(dim, coeff, n_terms) + 1e-12
    if n_terms == 1:  # the bound is not vacuous: the first term leaves a visible error
        assert err.max() > 1e-6


def test_exact_mode_matches_autograd_jacobian_and_long_series() -> None:
    g = mlp_residual(5, 12, depth=2, coeff=0.9, activation="lipswish").to(DT)
    block = IResBlock(g, coeff=0.9, logdet_mode="exact")
    block.train()
    block(torch.randn(2, 5, dtype=DT))  # advance power iteration once
    block.eval()
    x = torch.randn(3, 5, dtype=DT, generator=torch.Generator().manual_seed(8))
    _, ld = block(x)
    ref = torch.stack([_exact_logdet_of(g, xi) for xi in x])
    torch.testing.assert_close(ld, ref, rtol=0, atol=1e-10)
    long = IResBlock(g, coeff=0.9, logdet_mode="exact_series", n_terms_eval=200).eval()
    torch.testing.assert_close(long(x)[1], ref, rtol=0, atol=1e-9)


def _draws(block: IResBlock, x0: torch.Tensor, m: int, seed: int) -> torch.Tensor:
    xs = x0.expand(m, -1).clone()
    with torch.no_grad():
        return block(xs, generator=torch.Generator().manual_seed(seed))[1]


def _within(draws: torch.Tensor, target: torch.Tensor, k: float = 4.0) -> bool:
    se = draws.std() / math.sqrt(draws.numel())
    return bool((draws.mean() - target).abs() <= k * se)


@pytest.mark.parametrize("probe", ["gaussian", "rademacher"])
def test_hutchinson_is_unbiased_for_the_truncated_series(probe: str) -> None:
    g = _linear_tanh_g(4, 0.7, seed=9)
    x0 = torch.randn(1, 4, dtype=DT, generator=torch.Generator().manual_seed(10))
    hutch = _block(g, 0.7, n_terms_eval=6, probe=probe).eval()
    target = _block(g, 0.7, logdet_mode="exact_series", n_terms_eval=6).eval()(x0)[1][0]
    draws = _draws(hutch, x0, 2000, seed=11)
    assert draws.std() > 1e-3  # genuinely stochastic
    assert _within(draws, target)


@pytest.mark.parametrize(
    ("dist", "training"), [("geometric", True), ("poisson", True), ("geometric", False)]
)
def test_roulette_is_unbiased_for_the_exact_logdet(dist: str, training: bool) -> None:
    g = _linear_tanh_g(4, 0.5, seed=12)
    x0 = torch.randn(1, 4, dtype=DT, generator=torch.Generator().manual_seed(13))
    block = _block(g, 0.5, estimator="roulette", dist=dist, n_terms_eval=8).train(training)
    target = _block(g, 0.5, logdet_mode="exact").eval()(x0)[1][0]
    draws = _draws(block, x0, 2000, seed=14)
    assert _within(draws, target)
    # the same test rejects the biased 1-term truncated series
    biased = _block(g, 0.5, n_terms_train=1).train()
    assert not _within(_draws(biased, x0, 2000, seed=15), target)


def test_neumann_gradient_is_exact_with_basis_probes() -> None:
    # probes e_1..e_D over D copies of one sample sum to the exact traces, so the Neumann
    # gradient must equal autograd of the exact-trace series (and of slogdet when n is large)
    dim, coeff = 4, 0.5
    g = mlp_residual(dim, 8, depth=1, coeff=coeff, activation="elu").to(DT)
    g.eval()
    x0 = torch.randn(1, dim, dtype=DT, generator=torch.Generator().manual_seed(16))
    # the output bias does not enter the Jacobian, so it gets no gradient
    params = [p for name, p in g.named_parameters() if name != f"{len(g) - 1}.bias"]
    for n_terms in (3, 60):
        xs = x0.expand(dim, -1).clone().requires_grad_(True)
        gx = g(xs)
        est = neumann_logdet(gx, xs, torch.eye(dim, dtype=DT), torch.ones(dim, n_terms, dtype=DT))
        grads = torch.autograd.grad(est.sum(), params)
        xr = x0.clone().requires_grad_(True)
        jac = jacobian_matrix(g(xr), xr, create_graph=True)
        ref = exact_series_logdet(jac, n_terms)
        ref_grads = torch.autograd.grad(ref.sum(), params)
        torch.testing.assert_close(est.sum(), ref.sum(), rtol=0, atol=1e-12)
        for a, b in zip(grads, ref_grads, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    full = exact_logdet(jacobian_matrix(g(xr), xr, create_graph=True))
    for a, b in zip(grads, torch.autograd.grad(full.sum(), params), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_neumann_roulette_gradient_is_unbiased_in_x() -> None:
    g = _linear_tanh_g(3, 0.5, seed=17)
    g.eval()
    x0 = torch.randn(1, 3, dtype=DT, generator=torch.Generator().manual_seed(18))
    block = _block(g, 0.5, estimator="roulette", neumann_grad=True).train()
    xs = x0.expand(2000, -1).clone().requires_grad_(True)
    _, ld = block(xs, generator=torch.Generator().manual_seed(19))
    (per_sample,) = torch.autograd.grad(ld.sum(), xs)
    xr = x0[0].clone().requires_grad_(True)
    (ref,) = torch.autograd.grad(_exact_logdet_of(g, xr), xr)
    se = per_sample.std(0) / math.sqrt(2000)
    assert ((per_sample.mean(0) - ref).abs() <= 4 * se).all()
    assert (se > 0).all()


def test_neumann_and_plain_backprop_agree_in_value_and_reach_parameters() -> None:
    g = mlp_residual(4, 8, coeff=0.9, activation="lipswish")
    x = torch.randn(5, 4, generator=torch.Generator().manual_seed(20))
    values = []
    for neumann in (True, False):
        block = IResBlock(g, coeff=0.9, neumann_grad=neumann, n_power_iter=0).train()
        g.zero_grad()
        _, ld = block(x, generator=torch.Generator().manual_seed(21))
        ld.sum().backward()
        values.append(ld.detach())
        for name, p in g.named_parameters():
            if name == f"{len(g) - 1}.bias":  # the output bias does not enter the Jacobian
                assert p.grad is None or p.grad.abs().max() == 0
                continue
            assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0
    torch.testing.assert_close(values[0], values[1], rtol=1e-6, atol=1e-6)


def test_state_dict_round_trip_keeps_the_inverse_working() -> None:
    # jhjacobsen/invertible-resnet#3: power-iteration state must travel with the weights
    shape = (2, 4, 4)
    gen = torch.Generator().manual_seed(22)
    block = IResBlock(conv_residual(2, 6, generator=gen), coeff=0.9, n_terms_train=2).to(DT)
    opt = torch.optim.SGD(block.parameters(), lr=0.5)
    x = torch.randn(4, *shape, dtype=DT, generator=gen)
    for _ in range(5):
        y, ld = block(x, generator=gen)
        loss = (0.5 * y.pow(2).sum((1, 2, 3)) - ld).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    fresh = IResBlock(
        conv_residual(2, 6, generator=torch.Generator().manual_seed(99)), coeff=0.9
    ).to(DT)
    fresh.load_state_dict(block.state_dict())
    block.eval()
    fresh.eval()
    fresh.inverse_tol = 1e-12
    y_ref, _ = block(x)
    y_new, _ = fresh(x)
    torch.testing.assert_close(y_new, y_ref, rtol=0, atol=0)
    x_rec, _ = fresh.inverse(y_new)
    torch.testing.assert_close(x_rec, x, rtol=0, atol=1e-8)
    assert fresh.last_inverse_info is not None and fresh.last_inverse_info.converged


def test_no_grad_and_dtype_and_context_ignored() -> None:
    block = IResBlock(mlp_residual(3, 6), n_terms_eval=3).eval()
    x = torch.randn(4, 3)
    with torch.no_grad():
        y, ld = block(x, torch.randn(4, 1))
    assert not y.requires_grad and not ld.requires_grad
    assert ld.shape == (4,) and ld.dtype == torch.float32 and y.shape == x.shape


def test_bad_inputs_raise() -> None:
    g = mlp_residual(3, 6)
    with pytest.raises(ValueError, match="logdet_mode"):
        IResBlock(g, logdet_mode="bogus")
    with pytest.raises(ValueError, match="estimator"):
        IResBlock(g, estimator="bogus")
    with pytest.raises(ValueError, match="coeff"):
        IResBlock(g, coeff=1.0)
    with pytest.raises(ValueError, match="p must"):
        IResBlock(g, p=0.0)
    with pytest.raises(ValueError, match="n_terms_train"):
        IResBlock(g, n_terms_train=0)
    with pytest.raises(ValueError, match="activation"):
        mlp_residual(3, 6, activation="relu6")
    block = IResBlock(g)
    with pytest.raises(ValueError, match="x"):
        block(torch.randn(3))
    with pytest.raises(ValueError, match="x"):
        block(torch.tensor([[0.0, float("nan"), 1.0]]))
    with pytest.raises(ValueError, match="y"):
        block.inverse(torch.tensor([[0.0, float("inf"), 1.0]]))
    with pytest.raises(ValueError, match="g must preserve"):
        IResBlock(nn.Linear(3, 2))(torch.randn(2, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        block.eval().inverse(torch.randn(2, 3))


def test_conv_block_exact_logdet_matches_autograd_jacobian() -> None:
    gen = torch.Generator().manual_seed(23)
    g = conv_residual(2, 4, coeff=0.9, activation="lipswish", generator=gen).to(DT)
    block = IResBlock(g, coeff=0.9, logdet_mode="exact", inverse_tol=1e-12).eval()
    x = torch.randn(2, 2, 3, 3, dtype=DT, generator=gen)
    y, ld = block(x)
    for i in range(2):
        jac = torch.autograd.functional.jacobian(lambda z: z + g(z[None])[0], x[i])
        jac = jac.reshape(18, 18)
        torch.testing.assert_close(ld[i], torch.linalg.slogdet(jac).logabsdet, rtol=0, atol=1e-10)
    x_rec, ld_inv = block.inverse(y)
    torch.testing.assert_close(x_rec, x, rtol=0, atol=1e-8)
    torch.testing.assert_close(ld_inv, -ld, rtol=0, atol=1e-10)


@settings(max_examples=15, deadline=None)
@given(
    dim=st.integers(1, 6),
    batch=st.integers(1, 4),
    depth=st.integers(1, 3),
    activation=st.sampled_from(["elu", "lipswish", "softplus", "tanh"]),
)
def test_round_trip_and_logdet_property(dim: int, batch: int, depth: int, activation: str) -> None:
    gen = torch.Generator().manual_seed(dim * 100 + batch * 10 + depth)
    g = mlp_residual(dim, 5, depth=depth, activation=activation, generator=gen).to(DT)
    block = IResBlock(g, coeff=0.7, logdet_mode="exact", inverse_tol=1e-12).eval()
    x = torch.randn(batch, dim, dtype=DT, generator=gen)
    y, ld = block(x)
    x_rec, ld_inv = block.inverse(y)
    assert ld.shape == (batch,)
    torch.testing.assert_close(x_rec, x, rtol=0, atol=1e-10)
    torch.testing.assert_close(ld + ld_inv, torch.zeros(batch, dtype=DT), rtol=0, atol=1e-10)
    series = IResBlock(g, coeff=0.7, logdet_mode="exact_series", n_terms_eval=4).eval()
    assert (series(x)[1] - ld).abs().max() <= truncation_bound(dim, 0.7, 4) + 1e-12
