"""Fréchet distance between two feature distributions (FID over any extractor), in float64.

FD = ‖μ₁ − μ₂‖² + tr Σ₁ + tr Σ₂ − 2·tr (Σ₁Σ₂)^½  (Heusel et al. 2017, arXiv 1706.08500; Dowson &
Landau 1982 for the Gaussian closed form).

The trace term is taken on the **symmetric route**: with S = Σ₁^½ (``eigh``, eigenvalues clamped at
0), M = S Σ₂ S is symmetric PSD and has the eigenvalues of Σ₁Σ₂, so tr (Σ₁Σ₂)^½ = Σ √λᵢ(M) with
``eigvalsh`` — real by construction. ``scipy.linalg.sqrtm`` of the non-symmetric product, used by
pytorch-fid / TTUR / StudioGAN, returns complex output on rank-deficient covariances and needs an
εI retry (pytorch-fid#13, #117; TTUR#4, #40).
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor

from ._features import FeatureStats, check_features

__all__ = ["frechet_distance", "frechet_distance_from_moments", "trace_sqrt_product"]


def trace_sqrt_product(cov1: Tensor, cov2: Tensor) -> Tensor:
    """tr (Σ₁Σ₂)^½ for symmetric PSD ``(d, d)`` matrices, float64, via ``eigh`` + ``eigvalsh``."""
    c1 = cov1.to(torch.float64)
    c2 = cov2.to(torch.float64)
    c1 = 0.5 * (c1 + c1.T)
    w, v = torch.linalg.eigh(c1)
    s = (v * w.clamp_min(0).sqrt()) @ v.T
    m = s @ c2 @ s
    m = 0.5 * (m + m.T)
    return torch.linalg.eigvalsh(m).clamp_min(0).sqrt().sum()


def _check_moments(mu: Tensor, cov: Tensor, name: str) -> None:
    if mu.dim() != 1 or cov.shape != (mu.shape[0], mu.shape[0]):
        raise ValueError(
            f"{name}: mean must be (d,) and covariance (d, d); got shapes {tuple(mu.shape)} and "
            f"{tuple(cov.shape)}"
        )
    if not (bool(torch.isfinite(mu).all()) and bool(torch.isfinite(cov).all())):
        raise ValueError(f"{name}: mean or covariance contains non-finite values")


def frechet_distance_from_moments(mu1: Tensor, cov1: Tensor, mu2: Tensor, cov2: Tensor) -> Tensor:
    """Fréchet distance between N(μ₁, Σ₁) and N(μ₂, Σ₂): a float64 scalar tensor.

    Arguments:
        mu1, mu2: means ``(d,)``; cov1, cov2: symmetric PSD covariances ``(d, d)``.

    Exact up to float64 rounding (no εI offset). May be a tiny negative number (~1e-12) for equal
    moments; it is not clamped.
    """
    _check_moments(mu1, cov1, "moments 1")
    _check_moments(mu2, cov2, "moments 2")
    if mu1.shape != mu2.shape:
        raise ValueError(
            f"the two distributions must have the same dimension; got means {tuple(mu1.shape)} "
            f"and {tuple(mu2.shape)}"
        )
    m1, m2 = mu1.to(torch.float64), mu2.to(torch.float64)
    c1, c2 = cov1.to(torch.float64), cov2.to(torch.float64)
    diff = m1 - m2.to(m1.device)
    c2 = c2.to(c1.device)
    return diff.dot(diff) + torch.trace(c1) + torch.trace(c2) - 2.0 * trace_sqrt_product(c1, c2)


def _moments(x: Tensor | FeatureStats, name: str) -> tuple[Tensor, Tensor, int]:
    if isinstance(x, FeatureStats):
        if x.n < 2:
            raise ValueError(f"{name} needs at least 2 rows for a covariance, has {x.n}")
        return x.mean, x.cov, x.n
    x = check_features(x, name, min_rows=2)
    xd = x.detach().to(torch.float64)
    mu = xd.mean(dim=0)
    c = xd - mu
    return mu, (c.T @ c) / (x.shape[0] - 1), int(x.shape[0])


def frechet_distance(
    real_feats: Tensor | FeatureStats, fake_feats: Tensor | FeatureStats
) -> Tensor:
    """Fréchet distance between the Gaussian fits of two feature sets: a float64 scalar tensor.

    Arguments:
        real_feats, fake_feats: features ``(N, d)`` and ``(M, d)`` (any float dtype) or
            :class:`FeatureStats` accumulated over batches. Covariances use ``N − 1``.

    Returns:
        FD ≥ 0 up to rounding. Warns when a set has fewer rows than dimensions (the covariance is
        then rank-deficient: FD stays finite, but it is a poor estimate). FD is biased upward by
        roughly O(d/N) (Chong & Forsyth 2020, arXiv 1911.07023): compare values at equal N.

    Example::

        fd = frechet_distance(classifier_features(x_real), classifier_features(G(z)))
    """
    mu1, c1, n1 = _moments(real_feats, "real_feats")
    mu2, c2, n2 = _moments(fake_feats, "fake_feats")
    if mu1.shape != mu2.shape:
        raise ValueError(
            "real_feats and fake_feats must have the same feature dimension; got "
            f"{mu1.shape[0]} and {mu2.shape[0]}"
        )
    d = int(mu1.shape[0])
    if min(n1, n2) < d:
        warnings.warn(
            f"Fréchet distance from {n1} real and {n2} fake rows in {d} dimensions: a set with "
            "fewer rows than dimensions has a rank-deficient covariance; the value is finite but "
            "strongly biased",
            stacklevel=2,
        )
    return frechet_distance_from_moments(mu1, c1, mu2, c2)
