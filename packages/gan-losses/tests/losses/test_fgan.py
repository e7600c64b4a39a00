"""Tests for kexue.gan_losses.losses.fgan: the Nowozin table, verified against its own f.

The table in the spec is tagged [unverified]; here every conjugate is checked numerically as
``sup_u ut - f(u)`` on a fine grid, with ``f`` written independently in numpy, and every row is
checked to reach ``D_f(P‖Q)`` at the optimal critic ``T* = f'(p/q)`` on discrete distributions.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from kexue.gan_losses.losses.classic import sgan_discriminator_loss, sgan_generator_loss
from kexue.gan_losses.losses.fgan import (
    F_DIVERGENCES,
    FDivergence,
    f_gan_discriminator_loss,
    f_gan_generator_loss,
)

TOL = {"rtol": 1e-10, "atol": 1e-12}
NAMES = ["kl", "reverse_kl", "pearson", "squared_hellinger", "js", "gan"]
LOG2 = math.log(2.0)


def sp(t: float) -> float:
    return math.log1p(math.exp(t))


# Hand-written references: f(u) (numpy), f'(u), and the inverse activation t -> v.
F_NP = {
    "kl": lambda u: u * np.log(u),
    "reverse_kl": lambda u: -np.log(u),
    "pearson": lambda u: (u - 1) ** 2,
    "squared_hellinger": lambda u: (np.sqrt(u) - 1) ** 2,
    "js": lambda u: u * np.log(u) - (u + 1) * np.log((u + 1) / 2),
    "gan": lambda u: u * np.log(u) - (u + 1) * np.log(u + 1),
}
F_PRIME = {
    "kl": lambda u: 1 + math.log(u),
    "reverse_kl": lambda u: -1 / u,
    "pearson": lambda u: 2 * (u - 1),
    "squared_hellinger": lambda u: 1 - 1 / math.sqrt(u),
    "js": lambda u: math.log(2 * u / (1 + u)),
    "gan": lambda u: math.log(u / (1 + u)),
}


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


INVERSE_ACTIVATION = {
    "kl": lambda t: t,
    "reverse_kl": lambda t: -math.log(-t),
    "pearson": lambda t: t,
    "squared_hellinger": lambda t: -math.log(1 - t),
    "js": lambda t: _logit(math.exp(t) / 2),
    "gan": lambda t: _logit(math.exp(t)),
}
# Points of each conjugate's domain whose maximiser u* lies well inside the grid.
DOMAIN_POINTS = {
    "kl": [-1.0, 0.0, 0.5, 1.5],
    "reverse_kl": [-3.0, -1.0, -0.5],
    "pearson": [-1.5, 0.0, 1.0, 2.0],
    "squared_hellinger": [-2.0, 0.0, 0.5, 0.8],
    "js": [-2.0, 0.0, 0.5, 0.6],
    "gan": [-3.0, -1.0, -0.2],
}


@pytest.mark.parametrize("name", NAMES)
def test_conjugate_matches_numerical_sup(name: str) -> None:
    div = F_DIVERGENCES[name]
    u = np.logspace(-4, 3, 400_001)
    fu = F_NP[name](u)
    t = torch.tensor(DOMAIN_POINTS[name], dtype=torch.float64)
    numerical = torch.tensor([np.max(u * ti - fu) for ti in t.tolist()], dtype=torch.float64)
    torch.testing.assert_close(div.conjugate(t), numerical, rtol=0, atol=1e-7)


@pytest.mark.parametrize("name", NAMES)
def test_generator_function_and_activation(name: str) -> None:
    div = F_DIVERGENCES[name]
    u = torch.tensor([0.1, 0.5, 1.0, 2.0, 7.0], dtype=torch.float64)
    torch.testing.assert_close(div.f(u), torch.from_numpy(F_NP[name](u.numpy())), **TOL)
    # f(1) = 0, except Nowozin's GAN row: f(1) = -log 4 (D_f = 2·JS - log 4).
    f_at_one = -math.log(4.0) if name == "gan" else 0.0
    torch.testing.assert_close(
        div.f(torch.ones(1, dtype=torch.float64)),
        torch.full((1,), f_at_one, dtype=torch.float64),
        **TOL,
    )
    v = torch.linspace(-4.0, 4.0, 33, dtype=torch.float64)
    # The stable closed form equals the composition f*(g_f(v)).
    torch.testing.assert_close(
        div.conjugate_activation(v), div.conjugate(div.activation(v)), rtol=1e-9, atol=1e-12
    )
    # g_f maps R into dom f*: the conjugate is finite there.
    assert torch.isfinite(div.conjugate(div.activation(v))).all()


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(("p", "q"), [((0.5, 0.5), (0.25, 0.75)), ((0.2, 0.8), (0.6, 0.4))])
def test_bound_is_tight_at_the_optimal_critic(name: str, p, q) -> None:
    # Discrete P, Q on two points. Samples: P = (x1, x2) with weights p given by repetition.
    reps_p = [round(w * 20) for w in p]
    reps_q = [round(w * 20) for w in q]
    d_f = sum(qi * float(F_NP[name](np.float64(pi / qi))) for pi, qi in zip(p, q))
    v_star = [INVERSE_ACTIVATION[name](F_PRIME[name](pi / qi)) for pi, qi in zip(p, q)]

    def objective(v: list[float]) -> torch.Tensor:
        real = torch.tensor([v[k] for k in range(2) for _ in range(reps_p[k])], dtype=torch.float64)
        fake = torch.tensor([v[k] for k in range(2) for _ in range(reps_q[k])], dtype=torch.float64)
        return -f_gan_discriminator_loss(real, fake, divergence=name)

    torch.testing.assert_close(
        objective(v_star), torch.tensor(d_f, dtype=torch.float64), rtol=1e-9, atol=1e-12
    )
    g = torch.Generator().manual_seed(0)
    for _ in range(10):
        dv = (torch.rand(2, generator=g, dtype=torch.float64) - 0.5).tolist()
        assert objective([a + b for a, b in zip(v_star, dv)]) < d_f


def test_kl_closed_form_value() -> None:
    # p = (0.5, 0.5), q = (0.25, 0.75): KL = 0.1438410 at T* = 1 + log(p/q); KL activation is v.
    t_star = [1 + math.log(0.5 / 0.25), 1 + math.log(0.5 / 0.75)]
    real = torch.tensor(t_star, dtype=torch.float64)
    fake = torch.tensor([t_star[0], t_star[1], t_star[1], t_star[1]], dtype=torch.float64)
    value = -f_gan_discriminator_loss(real, fake, divergence="kl")
    torch.testing.assert_close(
        value, torch.tensor(0.1438410, dtype=torch.float64), rtol=0, atol=1e-7
    )
    for shift in (-0.3, 0.2):
        other = -f_gan_discriminator_loss(real + shift, fake + shift, divergence="kl")
        assert other < value - 1e-4


REAL = [-1.5, -0.25, 0.5, 2.0]
FAKE = [-2.0, -0.5, 0.75, 1.5]
# Hand-written per-pair D values f*(g(v_f)) - g(v_r), and per-sample G values (standard, alt).
D_FORMULA = {
    "kl": lambda r, f: math.exp(f - 1) - r,
    "reverse_kl": lambda r, f: (f - 1) + math.exp(-r),
    "pearson": lambda r, f: f * f / 4 + f - r,
    "squared_hellinger": lambda r, f: math.expm1(f) - (1 - math.exp(-r)),
    "js": lambda r, f: (sp(f) - LOG2) - (LOG2 - sp(-r)),
    "gan": lambda r, f: sp(f) + sp(-r),
}
G_FORMULA = {
    "kl": (lambda f: -math.exp(f - 1), lambda f: -f),
    "reverse_kl": (lambda f: -(f - 1), lambda f: math.exp(-f)),
    "pearson": (lambda f: -(f * f / 4 + f), lambda f: -f),
    "squared_hellinger": (lambda f: -math.expm1(f), lambda f: -(1 - math.exp(-f))),
    "js": (lambda f: -(sp(f) - LOG2), lambda f: -(LOG2 - sp(-f))),
    "gan": (lambda f: -sp(f), lambda f: sp(-f)),
}


def _reduce(values: list[float], reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return torch.tensor(sum(values) / len(values), dtype=torch.float64)
    if reduction == "sum":
        return torch.tensor(math.fsum(values), dtype=torch.float64)
    return torch.tensor(values, dtype=torch.float64)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("energy", [False, True])
@pytest.mark.parametrize("name", NAMES)
def test_fixed_values(name: str, energy: bool, reduction: str) -> None:
    sign = -1.0 if energy else 1.0
    r = torch.tensor(REAL, dtype=torch.float64) * sign
    f = torch.tensor(FAKE, dtype=torch.float64) * sign
    d = f_gan_discriminator_loss(r, f, divergence=name, energy=energy, reduction=reduction)
    torch.testing.assert_close(
        d, _reduce([D_FORMULA[name](a, b) for a, b in zip(REAL, FAKE)], reduction), **TOL
    )
    for alternative, formula in zip((False, True), G_FORMULA[name]):
        g = f_gan_generator_loss(
            f, divergence=name, alternative=alternative, energy=energy, reduction=reduction
        )
        torch.testing.assert_close(g, _reduce([formula(b) for b in FAKE], reduction), **TOL)


def test_gan_row_is_the_standard_gan() -> None:
    r = torch.tensor(REAL, dtype=torch.float64)
    f = torch.tensor(FAKE, dtype=torch.float64)
    torch.testing.assert_close(
        f_gan_discriminator_loss(r, f, divergence="gan"), sgan_discriminator_loss(r, f), **TOL
    )
    torch.testing.assert_close(
        f_gan_generator_loss(f, divergence="gan"), sgan_generator_loss(f, saturating=True), **TOL
    )
    torch.testing.assert_close(
        f_gan_generator_loss(f, divergence="gan", alternative=True), sgan_generator_loss(f), **TOL
    )


@pytest.mark.parametrize("name", ["reverse_kl", "js", "gan", "pearson"])
def test_large_scores_stay_finite(name: str) -> None:
    v = torch.tensor([-60.0, -5.0, 5.0, 60.0], requires_grad=True)
    loss = f_gan_discriminator_loss(v, v, divergence=name)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(v.grad).all()


def test_custom_divergence_and_validation() -> None:
    # Total variation: f(u) = |u - 1| / 2, g = tanh(v) / 2, f*(t) = t on |t| <= 1/2.
    tv = FDivergence(
        "tv",
        f=lambda u: (u - 1).abs() / 2,
        activation=lambda v: torch.tanh(v) / 2,
        conjugate=lambda t: t,
        conjugate_activation=lambda v: torch.tanh(v) / 2,
    )
    r = torch.tensor(REAL, dtype=torch.float64)
    f = torch.tensor(FAKE, dtype=torch.float64)
    expected = sum(math.tanh(b) / 2 for b in FAKE) / 4 - sum(math.tanh(a) / 2 for a in REAL) / 4
    torch.testing.assert_close(
        f_gan_discriminator_loss(r, f, divergence=tv),
        torch.tensor(expected, dtype=torch.float64),
        **TOL,
    )
    with pytest.raises(ValueError, match="divergence"):
        f_gan_discriminator_loss(r, f, divergence="wasserstein")
    with pytest.raises(ValueError, match="divergence"):
        f_gan_generator_loss(f, divergence="chi2")
    with pytest.raises(ValueError, match="real_scores"):
        f_gan_discriminator_loss(torch.zeros(4, 2), f)
    with pytest.raises(ValueError, match="reduction='none'"):
        f_gan_discriminator_loss(r, f[:3], reduction="none")
    assert set(F_DIVERGENCES) == set(NAMES)
    with pytest.raises(TypeError):
        F_DIVERGENCES["x"] = tv  # type: ignore[index]


@pytest.mark.parametrize("name", ["kl", "reverse_kl", "squared_hellinger"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_exponential_rows_are_finite_at_large_finite_scores(name: str, dtype: torch.dtype) -> None:
    # Issue 16: the KL generator loss was -inf at a finite score of 200 (exp(199) > fp32 max).
    v = torch.tensor([-800.0, -200.0, 0.0, 3.0, 200.0, 800.0], dtype=dtype, requires_grad=True)
    for loss in (
        f_gan_generator_loss(v, divergence=name),
        f_gan_generator_loss(v, divergence=name, alternative=True),
        f_gan_discriminator_loss(v, v.detach().flip(0), divergence=name),
    ):
        assert torch.isfinite(loss)
        (grad,) = torch.autograd.grad(loss, v)
        assert torch.isfinite(grad).all()
    # Below the cap the rows are exact: exp(v − 1) for KL at moderate scores.
    mid = torch.tensor([-3.0, 0.5, 20.0], dtype=dtype)
    if name == "kl":
        torch.testing.assert_close(
            f_gan_generator_loss(mid, divergence="kl", reduction="none"), -torch.exp(mid - 1)
        )


def test_exponential_tail_is_continuous_with_its_slope() -> None:
    from kexue.gan_losses.losses.fgan import _safe_exp

    c = 0.5 * math.log(torch.finfo(torch.float64).max)
    x = torch.tensor([c - 1e-9, c + 1e-9], dtype=torch.float64, requires_grad=True)
    y = _safe_exp(x)
    (g,) = torch.autograd.grad(y.sum(), x)
    assert abs(y[1].item() / y[0].item() - 1) < 1e-8
    assert abs(g[1].item() / g[0].item() - 1) < 1e-8
