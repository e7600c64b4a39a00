"""BiGAN-QP: joint distance, critic QP optimum, stop-gradient routing of the reconstructions."""

from __future__ import annotations

import pytest
import torch
from _ganvalues import F64
from _ganvalues import randn as _randn
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.testing import assert_close

from kexue.gan_losses.losses.bigan_qp import (
    bigan_qp_critic_loss,
    bigan_qp_distance,
    bigan_qp_generator_encoder_loss,
    bigan_qp_latent_reconstruction,
    bigan_qp_pixel_reconstruction,
)


def _loop_distance(x_real, x_fake, e_real, z):
    out = []
    for i in range(x_real.shape[0]):
        n = x_real[i].numel()
        pixel = sum(
            abs(a - b) for a, b in zip(x_real[i].flatten().tolist(), x_fake[i].flatten().tolist())
        )
        latent = sum(abs(a - b) for a, b in zip(e_real[i].tolist(), z[i].tolist()))
        out.append(pixel / n + latent / z.shape[1])
    return torch.tensor(out, dtype=F64)


@settings(max_examples=15, deadline=None)
@given(
    b=st.integers(1, 4),
    c=st.integers(1, 3),
    hw=st.integers(1, 3),
    nz=st.integers(1, 5),
    seed=st.integers(0, 999),
)
def test_distance_equals_loop(b, c, hw, nz, seed):
    x_real, x_fake = _randn(b, c, hw, hw, seed=seed), _randn(b, c, hw, hw, seed=seed + 1)
    e_real, z = _randn(b, nz, seed=seed + 2), _randn(b, nz, seed=seed + 3)
    assert_close(
        bigan_qp_distance(x_real, x_fake, e_real, z),
        _loop_distance(x_real, x_fake, e_real, z),
        atol=1e-12,
        rtol=1e-12,
    )


def test_distance_bad_input():
    x, e = torch.randn(3, 2, 2), torch.randn(3, 4)
    with pytest.raises(ValueError, match="x_fake"):
        bigan_qp_distance(x, torch.randn(3, 2, 3), e, e)
    with pytest.raises(ValueError, match="z"):
        bigan_qp_distance(x, x, e, torch.randn(3, 5))
    with pytest.raises(ValueError, match="z"):
        bigan_qp_distance(x, x, torch.randn(2, 4), torch.randn(2, 4))


# --- critic -------------------------------------------------------------------------------------


def _qp_inputs(b: int = 3):
    x_real = torch.zeros(b, 1, 2, 2, dtype=F64)
    x_fake = torch.full((b, 1, 2, 2), 0.1, dtype=F64)  # pixel distance 0.1
    e_real = torch.zeros(b, 4, dtype=F64)
    z = torch.full((b, 4), 0.2, dtype=F64)  # latent distance 0.2 -> d = 0.3
    return x_real, x_fake, e_real, z


@pytest.mark.parametrize("energy", [False, True])
def test_critic_qp_optimum_as_gan_qp(energy):
    x_real, x_fake, e_real, z = _qp_inputs()
    sign = -1.0 if energy else 1.0
    # Δ* = λd = 10 · 0.3 = 3, L* = −λd/2 = −1.5, zero gradient there
    real = torch.full((3,), sign * 3.0, dtype=F64, requires_grad=True)
    fake = torch.zeros(3, dtype=F64, requires_grad=True)
    loss = bigan_qp_critic_loss(real, fake, x_real, x_fake, e_real, z, eps=0.0, energy=energy)
    assert_close(loss, torch.tensor(-1.5, dtype=F64), atol=1e-12, rtol=0)
    g_real, g_fake = torch.autograd.grad(loss, [real, fake])
    assert_close(g_real, torch.zeros(3, dtype=F64), atol=1e-12, rtol=0)
    assert_close(g_fake, torch.zeros(3, dtype=F64), atol=1e-12, rtol=0)
    for delta in (0.0, 2.9, 3.1, 6.0):
        other = torch.full((3,), sign * delta, dtype=F64)
        assert bigan_qp_critic_loss(other, fake, x_real, x_fake, e_real, z, energy=energy) > loss


