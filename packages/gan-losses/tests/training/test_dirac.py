"""Tests for the 2-D Dirac-GAN ODE utility (spec §2.9 reference values)."""

from __future__ import annotations

import math

import pytest
import torch
from torch.testing import assert_close

from kexue.gan_losses.training.dirac import dirac_gan_vector_field, integrate_dirac_gan

PHI = torch.tensor([0.3, -0.7], dtype=torch.float64)
THETA = torch.tensor([0.5, 0.2], dtype=torch.float64)


def _autograd_field(kind: str, phi: torch.Tensor, theta: torch.Tensor, **kw):
    """-∇ of hand-written losses for D(x) = φ·x, x_r = 0, x_f = θ (independent of dirac.py)."""
    lam, c, wd = kw.get("lam", 0.5), kw.get("center", 1.0), kw.get("weight_decay", 0.0)
    p = phi.clone().requires_grad_()
    t = theta.clone().requires_grad_()
    f = p @ t.detach()  # D step sees a detached fake
    if kind == "wgan_gp":
        loss_d = f + lam * (p.norm() - c) ** 2
    elif kind == "gan_qp":
        delta = -f
        loss_d = -delta + delta**2 / (2 * lam * theta.norm())
    elif kind == "ns_sgan":
        loss_d = torch.nn.functional.softplus(f) + torch.nn.functional.softplus(torch.zeros(()))
    loss_d = loss_d + 0.5 * wd * p.pow(2).sum()
    (g_phi,) = torch.autograd.grad(loss_d, p)
    f_g = phi @ t  # G step sees a frozen critic
    loss_g = torch.nn.functional.softplus(-f_g) if kind == "ns_sgan" else -f_g
    (g_theta,) = torch.autograd.grad(loss_g, t)
    return -g_phi, -g_theta


@pytest.mark.parametrize(
    ("kind", "kw"),
    [
        ("wgan_gp", {"lam": 0.5, "center": 1.0}),
        ("wgan_gp", {"lam": 0.5, "center": 0.0}),
        ("gan_qp", {"lam": 0.5}),
        ("gan_qp", {"lam": 0.5, "weight_decay": 0.1}),
        ("ns_sgan", {}),
        ("ns_sgan", {"weight_decay": 0.3}),
    ],
)
def test_vector_field_is_minus_the_loss_gradients(kind, kw):
    dphi, dtheta = dirac_gan_vector_field(kind, PHI, THETA, **kw)
    ref_phi, ref_theta = _autograd_field(kind, PHI, THETA, **kw)
    assert_close(dphi, ref_phi, rtol=1e-12, atol=1e-12)
    assert_close(dtheta, ref_theta, rtol=1e-12, atol=1e-12)


def test_vector_field_closed_forms():
    # zero-centred GP: dφ = -θ - 2λφ, dθ = φ
    dphi, dtheta = dirac_gan_vector_field("wgan_gp", PHI, THETA, lam=0.1, center=0.0)
    assert_close(dphi, -THETA - 0.2 * PHI, rtol=0, atol=1e-15)
    assert_close(dtheta, PHI, rtol=0, atol=0)
    # saturating SGAN: dθ = σ(φ·θ) φ
    p = torch.sigmoid(PHI @ THETA)
    _, dtheta = dirac_gan_vector_field("sgan", PHI, THETA)
    assert_close(dtheta, p * PHI, rtol=1e-14, atol=1e-15)
    # hard-Lipschitz WGAN: dθ = φ/‖φ‖ and dφ ⟂ φ (the critic only rotates)
    dphi, dtheta = dirac_gan_vector_field("wgan_lipschitz", PHI, THETA)
    assert_close(dtheta, PHI / PHI.norm(), rtol=1e-14, atol=1e-15)
    assert_close(dphi @ PHI, torch.tensor(0.0, dtype=torch.float64), rtol=0, atol=1e-14)


@pytest.mark.parametrize(
    ("distance", "d"),
    [
        ("euclidean", math.hypot(0.5, 0.2)),
        ("rms", math.hypot(0.5, 0.2) / math.sqrt(2)),
        ("l1", 0.35),
        ("author", math.hypot(0.3, 0.7)),
    ],
)
def test_gan_qp_distances(distance, d):
    lam = 2.0
    dphi, _ = dirac_gan_vector_field("gan_qp", PHI, THETA, lam=lam, distance=distance)
    expected = -THETA - (PHI @ THETA) * THETA / (lam * d)
    assert_close(dphi, expected, rtol=1e-13, atol=1e-15)


