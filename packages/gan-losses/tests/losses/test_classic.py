"""Tests for kexue.gan_losses.losses.classic: SGAN, LSGAN, hinge, WGAN (+ clipping), EBGAN.

Expected values come from hand-written formulas in plain Python ``math`` (never from the
implementation), following torchgan's fixed-logit tables, in both signs and every reduction.
"""

from __future__ import annotations

import math

import pytest
import torch
from _ganvalues import FAKE, REAL, TOL, relu, sp
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from kexue.gan_losses.losses import classic

# Per-pair D values (real term + fake term) and per-sample G values, hand-written in the
# canonical sign and, separately, in the author's energy sign (lower = more real).
D_CASES = {
    "sgan": (
        classic.sgan_discriminator_loss,
        {},
        lambda r, f: sp(-r) + sp(f),
        lambda r, f: sp(r) + sp(-f),
    ),
    "lsgan_011": (
        classic.lsgan_discriminator_loss,
        {},
        lambda r, f: 0.5 * (r - 1) ** 2 + 0.5 * f**2,
        lambda r, f: 0.5 * (r + 1) ** 2 + 0.5 * f**2,
    ),
    "lsgan_-110_nohalf": (
        classic.lsgan_discriminator_loss,
        {"labels": (-1.0, 1.0, 0.0), "half": False},
        lambda r, f: (r - 1) ** 2 + (f + 1) ** 2,
        lambda r, f: (r + 1) ** 2 + (f - 1) ** 2,
    ),
    "hinge": (
        classic.hinge_discriminator_loss,
        {},
        lambda r, f: relu(1 - r) + relu(1 + f),
        lambda r, f: relu(1 + r) + relu(1 - f),
    ),
    "hinge_margin2": (
        classic.hinge_discriminator_loss,
        {"margin": 2.0},
        lambda r, f: relu(2 - r) + relu(2 + f),
        lambda r, f: relu(2 + r) + relu(2 - f),
    ),
    "wgan": (
        classic.wgan_discriminator_loss,
        {},
        lambda r, f: f - r,
        lambda r, f: r - f,
    ),
}

G_CASES = {
    "sgan_ns": (classic.sgan_generator_loss, {}, lambda f: sp(-f), lambda f: sp(f)),
    "sgan_saturating": (
        classic.sgan_generator_loss,
        {"saturating": True},
        lambda f: -sp(f),
        lambda f: -sp(-f),
    ),
    "lsgan_011": (
        classic.lsgan_generator_loss,
        {},
        lambda f: 0.5 * (f - 1) ** 2,
        lambda f: 0.5 * (f + 1) ** 2,
    ),
    "lsgan_-110_nohalf": (
        classic.lsgan_generator_loss,
        {"labels": (-1.0, 1.0, 0.0), "half": False},
        lambda f: f**2,
        lambda f: f**2,
    ),
    "hinge": (classic.hinge_generator_loss, {}, lambda f: -f, lambda f: f),
    "wgan": (classic.wgan_generator_loss, {}, lambda f: -f, lambda f: f),
}


def _reduce(values: list[float], reduction: str) -> torch.Tensor:
    t = torch.tensor(values, dtype=torch.float64)
    if reduction == "mean":
        return torch.tensor(sum(values) / len(values), dtype=torch.float64)
    if reduction == "sum":
        return torch.tensor(math.fsum(values), dtype=torch.float64)
    return t


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("energy", [False, True])
@pytest.mark.parametrize("name", list(D_CASES))
def test_discriminator_fixed_values(name: str, energy: bool, reduction: str) -> None:
    fn, kwargs, canonical, author = D_CASES[name]
    formula = author if energy else canonical
    expected = _reduce([formula(r, f) for r, f in zip(REAL, FAKE)], reduction)
    out = fn(
        torch.tensor(REAL, dtype=torch.float64),
        torch.tensor(FAKE, dtype=torch.float64),
        energy=energy,
        reduction=reduction,
        **kwargs,
    )
    torch.testing.assert_close(out, expected, **TOL)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("energy", [False, True])
