"""EMA codebook update with Laplace-smoothed counts (VQ-VAE appendix; the sonnet quantiser).

Per step, with batch counts n_k = |{i : k*(i) = k}| and sums s_k = Σ_{i: k*(i)=k} z_i:

    N_k ← γ·N_k + (1−γ)·n_k,        m_k ← γ·m_k + (1−γ)·s_k,
    Ñ_k = (N_k + ε) / (Σ_j N_j + K·ε) · Σ_j N_j,        e_k = m_k / Ñ_k.

The statistics N (``cluster_size``) and m (``embed_avg``) are fp32 *buffers*, not parameters. They
must be initialised consistently with the codebook, N_k = n₀ and m_k = n₀·e_k (spec §2.4): the
rosinality-style start N = 0, m = e flings every code unused by the first batch to ≈ γ/ε·e ≈ 10⁵·e.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["ema_codebook", "ema_update_", "laplace_smoothed"]


def _check_stats(cluster_size: Tensor, embed_avg: Tensor | None = None) -> None:
    if cluster_size.dim() != 1:
        raise ValueError(f"cluster_size must be (K,), got shape {tuple(cluster_size.shape)}")
    if embed_avg is not None and (
        embed_avg.dim() != 2 or embed_avg.shape[0] != cluster_size.shape[0]
    ):
        raise ValueError(
            f"embed_avg must be (K, D) with K = cluster_size.shape[0] = {cluster_size.shape[0]}, "
            f"got shape {tuple(embed_avg.shape)}"
        )


def _check_finite(**tensors: Tensor) -> None:
    """Raise naming the first of ``tensors`` that holds a NaN or inf (one host sync for all)."""
    floating = {k: t for k, t in tensors.items() if t.is_floating_point() and t.numel()}
    if not floating:
        return
    norms = torch.stack(
        [torch.linalg.vector_norm(t.detach(), ord=math.inf).double() for t in floating.values()]
    ).tolist()
    for (name, t), norm in zip(floating.items(), norms, strict=True):
        if not math.isfinite(norm):
            raise ValueError(f"{name} contains NaN or inf (shape {tuple(t.shape)})")


@torch.no_grad()
def ema_update_(
    cluster_size: Tensor, embed_avg: Tensor, counts: Tensor, sums: Tensor, *, decay: float
) -> None:
    """Update the EMA statistics in place: N ← γ·N + (1−γ)·n, m ← γ·m + (1−γ)·s.

    Arguments:
        cluster_size: (K,) EMA counts N, updated in place.
        embed_avg: (K, D) EMA sums m, updated in place.
        counts: (K,) batch counts n_k (all-reduced already under DDP).
        sums: (K, D) batch sums s_k.
        decay: γ ∈ [0, 1]; 0.99 in the paper [VQ-VAE appendix], 0.8 in lucidrains.

    Returns:
        None.

    References:
        VQ-VAE, arXiv:1711.00937, appendix A.1; https://kexue.fm/archives/6760.
    """
    _check_stats(cluster_size, embed_avg)
    if not 0.0 <= decay <= 1.0:
        raise ValueError(f"decay must be in [0, 1], got {decay}")
    if counts.shape != cluster_size.shape:
        raise ValueError(
            f"counts must have shape {tuple(cluster_size.shape)} like cluster_size, "
            f"got {tuple(counts.shape)}"
        )
    if sums.shape != embed_avg.shape:
        raise ValueError(
            f"sums must have shape {tuple(embed_avg.shape)} like embed_avg, got {tuple(sums.shape)}"
        )
    _check_finite(counts=counts, sums=sums)
    _ema_update_(cluster_size, embed_avg, counts, sums, decay=decay)


def _ema_update_(
    cluster_size: Tensor, embed_avg: Tensor, counts: Tensor, sums: Tensor, *, decay: float
) -> None:
    """:func:`ema_update_` without checks (no host sync), for the quantiser's training step."""
    cluster_size.mul_(decay).add_(counts.to(cluster_size.dtype), alpha=1.0 - decay)
    embed_avg.mul_(decay).add_(sums.to(embed_avg.dtype), alpha=1.0 - decay)


def laplace_smoothed(cluster_size: Tensor, *, eps: float = 1e-5) -> Tensor:
    """Laplace-smoothed counts Ñ_k = (N_k + ε) / (Σ_j N_j + K·ε) · Σ_j N_j.

    Smoothing keeps Ñ_k > 0 for unused codes while preserving the total Σ_k Ñ_k = Σ_k N_k.
    When the total Σ_j N_j is 0 every Ñ_k is 0 (not 0/0 = NaN, also for ε = 0).

    Arguments:
        cluster_size: (K,) EMA counts N.
        eps: ε; 1e-5 [VQ-VAE appendix / sonnet].

    Returns:
        (K,) smoothed counts, same dtype as ``cluster_size``.

    References:
        VQ-VAE, arXiv:1711.00937, appendix A.1.
    """
    _check_stats(cluster_size)
    if eps < 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    return _laplace_smoothed(cluster_size, eps)


def _laplace_smoothed(cluster_size: Tensor, eps: float) -> Tensor:
    total = cluster_size.sum()
    smoothed = (cluster_size + eps) / (total + cluster_size.shape[0] * eps) * total
    return torch.where(total > 0, smoothed, torch.zeros_like(smoothed))


def ema_codebook(
    cluster_size: Tensor, embed_avg: Tensor, *, eps: float = 1e-5, previous: Tensor | None = None
) -> Tensor:
    """Codebook from the EMA statistics: e_k = m_k / Ñ_k with Ñ from :func:`laplace_smoothed`.

    A code whose smoothed count Ñ_k is 0 (all counts 0, or N_k = 0 with ε = 0) has no defined
    mean: it keeps its row of ``previous``; without ``previous`` that raises a ValueError.

    Arguments:
        cluster_size: (K,) EMA counts N.
        embed_avg: (K, D) EMA sums m.
        eps: ε of the Laplace smoothing; 1e-5 [VQ-VAE appendix].
        previous: optional (K, D) current codebook, kept where Ñ_k = 0.

    Returns:
        (K, D) codebook in ``embed_avg``'s dtype.

    References:
        VQ-VAE, arXiv:1711.00937, appendix A.1.
    """
    _check_stats(cluster_size, embed_avg)
    if eps < 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    if previous is None:
        empty = (_laplace_smoothed(cluster_size, eps) > 0).logical_not().nonzero().flatten()
        if empty.numel():
            raise ValueError(
                f"ema_codebook: codes {empty.tolist()[:8]} have smoothed count 0 "
                f"(cluster_size sums to {float(cluster_size.sum())}, eps={eps}), so their mean "
                "m_k / N_k is undefined; pass previous= (the current codebook) to keep them"
            )
        previous = embed_avg
    elif previous.shape != embed_avg.shape:
        raise ValueError(
            f"previous must have shape {tuple(embed_avg.shape)} like embed_avg, "
            f"got {tuple(previous.shape)}"
        )
    return _ema_codebook(cluster_size, embed_avg, eps, previous)


def _ema_codebook(cluster_size: Tensor, embed_avg: Tensor, eps: float, previous: Tensor) -> Tensor:
    """:func:`ema_codebook` without checks or host syncs: e_k = m_k / Ñ_k, or previous_k at Ñ_k = 0."""
    smoothed = _laplace_smoothed(cluster_size, eps).unsqueeze(-1).to(embed_avg.dtype)
    defined = smoothed > 0  # False for 0 and NaN
    means = embed_avg / torch.where(defined, smoothed, torch.ones_like(smoothed))
    return torch.where(defined, means, previous.to(embed_avg.dtype))
