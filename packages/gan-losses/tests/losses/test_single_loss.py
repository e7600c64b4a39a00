"""Single-loss trick: exact cancellation, equality with two optimisers, SN / BN / dropout state."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm
from torch.testing import assert_close

from kexue.gan_losses.losses.classic import (
    hinge_discriminator_loss,
    hinge_generator_loss,
    sgan_discriminator_loss,
    sgan_generator_loss,
)
from kexue.gan_losses.losses.relativistic import rsgan_discriminator_loss, rsgan_generator_loss
from kexue.gan_losses.losses.single_loss import forward_detached_and_attached, single_loss

METHODS = ["replay", "concat", "separate"]


def _h(scores: torch.Tensor) -> torch.Tensor:
    return F.softplus(-scores.squeeze(-1)).mean()


def _grads(net: nn.Module) -> list[torch.Tensor]:
    return [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in net.parameters()]


def _zero(*nets: nn.Module) -> None:
    for net in nets:
        for p in net.parameters():
            p.grad = None


def _max_abs(grads: list[torch.Tensor]) -> float:
    return max(g.abs().max().item() for g in grads)


def _setup(seed: int, d_layers: Callable[[], list[nn.Module]] | None = None):
    torch.manual_seed(seed)
    G = nn.Sequential(nn.Linear(3, 6), nn.Tanh(), nn.Linear(6, 4))
    layers = d_layers() if d_layers else [nn.Linear(4, 8), nn.LeakyReLU(0.2), nn.Linear(8, 1)]
    D = nn.Sequential(*layers)
    z = torch.randn(6, 3, generator=torch.Generator().manual_seed(seed + 1))
    x_real = torch.randn(6, 4, generator=torch.Generator().manual_seed(seed + 2))
    return G, D, z, x_real


def _trick_grads(G, D, z, method):
    """Gradients of h(D(x_f)) − h(D(sg x_f)) and its value."""
    _zero(G, D)
    out_sg, out = forward_detached_and_attached(D, G(z), method=method)
    term = _h(out) - _h(out_sg)
    term.backward()
    return term.detach(), _grads(G), _grads(D)


def _plain_g_grads(G, D, z):
    _zero(G, D)
    _h(D(G(z))).backward()
    return _grads(G)


# --- the identity on a deterministic D ----------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_trick_term_is_zero_with_zero_d_gradient_and_plain_g_gradient(method):
    G, D, z, _ = _setup(0)
    value, g_grads, d_grads = _trick_grads(G, D, z, method)
    assert value.item() == 0.0
    assert _max_abs(d_grads) <= 1e-6
    for got, ref in zip(g_grads, _plain_g_grads(G, D, z)):
        assert_close(got, ref, atol=1e-6, rtol=1e-5)
    assert _max_abs(g_grads) > 1e-3


def test_forward_pair_values_and_shapes():
    G, D, z, _ = _setup(1)
    x = G(z)
    for method in METHODS:
        a, b = forward_detached_and_attached(D, x, method=method)
        assert a.shape == b.shape == (6, 1)
        assert_close(a, b, atol=1e-7, rtol=0)
        assert a.grad_fn is not None and b.requires_grad
    # a plain callable (no buffers) works too
    a, b = forward_detached_and_attached(lambda t: (t**2).sum(1), x, method="replay")
    assert_close(a, b, atol=0, rtol=0)


def test_forward_pair_bad_input():
    G, D, z, _ = _setup(2)
    with pytest.raises(ValueError, match="method"):
        forward_detached_and_attached(D, G(z), method="twice")
    with pytest.raises(ValueError, match="concat"):
        forward_detached_and_attached(lambda t: t.sum(), G(z), method="concat")
    with pytest.raises(ValueError, match="x"):
        forward_detached_and_attached(D, torch.zeros(0, 4))


# --- single_loss against the two-optimiser gradients --------------------------------------------


def _two_optimiser(G, D, z, x_real, d_loss_fn, g_loss_fn):
    _zero(G, D)
    x_fake = G(z)
    d_loss_fn(D(x_real), D(x_fake.detach())).backward()
    d_ref = _grads(D)
    _zero(G, D)
    g_loss_fn(D(x_real), D(G(z))).backward()
    g_ref = _grads(G)
    return d_ref, g_ref


LOSSES = {
    "hinge": (hinge_discriminator_loss, lambda r, f: hinge_generator_loss(f)),
    "hinge-energy": (
        lambda r, f: hinge_discriminator_loss(r, f, energy=True),
        lambda r, f: hinge_generator_loss(f, energy=True),
    ),
    "sgan-ns": (sgan_discriminator_loss, lambda r, f: sgan_generator_loss(f)),
    "rsgan": (rsgan_discriminator_loss, rsgan_generator_loss),
}


@pytest.mark.parametrize("name", list(LOSSES))
@pytest.mark.parametrize("method", METHODS)
def test_single_loss_gradients_equal_two_optimiser_gradients(name, method):
    d_loss_fn, g_loss_fn = LOSSES[name]
    G, D, z, x_real = _setup(3)
    d_ref, g_ref = _two_optimiser(G, D, z, x_real, d_loss_fn, g_loss_fn)
    _zero(G, D)
    out = single_loss(D, D(x_real), G(z), d_loss_fn=d_loss_fn, g_loss_fn=g_loss_fn, method=method)
    out.loss.backward()
    assert out.loss.item() == out.discriminator_loss.item()
    for got, ref in zip(_grads(D), d_ref):
        assert_close(got, ref, atol=1e-6, rtol=1e-5)
    for got, ref in zip(_grads(G), g_ref):
        assert_close(got, ref, atol=1e-6, rtol=1e-5)
    assert _max_abs(g_ref) > 1e-4


def test_generator_weight_scales_only_g():
    d_loss_fn, g_loss_fn = LOSSES["sgan-ns"]
    G, D, z, x_real = _setup(4)
    grads = {}
    for lam in (1.0, 3.0):
        _zero(G, D)
        single_loss(
            D, D(x_real), G(z), d_loss_fn=d_loss_fn, g_loss_fn=g_loss_fn, generator_weight=lam
        ).loss.backward()
        grads[lam] = (_grads(D), _grads(G))
    for a, b in zip(grads[1.0][0], grads[3.0][0]):
        assert_close(a, b, atol=1e-7, rtol=1e-6)
    for a, b in zip(grads[1.0][1], grads[3.0][1]):
        assert_close(3.0 * a, b, atol=1e-7, rtol=1e-6)


def test_generator_weight_is_invisible_to_adam():
    """Post 6387 reads λ as a D:G learning-rate ratio; under Adam it only rescales g and v."""
    d_loss_fn, g_loss_fn = LOSSES["hinge"]
    steps = {}
    for lam in (1.0, 10.0):
        G, D, z, x_real = _setup(5)
        opt = torch.optim.Adam([*G.parameters(), *D.parameters()], lr=1e-2, eps=1e-12)
        before = [p.detach().clone() for p in G.parameters()]
        single_loss(
            D, D(x_real), G(z), d_loss_fn=d_loss_fn, g_loss_fn=g_loss_fn, generator_weight=lam
        ).loss.backward()
        opt.step()
        steps[lam] = [p.detach() - b for p, b in zip(G.parameters(), before)]
    for a, b in zip(steps[1.0], steps[10.0]):
        assert_close(a, b, atol=1e-7, rtol=1e-5)
    assert max(s.abs().max().item() for s in steps[1.0]) > 1e-3


def test_single_loss_bad_input():
    G, D, z, x_real = _setup(6)
    d_loss_fn, _ = LOSSES["hinge"]
    with pytest.raises(ValueError, match="g_loss_fn"):
        single_loss(D, D(x_real), G(z), d_loss_fn=d_loss_fn, g_loss_fn=lambda r, f: -f)
    with pytest.raises(ValueError, match="generator_weight"):
        single_loss(
            D, D(x_real), G(z), d_loss_fn=d_loss_fn, g_loss_fn=d_loss_fn, generator_weight=-1.0
        )
    with pytest.raises(ValueError, match="x_fake"):
        single_loss(D, D(x_real), [1.0], d_loss_fn=d_loss_fn, g_loss_fn=d_loss_fn)


# --- stateful discriminators --------------------------------------------------------------------


def _slow_sn_linear(seed: int) -> nn.Linear:
    """A 16x16 SN layer with singular values 1.0 and 0.97 and random ``u``, ``v``: one power
    iteration per forward moves ``u`` visibly (``spectral_norm`` itself runs 15 at creation)."""
    gen = torch.Generator().manual_seed(seed)
    u, _ = torch.linalg.qr(torch.randn(16, 16, generator=gen))
    v, _ = torch.linalg.qr(torch.randn(16, 16, generator=gen))
    s = torch.linspace(0.97, 0.2, 16)
    s[0] = 1.0
    layer = nn.Linear(16, 16)
    with torch.no_grad():
        layer.weight.copy_(u @ torch.diag(s) @ v.T)
    layer = spectral_norm(layer)
    sn = layer.parametrizations.weight[0]
    with torch.no_grad():
        sn._u.copy_(F.normalize(torch.randn(16, generator=gen), dim=0))
        sn._v.copy_(F.normalize(torch.randn(16, generator=gen), dim=0))
    return layer


def _sn_setup(seed: int):
    torch.manual_seed(seed)
    G = nn.Linear(3, 16)
    D = nn.Sequential(_slow_sn_linear(seed), nn.Tanh(), nn.Linear(16, 1))
    z = torch.randn(6, 3, generator=torch.Generator().manual_seed(seed + 1))
    return G, D, z


def test_spectral_norm_two_forwards_leak_concat_and_replay_are_exact():
    G, D, z = _sn_setup(7)
    _, _, d_sep = _trick_grads(G, D, z, "separate")
    assert _max_abs(d_sep) > 1e-4  # u moved between the two forwards: σ differs, D-gradient leaks
    ref = _plain_g_grads(*_sn_setup(7))  # one power iteration from the same u, like both below
    for method in ("concat", "replay"):
        G, D, z = _sn_setup(7)
        value, g_grads, d_grads = _trick_grads(G, D, z, method)
        assert abs(value.item()) <= 1e-7
        assert _max_abs(d_grads) <= 1e-6, method
        for got, want in zip(g_grads, ref):
            assert_close(got, want, atol=1e-6, rtol=1e-5)


def test_replay_updates_spectral_norm_u_once():
    G, D, z = _sn_setup(8)
    sn = D[0].parametrizations.weight[0]
    u0, v0 = sn._u.clone(), sn._v.clone()
    forward_detached_and_attached(D, G(z), method="replay")
    u_replay = sn._u.clone()
    with torch.no_grad():
        sn._u.copy_(u0)
        sn._v.copy_(v0)
    D(G(z))
    assert_close(u_replay, sn._u, atol=0, rtol=0)
    assert (u_replay - u0).abs().max() > 1e-4


def _bn_setup(seed: int):
    return _setup(seed, lambda: [nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Tanh(), nn.Linear(8, 1)])


def test_batch_norm_concat_leaks_into_g_replay_and_separate_are_exact():
    G, D, z, _ = _bn_setup(9)
    ref = _plain_g_grads(G, D, z)
    for method in ("replay", "separate"):
        value, g_grads, d_grads = _trick_grads(G, D, z, method)
        assert value.item() == 0.0 and _max_abs(d_grads) <= 1e-6
        for got, want in zip(g_grads, ref):
            assert_close(got, want, atol=1e-6, rtol=1e-5)
    # concat: the detached half's outputs depend on the attached half through batch statistics
    _, g_grads, d_grads = _trick_grads(G, D, z, "concat")
    assert _max_abs(d_grads) <= 1e-6
    assert max((a - b).abs().max().item() for a, b in zip(g_grads, ref)) > 1e-3


def test_replay_updates_batch_norm_running_stats_once():
    G, D, z, _ = _bn_setup(10)
    bn = D[1]
    x = G(z)
    forward_detached_and_attached(D, x, method="replay")
    stats = (bn.running_mean.clone(), bn.running_var.clone(), bn.num_batches_tracked.clone())
    _, D2, _, _ = _bn_setup(10)
    D2(x)
    assert_close(stats[0], D2[1].running_mean, atol=0, rtol=0)
    assert_close(stats[1], D2[1].running_var, atol=0, rtol=0)
    assert stats[2].item() == D2[1].num_batches_tracked.item() == 1


def _dropout_setup(seed: int):
    return _setup(seed, lambda: [nn.Linear(4, 16), nn.Dropout(0.5), nn.Tanh(), nn.Linear(16, 1)])


def test_dropout_replay_is_exact_separate_and_concat_leak():
    G, D, z, _ = _dropout_setup(11)
    torch.manual_seed(123)
    value, g_grads, d_grads = _trick_grads(G, D, z, "replay")
    assert value.item() == 0.0 and _max_abs(d_grads) <= 1e-6
    # same RNG state -> the attached forward used the mask a plain forward would draw
    torch.manual_seed(123)
    ref = _plain_g_grads(G, D, z)
    for got, want in zip(g_grads, ref):
        assert_close(got, want, atol=1e-6, rtol=1e-5)
    for method in ("separate", "concat"):
        torch.manual_seed(123)
        _, _, d_grads = _trick_grads(G, D, z, method)
        assert _max_abs(d_grads) > 1e-4, method
