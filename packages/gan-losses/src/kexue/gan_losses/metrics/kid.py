"""Kernel Inception Distance (KID) over any features: unbiased MMD² with the cubic kernel, float64.

Bińkowski et al. 2018, "Demystifying MMD GANs" (arXiv 1801.01401): k(x, y) = (xᵀy/d + 1)³ and, per
subset of m rows drawn without replacement from each set,

    MMD²ᵤ = [Σ_{i≠j} k(xᵢ, xⱼ) + Σ_{i≠j} k(yᵢ, yⱼ)] / (m(m − 1)) − 2·Σ_{i,j} k(xᵢ, yⱼ) / m².

Averaged over subsets; stylegan2-ada's ``kid50k_full`` uses 100 subsets of ≤ 1000 rows. The
estimator is unbiased, so values for equal distributions scatter around 0 and may be negative.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._features import FeatureStats, as_features, check_same_dim

__all__ = ["kernel_inception_distance", "polynomial_mmd2_unbiased"]


def _augment(x: Tensor) -> Tensor:
    """``[x/√d, 1]`` in float64, so that one matmul gives xᵀy/d + 1."""
    x64 = x.detach().to(torch.float64)
    ones = torch.ones(x64.shape[0], 1, dtype=torch.float64, device=x64.device)
    return torch.cat([x64 / x64.shape[1] ** 0.5, ones], dim=1)


def _cubic_sum(a: Tensor, b: Tensor, *, off_diagonal: bool) -> Tensor:
    """Σ k(aᵢ, bⱼ) for augmented rows: one matmul, then the cube in place."""
    k = (a @ b.T).pow_(3)
    total = k.sum()
    return total - k.diagonal().sum() if off_diagonal else total


def polynomial_mmd2_unbiased(x: Tensor, y: Tensor) -> Tensor:
    """Unbiased MMD² of one pair of equal-size subsets ``(m, d)`` under k = (xᵀy/d + 1)³, float64.

    Needs m ≥ 2. This is the per-subset term of :func:`kernel_inception_distance`.
    """
    x = as_features(x, "x", min_rows=2)
    y = as_features(y, "y", min_rows=2)
    check_same_dim(x, y, "x", "y")
    if x.shape[0] != y.shape[0]:
        raise ValueError(
            f"x and y must be subsets of equal size; got {tuple(x.shape)}, {tuple(y.shape)}"
        )
    return _mmd2(_augment(x), _augment(y))


def _mmd2(x: Tensor, y: Tensor) -> Tensor:
    m = x.shape[0]
    within = _cubic_sum(x, x, off_diagonal=True) + _cubic_sum(y, y, off_diagonal=True)
    return within / (m * (m - 1)) - 2.0 * _cubic_sum(x, y, off_diagonal=False) / (m * m)


def kernel_inception_distance(
    real_feats: Tensor | FeatureStats,
    fake_feats: Tensor | FeatureStats,
    *,
    subsets: int = 100,
    subset_size: int = 1000,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """KID: mean and standard deviation of the unbiased cubic-kernel MMD² over random subsets.

    Arguments:
        real_feats, fake_feats: features ``(N, d)``, ``(M, d)`` or capturing :class:`FeatureStats`.
        subsets: number of subset pairs (default 100, stylegan2-ada ``kid50k_full``).
        subset_size: rows per subset (default 1000); clipped to ``min(N, M)``, at least 2.
        generator: a CPU ``torch.Generator`` for the subset draws (reproducible runs).

    Returns:
        ``(mean, sd)`` float64 scalars; ``sd`` is the population standard deviation over the subsets
        (numpy's default, as torch-fidelity and torchmetrics report it). Each subset draws m fake
        rows then m real rows without replacement, as stylegan2-ada's ``compute_kid``.

    Example::

        kid, kid_sd = kernel_inception_distance(f_real, f_fake, generator=torch.Generator().manual_seed(0))
    """
    real = as_features(real_feats, "real_feats", min_rows=2)
    fake = as_features(fake_feats, "fake_feats", min_rows=2)
    check_same_dim(real, fake, "real_feats", "fake_feats")
    if subsets < 1:
        raise ValueError(f"subsets must be >= 1, got {subsets}")
    if subset_size < 2:
        raise ValueError(f"subset_size must be >= 2, got {subset_size}")
    m = min(real.shape[0], fake.shape[0], subset_size)
    real_aug = _augment(real)
    fake_aug = _augment(fake).to(real_aug.device)
    values = torch.empty(subsets, dtype=torch.float64, device=real_aug.device)
    for s in range(subsets):
        i_fake = torch.randperm(fake.shape[0], generator=generator)[:m].to(real_aug.device)
        i_real = torch.randperm(real.shape[0], generator=generator)[:m].to(real_aug.device)
        values[s] = _mmd2(fake_aug[i_fake], real_aug[i_real])
    return values.mean(), values.std(correction=0)
