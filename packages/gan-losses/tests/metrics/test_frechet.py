"""Fréchet distance: Gaussian closed forms, sample consistency, streaming statistics."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from kexue.gan_losses.metrics import (
    FeatureStats,
    feature_stats,
    frechet_distance,
    frechet_distance_from_moments,
    trace_sqrt_product,
)

F64 = torch.float64


def _rotation(d: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=F64))
    return q


@pytest.mark.parametrize("rotate", [False, True])
def test_diagonal_gaussians_closed_form(rotate: bool) -> None:
    g = torch.Generator().manual_seed(0)
    d = 6
    mu1, mu2 = torch.randn(d, generator=g, dtype=F64), torch.randn(d, generator=g, dtype=F64)
    a = torch.rand(d, generator=g, dtype=F64) * 3 + 0.1
    b = torch.rand(d, generator=g, dtype=F64) * 3 + 0.1
    expected = (mu1 - mu2).pow(2).sum() + (a.sqrt() - b.sqrt()).pow(2).sum()
    c1, c2 = torch.diag(a), torch.diag(b)
    if rotate:  # a common rotation changes nothing
        q = _rotation(d, 1)
        mu1, mu2, c1, c2 = q @ mu1, q @ mu2, q @ c1 @ q.T, q @ c2 @ q.T
    fd = frechet_distance_from_moments(mu1, c1, mu2, c2)
    assert fd.dtype == F64
    assert abs(fd.item() - expected.item()) < 1e-10


def test_non_commuting_2x2_trace_sqrt() -> None:
    c1 = torch.tensor([[2.0, 0.7], [0.7, 1.0]], dtype=F64)
    c2 = torch.tensor([[0.5, -0.3], [-0.3, 1.5]], dtype=F64)
    assert not torch.allclose(c1 @ c2, c2 @ c1)
    m = c1 @ c2  # its square root's trace: sqrt(tr M + 2 sqrt(det M)) for 2x2, positive eigenvalues
    expected = math.sqrt(torch.trace(m).item() + 2 * math.sqrt(torch.linalg.det(m).item()))
    assert abs(trace_sqrt_product(c1, c2).item() - expected) < 1e-12
    mu = torch.tensor([1.0, -2.0], dtype=F64)
    fd = frechet_distance_from_moments(mu, c1, torch.zeros(2, dtype=F64), c2)
    ref = 5.0 + torch.trace(c1).item() + torch.trace(c2).item() - 2 * expected
    assert abs(fd.item() - ref) < 1e-10


def test_identical_features_give_zero() -> None:
    x = torch.randn(500, 16, generator=torch.Generator().manual_seed(2))
    fd = frechet_distance(x, x.clone())
    assert -1e-10 <= fd.item() <= 1e-10


def test_rank_deficient_is_finite_and_warns() -> None:
    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(10, 32, generator=g), torch.randn(12, 32, generator=g)
    with pytest.warns(UserWarning, match="fewer rows than dimensions"):
        fd = frechet_distance(x, y)
    assert math.isfinite(fd.item()) and fd.item() > 0


def test_matches_scipy_sqrtm_route_on_full_rank_data() -> None:
    linalg = pytest.importorskip("scipy.linalg")
    g = torch.Generator().manual_seed(4)
    x = torch.randn(400, 5, generator=g, dtype=F64) @ torch.randn(5, 5, generator=g, dtype=F64)
    y = torch.randn(300, 5, generator=g, dtype=F64) + 0.5
    c1, c2 = torch.cov(x.T).numpy(), torch.cov(y.T).numpy()
    tr = linalg.sqrtm(c1 @ c2).real.trace()
    ref = ((x.mean(0) - y.mean(0)) ** 2).sum().item() + c1.trace() + c2.trace() - 2 * tr
    assert abs(frechet_distance(x, y).item() - ref) < 1e-9


def test_samples_of_known_gaussians_approach_the_closed_form() -> None:
    # Tolerance from 20 repeats of this setting (d = 8, N = 1e5): bias +0.002, sd 0.018.
    g = torch.Generator().manual_seed(0)
    d = 8
    a = torch.randn(d, d, generator=g, dtype=F64)
    b = torch.randn(d, d, generator=g, dtype=F64)
    c1 = a @ a.T / d + 0.1 * torch.eye(d, dtype=F64)
    c2 = b @ b.T / d + 0.1 * torch.eye(d, dtype=F64)
    m1, m2 = torch.zeros(d, dtype=F64), torch.full((d,), 0.3, dtype=F64)
    true = frechet_distance_from_moments(m1, c1, m2, c2).item()
    x = m1 + torch.randn(100_000, d, generator=g, dtype=F64) @ torch.linalg.cholesky(c1).T
    y = m2 + torch.randn(100_000, d, generator=g, dtype=F64) @ torch.linalg.cholesky(c2).T
    assert abs(frechet_distance(x, y).item() - true) < 0.08


def test_streaming_stats_equal_one_shot_even_with_a_large_offset() -> None:
    g = torch.Generator().manual_seed(5)
    x = torch.randn(1000, 7, generator=g, dtype=F64) * 0.01 + 1e6
    stats = FeatureStats()
    for chunk in x.split(37):
        stats.update(chunk)
    centred = x - x.mean(0)
    assert stats.n == 1000
    torch.testing.assert_close(stats.mean, x.mean(0), rtol=0, atol=1e-9)
    # The naive E[xxᵀ] − μμᵀ is off by ~1e12·eps ≈ 1e-4 here, the size of the covariance itself.
    torch.testing.assert_close(stats.cov, centred.T @ centred / 999, rtol=0, atol=1e-11)
    assert torch.equal(stats.features, x)
    y = torch.randn(800, 7, generator=g, dtype=F64) * 0.01 + 1e6
    fd_stream = frechet_distance(stats, FeatureStats().update(y))
    assert abs(fd_stream.item() - frechet_distance(x, y).item()) < 1e-12


def test_merge_equals_sequential_updates() -> None:
    g = torch.Generator().manual_seed(6)
    x = torch.randn(300, 4, generator=g)
    a, b = FeatureStats().update(x[:100]), FeatureStats().update(x[100:])
    whole = FeatureStats().update(x)
    a.merge_(b)
    torch.testing.assert_close(a.cov, whole.cov, rtol=1e-12, atol=1e-14)
    assert torch.equal(a.features, x)


def test_feature_stats_runs_a_feature_function_over_loader_batches() -> None:
    g = torch.Generator().manual_seed(7)
    images = torch.randn(90, 1, 4, 4, generator=g)
    labels = torch.zeros(90)
    w = torch.randn(16, 3, generator=g)
    batches = [(images[i : i + 32], labels[i : i + 32]) for i in range(0, 90, 32)]
    stats = feature_stats(lambda im: im.flatten(1) @ w, batches, max_items=70)
    assert stats.n == 70
    torch.testing.assert_close(stats.features, images[:70].flatten(1) @ w)
    no_rows = FeatureStats(capture_all=False).update(images.flatten(1))
    with pytest.raises(ValueError, match="capture_all=False"):
        _ = no_rows.features


def test_bad_input_names_the_argument() -> None:
    x = torch.randn(10, 3)
    with pytest.raises(ValueError, match=r"fake_feats.*non-finite"):
        frechet_distance(x, torch.full((10, 3), float("nan")))
    with pytest.raises(ValueError, match="same feature dimension"):
        frechet_distance(x, torch.randn(10, 4))
    with pytest.raises(ValueError, match=r"real_feats must be features of shape \(N, d\)"):
        frechet_distance(torch.randn(10), x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        frechet_distance(x, x + 1)  # N >= d: no warning