@pytest.mark.parametrize("name", list(G_CASES))
def test_generator_fixed_values(name: str, energy: bool, reduction: str) -> None:
    fn, kwargs, canonical, author = G_CASES[name]
    formula = author if energy else canonical
    expected = _reduce([formula(f) for f in FAKE], reduction)
    out = fn(torch.tensor(FAKE, dtype=torch.float64), energy=energy, reduction=reduction, **kwargs)
    torch.testing.assert_close(out, expected, **TOL)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_ebgan_fixed_values(reduction: str) -> None:
    u_r, u_f, m = [0.1, 0.5, 1.2, 3.0], [0.2, 0.9, 1.5, 4.0], 1.0
    expected = _reduce([a + relu(m - b) for a, b in zip(u_r, u_f)], reduction)
    out = classic.ebgan_discriminator_loss(
        torch.tensor(u_r, dtype=torch.float64),
        torch.tensor(u_f, dtype=torch.float64),
        margin=m,
        reduction=reduction,
    )
    torch.testing.assert_close(out, expected, **TOL)
    g = classic.ebgan_generator_loss(torch.tensor(u_f, dtype=torch.float64), reduction=reduction)
    torch.testing.assert_close(g, _reduce(u_f, reduction), **TOL)


# ----------------------------------------------------------------------------- closed forms


def test_sgan_values_at_zero_logits() -> None:
    z = torch.zeros(5)
    torch.testing.assert_close(
        classic.sgan_discriminator_loss(z, z), torch.tensor(1.386294), atol=1e-6, rtol=0
    )
    torch.testing.assert_close(
        classic.sgan_generator_loss(z), torch.tensor(0.693147), atol=1e-6, rtol=0
    )
    torch.testing.assert_close(
        classic.sgan_generator_loss(z, saturating=True), torch.tensor(-0.693147), atol=1e-6, rtol=0
    )


@pytest.mark.parametrize(
    ("saturating", "slope"), [(False, -0.9999546021312976), (True, -4.5397868702434395e-05)]
)
def test_sgan_generator_slope_at_minus_ten(saturating: bool, slope: float) -> None:
    f = torch.tensor([-10.0], dtype=torch.float64, requires_grad=True)
    classic.sgan_generator_loss(f, saturating=saturating).backward()
    torch.testing.assert_close(
        f.grad, torch.tensor([slope], dtype=torch.float64), rtol=1e-9, atol=0
    )


def test_sgan_finite_for_huge_logits() -> None:
    r = torch.tensor([100.0, -100.0, 100.0, -100.0], requires_grad=True)
    f = torch.tensor([-100.0, 100.0, 100.0, -100.0], requires_grad=True)
    losses = [
        classic.sgan_discriminator_loss(r, f),
        classic.sgan_generator_loss(f),
        classic.sgan_generator_loss(f, saturating=True),
    ]
    for loss in losses:
        assert torch.isfinite(loss)
        r.grad = f.grad = None
        loss.backward()
        for t in (r, f):
            assert t.grad is None or torch.isfinite(t.grad).all()
    # D loss per pair: sp(-100) + sp(-100) ≈ 0, sp(100) + sp(100) = 200, sp(-100) + sp(100) = 100.
    expected = torch.tensor([0.0, 200.0, 100.0, 100.0])
    torch.testing.assert_close(
        classic.sgan_discriminator_loss(r, f, reduction="none"), expected, atol=1e-4, rtol=0
    )


