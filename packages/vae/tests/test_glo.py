"""GLO pieces: pyramid inversion, Lap1 weights, perceptual distance, code projection (spec §4.8)."""

from __future__ import annotations

import pytest
import torch
from torch.testing import assert_close

from kexue.vae import (
    lap1_loss,
    laplacian_pyramid,
    perceptual_distance,
    project_codes,
    pyramid_reconstruct,
)


def test_pyramid_inverts_exactly_and_has_the_digit_shapes() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 1, 8, 8, generator=g, dtype=torch.float64)
    pyr = laplacian_pyramid(x, levels=3)
    assert [tuple(p.shape[-2:]) for p in pyr] == [(8, 8), (4, 4), (2, 2)]
    assert_close(pyramid_reconstruct(pyr), x, rtol=0, atol=1e-12)
    odd = torch.rand(2, 3, 7, 5, generator=g, dtype=torch.float64)
    assert_close(pyramid_reconstruct(laplacian_pyramid(odd, 3)), odd, rtol=0, atol=1e-12)


def test_constant_image_has_no_band_energy() -> None:
    pyr = laplacian_pyramid(torch.full((2, 1, 8, 8), 0.37, dtype=torch.float64), 3)
    for band in pyr[:-1]:
        assert band.abs().max().item() < 1e-12
    assert_close(pyr[-1], torch.full((2, 1, 2, 2), 0.37, dtype=torch.float64))


def test_lap1_zero_on_equal_inputs_and_paper_weights_are_d_times_level_means() -> None:
    g = torch.Generator().manual_seed(1)
    x, y = torch.rand(4, 1, 8, 8, generator=g), torch.rand(4, 1, 8, 8, generator=g)
    assert lap1_loss(x, x).item() == 0.0
    px, py = laplacian_pyramid(x, 3), laplacian_pyramid(y, 3)
    expected = 64 * sum((a - b).abs().mean((1, 2, 3)) for a, b in zip(px, py))
    assert_close(lap1_loss(x, y, reduction="none"), expected, rtol=1e-5, atol=1e-5)
    plain = lap1_loss(x, y, level_weights=[1.0, 0.0, 0.0], reduction="none")
    assert_close(plain, (px[0] - py[0]).abs().sum((1, 2, 3)), rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="level_weights"):
        lap1_loss(x, y, level_weights=[1.0])


def test_perceptual_distance_is_pixel_l1_plus_weighted_tap_l1() -> None:
    g = torch.Generator().manual_seed(2)
    x, y = torch.rand(5, 1, 8, 8, generator=g), torch.rand(5, 1, 8, 8, generator=g)
    w = torch.randn(64, 6, generator=g)

    def taps(t: torch.Tensor) -> list[torch.Tensor]:
        h = t.flatten(1) @ w
        return [h, h.relu()]

    got = perceptual_distance(
        x, y, features=taps, weights=[0.5, 2.0], pixel_weight=3.0, reduction="none"
    )
    hx, hy = taps(x), taps(y)
    expected = (
        3.0 * (x - y).abs().mean((1, 2, 3))
        + 0.5 * (hx[0] - hy[0]).abs().mean(1)
        + 2.0 * (hx[1] - hy[1]).abs().mean(1)
    )
    assert_close(got, expected, rtol=1e-5, atol=1e-6)
    assert perceptual_distance(x, x, features=taps).item() == 0.0


def test_projection_sphere_and_ball() -> None:
    g = torch.Generator().manual_seed(3)
    codes = torch.randn(50, 8, generator=g) * torch.rand(50, 1, generator=g) * 3
    sphere = project_codes(codes, "sphere")
    assert_close(sphere.norm(dim=1), torch.ones(50), rtol=0, atol=1e-6)
    ball = project_codes(codes, "ball")
    assert bool((ball.norm(dim=1) <= 1 + 1e-6).all())
    inside = codes.norm(dim=1) < 1
    assert torch.equal(ball[inside], codes[inside])
    with pytest.raises(ValueError, match="projection"):
        project_codes(codes, "cube")
