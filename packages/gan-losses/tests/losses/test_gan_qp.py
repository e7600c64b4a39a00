"""Tests for kexue.gan_losses.losses.gan_qp: distances, the quadratic-potential D loss, the G loss."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from kexue.gan_losses.losses.gan_qp import (
    gan_qp_discriminator_loss,
    gan_qp_distance,
    gan_qp_generator_loss,
)

TOL = {"rtol": 1e-10, "atol": 1e-12}


def _pairs(seed: int = 0, shape: tuple[int, ...] = (4, 3, 4, 4)):
    g = torch.Generator().manual_seed(seed)
    x_r = torch.rand(shape, generator=g, dtype=torch.float64) * 2 - 1
    x_f = torch.rand(shape, generator=g, dtype=torch.float64) * 2 - 1
    return x_r, x_f


# ------------------------------------------------------------------------------- distance


def test_l2_is_rms_and_l1_is_mean_abs() -> None:
    x_r = torch.zeros(1, 2, dtype=torch.float64)
    x_f = torch.tensor([[3.0, 4.0]], dtype=torch.float64)
    torch.testing.assert_close(
        gan_qp_distance(x_r, x_f, norm="l1"), torch.tensor([3.5], dtype=torch.float64), **TOL
    )
    # RMS = sqrt(12.5); not the mean square (12.5) nor the Euclidean norm (5).
    torch.testing.assert_close(
        gan_qp_distance(x_r, x_f, norm="l2"),
        torch.tensor([math.sqrt(12.5)], dtype=torch.float64),
        **TOL,
    )


@pytest.mark.parametrize("norm", ["l1", "l2"])
def test_distance_is_per_sample(norm: str) -> None:
    x_r, x_f = _pairs(1)
    d = gan_qp_distance(x_r, x_f, norm=norm)
    assert d.shape == (4,)
    for i in range(4):
        diff = [a - b for a, b in zip(x_r[i].flatten().tolist(), x_f[i].flatten().tolist())]
        if norm == "l1":
            expected = sum(abs(t) for t in diff) / len(diff)
        else:
            expected = math.sqrt(sum(t * t for t in diff) / len(diff))
        torch.testing.assert_close(d[i], torch.tensor(expected, dtype=torch.float64), **TOL)


def test_distance_validation() -> None:
    x = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="norm"):
        gan_qp_distance(x, x, norm="l3")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="x_fake"):
        gan_qp_distance(x, torch.zeros(2, 4))
    with pytest.raises(ValueError, match="x_real"):
        gan_qp_distance(torch.zeros(2), torch.zeros(2))


def test_distance_half_precision_is_fp32() -> None:
    x_r, x_f = _pairs(2)
    d = gan_qp_distance(x_r.half(), x_f.half(), norm="l2")
    assert d.dtype == torch.float32
    torch.testing.assert_close(
        d.double(), gan_qp_distance(x_r, x_f, norm="l2"), rtol=2e-3, atol=2e-3
    )


# ------------------------------------------------------------------------------ the D loss


@pytest.mark.parametrize("norm", ["l1", "l2"])
def test_optimum_for_constant_pair(norm: str) -> None:
    # λ = 10, x_r = 0, x_f ≡ 0.1: d = 0.1 for both norms; L_D(Δ) is minimal at Δ = 1, value -0.5.
    x_r = torch.zeros(1, 3, 2, 2, dtype=torch.float64)
    x_f = torch.full((1, 3, 2, 2), 0.1, dtype=torch.float64)
    deltas = torch.linspace(0.0, 2.0, 201, dtype=torch.float64)
    values = torch.stack(
        [
            gan_qp_discriminator_loss(
                dl.view(1), torch.zeros(1, dtype=torch.float64), x_r, x_f, norm=norm
            )
            for dl in deltas
        ]
    )
    assert int(values.argmin()) == 100  # Δ = 1.0
    torch.testing.assert_close(
        values.min(), torch.tensor(-0.5, dtype=torch.float64), rtol=0, atol=1e-9
    )


@pytest.mark.parametrize("energy", [False, True])
@pytest.mark.parametrize("norm", ["l1", "l2"])
@pytest.mark.parametrize("lam", [1.0, 10.0])
def test_optimum_is_lambda_d_with_zero_gradient(norm: str, lam: float, energy: bool) -> None:
    x_r, x_f = _pairs(3)
    d = gan_qp_distance(x_r, x_f, norm=norm)
    f = torch.randn(4, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    r = f + lam * d  # Δ* = λ d
    sign = -1.0 if energy else 1.0
    r_in = (sign * r).requires_grad_()
    f_in = (sign * f).requires_grad_()
    per_pair = gan_qp_discriminator_loss(
        r_in, f_in, x_r, x_f, norm=norm, lam=lam, energy=energy, reduction="none"
    )
    torch.testing.assert_close(per_pair, -lam * d / 2, **TOL)
    per_pair.sum().backward()
    torch.testing.assert_close(r_in.grad, torch.zeros(4, dtype=torch.float64), rtol=0, atol=1e-12)
    torch.testing.assert_close(f_in.grad, torch.zeros(4, dtype=torch.float64), rtol=0, atol=1e-12)


def test_column_scores_give_the_same_scalar_and_no_broadcast() -> None:
    x_r, x_f = _pairs(5)
    g = torch.Generator().manual_seed(6)
    r = torch.randn(4, 1, generator=g, dtype=torch.float64)
    f = torch.randn(4, 1, generator=g, dtype=torch.float64)
    flat = gan_qp_discriminator_loss(r.squeeze(1), f.squeeze(1), x_r, x_f)
    torch.testing.assert_close(gan_qp_discriminator_loss(r, f, x_r, x_f), flat, **TOL)
    assert gan_qp_discriminator_loss(r, f, x_r, x_f, reduction="none").shape == (4,)
    # The broadcast bug (author's commit f109699): (B,1) against (B,) d gives a (B,B) matrix.
    d = gan_qp_distance(x_r, x_f)
    delta = r - f
    buggy = (-delta + delta.square() / (2 * 10.0 * d)).mean()
    assert (delta.square() / d).shape == (4, 4)
    assert not torch.allclose(buggy, flat, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("norm", ["l1", "l2"])
def test_per_sample_equals_loop(norm: str) -> None:
    x_r, x_f = _pairs(7)
    g = torch.Generator().manual_seed(8)
    r, f = (
        torch.randn(4, generator=g, dtype=torch.float64),
        torch.randn(4, generator=g, dtype=torch.float64),
    )
    none = gan_qp_discriminator_loss(r, f, x_r, x_f, norm=norm, reduction="none")
    loop = torch.stack(
        [
            gan_qp_discriminator_loss(
                r[i : i + 1], f[i : i + 1], x_r[i : i + 1], x_f[i : i + 1], norm=norm
            )
            for i in range(4)
        ]
    )
    torch.testing.assert_close(none, loop, **TOL)
    torch.testing.assert_close(
        gan_qp_discriminator_loss(r, f, x_r, x_f, norm=norm, reduction="sum"), loop.sum(), **TOL
    )
    torch.testing.assert_close(
        gan_qp_discriminator_loss(r, f, x_r, x_f, norm=norm), loop.mean(), **TOL
    )


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("energy", [False, True])
def test_fixed_values(energy: bool, reduction: str) -> None:
    real = [-1.5, -0.25, 0.5, 2.0]
    fake = [-2.0, -0.5, 0.75, 1.5]
    x_r = torch.zeros(4, 2, dtype=torch.float64)
    x_f = torch.tensor([[0.1, 0.3], [-0.5, 0.5], [2.0, 0.0], [0.25, -0.25]], dtype=torch.float64)
    d_l1 = [0.2, 0.5, 1.0, 0.25]
    lam = 10.0
    values = [-(r - f) + (r - f) ** 2 / (2 * lam * d) for r, f, d in zip(real, fake, d_l1)]
    g_values = [r - f for r, f in zip(real, fake)]
    expected = {"mean": sum(values) / 4, "sum": math.fsum(values)}.get(reduction, values)
    expected_g = {"mean": sum(g_values) / 4, "sum": math.fsum(g_values)}.get(reduction, g_values)
    sign = -1.0 if energy else 1.0
    r_in = torch.tensor(real, dtype=torch.float64) * sign
    f_in = torch.tensor(fake, dtype=torch.float64) * sign
    out = gan_qp_discriminator_loss(r_in, f_in, x_r, x_f, energy=energy, reduction=reduction)
    torch.testing.assert_close(out, torch.tensor(expected, dtype=torch.float64), **TOL)
    out_g = gan_qp_generator_loss(r_in, f_in, energy=energy, reduction=reduction)
    torch.testing.assert_close(out_g, torch.tensor(expected_g, dtype=torch.float64), **TOL)


def test_zero_distance_is_finite() -> None:
    x = torch.rand(3, 2, 2, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    for norm in ("l1", "l2"):
        r = torch.tensor([0.5, 0.0, -1.0], dtype=torch.float64, requires_grad=True)
        f = torch.zeros(3, dtype=torch.float64, requires_grad=True)
        x_fake = x.clone().requires_grad_()  # gradients must not flow through d, even at d = 0
        loss = gan_qp_discriminator_loss(r, f, x, x_fake, norm=norm, eps=1e-8)
        loss.backward()
        assert torch.isfinite(loss)
        assert torch.isfinite(r.grad).all() and torch.isfinite(f.grad).all()
        assert x_fake.grad is None
        # d = 0 pins Δ to 0: the pair with Δ = 0 costs nothing.
        per_pair = gan_qp_discriminator_loss(r, f, x, x, norm=norm, reduction="none")
        torch.testing.assert_close(
            per_pair[1], torch.tensor(0.0, dtype=torch.float64), rtol=0, atol=0
        )
        torch.testing.assert_close(
            per_pair[0],
            torch.tensor(-0.5 + 0.25 / (2 * 10.0 * 1e-8), dtype=torch.float64),
            rtol=1e-12,
            atol=0,
        )


def test_discriminator_loss_validation() -> None:
    x_r, x_f = _pairs(10)
    s = torch.zeros(4)
    with pytest.raises(ValueError, match="lam"):
        gan_qp_discriminator_loss(s, s, x_r, x_f, lam=0.0)
    with pytest.raises(ValueError, match="eps"):
        gan_qp_discriminator_loss(s, s, x_r, x_f, eps=-1.0)
    with pytest.raises(ValueError, match="fake_scores"):
        gan_qp_discriminator_loss(s, torch.zeros(3), x_r, x_f)
    with pytest.raises(ValueError, match="x_real"):
        gan_qp_discriminator_loss(torch.zeros(2), torch.zeros(2), x_r, x_f)
    with pytest.raises(ValueError, match="x_fake"):
        gan_qp_discriminator_loss(s, s, x_r, x_f[:, :2])
    with pytest.raises(ValueError, match="real_scores"):
        gan_qp_discriminator_loss(torch.zeros(4, 4), s, x_r, x_f)
    with pytest.raises(ValueError, match="reduction"):
        gan_qp_discriminator_loss(s, s, x_r, x_f, reduction="mean_pairs")


# ------------------------------------------------------------------------------ the G loss


def test_generator_loss_has_no_quadratic_term() -> None:
    g = torch.Generator().manual_seed(12)
    r = torch.randn(4, generator=g, dtype=torch.float64)
    f = torch.randn(4, generator=g, dtype=torch.float64).requires_grad_()
    loss = gan_qp_generator_loss(r, f)
    torch.testing.assert_close(loss.detach(), (r - f.detach()).mean(), **TOL)
    loss.backward()
    torch.testing.assert_close(f.grad, torch.full((4,), -0.25, dtype=torch.float64), **TOL)
    with pytest.raises(ValueError, match="same batch size"):
        gan_qp_generator_loss(r, f[:3])


@settings(max_examples=20, deadline=None)
@given(
    shape=st.lists(st.integers(1, 3), min_size=1, max_size=3),
    batch=st.integers(1, 4),
    seed=st.integers(0, 2**16),
    norm=st.sampled_from(["l1", "l2"]),
)
def test_loop_equality_property(shape: list[int], batch: int, seed: int, norm: str) -> None:
    x_r, x_f = _pairs(seed, (batch, *shape))
    g = torch.Generator().manual_seed(seed + 1)
    r = torch.randn(batch, 1, generator=g, dtype=torch.float64)
    f = torch.randn(batch, generator=g, dtype=torch.float64)
    none = gan_qp_discriminator_loss(r, f, x_r, x_f, norm=norm, lam=3.0, reduction="none")
    assert none.shape == (batch,)
    for i in range(batch):
        d = gan_qp_distance(x_r[i : i + 1], x_f[i : i + 1], norm=norm).clamp_min(1e-8)
        delta = r[i, 0] - f[i]
        expected = -delta + delta**2 / (2 * 3.0 * d[0])
        torch.testing.assert_close(none[i], expected, **TOL)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_samples_raise_naming_the_argument(bad: float) -> None:
    from kexue.gan_losses import finite_checks

    r, f = torch.tensor([1.0, 0.5]), torch.tensor([0.0, 0.2])
    x = torch.zeros(2, 3)
    x_bad = x.clone()
    x_bad[1, 2] = bad
    with pytest.raises(ValueError, match="x_fake contains non-finite"):
        gan_qp_discriminator_loss(r, f, x, x_bad)
    with pytest.raises(ValueError, match="x_real contains non-finite"):
        gan_qp_discriminator_loss(r, f, x_bad, x)
    if bad != bad:  # NaN: with the documented opt-out, the loss is NaN again
        with finite_checks(False):
            assert torch.isnan(gan_qp_discriminator_loss(r, f, x, x_bad))
