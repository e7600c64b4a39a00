"""DRAGAN: linear-critic closed form, where the points lie, seeding."""

from __future__ import annotations

import pytest
import torch

from kexue.gan_losses import dragan_penalty, dragan_points


def _linear(w: torch.Tensor):
    return lambda x: x.flatten(1) @ w


@pytest.mark.parametrize("k", [0.0, 1.0])
@pytest.mark.parametrize("noise", ["uniform", "gaussian"])
def test_linear_critic_closed_form(k: float, noise: str) -> None:
    g = torch.Generator().manual_seed(0)
    w = torch.randn(12, generator=g, dtype=torch.float64)
    x = torch.randn(5, 3, 2, 2, generator=g, dtype=torch.float64)
    p = dragan_penalty(_linear(w), x, k=k, noise=noise, generator=g)  # type: ignore[arg-type]
    norm = w.norm().item()
    expected = 10.0 * (norm**2 if k == 0 else ((norm**2 + 1e-9) ** 0.5 - k) ** 2)
    assert p.item() == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("std", ["batch", "per_sample"])
def test_uniform_points_stay_in_the_box(std: str) -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(64, 10, generator=g)
    pts = dragan_points(x, std=std, generator=g)  # type: ignore[arg-type]
    s = x.std(correction=0) if std == "batch" else x.std(dim=1, correction=0, keepdim=True)
    assert pts.requires_grad
    assert (pts >= x).all() and (pts < x + 0.5 * s).all()
    # α per sample: a sample's offsets are δ·α·0.5·s with δ ∈ [0, 1), so some reach near the top.
    assert ((pts - x) / (0.5 * s)).max() > 0.9


def test_seeded_runs_repeat_and_bad_inputs() -> None:
    x = torch.randn(4, 6)
    a = dragan_points(x, generator=torch.Generator().manual_seed(3))
    b = dragan_points(x, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="noise"):
        dragan_points(x, noise="laplace")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="x_real contains non-finite"):
        dragan_points(torch.full((2, 3), float("nan")))
