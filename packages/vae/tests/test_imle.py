"""Pooled IMLE: brute-force matching, ties, gradients, equality with gan-losses (spec §4.7)."""

from __future__ import annotations

import torch
from torch.testing import assert_close

from kexue.gan_losses import imle_loss
from kexue.vae import imle_loss_pooled, imle_match


def test_match_is_brute_force_argmin_for_every_chunk_size() -> None:
    g = torch.Generator().manual_seed(0)
    t, pool = torch.randn(13, 5, generator=g), torch.randn(40, 5, generator=g)
    d = torch.cdist(t, pool, compute_mode="donot_use_mm_for_euclid_dist")
    for chunk in (1, 7, 13, None):
        index, sq = imle_match(t, pool, chunk=chunk)
        assert torch.equal(index, d.argmin(1))
        assert_close(sq, d.min(1).values.pow(2), rtol=1e-5, atol=1e-6)
        assert bool((sq >= 0).all())


def test_ties_go_to_the_lowest_index() -> None:
    pool = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [-1.0, 0.0]])
    index, _ = imle_match(torch.tensor([[0.0, 0.0], [2.0, 0.0]]), pool)
    assert index.tolist() == [0, 0]


def test_loss_is_zero_when_the_pool_contains_every_target() -> None:
    g = torch.Generator().manual_seed(1)
    t = torch.randn(6, 3, generator=g)
    pool = torch.cat([torch.randn(10, 3, generator=g), t.flip(0)])
    assert imle_loss_pooled(t, pool).item() == 0.0


def test_gradient_reaches_only_matched_pool_rows() -> None:
    g = torch.Generator().manual_seed(2)
    t = torch.randn(4, 3, generator=g)
    pool = torch.randn(20, 3, generator=g, requires_grad=True)
    imle_loss_pooled(t, pool, reduction="sum").backward()
    index, _ = imle_match(t, pool)
    hit = torch.zeros(20, dtype=torch.bool)
    hit[index] = True
    assert bool((pool.grad[~hit] == 0).all())
    assert bool((pool.grad[hit].abs().sum(1) > 0).all())


def test_pool_equal_to_batch_is_gan_losses_imle_loss() -> None:
    g = torch.Generator().manual_seed(3)
    real = torch.randn(16, 1, 4, 4, generator=g)
    fake = torch.randn(16, 1, 4, 4, generator=g, requires_grad=True)
    assert_close(imle_loss_pooled(real, fake), imle_loss(real, fake), rtol=1e-6, atol=1e-6)
    for r in ("sum", "none"):
        assert_close(
            imle_loss_pooled(real, fake, chunk=5, reduction=r), imle_loss(real, fake, reduction=r)
        )