@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_critic_fixed_values(reduction, dtype):
    x_real, x_fake, e_real, z = (t.to(dtype) for t in _qp_inputs(4))
    real = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=F64)
    fake = torch.tensor([0.0, 1.0, 0.5, -1.0], dtype=F64)
    delta = real - fake
    expected = -delta + delta**2 / (2 * 10 * 0.3)
    expected = {"mean": expected.mean(), "sum": expected.sum(), "none": expected}[reduction]
    expected = expected.to(dtype)
    tol = {"atol": 1e-12, "rtol": 1e-12} if dtype == F64 else {"atol": 1e-5, "rtol": 1e-6}
    real, fake = real.to(dtype), fake.to(dtype)
    got = bigan_qp_critic_loss(real, fake, x_real, x_fake, e_real, z, eps=0.0, reduction=reduction)
    assert got.dtype == dtype
    assert_close(got, expected, **tol)
    # (B, 1) logits give the same value: no (B, B) broadcast
    got_col = bigan_qp_critic_loss(
        real[:, None], fake[:, None], x_real, x_fake, e_real, z, eps=0.0, reduction=reduction
    )
    assert_close(got_col, expected, **tol)


def test_critic_half_precision_is_finite():
    x_real, x_fake, e_real, z = (t.bfloat16() for t in _qp_inputs())
    scores = torch.tensor([3.0, 1.0, -1.0], dtype=torch.bfloat16)
    loss = bigan_qp_critic_loss(
        scores, torch.zeros(3, dtype=torch.bfloat16), x_real, x_fake, e_real, z
    )
    assert torch.isfinite(loss)
    assert_close(
        loss.float(), torch.tensor((-3 + 9 / 6 - 1 + 1 / 6 + 1 + 1 / 6) / 3), atol=0.05, rtol=0
    )


def test_critic_zero_distance_is_finite_and_d_is_constant():
    x = torch.randn(3, 2, 2, 2, dtype=F64, requires_grad=True)
    e = torch.randn(3, 4, dtype=F64, requires_grad=True)
    real = torch.tensor([1.0, 0.0, -1.0], dtype=F64)
    loss = bigan_qp_critic_loss(real, torch.zeros(3, dtype=F64), x, x, e, e)
    assert torch.isfinite(loss)
    assert not loss.requires_grad  # d is detached: no gradient into images or codes


def test_critic_bad_input():
    x_real, x_fake, e_real, z = _qp_inputs()
    s = torch.zeros(3, dtype=F64)
    with pytest.raises(ValueError, match="fake_scores"):
        bigan_qp_critic_loss(s, torch.zeros(2, dtype=F64), x_real, x_fake, e_real, z)
    with pytest.raises(ValueError, match="real_scores"):
        bigan_qp_critic_loss(torch.zeros(3, 2), s, x_real, x_fake, e_real, z)
    with pytest.raises(ValueError, match="x_real"):
        bigan_qp_critic_loss(s[:2], s[:2], x_real, x_fake, e_real, z)
    with pytest.raises(ValueError, match="lam"):
        bigan_qp_critic_loss(s, s, x_real, x_fake, e_real, z, lam=0.0)


# --- generator/encoder loss ---------------------------------------------------------------------


class _Nets:
    def __init__(self, seed: int = 0):
        torch.manual_seed(seed)
        self.G = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Unflatten(1, (2, 2, 2))).double()
        self.E = nn.Sequential(nn.Flatten(), nn.Linear(8, 6), nn.Tanh(), nn.Linear(6, 4)).double()
        self.T = nn.Sequential(nn.Linear(12, 8), nn.LeakyReLU(0.2), nn.Linear(8, 1)).double()
        self.z = _randn(5, 4, seed=seed + 10)
        self.x_real = _randn(5, 2, 2, 2, seed=seed + 11)

    def critic(self, x, e):
        return self.T(torch.cat([x.flatten(1), e], dim=1))

    def zero(self):
        for net in (self.G, self.E, self.T):
            for p in net.parameters():
                p.grad = None

    @staticmethod
    def grads(net):
        return [p.grad for p in net.parameters()]


def _none_or_zero(grads):
    return all(g is None or g.abs().max() == 0 for g in grads)


def _nonzero(grads):
    return any(g is not None and g.abs().max() > 1e-8 for g in grads)


def test_latent_term_trains_only_encoder_and_pixel_term_only_generator():
    n = _Nets(1)
    x_fake, e_real = n.G(n.z), n.E(n.x_real)  # both attached: the functions must detach
    bigan_qp_latent_reconstruction(n.E, x_fake, n.z).mean().backward()
    assert _none_or_zero(n.grads(n.G)) and _nonzero(n.grads(n.E))
    n.zero()
    bigan_qp_pixel_reconstruction(n.G, e_real, n.x_real).mean().backward()
    assert _none_or_zero(n.grads(n.E)) and _nonzero(n.grads(n.G))