def test_lsgan_closed_forms() -> None:
    z = torch.zeros(3)
    torch.testing.assert_close(
        classic.lsgan_discriminator_loss(z, z), torch.tensor(0.5), rtol=0, atol=1e-7
    )
    torch.testing.assert_close(
        classic.lsgan_generator_loss(z), torch.tensor(0.5), rtol=0, atol=1e-7
    )
    r = torch.ones(3, requires_grad=True)
    f = torch.zeros(3, requires_grad=True)
    loss = classic.lsgan_discriminator_loss(r, f)
    loss.backward()
    torch.testing.assert_close(loss.detach(), torch.tensor(0.0), rtol=0, atol=0)
    torch.testing.assert_close(r.grad, torch.zeros(3), rtol=0, atol=0)
    torch.testing.assert_close(f.grad, torch.zeros(3), rtol=0, atol=0)


@pytest.mark.parametrize("energy", [False, True])
def test_hinge_closed_forms(energy: bool) -> None:
    z = torch.zeros(4)
    torch.testing.assert_close(
        classic.hinge_discriminator_loss(z, z, energy=energy), torch.tensor(2.0), rtol=0, atol=0
    )
    torch.testing.assert_close(
        classic.hinge_generator_loss(z, energy=energy), torch.tensor(0.0), rtol=0, atol=0
    )
    sign = -1.0 if energy else 1.0  # the energy sign wants r = -2, f = 2
    r = torch.full((4,), 2.0 * sign, requires_grad=True)
    f = torch.full((4,), -2.0 * sign, requires_grad=True)
    loss = classic.hinge_discriminator_loss(r, f, energy=energy)
    loss.backward()
    torch.testing.assert_close(loss.detach(), torch.tensor(0.0), rtol=0, atol=0)
    torch.testing.assert_close(r.grad, torch.zeros(4), rtol=0, atol=0)
    torch.testing.assert_close(f.grad, torch.zeros(4), rtol=0, atol=0)
    # The wrong sign is far from the optimum: the flag really flips the hinge.
    wrong = classic.hinge_discriminator_loss(r.detach(), f.detach(), energy=not energy)
    torch.testing.assert_close(wrong, torch.tensor(6.0), rtol=0, atol=0)


def test_wgan_zero_at_equal_scores() -> None:
    s = torch.tensor([0.3, -1.2, 5.0])
    torch.testing.assert_close(
        classic.wgan_discriminator_loss(s, s.clone()), torch.tensor(0.0), rtol=0, atol=0
    )


def test_clip_weights_bounds_parameters_and_leaves_buffers() -> None:
    torch.manual_seed(0)
    critic = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 1))
    with torch.no_grad():
        for p in critic.parameters():
            p.mul_(10.0)
    critic(torch.randn(16, 4))  # populate the BN running statistics (train mode)
    bn = critic[1]
    buffers = {k: v.clone() for k, v in critic.named_buffers()}
    params = {k: v.detach().clone() for k, v in critic.named_parameters()}
    assert max(p.abs().max().item() for p in params.values()) > 0.0625
    assert bn.running_var.abs().max() > 0.0625  # would be clipped if buffers were touched
    classic.clip_weights_(critic, clip=0.0625)
    for name, p in critic.named_parameters():
        assert p.abs().max().item() <= 0.0625
        torch.testing.assert_close(p.detach(), params[name].clamp(-0.0625, 0.0625), rtol=0, atol=0)
    for name, b in critic.named_buffers():
        torch.testing.assert_close(b, buffers[name], rtol=0, atol=0)


def test_clip_weights_validation() -> None:
    with pytest.raises(ValueError, match="clip"):
        classic.clip_weights_(nn.Linear(2, 2), clip=0.0)
    with pytest.raises(ValueError, match="module"):
        classic.clip_weights_(torch.zeros(3))  # type: ignore[arg-type]


# ----------------------------------------------------------------------- shapes and dtypes

D_FUNCS = [
    classic.sgan_discriminator_loss,
    classic.lsgan_discriminator_loss,
    classic.hinge_discriminator_loss,
    classic.wgan_discriminator_loss,
]
G_FUNCS = [
    classic.sgan_generator_loss,
    classic.lsgan_generator_loss,
    classic.hinge_generator_loss,
    classic.wgan_generator_loss,
]


