"""The one-step clustering VAE loss of post 5887 ("VAE IV") and its closed-form variants.

Latent (z, y): inference q(z, y|x) = c(y|z)·q(z|x) (encode, then classify z with a softmax net c);
generation p(x|z) Gaussian with fixed variance, p(z|y) = N(μ_y, I), p(y) uniform. The loss per x,
at one reparameterised z, is

    L = λ·½‖x − G(z)‖² + Σ_y c_y(z)·KL_y + Σ_y c_y log c_y      (+ log K, dropped)

(blog naming: p(z|x) is our q(z|x), q(z|y) our p(z|y)). KL_y is KL(q(z|x) ‖ N(μ_y, I)):

- ``kl="analytic"`` ½Σ[(μ − μ_y)² + σ² − log σ² − 1] (commits 0fe7a91, c3da14e);
- ``kl="sampled"``  ½Σ[(z − μ_y)² − log σ²] (head 1311e5d = post eq. 8); the two differ by d/2 plus
  zero-mean noise.

For fixed KL_y the y-terms are minimised by c = softmax(−KL) with value −logsumexp(−KL) (Gibbs):
VaDE's responsibility with unit variances and uniform weights. Passing ``logits=None`` uses this
optimum instead of a classifier. With K = 1, μ_1 = 0 and the analytic form, L is the fixed-variance
VAE loss with s² = 1/λ (up to the constant (D/2)·log(2π/λ)).

References:
    https://kexue.fm/archives/5887; ``bojone/vae`` ``vae_keras_cluster.py``;
    VaDE, Jiang et al., arXiv:1611.05148.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ._validation import (
    Reduction,
    check_batched,
    check_choice,
    check_positive,
    check_reduction,
    check_same_shape,
    flat,
    reduce,
)

__all__ = [
    "cluster_kl_matrix",
    "cluster_vae_loss",
    "optimal_cluster_posterior",
    "vade_responsibility",
]

_KL_KINDS = ("analytic", "sampled")


def _check_means(mu: Tensor, means: Tensor) -> None:
    check_batched(means, "means", min_dim=2)
    if means.dim() != 2 or mu.dim() != 2 or means.shape[1] != mu.shape[1]:
        raise ValueError(
            f"mu must be (B, d) and means (K, d) with the same d, got {tuple(mu.shape)} and "
            f"{tuple(means.shape)}"
        )


def cluster_kl_matrix(
    mu: Tensor,
    logvar: Tensor,
    means: Tensor,
    z: Tensor | None = None,
    *,
    kl: str = "analytic",
) -> Tensor:
    """KL_y = KL(q(z|x) ‖ N(μ_y, I)) for every sample and class, ``(B, K)``.

    Arguments:
        mu, logvar: ``(B, d)`` of q(z|x).
        means: ``(K, d)`` class means μ_y.
        z: ``(B, d)`` the reparameterised draw; required for ``kl="sampled"``.
        kl: "analytic" ½Σ[(μ − μ_y)² + σ² − log σ² − 1] or "sampled" ½Σ[(z − μ_y)² − log σ²].

    References:
        https://kexue.fm/archives/5887 (eq. 8); ``vae_keras_cluster.py``.
    """
    check_choice(kl, "kl", _KL_KINDS)
    check_batched(mu, "mu", min_dim=2)
    check_same_shape(mu, logvar, "mu", "logvar")
    _check_means(mu, means)
    if kl == "analytic":
        const = 0.5 * (logvar.exp() - logvar - 1.0).sum(1, keepdim=True)
        return 0.5 * (mu[:, None, :] - means[None]).pow(2).sum(-1) + const
    if z is None:
        raise ValueError('kl="sampled" needs z (the reparameterised draw)')
    check_same_shape(z, mu, "z", "mu")
    return 0.5 * (z[:, None, :] - means[None]).pow(2).sum(-1) - 0.5 * logvar.sum(1, keepdim=True)


def optimal_cluster_posterior(kl_matrix: Tensor) -> Tensor:
    """The c(y|·) minimising Σ_y c_y KL_y + Σ_y c_y log c_y: softmax(−KL), ``(B, K)``.

    The minimum value is −logsumexp(−KL) (Gibbs' inequality).
    """
    check_batched(kl_matrix, "kl_matrix", min_dim=2)
    return torch.softmax(-kl_matrix, dim=-1)


def cluster_vae_loss(
    x: Tensor,
    x_rec: Tensor,
    mu: Tensor,
    logvar: Tensor,
    z: Tensor,
    logits: Tensor | None,
    means: Tensor,
    *,
    lam: float = 5.0,
    kl: str = "analytic",
    prior_term: bool = True,
    log_eps: float | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    """Clustering-VAE loss λ·½‖x − G(z)‖² + Σ_y c_y KL_y + Σ_y c_y log c_y (post 5887).

    Arguments:
        x, x_rec: ``(B, ...)`` data and decoder mean G(z).
        mu, logvar: ``(B, d)`` of q(z|x); z: ``(B, d)`` the reparameterised draw.
        logits: ``(B, K)`` classifier logits of c(y|z); ``None`` uses the optimal posterior
            softmax(−KL) (the y-part is then −logsumexp(−KL); VaDE-style).
        means: ``(K, d)`` class means μ_y (the author initialises them to zeros).
        lam: reconstruction weight λ = 1/s² (author: 5 on MNIST, 2.5 at head; digits need ≈ 60).
        kl: "analytic" (default) or "sampled" KL_y.
        prior_term: keep Σ c log c (the post allows dropping it; only with ``logits``).
        log_eps: ``None`` (default) uses ``log_softmax``; a float uses the author's
            log(c + eps) (``1e-7`` in ``vae_keras_cluster.py``).
        reduction: "mean" (default), "sum" or "none".

    Returns:
        The loss to minimise (nats up to constants).
    """
    check_reduction(reduction)
    lam = check_positive(lam, "lam")
    check_batched(x, "x")
    check_same_shape(x, x_rec, "x", "x_rec")
    kl_mat = cluster_kl_matrix(mu, logvar, means, z, kl=kl)
    if mu.shape[0] != x.shape[0]:
        raise ValueError(f"x and mu must have the same batch, got {x.shape[0]} and {mu.shape[0]}")
    rec = 0.5 * lam * flat(x - x_rec).pow(2).sum(1)
    if logits is None:
        return reduce(rec - torch.logsumexp(-kl_mat, dim=1), reduction)
    if logits.shape != kl_mat.shape:
        raise ValueError(
            f"logits must be (B, K) = {tuple(kl_mat.shape)}, got {tuple(logits.shape)}"
        )
    if log_eps is None:
        log_c = torch.log_softmax(logits, dim=1)
        c = log_c.exp()
    else:
        c = torch.softmax(logits, dim=1)
        log_c = torch.log(c + check_positive(log_eps, "log_eps"))
    per = rec + (c * kl_mat).sum(1)
    if prior_term:
        per = per + (c * log_c).sum(1)
    return reduce(per, reduction)


def vade_responsibility(
    z: Tensor,
    means: Tensor,
    logvars: Tensor | None = None,
    log_weights: Tensor | None = None,
) -> Tensor:
    """VaDE's q(c|x) ≈ p(c|z) ∝ π_c N(z; μ_c, diag σ_c²), ``(B, K)`` probabilities.

    A helper only (VaDE models are out of scope). With unit variances and uniform π it is
    softmax(−½‖z − μ_c‖²), the optimum of the clustering-VAE y-terms at z (``kl="sampled"``).

    Arguments:
        z: ``(B, d)``; means: ``(K, d)``; logvars: ``(K, d)`` (default 0);
        log_weights: ``(K,)`` log π (default uniform).

    References:
        Jiang et al., VaDE, arXiv:1611.05148, eq. 16.
    """
    check_batched(z, "z", min_dim=2)
    _check_means(z, means)
    lv = torch.zeros_like(means) if logvars is None else logvars
    check_same_shape(lv, means, "logvars", "means")
    diff = z[:, None, :] - means[None]
    logp = -0.5 * (diff.pow(2) * torch.exp(-lv)[None] + lv[None] + math.log(2 * math.pi)).sum(-1)
    if log_weights is not None:
        if log_weights.shape != (means.shape[0],):
            raise ValueError(
                f"log_weights must be (K,) = ({means.shape[0]},), got {tuple(log_weights.shape)}"
            )
        logp = logp + log_weights
    return torch.softmax(logp, dim=1)
