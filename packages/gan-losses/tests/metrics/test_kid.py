"""KID: unbiasedness on a finite support, ≈ 0 on splits of one sample, stylegan2-ada's formula."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kexue.gan_losses.metrics import kernel_inception_distance, polynomial_mmd2_unbiased

F64 = torch.float64


def _stylegan2_ada_subset(x: np.ndarray, y: np.ndarray) -> float:
    """The per-subset term of stylegan2-ada's metrics/kernel_inception_distance.py (paraphrased)."""
    n, m = x.shape[1], x.shape[0]
    a = (x @ x.T / n + 1) ** 3 + (y @ y.T / n + 1) ** 3
    b = (x @ y.T / n + 1) ** 3
    return ((a.sum() - np.diag(a).sum()) / (m - 1) - b.sum() * 2 / m) / m


def test_subset_term_equals_stylegan2_ada_formula() -> None:
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(50, 12, generator=g, dtype=F64), torch.randn(50, 12, generator=g, dtype=F64)
    ours = polynomial_mmd2_unbiased(x, y).item()
    ref = _stylegan2_ada_subset(x.numpy(), y.numpy())
    assert abs(ours - ref) <= 1e-12 * max(1.0, abs(ref))


def test_kid_draws_fake_then_real_subsets_from_the_generator() -> None:
    g = torch.Generator().manual_seed(1)
    real, fake = (
        torch.randn(40, 6, generator=g, dtype=F64),
        torch.randn(30, 6, generator=g, dtype=F64),
    )
    mean, sd = kernel_inception_distance(
        real, fake, subsets=5, subset_size=20, generator=torch.Generator().manual_seed(9)
    )
    rng = torch.Generator().manual_seed(9)
    vals = []
    for _ in range(5):
        i_f = torch.randperm(30, generator=rng)[:20]
        i_r = torch.randperm(40, generator=rng)[:20]
        vals.append(_stylegan2_ada_subset(fake[i_f].numpy(), real[i_r].numpy()))
    assert abs(mean.item() - float(np.mean(vals))) < 1e-12
    assert abs(sd.item() - float(np.std(vals))) < 1e-12


def test_unbiased_on_a_finite_support() -> None:
    g = torch.Generator().manual_seed(2)
    support = torch.randn(5, 3, generator=g, dtype=F64)
    p = torch.tensor([0.4, 0.3, 0.1, 0.1, 0.1], dtype=F64)
    q = torch.tensor([0.1, 0.1, 0.2, 0.3, 0.3], dtype=F64)
    k = (support @ support.T / 3 + 1) ** 3
    population = (p @ k @ p + q @ k @ q - 2 * p @ k @ q).item()
    draws, m = 10_000, 8
    ix = torch.multinomial(p, draws * m, replacement=True, generator=g).view(draws, m)
    iy = torch.multinomial(q, draws * m, replacement=True, generator=g).view(draws, m)
    # The estimator on index draws: the kernel matrix entries picked by index pairs.
    kxx, kyy, kxy = (
        k[ix[:, :, None], ix[:, None, :]],
        k[iy[:, :, None], iy[:, None, :]],
        k[ix[:, :, None], iy[:, None, :]],
    )
    off = 1 - torch.eye(m, dtype=F64)
    est = ((kxx * off).sum((1, 2)) + (kyy * off).sum((1, 2))) / (m * (m - 1)) - 2 * kxy.sum(
        (1, 2)
    ) / m**2
    se = est.std().item() / draws**0.5
    assert abs(est.mean().item() - population) < 4 * se
    # The public function gives the same per-draw value.
    one = polynomial_mmd2_unbiased(support[ix[0]], support[iy[0]]).item()
    assert abs(one - est[0].item()) < 1e-12


def test_splits_of_one_sample_average_to_zero() -> None:
    g = torch.Generator().manual_seed(3)
    pool = torch.randn(200, 4, generator=g, dtype=F64)
    vals = []
    for _ in range(200):
        perm = torch.randperm(200, generator=g)
        vals.append(polynomial_mmd2_unbiased(pool[perm[:100]], pool[perm[100:]]).item())
    mean, se = float(np.mean(vals)), float(np.std(vals, ddof=1)) / 200**0.5
    assert abs(mean) < 3 * se
    # The same set twice is not 0 (negative here): only the within-set diagonals are excluded,
    # while the cross term keeps the large k(x, x).
    assert polynomial_mmd2_unbiased(pool[:50], pool[:50]).item() < -1e-3


def test_separates_shifted_distributions_and_clips_subset_size() -> None:
    g = torch.Generator().manual_seed(4)
    real, fake = torch.randn(300, 8, generator=g), torch.randn(200, 8, generator=g) + 0.5
    same = kernel_inception_distance(
        real,
        torch.randn(200, 8, generator=g),
        subsets=20,
        generator=torch.Generator().manual_seed(0),
    )[0]
    far, sd = kernel_inception_distance(
        real, fake, subsets=20, generator=torch.Generator().manual_seed(0)
    )
    assert far.item() > 10 * abs(same.item()) and far.item() > 0.05 and sd.item() >= 0
    assert far.dtype == F64


def test_validation() -> None:
    x = torch.randn(10, 3)
    with pytest.raises(ValueError, match="subsets must be >= 1"):
        kernel_inception_distance(x, x, subsets=0)
    with pytest.raises(ValueError, match="same feature dimension"):
        kernel_inception_distance(x, torch.randn(10, 2))
    with pytest.raises(ValueError, match="real_feats needs at least 2 rows"):
        kernel_inception_distance(x[:1], x)