def test_reference_values_of_the_spec():
    """Spec §2.9: RK4, h = 0.01, φ₀ = (0.1, 0.2), θ₀ = (0.2, 0.1)."""
    gp0 = integrate_dirac_gan("wgan_gp", center=0.0, lam=0.1, T=40.0)
    assert_close(gp0.theta_norm[-1].item(), 0.0024, rtol=0, atol=5e-5)
    gp1 = integrate_dirac_gan("wgan_gp", center=1.0, lam=0.1, T=40.0)
    assert_close(gp1.phi_norm[-1].item(), 1.00, rtol=0, atol=5e-3)
    assert_close(gp1.theta_norm[-1].item(), 0.97, rtol=0, atol=5e-3)
    qp = integrate_dirac_gan("gan_qp", lam=1.0, T=40.0)
    assert_close(qp.theta_norm[-1].item(), 0.17, rtol=0, atol=5e-3)
    qp_author = integrate_dirac_gan("gan_qp", lam=1.0, T=40.0, distance="author")
    assert_close(qp_author.theta_norm[-1].item(), 0.17, rtol=0, atol=5e-3)
    qp_l2 = integrate_dirac_gan("gan_qp", lam=1.0, weight_decay=0.1, T=70.0)
    assert_close(qp_l2.theta_norm[-1].item(), 0.006, rtol=0, atol=5e-4)
    ns = integrate_dirac_gan("ns_sgan", T=100.0)
    assert_close(ns.theta_norm[-1].item(), 0.16, rtol=0, atol=5e-3)


def test_gp0_is_a_damped_rotation():
    """c = 0 is linear: each coordinate obeys θ'' + 2λθ' + θ = 0, solved in closed form."""
    lam, T = 0.1, 10.0
    traj = integrate_dirac_gan("wgan_gp", center=0.0, lam=lam, T=T, h=0.01)
    w = math.sqrt(1 - lam**2)
    t = traj.t
    theta0 = torch.tensor([0.2, 0.1], dtype=torch.float64)
    phi0 = torch.tensor([0.1, 0.2], dtype=torch.float64)  # θ'(0) = φ(0)
    a, b = theta0, (phi0 + lam * theta0) / w
    exact = torch.exp(-lam * t)[:, None] * (
        a * torch.cos(w * t)[:, None] + b * torch.sin(w * t)[:, None]
    )
    assert_close(traj.theta, exact, rtol=0, atol=1e-9)


def test_trajectory_shapes_and_initial_state():
    traj = integrate_dirac_gan("ns_sgan", T=1.0, h=0.1, phi0=(1.0, 2.0), theta0=(3.0, 4.0))
    assert traj.t.shape == (11,) and traj.phi.shape == (11, 2) and traj.theta.shape == (11, 2)
    assert traj.t.dtype == torch.float64
    assert_close(traj.t[-1].item(), 1.0, rtol=0, atol=1e-12)
    assert_close(traj.phi[0], torch.tensor([1.0, 2.0], dtype=torch.float64), rtol=0, atol=0)
    assert_close(traj.theta_norm[0].item(), 5.0, rtol=0, atol=1e-12)


def test_euler_is_simultaneous_gradient_descent():
    h = 0.05
    traj = integrate_dirac_gan("gan_qp", lam=1.0, T=0.1, h=h, method="euler")
    dphi, dtheta = dirac_gan_vector_field("gan_qp", traj.phi[0], traj.theta[0], lam=1.0)
    assert_close(traj.phi[1], traj.phi[0] + h * dphi, rtol=0, atol=1e-15)
    assert_close(traj.theta[1], traj.theta[0] + h * dtheta, rtol=0, atol=1e-15)


def test_euler_approaches_rk4_as_h_shrinks():
    ref = integrate_dirac_gan("ns_sgan", T=10.0, h=0.01).theta[-1]
    errs = [
        (integrate_dirac_gan("ns_sgan", T=10.0, h=h, method="euler").theta[-1] - ref).norm().item()
        for h in (0.02, 0.01, 0.005)
    ]
    assert errs[0] > errs[1] > errs[2]
    # first order: halving h halves the error
    assert_close(errs[0] / errs[1], 2.0, rtol=0.15, atol=0)
    assert_close(errs[1] / errs[2], 2.0, rtol=0.15, atol=0)


def test_bad_inputs():
    with pytest.raises(ValueError, match="kind"):
        integrate_dirac_gan("lsgan", T=1.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="distance"):
        integrate_dirac_gan("gan_qp", T=1.0, distance="l3")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="lam"):
        integrate_dirac_gan("gan_qp", T=1.0, lam=0.0)
    with pytest.raises(ValueError, match="weight_decay"):
        integrate_dirac_gan("gan_qp", T=1.0, weight_decay=-1.0)
    with pytest.raises(ValueError, match="h must"):
        integrate_dirac_gan("gan_qp", T=1.0, h=0.0)
    with pytest.raises(ValueError, match="T must"):
        integrate_dirac_gan("gan_qp", T=-1.0)
    with pytest.raises(ValueError, match="method"):
        integrate_dirac_gan("gan_qp", T=1.0, method="rk45")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="phi0"):
        integrate_dirac_gan("gan_qp", T=1.0, phi0=(1.0, 2.0, 3.0))
    with pytest.raises(ValueError, match="theta"):
        dirac_gan_vector_field("gan_qp", PHI, torch.tensor([float("nan"), 0.0]))
    with pytest.raises(ValueError, match="diverged"):
        integrate_dirac_gan("wgan_gp", center=0.0, lam=0.1, T=3000.0, h=3.0, method="euler")


def test_step_count_guard() -> None:
    with pytest.raises(ValueError, match=r"asks for 1000000000 integration steps"):
        integrate_dirac_gan("sgan", T=1.0, h=1e-9)
    traj = integrate_dirac_gan("sgan", T=0.05, h=0.01, max_steps=5)
    assert traj.t.shape == (6,)
