"""DiffAugment invariances, per-sample draws, gradients and seeding."""

from __future__ import annotations

import pytest
import torch

from kexue.gan_losses.augment import (
    DiffAugment,
    adjust_brightness,
    adjust_contrast,
    adjust_saturation,
    cutout,
    diff_augment,
    rand_cutout,
    rand_translation,
    translate,
)

F64 = torch.float64


def _images(seed: int = 0, b: int = 4, c: int = 3, h: int = 8, w: int = 8, dtype=torch.float32):
    return (
        torch.rand(b, c, h, w, generator=torch.Generator().manual_seed(seed), dtype=dtype) * 2 - 1
    )


def test_identities() -> None:
    x = _images()
    assert torch.equal(diff_augment(x, ""), x)
    assert torch.equal(adjust_brightness(x, 0.0), x)
    torch.testing.assert_close(adjust_saturation(x, 1.0), x, rtol=0, atol=1e-6)
    torch.testing.assert_close(adjust_contrast(x, 1.0), x, rtol=0, atol=1e-6)
    zero = torch.zeros(4, dtype=torch.long)
    assert torch.equal(translate(x, zero, zero), x)
    const = torch.full((2, 3, 5, 5), 0.3)
    u = torch.tensor([0.2, 1.7])
    torch.testing.assert_close(adjust_contrast(const, u), const)
    torch.testing.assert_close(adjust_saturation(const, u), const)


def test_translation_moves_pixels_and_zero_fills() -> None:
    x = torch.arange(16.0).view(1, 1, 4, 4)
    out = translate(x, torch.tensor([1]), torch.tensor([-1]))  # out[i, j] = x[i + 1, j − 1]
    expected = torch.tensor([[0, 4, 5, 6], [0, 8, 9, 10], [0, 12, 13, 14], [0, 0, 0, 0.0]])
    assert torch.equal(out[0, 0], expected)


def test_cutout_zeroes_exactly_side_squared_pixels_away_from_borders() -> None:
    x = torch.ones(3, 2, 10, 10)
    out = cutout(x, torch.tensor([5, 4, 6]), torch.tensor([5, 6, 4]), (4, 4))
    assert ((out == 0).sum(dim=(2, 3)) == 16).all()
    clipped = cutout(x, torch.tensor([0, 0, 9]), torch.tensor([0, 9, 9]), (4, 4))
    assert ((clipped == 0).sum(dim=(2, 3)) < 16).all()  # clipped at the borders
    # random cutout: side round(0.5·10) = 5, never more than 25 zeroed pixels per channel
    rc = rand_cutout(torch.ones(64, 1, 10, 10), generator=torch.Generator().manual_seed(0))
    zeros = (rc == 0).sum(dim=(1, 2, 3))
    assert zeros.max() == 25 and zeros.min() > 0


def test_draws_are_per_sample_and_seeded() -> None:
    x = _images(b=1).expand(32, 3, 8, 8).contiguous()  # 32 copies of one image
    out = diff_augment(x, "color,translation,cutout", generator=torch.Generator().manual_seed(1))
    assert len({tuple(o.flatten().tolist()) for o in out}) > 28
    again = diff_augment(x, "color,translation,cutout", generator=torch.Generator().manual_seed(1))
    assert torch.equal(out, again)
    shifts = rand_translation(x, generator=torch.Generator().manual_seed(2))
    assert not torch.equal(shifts[0], shifts[1]) or not torch.equal(shifts[1], shifts[2])


def test_same_policy_on_real_and_fake_with_independent_draws() -> None:
    aug = DiffAugment("color,translation,cutout", generator=torch.Generator().manual_seed(3))
    real, fake = _images(1), _images(2)
    out_r, out_f = aug(real), aug(fake)
    # One object = one policy; the draws continue, so the fake batch got fresh parameters:
    ref = torch.Generator().manual_seed(3)
    assert torch.equal(out_r, diff_augment(real, aug.policy, generator=ref))
    assert torch.equal(out_f, diff_augment(fake, aug.policy, generator=ref))
    assert not torch.equal(aug(real), out_r)


def test_gradcheck_through_every_op() -> None:
    x = _images(4, b=2, c=2, h=5, w=5, dtype=F64).requires_grad_()

    def fn(t: torch.Tensor) -> torch.Tensor:
        return diff_augment(
            t, "color,translation,cutout", generator=torch.Generator().manual_seed(5)
        )

    assert torch.autograd.gradcheck(fn, (x,))


def test_probability_gate() -> None:
    x = _images(6, b=64)
    assert torch.equal(
        diff_augment(x, "color", p=0.0, generator=torch.Generator().manual_seed(0)), x
    )
    half = diff_augment(
        x, "translation", p=torch.tensor(0.5), generator=torch.Generator().manual_seed(0)
    )
    changed = (half != x).flatten(1).any(1).float().mean().item()
    assert 0.2 < changed < 0.7  # ~half of the samples (zero shifts leave some unchanged)


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="unknown DiffAugment policy word 'colour'"):
        diff_augment(_images(), "colour")
    with pytest.raises(ValueError, match=r"x must be float images \(B, C, H, W\)"):
        diff_augment(torch.zeros(3, 8, 8))