@pytest.mark.parametrize("fn", D_FUNCS)
def test_d_column_scores_equal_flat_scores(fn) -> None:
    r, f = torch.tensor(REAL), torch.tensor(FAKE)
    for reduction in ("mean", "none"):
        out = fn(r[:, None], f[:, None], reduction=reduction)
        torch.testing.assert_close(out, fn(r, f, reduction=reduction), rtol=0, atol=0)
        assert out.shape == ((4,) if reduction == "none" else ())


D_TERMS = {  # canonical (real term, fake term) of each D loss, hand-written
    classic.sgan_discriminator_loss: (lambda r: sp(-r), lambda f: sp(f)),
    classic.lsgan_discriminator_loss: (lambda r: 0.5 * (r - 1) ** 2, lambda f: 0.5 * f**2),
    classic.hinge_discriminator_loss: (lambda r: relu(1 - r), lambda f: relu(1 + f)),
    classic.wgan_discriminator_loss: (lambda r: -r, lambda f: f),
}


@pytest.mark.parametrize("fn", D_FUNCS)
def test_d_unequal_batches(fn) -> None:
    real_term, fake_term = D_TERMS[fn]
    fake = FAKE[:3]
    r = torch.tensor(REAL, dtype=torch.float64)
    f = torch.tensor(fake, dtype=torch.float64)
    mean = sum(map(real_term, REAL)) / 4 + sum(map(fake_term, fake)) / 3
    total = sum(map(real_term, REAL)) + sum(map(fake_term, fake))
    torch.testing.assert_close(fn(r, f), torch.tensor(mean, dtype=torch.float64), **TOL)
    torch.testing.assert_close(
        fn(r, f, reduction="sum"), torch.tensor(total, dtype=torch.float64), **TOL
    )
    with pytest.raises(ValueError, match="reduction='none'"):
        fn(r, f, reduction="none")


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("fn", D_FUNCS + G_FUNCS)
def test_dtypes_match_float64(fn, dtype: torch.dtype) -> None:
    r64, f64 = torch.tensor(REAL, dtype=torch.float64), torch.tensor(FAKE, dtype=torch.float64)
    args64 = (r64, f64) if fn in D_FUNCS else (f64,)
    args = tuple(a.to(dtype) for a in args64)
    out = fn(*args, reduction="none")
    # Half-precision scores are promoted: the loss is computed in fp32 (as the penalties are), so
    # only the input rounding remains — equal to the fp64 loss of the rounded scores.
    assert out.dtype == torch.float32
    rounded = tuple(a.double() for a in args)
    torch.testing.assert_close(out.double(), fn(*rounded, reduction="none"), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("fn", D_FUNCS)
def test_d_bad_inputs(fn) -> None:
    ok = torch.zeros(4)
    with pytest.raises(ValueError, match="real_scores"):
        fn(torch.zeros(4, 2), ok)
    with pytest.raises(ValueError, match="fake_scores"):
        fn(ok, torch.zeros(2, 2, 1))
    with pytest.raises(ValueError, match="fake_scores"):
        fn(ok, torch.tensor([0.0, float("nan"), 0.0, 0.0]))
    with pytest.raises(ValueError, match="reduction"):
        fn(ok, ok, reduction="max")


@pytest.mark.parametrize("fn", G_FUNCS)
def test_g_bad_inputs(fn) -> None:
    with pytest.raises(ValueError, match="fake_scores"):
        fn(torch.zeros(3, 3))
    with pytest.raises(ValueError, match="reduction"):
        fn(torch.zeros(3), reduction="avg")


def test_option_validation() -> None:
    z = torch.zeros(2)
    with pytest.raises(ValueError, match="labels"):
        classic.lsgan_discriminator_loss(z, z, labels=(0.0, 1.0))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="margin"):
        classic.hinge_discriminator_loss(z, z, margin=0.0)
    with pytest.raises(ValueError, match="margin"):
        classic.ebgan_discriminator_loss(z, z, margin=-1.0)
    with pytest.raises(ValueError, match="real_energy"):
        classic.ebgan_discriminator_loss(torch.zeros(2, 3), z, margin=1.0)


