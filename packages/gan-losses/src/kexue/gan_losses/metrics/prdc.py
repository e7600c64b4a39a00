"""Precision, recall, density and coverage of generated samples (Naeem et al. 2020).

"Reliable Fidelity and Diversity Metrics for Generative Models" (arXiv 2002.09797), following
clovaai/generative-evaluation-prdc: each real Xᵢ gets the radius rᵢ = distance to its k-th nearest
*other* real point (k = 5); then

- precision = fraction of fakes inside ∪ᵢ B(Xᵢ, rᵢ);
- recall = fraction of reals inside ∪ⱼ B(Yⱼ, r'ⱼ), radii r'ⱼ from the fakes;
- density = (1/(kM))·Σⱼ Σᵢ 1[Yⱼ ∈ B(Xᵢ, rᵢ)];
- coverage = fraction of reals whose ball holds at least one fake.

Balls are open (``<``, clovaai) by default; ``boundary="closed"`` uses ``≤`` (stylegan2-ada's
precision/recall). Distances are exact float64 Euclidean distances computed in row chunks (memory
O(chunk·N)); both sets are first centred on the real mean, so the ‖x‖² + ‖y‖² − 2xᵀy form loses
nothing to a common offset.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from ._features import FeatureStats, as_features, check_same_dim

__all__ = ["prdc"]


def _lhs(x: Tensor) -> Tensor:
    """``[x, ‖x‖², 1]``: with :func:`_rhs`, one matmul gives ‖x − y‖² (float64)."""
    ones = torch.ones(x.shape[0], 1, dtype=x.dtype, device=x.device)
    return torch.cat([x, x.pow(2).sum(1, keepdim=True), ones], dim=1)


def _rhs(y: Tensor) -> Tensor:
    ones = torch.ones(y.shape[0], 1, dtype=y.dtype, device=y.device)
    return torch.cat([-2.0 * y, ones, y.pow(2).sum(1, keepdim=True)], dim=1)


def _kth_radii_sq(x: Tensor, k: int, chunk: int) -> Tensor:
    """Squared distance from each row to its k-th nearest other row (k + 1-th counting itself)."""
    lhs, rhs = _lhs(x), _rhs(x)
    out = torch.empty(x.shape[0], dtype=x.dtype, device=x.device)
    for start in range(0, x.shape[0], chunk):
        d = lhs[start : start + chunk] @ rhs.T
        d.diagonal(offset=start).fill_(0.0)  # self-distance is exactly 0
        out[start : start + chunk] = d.topk(k + 1, dim=1, largest=False).values[:, -1]
    return out.clamp_min(0.0)


def prdc(
    real_feats: Tensor | FeatureStats,
    fake_feats: Tensor | FeatureStats,
    *,
    k: int = 5,
    boundary: Literal["strict", "closed"] = "strict",
    chunk_size: int = 1024,
) -> dict[str, float]:
    """Precision, recall, density and coverage of ``fake_feats`` against ``real_feats``.

    Arguments:
        real_feats, fake_feats: features ``(N, d)``, ``(M, d)`` (or capturing
            :class:`FeatureStats`); both need more than ``k`` rows.
        k: nearest-neighbour index for the radii (default 5, clovaai's recommendation).
        boundary: ``"strict"`` (open balls, ``<``; clovaai, default) or ``"closed"`` (``≤``).
        chunk_size: rows of the distance matrix held at once.

    Returns:
        ``{"precision", "recall", "density", "coverage"}`` as Python floats (density can exceed 1).
        For two samples of one distribution precision ≈ recall ≈ density ≈ 1 in expectation up to
        finite-sample effects (clovaai's README: 0.477 / 0.471 / 1.056 / 0.974 for N(0, I) in
        d = 1000 at 10k samples).
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if boundary not in ("strict", "closed"):
        raise ValueError(f"boundary must be 'strict' or 'closed', got {boundary!r}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    real = as_features(real_feats, "real_feats", min_rows=k + 1)
    fake = as_features(fake_feats, "fake_feats", min_rows=k + 1)
    check_same_dim(real, fake, "real_feats", "fake_feats")
    real64 = real.detach().to(torch.float64)
    centre = real64.mean(dim=0)
    real64 = real64 - centre
    fake64 = fake.detach().to(torch.float64).to(real64.device) - centre
    r_real = _kth_radii_sq(real64, k, chunk_size)
    r_fake = _kth_radii_sq(fake64, k, chunk_size)
    inside = torch.lt if boundary == "strict" else torch.le
    real_lhs, fake_rhs = _lhs(real64), _rhs(fake64)
    ball_count = torch.zeros(fake64.shape[0], dtype=torch.int64, device=real64.device)
    covered = torch.zeros(real64.shape[0], dtype=torch.bool, device=real64.device)
    recalled = torch.zeros(real64.shape[0], dtype=torch.bool, device=real64.device)
    for start in range(0, real64.shape[0], chunk_size):
        d = real_lhs[start : start + chunk_size] @ fake_rhs.T  # (c, M) squared distances
        in_real_ball = inside(d, r_real[start : start + chunk_size, None])
        ball_count += in_real_ball.view(torch.uint8).sum(0, dtype=torch.int32)
        covered[start : start + chunk_size] = in_real_ball.any(1)
        recalled[start : start + chunk_size] = inside(d, r_fake[None, :]).any(1)
    n_fake = fake64.shape[0]
    return {
        "precision": float((ball_count > 0).double().mean()),
        "recall": float(recalled.double().mean()),
        "density": float(ball_count.sum().item() / (k * n_fake)),
        "coverage": float(covered.double().mean()),
    }
