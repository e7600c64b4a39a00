"""Energy view: contrastive loss, zero-centred score penalty, MEG MI term, encoder surrogate."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.testing import assert_close

from kexue.gan_losses.losses.energy import (
    contrastive_energy_loss,
    encoder_entropy_surrogate,
    meg_mutual_information_loss,
    mi_bce_loss,
    random_derangement,
    score_penalty,
)

F64 = torch.float64
LN2 = math.log(2.0)


def _randn(*shape: int, seed: int, dtype: torch.dtype = F64) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


# --- contrastive energy loss --------------------------------------------------------------------

POS = [1.0, 2.0, -0.5, 0.0]
NEG = [0.5, -1.0, 3.0, 2.0]


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("alpha", [0.0, 1.0, 0.25])
def test_contrastive_fixed_values(reduction, alpha):
    pos, neg = torch.tensor(POS, dtype=F64), torch.tensor(NEG, dtype=F64)
    per = pos - neg + alpha * (pos**2 + neg**2)  # both squares added (IGEBM code)
    expected = {"mean": per.mean(), "sum": per.sum(), "none": per}[reduction]
    got = contrastive_energy_loss(pos, neg, alpha=alpha, reduction=reduction)
    assert_close(got, expected, atol=1e-12, rtol=0)
    assert_close(
        contrastive_energy_loss(pos[:, None], neg[:, None], alpha=alpha, reduction=reduction),
        expected,
    )


def test_contrastive_regulariser_penalises_large_fake_energy():
    # with the blog's minus sign the loss would fall without bound as U(x-) grows; with the code's
    # plus it has a minimum at U(x-) = 1/(2α)
    pos = torch.zeros(1, dtype=F64)
    neg = torch.tensor([0.5], dtype=F64, requires_grad=True)
    loss = contrastive_energy_loss(pos, neg, alpha=1.0)
    (grad,) = torch.autograd.grad(loss, neg)
    assert_close(grad, torch.zeros(1, dtype=F64), atol=1e-15, rtol=0)
    assert contrastive_energy_loss(pos, torch.tensor([100.0], dtype=F64)) > loss


def test_contrastive_unequal_batches():
    pos, neg = torch.tensor(POS), torch.tensor(NEG[:3])
    assert_close(
        contrastive_energy_loss(pos, neg, alpha=0.0),
        pos.mean() - neg.mean(),
        atol=1e-6,
        rtol=0,
    )
    with pytest.raises(ValueError, match="fake_energy"):
        contrastive_energy_loss(pos, neg, reduction="none")


def test_contrastive_bad_input():
    with pytest.raises(ValueError, match="alpha"):
        contrastive_energy_loss(torch.zeros(2), torch.zeros(2), alpha=-1.0)
    with pytest.raises(ValueError, match="real_energy"):
        contrastive_energy_loss(torch.zeros(2, 2), torch.zeros(2))
    with pytest.raises(ValueError, match="reduction"):
        contrastive_energy_loss(torch.zeros(2), torch.zeros(2), reduction="avg")


# --- score penalty ------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_score_penalty_linear_energy_is_w_squared_per_sample(dtype):
    w = _randn(3, 4, 5, seed=1, dtype=dtype)
    for seed in (2, 3):
        x = _randn(6, 3, 4, 5, seed=seed, dtype=dtype).requires_grad_()
        energy = (x * w).flatten(1).sum(1)
        pen = score_penalty(energy, x, weight=1.0, reduction="none")
        assert pen.shape == (6,)
        assert_close(pen, torch.full((6,), (w**2).sum().item()).to(pen.dtype), atol=1e-5, rtol=1e-5)
    # a per-pixel channel norm (MEG's score_penalty) would give a different number
    per_pixel = w.pow(2).sum(0).sqrt().mean() ** 2
    assert abs(per_pixel.item() - (w**2).sum().item()) > 1.0


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_score_penalty_quadratic_energy_equals_loop(reduction):
    x = _randn(4, 2, 3, seed=4).requires_grad_()
    energy = 0.5 * (x**2).flatten(1).sum(1)  # ∇U = x
    per = torch.stack([10.0 * (xi.detach() ** 2).sum() for xi in x])
    expected = {"mean": per.mean(), "sum": per.sum(), "none": per}[reduction]
    got = score_penalty(energy, x, reduction=reduction)
    assert got.dtype == x.dtype  # fp64 stays fp64; fp16/bf16 would be promoted to fp32
    assert_close(got, expected, atol=1e-12, rtol=1e-12)


def test_score_penalty_reaches_energy_parameters():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
    x = _randn(5, 4, seed=5, dtype=torch.float32).requires_grad_()
    score_penalty(net(x), x).backward()
    assert all(p.grad is not None for p in net[0].parameters())
    assert net[0].weight.grad.abs().max() > 0


def test_score_penalty_bad_input():
    x = torch.randn(3, 4)
    with pytest.raises(ValueError, match="x_real"):
        score_penalty(x.sum(1), x)
    xg = x.clone().requires_grad_()
    with pytest.raises(ValueError, match="weight"):
        score_penalty(xg.sum(1), xg, weight=-1.0)
    with pytest.raises(ValueError, match="real_energy"):
        score_penalty(xg.sum(), xg)


# --- MEG mutual information -----------------------------------------------------------------------


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mi_bce_is_ln2_at_zero_logits(reduction):
    t = torch.zeros(5, dtype=F64)
    per = torch.full((5,), LN2, dtype=F64)
    expected = {"mean": per.mean(), "sum": per.sum(), "none": per}[reduction]
    assert_close(mi_bce_loss(t, t, reduction=reduction), expected, atol=1e-14, rtol=0)


def test_mi_bce_equals_bce_with_logits_on_concatenation():
    joint, marginal = _randn(6, seed=6), _randn(6, seed=7)
    ref = nn.BCEWithLogitsLoss()(
        torch.cat([joint, marginal]), torch.cat([torch.ones(6), torch.zeros(6)]).to(F64)
    )
    assert_close(mi_bce_loss(joint, marginal), ref, atol=1e-12, rtol=0)
    assert torch.isfinite(mi_bce_loss(torch.full((2,), -200.0), torch.full((2,), 200.0)))


def test_random_derangement_has_no_fixed_points_and_is_seeded():
    for n in (2, 3, 7, 64):
        p = random_derangement(n, generator=torch.Generator().manual_seed(n))
        assert sorted(p.tolist()) == list(range(n))
        assert (p != torch.arange(n)).all()
    a = random_derangement(10, generator=torch.Generator().manual_seed(1))
    b = random_derangement(10, generator=torch.Generator().manual_seed(1))
    c = random_derangement(10, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    with pytest.raises(ValueError, match="n"):
        random_derangement(1)


def test_meg_mi_loss_pairs_joint_and_shuffled_latents():
    z = _randn(6, 3, seed=8)
    x_fake = 2.0 * z

    def statistics(x, zz):
        return (x * zz).sum(1)

    got = meg_mutual_information_loss(
        statistics, x_fake, z, generator=torch.Generator().manual_seed(3), reduction="none"
    )
    perm = random_derangement(6, generator=torch.Generator().manual_seed(3))
    expected = mi_bce_loss(statistics(x_fake, z), statistics(x_fake, z[perm]), reduction="none")
    assert_close(got, expected, atol=1e-12, rtol=0)
    # T ≡ 0 gives ln 2
    zero_t = meg_mutual_information_loss(lambda x, zz: 0.0 * (x.sum(1) + zz.sum(1)), x_fake, z)
    assert_close(zero_t, torch.tensor(LN2, dtype=F64), atol=1e-15, rtol=0)


def test_meg_mi_loss_trains_generator_and_statistics_net():
    torch.manual_seed(1)
    G = nn.Linear(3, 4)
    T = nn.Bilinear(4, 3, 1)
    z = _randn(8, 3, seed=9, dtype=torch.float32)
    meg_mutual_information_loss(T, G(z), z, generator=torch.Generator().manual_seed(0)).backward()
    assert G.weight.grad.abs().max() > 0 and T.weight.grad.abs().max() > 0


def test_meg_mi_loss_bad_input():
    z = torch.randn(4, 3)
    with pytest.raises(ValueError, match="z"):
        meg_mutual_information_loss(lambda x, zz: x.sum(1), torch.randn(5, 3), z)
    with pytest.raises(ValueError, match="statistics"):
        meg_mutual_information_loss(lambda x, zz: x.sum(), z, z)


# --- encoder entropy surrogate ------------------------------------------------------------------


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_encoder_surrogate_values(reduction):
    z = torch.tensor([[1.0, 2.0], [0.0, -1.0]], dtype=F64)
    z_rec = torch.tensor([[0.0, 0.0], [0.0, 1.0]], dtype=F64)
    per = torch.tensor([5.0, 4.0], dtype=F64) * 0.5
    expected = {"mean": per.mean(), "sum": per.sum(), "none": per}[reduction]
    assert_close(encoder_entropy_surrogate(z, z_rec, weight=0.5, reduction=reduction), expected)


def test_encoder_surrogate_trains_generator_and_encoder():
    torch.manual_seed(2)
    G, E = nn.Linear(3, 5), nn.Linear(5, 3)
    z = _randn(4, 3, seed=10, dtype=torch.float32)
    encoder_entropy_surrogate(z, E(G(z))).backward()
    assert G.weight.grad.abs().max() > 0 and E.weight.grad.abs().max() > 0
    with pytest.raises(ValueError, match="z_reconstructed"):
        encoder_entropy_surrogate(z, torch.randn(4, 2))
