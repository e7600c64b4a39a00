"""GLO codes on the sphere / in the ball, GLANN's IMLE is gan-losses' imle_loss, the classifier."""

from __future__ import annotations

import torch
from torch.testing import assert_close

from kexue.gan_losses import imle_loss
from kexue.vae import GLANN, GLO, DigitsFeatureNet, digits_generator, train_feature_net


def test_glo_codes_stay_projected_and_loss_is_the_distance() -> None:
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    glo = GLO(digits_generator(8, (16,)), 10, 8, generator_rng=g)
    assert_close(glo.codes.norm(dim=1), torch.ones(10))
    with torch.no_grad():
        glo.codes.mul_(3.0)
    glo.project_()
    assert_close(glo.codes.norm(dim=1), torch.ones(10))
    ball = GLO(digits_generator(8, (16,)), 10, 8, projection="ball", generator_rng=g)
    with torch.no_grad():
        ball.codes.mul_(500.0)
    ball.project_()
    assert bool((ball.codes.norm(dim=1) <= 1 + 1e-6).all())

    def l2(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (a - b).pow(2).flatten(1).sum(1)

    glo.distance = l2
    x, idx = torch.rand(4, 1, 8, 8), torch.tensor([0, 3, 5, 9])
    assert_close(glo.loss(x, idx), l2(glo.generator(glo.codes[idx]), x).mean())
    assert glo.sample_gaussian(5).shape == (5, 1, 8, 8)


def test_glann_imle_loss_is_gan_losses_imle_loss_on_codes() -> None:
    torch.manual_seed(0)
    glo = GLO(digits_generator(6, (16,)), 12, 6)
    glann = GLANN(glo, hidden=(16,))
    codes = glo.codes.detach()[:4]
    got = glann.imle_loss(codes, pool=9, generator=torch.Generator().manual_seed(1))
    pool = glann.mapped(9, generator=torch.Generator().manual_seed(1))
    assert_close(got, imle_loss(codes, pool))
    assert_close(pool.norm(dim=1), torch.ones(9))
    assert glann.sample(3).shape == (3, 1, 8, 8)


def test_feature_net_training_is_deterministic_and_frozen() -> None:
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(40, 1, 8, 8, generator=g), torch.randint(0, 10, (40,), generator=g)
    a = train_feature_net(x, y, seed=3, steps=5, widths=(4, 8), features=6)
    b = train_feature_net(x, y, seed=3, steps=5, widths=(4, 8), features=6)
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q) and not p.requires_grad
    taps = DigitsFeatureNet((4, 8), 6).taps(x[:2])
    assert [tuple(t.shape) for t in taps] == [(2, 4, 8, 8), (2, 8, 4, 4), (2, 6)]