@settings(max_examples=20, deadline=None)
@given(
    batch=st.integers(1, 6),
    seed=st.integers(0, 2**16),
    energy=st.booleans(),
    column=st.booleans(),
)
def test_reductions_consistent(batch: int, seed: int, energy: bool, column: bool) -> None:
    g = torch.Generator().manual_seed(seed)
    r = torch.randn(batch, generator=g, dtype=torch.float64) * 3
    f = torch.randn(batch, generator=g, dtype=torch.float64) * 3
    shape = (batch, 1) if column else (batch,)
    for fn in D_FUNCS:
        none = fn(r.view(shape), f.view(shape), energy=energy, reduction="none")
        assert none.shape == (batch,)
        torch.testing.assert_close(fn(r, f, energy=energy, reduction="sum"), none.sum(), **TOL)
        torch.testing.assert_close(fn(r, f, energy=energy, reduction="mean"), none.mean(), **TOL)
        # The energy flag is the map D -> -D.
        torch.testing.assert_close(fn(-r, -f, energy=not energy, reduction="none"), none, **TOL)
    for fn in G_FUNCS:
        none = fn(f.view(shape), energy=energy, reduction="none")
        torch.testing.assert_close(fn(f, energy=energy, reduction="mean"), none.mean(), **TOL)
        torch.testing.assert_close(fn(-f, energy=not energy, reduction="none"), none, **TOL)


def test_half_precision_scores_compute_in_fp32() -> None:
    # Issue 16: LSGAN on fp16 scores of 300 overflowed to inf (300² > 65504) while the penalties
    # already used fp32. Scores are promoted; the gradient reaches the fp16 scores.
    r = torch.full((4,), 300.0, dtype=torch.float16, requires_grad=True)
    f = torch.full((4,), -300.0, dtype=torch.float16)
    loss = classic.lsgan_discriminator_loss(r, f)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    assert_close = torch.testing.assert_close
    assert_close(
        loss.double(), classic.lsgan_discriminator_loss(r.double(), f.double()), rtol=1e-6, atol=0
    )
    loss.backward()
    assert r.grad is not None and r.grad.dtype == torch.float16 and torch.isfinite(r.grad).all()
    assert torch.isfinite(classic.lsgan_generator_loss(f))


def test_one_sided_label_smoothing() -> None:
    r, f = torch.tensor(REAL, dtype=torch.float64), torch.tensor(FAKE, dtype=torch.float64)
    torch.testing.assert_close(
        classic.sgan_discriminator_loss(r, f, real_label=1.0), classic.sgan_discriminator_loss(r, f)
    )
    smooth = classic.sgan_discriminator_loss(r, f, real_label=0.9, reduction="none")
    manual = 0.9 * torch.nn.functional.softplus(-r) + 0.1 * torch.nn.functional.softplus(r)
    torch.testing.assert_close(smooth, manual + torch.nn.functional.softplus(f))
    # Optimum at p_d = p_g: one shared score s minimises α·sp(−s) + (1−α)·sp(s) + sp(s) at σ(s) = α/2.
    s = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([s], lr=1, max_iter=100, tolerance_grad=1e-12, tolerance_change=1e-14)

    def closure():
        opt.zero_grad()
        loss = classic.sgan_discriminator_loss(s, s, real_label=0.9)
        loss.backward()
        return loss

    opt.step(closure)
    assert torch.sigmoid(s).item() == pytest.approx(0.45, abs=1e-8)
    with pytest.raises(ValueError, match="real_label"):
        classic.sgan_discriminator_loss(r, f, real_label=0.0)
