"""Dirac-GAN dynamics driven by the package's losses through autograd (spec §3.2 item 4).

Real data is the point 0 in R², the generator is the point θ, the critic is ``D(x) = φ·x``.
Training is small-step simultaneous gradient descent on the package's D and G losses (``φ``
minimises the D loss, ``θ`` the G loss) with plain SGD optimisers built by ``make_optimizers``;
L2 decay on D is SGD's ``weight_decay``. The qualitative claims of post 6583 are asserted with
loose tolerances, and every trajectory is compared with the hand-derived ODE of
``kexue.gan_losses.training.dirac`` under the same explicit Euler scheme, which ties the losses, their
autograd gradients and the ODE together.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import Tensor, nn
from torch.testing import assert_close

from kexue.gan_losses.losses.classic import (
    sgan_discriminator_loss,
    sgan_generator_loss,
    wgan_discriminator_loss,
    wgan_generator_loss,
)
from kexue.gan_losses.losses.gan_qp import gan_qp_discriminator_loss, gan_qp_generator_loss
from kexue.gan_losses.penalties import gradient_penalty, interpolate, r1_penalty
from kexue.gan_losses.training.dirac import integrate_dirac_gan
from kexue.gan_losses.training.ttur import TTURConfig, make_optimizers

pytestmark = pytest.mark.slow

DT = torch.float64
PHI0 = (0.1, 0.2)
THETA0 = (0.2, 0.1)

# D loss: (phi, x_real, x_fake) -> scalar, x_fake detached; G loss: (phi, x_real, x_fake) -> scalar,
# phi detached. Scores are D(x) = x @ phi, shape (B,) with B = 1.
LossFn = Callable[[Tensor, Tensor, Tensor], Tensor]


def _critic(phi: Tensor, x: Tensor) -> Tensor:
    return x @ phi


def _wgan_g(phi: Tensor, x_real: Tensor, x_fake: Tensor) -> Tensor:
    return wgan_generator_loss(_critic(phi, x_fake))


def _gp0_r1(lam: float) -> LossFn:
    def loss(phi: Tensor, x_real: Tensor, x_fake: Tensor) -> Tensor:
        x_real = x_real.requires_grad_()
        r = _critic(phi, x_real)
        # R1 = γ/2·‖∇D‖² = λ‖φ‖² for γ = 2λ
        return wgan_discriminator_loss(r, _critic(phi, x_fake)) + r1_penalty(
            r, x_real, gamma=2 * lam
        )

    return loss


def _gp(lam: float, center: float) -> LossFn:
    gen = torch.Generator().manual_seed(0)

    def loss(phi: Tensor, x_real: Tensor, x_fake: Tensor) -> Tensor:
        x_hat = interpolate(x_real, x_fake, generator=gen)  # ∇D = φ at any point
        penalty = gradient_penalty(_critic(phi, x_hat), x_hat, center=center, weight=lam)
        return wgan_discriminator_loss(_critic(phi, x_real), _critic(phi, x_fake)) + penalty

    return loss


def _qp_d(lam: float) -> LossFn:
    def loss(phi: Tensor, x_real: Tensor, x_fake: Tensor) -> Tensor:
        r, f = _critic(phi, x_real), _critic(phi, x_fake)
        return gan_qp_discriminator_loss(r, f, x_real, x_fake, norm="l2", lam=lam)

    return loss


def _qp_g(phi: Tensor, x_real: Tensor, x_fake: Tensor) -> Tensor:
    return gan_qp_generator_loss(_critic(phi, x_real), _critic(phi, x_fake))


def _sgan_d(phi: Tensor, x_real: Tensor, x_fake: Tensor) -> Tensor:
    return sgan_discriminator_loss(_critic(phi, x_real), _critic(phi, x_fake))


def _ns_sgan_g(phi: Tensor, x_real: Tensor, x_fake: Tensor) -> Tensor:
    return sgan_generator_loss(_critic(phi, x_fake))


def _train(
    loss_d: LossFn, loss_g: LossFn, *, T: float, h: float, weight_decay_d: float = 0.0
) -> tuple[Tensor, Tensor]:
    """Simultaneous SGD with lr h on both players; returns φ, θ trajectories ``(n+1, 2)``."""
    phi = nn.Parameter(torch.tensor(PHI0, dtype=DT))
    theta = nn.Parameter(torch.tensor(THETA0, dtype=DT))
    config = TTURConfig(lr_d=h, lr_g=h, weight_decay_d=weight_decay_d)
    opt_d, opt_g = make_optimizers([phi], [theta], config, optimizer_cls=torch.optim.SGD)
    x_real = torch.zeros(1, 2, dtype=DT)
    phis, thetas = [phi.detach().clone()], [theta.detach().clone()]
    for _ in range(round(T / h)):
        opt_d.zero_grad(set_to_none=True)
        opt_g.zero_grad(set_to_none=True)
        loss_d(phi, x_real.clone(), theta.detach().view(1, 2)).backward()  # D: fake detached
        loss_g(phi.detach(), x_real, theta.view(1, 2)).backward()  # G: critic frozen
        assert phi.grad is not None and theta.grad is not None
        opt_d.step()  # both gradients were taken at the same point: simultaneous updates
        opt_g.step()
        phis.append(phi.detach().clone())
        thetas.append(theta.detach().clone())
    return torch.stack(phis), torch.stack(thetas)


CASES = {
    # name: (loss_d, loss_g, weight_decay_d, ODE kwargs)
    "gp0_r1": (_gp0_r1(0.1), _wgan_g, 0.0, {"kind": "wgan_gp", "center": 0.0, "lam": 0.1}),
    "gp0": (_gp(0.1, 0.0), _wgan_g, 0.0, {"kind": "wgan_gp", "center": 0.0, "lam": 0.1}),
    "gp1": (_gp(0.1, 1.0), _wgan_g, 0.0, {"kind": "wgan_gp", "center": 1.0, "lam": 0.1}),
    "gan_qp": (_qp_d(1.0), _qp_g, 0.0, {"kind": "gan_qp", "lam": 1.0, "distance": "rms"}),
    "gan_qp_l2": (
        _qp_d(1.0),
        _qp_g,
        0.1,
        {"kind": "gan_qp", "lam": 1.0, "distance": "rms", "weight_decay": 0.1},
    ),
    "ns_sgan": (_sgan_d, _ns_sgan_g, 0.0, {"kind": "ns_sgan"}),
}


def _run(name: str, T: float, h: float):
    loss_d, loss_g, wd, ode = CASES[name]
    phis, thetas = _train(loss_d, loss_g, T=T, h=h, weight_decay_d=wd)
    ref = integrate_dirac_gan(T=T, h=h, method="euler", phi0=PHI0, theta0=THETA0, **ode)
    return phis, thetas, ref


@pytest.mark.parametrize("name", list(CASES))
def test_autograd_trajectory_matches_the_ode(name):
    """Short horizon, h = 0.01: the package's losses give exactly the ODE's vector field."""
    phis, thetas, ref = _run(name, T=3.0, h=0.01)
    # penalties form their input gradients in fp32, hence the 1e-6 tolerance
    assert_close(phis, ref.phi, rtol=0, atol=1e-6)
    assert_close(thetas, ref.theta, rtol=0, atol=1e-6)


def _last_quarter(x: Tensor) -> Tensor:
    return x[-(len(x) // 4) :]


def test_zero_centred_gp_converges():
    for name in ("gp0_r1", "gp0"):
        phis, thetas, ref = _run(name, T=40.0, h=0.02)
        assert_close(thetas[-1], ref.theta[-1], rtol=0, atol=1e-7)
        assert thetas[-1].norm() < 0.02 and phis[-1].norm() < 0.02  # from ‖θ₀‖ = 0.224
        assert _last_quarter(thetas.norm(dim=1)).max() < 0.05


def test_one_centred_gp_ends_on_a_circle():
    phis, thetas, ref = _run("gp1", T=40.0, h=0.01)
    assert_close(thetas[-1], ref.theta[-1], rtol=0, atol=1e-7)
    # ‖φ‖ → 1 and θ keeps circling at a radius near 1 (RK4 reference 0.97; Euler drifts out)
    assert_close(phis[-1].norm().item(), 1.0, rtol=0, atol=0.1)
    tail = _last_quarter(thetas.norm(dim=1))
    assert tail.min() > 0.8 and tail.max() < 1.2
    assert_close(_last_quarter(phis.norm(dim=1)).mean().item(), 1.0, rtol=0, atol=0.1)


def _sign_changes(x: Tensor) -> int:
    return int((torch.sign(x[1:]) != torch.sign(x[:-1])).sum())


def test_gan_qp_orbits():
    phis, thetas, ref = _run("gan_qp", T=40.0, h=0.02)
    assert_close(thetas[-1], ref.theta[-1], rtol=0, atol=1e-7)
    tail = _last_quarter(thetas)
    assert tail.norm(dim=1).min() > 0.1  # RK4 reference ‖θ(40)‖ ≈ 0.17: it does not converge
    assert tail.norm(dim=1).max() < 0.5
    assert _sign_changes(tail[:, 0]) >= 2  # still rotating around the real point
    assert _last_quarter(phis.norm(dim=1)).min() > 0.1  # and so is the critic


def test_gan_qp_with_d_weight_decay_converges():
    phis, thetas, ref = _run("gan_qp_l2", T=70.0, h=0.02)
    assert_close(thetas[-1], ref.theta[-1], rtol=0, atol=1e-7)
    assert thetas[-1].norm() < 0.03 and phis[-1].norm() < 0.03  # RK4 reference ‖θ‖ 0.006
    assert _last_quarter(thetas.norm(dim=1)).max() < 0.06


def test_ns_sgan_does_not_converge():
    phis, thetas, ref = _run("ns_sgan", T=100.0, h=0.02)
    assert_close(thetas[-1], ref.theta[-1], rtol=0, atol=1e-7)
    tail = _last_quarter(thetas)
    assert tail.norm(dim=1).min() > 0.1  # RK4 reference ‖θ(100)‖ ≈ 0.16
    assert _last_quarter(phis.norm(dim=1)).min() > 0.1
    assert _sign_changes(tail[:, 0]) >= 2
    # the RK4 solution of the same ODE does not converge either (Euler's outward drift aside)
    rk4 = integrate_dirac_gan("ns_sgan", T=100.0, h=0.02, phi0=PHI0, theta0=THETA0)
    assert _last_quarter(rk4.theta_norm).min() > 0.1
