"""Tests for kexue.gan_losses.modules: AdversarialLoss and GradientPenalty wrappers, routing."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from kexue.gan_losses import penalties
from kexue.gan_losses.losses import classic as losses
from kexue.gan_losses.losses import fgan, gan_qp, relativistic
from kexue.gan_losses.modules import AdversarialLoss, GradientPenalty

KINDS = [
    "sgan",
    "ns",
    "lsgan",
    "hinge",
    "wgan",
    "rsgan",
    "rasgan",
    "ralsgan",
    "rahinge",
    "gan_qp_l1",
    "gan_qp_l2",
    "fgan",
]
# kind -> (D function, G function, extra D kwargs, G takes real scores)
FUNCTIONAL = {
    "sgan": (losses.sgan_discriminator_loss, losses.sgan_generator_loss, {}, False),
    "ns": (losses.sgan_discriminator_loss, losses.sgan_generator_loss, {}, False),
    "lsgan": (losses.lsgan_discriminator_loss, losses.lsgan_generator_loss, {}, False),
    "hinge": (losses.hinge_discriminator_loss, losses.hinge_generator_loss, {}, False),
    "wgan": (losses.wgan_discriminator_loss, losses.wgan_generator_loss, {}, False),
    "rsgan": (relativistic.rsgan_discriminator_loss, relativistic.rsgan_generator_loss, {}, True),
    "rasgan": (
        relativistic.rasgan_discriminator_loss,
        relativistic.rasgan_generator_loss,
        {},
        True,
    ),
    "ralsgan": (
        relativistic.ralsgan_discriminator_loss,
        relativistic.ralsgan_generator_loss,
        {},
        True,
    ),
    "rahinge": (
        relativistic.rahinge_discriminator_loss,
        relativistic.rahinge_generator_loss,
        {},
        True,
    ),
    "gan_qp_l1": (
        gan_qp.gan_qp_discriminator_loss,
        gan_qp.gan_qp_generator_loss,
        {"norm": "l1"},
        True,
    ),
    "gan_qp_l2": (
        gan_qp.gan_qp_discriminator_loss,
        gan_qp.gan_qp_generator_loss,
        {"norm": "l2"},
        True,
    ),
    "fgan": (fgan.f_gan_discriminator_loss, fgan.f_gan_generator_loss, {}, False),
}


def _data(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    r = torch.randn(4, generator=g, dtype=torch.float64)
    f = torch.randn(4, generator=g, dtype=torch.float64)
    x_r = torch.randn(4, 2, 3, generator=g, dtype=torch.float64)
    x_f = torch.randn(4, 2, 3, generator=g, dtype=torch.float64)
    return r, f, x_r, x_f


@pytest.mark.parametrize("energy", [False, True])
@pytest.mark.parametrize("kind", KINDS)
def test_adversarial_loss_matches_functional(kind: str, energy: bool) -> None:
    d_fn, g_fn, d_kwargs, g_real = FUNCTIONAL[kind]
    r, f, x_r, x_f = _data()
    loss = AdversarialLoss(kind, energy=energy, reduction="none")
    common = {"energy": energy, "reduction": "none"}
    if kind.startswith("gan_qp"):
        expected_d = d_fn(r, f, x_r, x_f, **d_kwargs, **common)
    else:
        expected_d = d_fn(r, f, **common)
    expected_g = g_fn(r, f, **common) if g_real else g_fn(f, **common)
    torch.testing.assert_close(loss.discriminator_loss(r, f, x_r, x_f), expected_d, rtol=0, atol=0)
    torch.testing.assert_close(loss.generator_loss(f, r), expected_g, rtol=0, atol=0)
    assert kind in repr(loss)


def test_options_are_forwarded() -> None:
    r, f, x_r, x_f = _data(1)
    sat = AdversarialLoss("sgan", saturating=True)
    torch.testing.assert_close(sat.generator_loss(f), -torch.nn.functional.softplus(f).mean())
    torch.testing.assert_close(
        AdversarialLoss("ns").generator_loss(f), losses.sgan_generator_loss(f)
    )
    ls = AdversarialLoss("lsgan", labels=(-1.0, 1.0, 0.0), half=False)
    torch.testing.assert_close(
        ls.discriminator_loss(r, f),
        losses.lsgan_discriminator_loss(r, f, labels=(-1.0, 1.0, 0.0), half=False),
    )
    torch.testing.assert_close(ls.generator_loss(f), (f**2).mean())
    hinge = AdversarialLoss("hinge", margin=2.0)
    torch.testing.assert_close(
        hinge.discriminator_loss(r, f), losses.hinge_discriminator_loss(r, f, margin=2.0)
    )
    qp = AdversarialLoss("gan_qp_l2", lam=3.0)
    torch.testing.assert_close(
        qp.discriminator_loss(r, f, x_r, x_f),
        gan_qp.gan_qp_discriminator_loss(r, f, x_r, x_f, norm="l2", lam=3.0),
    )
    fg = AdversarialLoss("fgan", divergence="js", alternative=True)
    torch.testing.assert_close(
        fg.discriminator_loss(r, f), fgan.f_gan_discriminator_loss(r, f, divergence="js")
    )
    torch.testing.assert_close(
        fg.generator_loss(f), fgan.f_gan_generator_loss(f, divergence="js", alternative=True)
    )
    # Values by hand at zero scores: RaHinge 1, RaSGAN ln 2 (all_gather is a no-op here).
    z = torch.zeros(3)
    torch.testing.assert_close(
        AdversarialLoss("rahinge", all_gather=True).generator_loss(z, z), torch.tensor(1.0)
    )
    torch.testing.assert_close(
        AdversarialLoss("rasgan").discriminator_loss(z, z), torch.tensor(math.log(2))
    )


def test_missing_arguments_and_bad_options() -> None:
    r, f, x_r, _ = _data(2)
    with pytest.raises(ValueError, match="x_real and x_fake"):
        AdversarialLoss("gan_qp_l1").discriminator_loss(r, f)
    with pytest.raises(ValueError, match="x_real and x_fake"):
        AdversarialLoss("gan_qp_l2").discriminator_loss(r, f, x_real=x_r)
    for kind in ("rsgan", "rasgan", "ralsgan", "rahinge", "gan_qp_l1"):
        with pytest.raises(ValueError, match="real_scores"):
            AdversarialLoss(kind).generator_loss(f)
    with pytest.raises(ValueError, match="kind"):
        AdversarialLoss("wgan_gp")
    with pytest.raises(ValueError, match="saturating"):
        AdversarialLoss("ns", saturating=True)
    with pytest.raises(ValueError, match="margin"):
        AdversarialLoss("wgan", margin=1.0)
    with pytest.raises(ValueError, match="reduction"):
        AdversarialLoss("hinge", reduction="avg")


@pytest.mark.parametrize("kind", KINDS)
def test_discriminator_losses_leave_generator_grads_none(kind: str) -> None:
    torch.manual_seed(0)
    gen = nn.Linear(3, 6)
    disc = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 1))
    x_real = torch.randn(4, 6)
    x_fake = gen(torch.randn(4, 3))
    loss = AdversarialLoss(kind)
    fake = x_fake.detach()
    d_loss = loss.discriminator_loss(disc(x_real), disc(fake), x_real, fake)
    d_loss.backward()
    assert all(p.grad is None for p in gen.parameters())
    # (the last bias cancels in r - f for WGAN-type losses, so check the first layer)
    assert disc[0].weight.grad is not None and disc[0].weight.grad.abs().sum() > 0
    # The G step does reach G.
    disc.requires_grad_(False)
    loss.generator_loss(disc(x_fake), disc(x_real)).backward()
    assert all(p.grad is not None for p in gen.parameters())
    assert all(p.grad is None or p.requires_grad is False for p in disc.parameters())


def test_penalties_leave_generator_grads_none() -> None:
    torch.manual_seed(1)
    gen = nn.Linear(3, 6)
    disc = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 1))
    x_real = torch.randn(4, 6)
    x_fake = gen(torch.randn(4, 3))  # attached to G on purpose: interpolate detaches it
    GradientPenalty("wgan_gp")(critic=disc, x_real=x_real, x_fake=x_fake).backward()
    assert all(p.grad is None for p in gen.parameters())
    assert disc[0].weight.grad is not None and disc[0].weight.grad.abs().sum() > 0


def _critic(x: torch.Tensor) -> torch.Tensor:
    return torch.tanh(x).flatten(1).sum(1) + 0.5 * x.flatten(1).square().sum(1)


def test_gradient_penalty_matches_functional() -> None:
    _, _, x_r, x_f = _data(3)
    gen = torch.Generator().manual_seed(0)
    got = GradientPenalty("wgan_gp", weight=5.0, reduction="none")(
        critic=_critic, x_real=x_r, x_fake=x_f, generator=gen
    )
    expected = penalties.wgan_gp_penalty(
        _critic, x_r, x_f, weight=5.0, generator=torch.Generator().manual_seed(0), reduction="none"
    )
    torch.testing.assert_close(got, expected, rtol=0, atol=0)

    xr = x_r.clone().requires_grad_()
    xf = x_f.clone().requires_grad_()
    sr, sf = _critic(xr), _critic(xf)
    r1 = GradientPenalty("r1", gamma=2.0)
    torch.testing.assert_close(
        r1(real_scores=sr, x_real=xr), penalties.r1_penalty(sr, xr, gamma=2.0)
    )
    torch.testing.assert_close(
        r1(critic=_critic, x_real=x_r), penalties.r1_penalty(sr, xr, gamma=2.0)
    )
    r2 = GradientPenalty("r2", gamma=2.0, reduction="sum")
    torch.testing.assert_close(
        r2(fake_scores=sf, x_fake=xf), penalties.r2_penalty(sf, xf, gamma=2.0, reduction="sum")
    )
    torch.testing.assert_close(
        r2(critic=_critic, x_fake=x_f), penalties.r2_penalty(sf, xf, gamma=2.0, reduction="sum")
    )
    div = GradientPenalty("wgan_div", k=1.0, p=4.0)
    torch.testing.assert_close(
        div(real_scores=sr, x_real=xr, fake_scores=sf, x_fake=xf),
        penalties.wgan_div_penalty(sr, xr, sf, xf, k=1.0, p=4.0),
    )


def test_gradient_penalty_missing_arguments() -> None:
    _, _, x_r, x_f = _data(4)
    with pytest.raises(ValueError, match="critic"):
        GradientPenalty("wgan_gp")(x_real=x_r, x_fake=x_f)
    with pytest.raises(ValueError, match="real_scores"):
        GradientPenalty("r1")(x_real=x_r)
    with pytest.raises(ValueError, match="x_fake"):
        GradientPenalty("r2")(critic=_critic)
    with pytest.raises(ValueError, match="fake_scores, x_fake"):
        xr = x_r.clone().requires_grad_()
        GradientPenalty("wgan_div")(real_scores=_critic(xr), x_real=xr)
    with pytest.raises(ValueError, match="kind"):
        GradientPenalty("dragan")
    with pytest.raises(ValueError, match="gamma"):
        GradientPenalty("wgan_gp", gamma=1.0)