def test_reconstruction_values():
    n = _Nets(2)
    x_fake, e_real = n.G(n.z), n.E(n.x_real)
    assert_close(
        bigan_qp_latent_reconstruction(n.E, x_fake, n.z),
        ((n.z - n.E(x_fake)) ** 2).mean(1),
        atol=1e-12,
        rtol=1e-12,
    )
    assert_close(
        bigan_qp_pixel_reconstruction(n.G, e_real, n.x_real),
        ((n.x_real - n.G(e_real)) ** 2).flatten(1).mean(1),
        atol=1e-12,
        rtol=1e-12,
    )


@pytest.mark.parametrize("energy", [False, True])
def test_generator_encoder_loss_matches_author_formula_and_gradients(energy):
    n = _Nets(3)
    x_fake, e_real = n.G(n.z), n.E(n.x_real)
    real, fake = n.critic(n.x_real, e_real), n.critic(x_fake, n.z)
    loss = bigan_qp_generator_encoder_loss(
        real, fake, generator=n.G, encoder=n.E, x_real=n.x_real, x_fake=x_fake,
        e_real=e_real, z=n.z, energy=energy,
    )  # fmt: skip
    sign = -1.0 if energy else 1.0
    delta = sign * (real - fake).squeeze(1)
    expected = (
        delta.mean()
        + 2 * ((n.z - n.E(x_fake.detach())) ** 2).mean()
        + 3 * ((n.x_real - n.G(e_real.detach())) ** 2).mean()
    )
    assert_close(loss, expected, atol=1e-12, rtol=1e-12)
    loss.backward(retain_graph=True)
    got = {k: [g.clone() for g in n.grads(getattr(n, k))] for k in "GE"}
    n.zero()
    expected.backward()
    for k in "GE":
        for a, b in zip(got[k], n.grads(getattr(n, k))):
            assert_close(a, b, atol=1e-12, rtol=1e-10)
    # Δ reaches G through G(z) and E through E(x_r): adversarial part alone
    n.zero()
    adv = bigan_qp_generator_encoder_loss(
        n.critic(n.x_real, n.E(n.x_real)), n.critic(n.G(n.z), n.z), generator=n.G, encoder=n.E,
        x_real=n.x_real, x_fake=x_fake, e_real=e_real, z=n.z, beta_latent=0.0, beta_pixel=0.0,
    )  # fmt: skip
    adv.backward()
    assert _nonzero(n.grads(n.G)) and _nonzero(n.grads(n.E))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_generator_encoder_loss_reductions(reduction):
    n = _Nets(4)
    x_fake, e_real = n.G(n.z), n.E(n.x_real)
    real, fake = torch.zeros(5, dtype=F64), torch.ones(5, dtype=F64)
    kw = dict(generator=n.G, encoder=n.E, x_real=n.x_real, x_fake=x_fake, e_real=e_real, z=n.z)
    per = bigan_qp_generator_encoder_loss(
        real, fake, **kw, beta_latent=4.0, beta_pixel=6.0, reduction="none"
    )
    expected = (
        -1.0
        + 4 * ((n.z - n.E(x_fake)) ** 2).mean(1)
        + 6 * ((n.x_real - n.G(e_real)) ** 2).flatten(1).mean(1)
    )
    assert_close(per, expected, atol=1e-12, rtol=1e-12)
    got = bigan_qp_generator_encoder_loss(
        real, fake, **kw, beta_latent=4.0, beta_pixel=6.0, reduction=reduction
    )
    assert_close(got, {"mean": per.mean(), "sum": per.sum(), "none": per}[reduction])


def test_generator_encoder_loss_bad_input():
    n = _Nets(5)
    x_fake, e_real = n.G(n.z), n.E(n.x_real)
    s = torch.zeros(5, dtype=F64)
    kw = dict(generator=n.G, encoder=n.E, x_real=n.x_real, x_fake=x_fake, e_real=e_real, z=n.z)
    with pytest.raises(ValueError, match="fake_scores"):
        bigan_qp_generator_encoder_loss(s, s[:4], **kw)
    with pytest.raises(ValueError, match="beta_pixel"):
        bigan_qp_generator_encoder_loss(s, s, **kw, beta_pixel=-1.0)
    with pytest.raises(ValueError, match="z"):
        bigan_qp_generator_encoder_loss(s, s, **{**kw, "z": n.z[:4]})
