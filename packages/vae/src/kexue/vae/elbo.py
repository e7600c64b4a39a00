"""ELBO pieces of the Gaussian VAE (posts 5343 "VAE II" and 5383 "VAE III").

Conventions (spec §1): an encoder gives ``(μ, log σ²)`` of q(z|x); every per-sample quantity is
summed over all non-batch dims, then reduced over the batch by ``reduction`` ("mean" default,
"sum", "none" → ``(B,)``), the author's shape (a pixel *mean* such as ``F.mse_loss`` would
multiply the effective decoder variance by D). Values are in nats.

- reparameterisation z = μ + σ⊙ε;
- analytic KL(N(μ, σ²) ‖ N(m, s²)) = ½Σ[log(s²/σ²) + (σ² + (μ − m)²)/s² − 1] (any diagonal prior;
  the standard prior when ``prior_mu``/``prior_logvar`` are omitted);
- sampled KL log q(z|x) − log p(z) at the reparameterised z (its mean is the analytic KL);
- Gaussian decoder NLL ½Σ[(x − m)²/s² + log s² + log 2π], with s² = 1/λ for a fixed variance
  (λ is the weight of ½‖x − m‖²: the inverse decoder variance);
- Bernoulli decoder NLL Σ[softplus(l) − x·l] on logits (a likelihood only for binary x).

References:
    https://kexue.fm/archives/5343, https://kexue.fm/archives/5383;
    Kingma & Welling, Auto-Encoding Variational Bayes, arXiv:1312.6114 (App. B).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from ._validation import (
    Reduction,
    check_batched,
    check_broadcasts_to,
    check_positive,
    check_reduction,
    check_same_shape,
    flat,
    reduce,
)

__all__ = [
    "LOG_2PI",
    "bernoulli_nll",
    "elbo",
    "gaussian_kl",
    "gaussian_kl_sampled",
    "gaussian_log_prob",
    "gaussian_nll",
    "reparameterize",
]

LOG_2PI = math.log(2.0 * math.pi)


def _prior(
    mu: Tensor,
    logvar: Tensor,
    prior_mu: Tensor | None,
    prior_logvar: Tensor | None,
    reduction: Reduction,
) -> tuple[Tensor, Tensor]:
    """The public boundary of both KLs: check ``reduction``, q's shapes and the prior's
    broadcasting; return the prior's mean and log-variance (default 0, 0)."""
    check_reduction(reduction)
    check_batched(mu, "mu")
    check_same_shape(mu, logvar, "mu", "logvar")
    m = torch.zeros((), dtype=mu.dtype, device=mu.device) if prior_mu is None else prior_mu
    lv = torch.zeros((), dtype=mu.dtype, device=mu.device) if prior_logvar is None else prior_logvar
    check_broadcasts_to(m, tuple(mu.shape), "prior_mu", "mu")
    check_broadcasts_to(lv, tuple(mu.shape), "prior_logvar", "mu")
    return m, lv


def reparameterize(
    mu: Tensor, logvar: Tensor, *, generator: torch.Generator | None = None
) -> Tensor:
    """Reparameterised sample z = μ + exp(½ log σ²)⊙ε, ε ~ N(0, I).

    Without it a sampled z gives μ and σ no gradient; post 5383 calls it the finishing stroke.

    Arguments:
        mu, logvar: ``(B, ...)`` mean and log-variance of q(z|x), same shape.
        generator: for ε.

    Returns:
        z of ``mu``'s shape, differentiable w.r.t. both inputs.
    """
    check_batched(mu, "mu")
    check_same_shape(mu, logvar, "mu", "logvar")
    eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype, device=mu.device)
    return mu + torch.exp(0.5 * logvar) * eps


def gaussian_kl(
    mu: Tensor,
    logvar: Tensor,
    prior_mu: Tensor | None = None,
    prior_logvar: Tensor | None = None,
    *,
    reduction: Reduction = "mean",
) -> Tensor:
    """Analytic KL(N(μ, σ²) ‖ N(m, s²)) of diagonal Gaussians, summed over non-batch dims.

    .. math:: \\tfrac12\\sum[\\log(s^2/σ^2) + (σ^2 + (μ - m)^2)/s^2 - 1]

    Arguments:
        mu, logvar: ``(B, ...)`` of q(z|x).
        prior_mu, prior_logvar: mean and log-variance of the prior, broadcastable to ``mu``;
            default 0 and 0 (the standard prior: ½Σ(μ² + σ² − log σ² − 1)).
        reduction: "mean" (default), "sum" or "none" (``(B,)``).

    References:
        Kingma & Welling, arXiv:1312.6114, App. B; https://kexue.fm/archives/5343.
    """
    m, lv = _prior(mu, logvar, prior_mu, prior_logvar, reduction)
    # exp(logvar − lv) rather than σ²/s²: exactly 0 for identical Gaussians
    kl = 0.5 * ((lv - logvar) + torch.exp(logvar - lv) + (mu - m).pow(2) * torch.exp(-lv) - 1.0)
    return reduce(flat(kl).sum(1), reduction)


def gaussian_log_prob(x: Tensor, mean: Tensor, logvar: Tensor) -> Tensor:
    """Per-sample log N(x; m, diag(s²)) summed over non-batch dims (no checks; internal use)."""
    lp = -0.5 * ((x - mean).pow(2) * torch.exp(-logvar) + logvar + LOG_2PI)
    return flat(lp.expand(torch.broadcast_shapes(lp.shape, x.shape))).sum(1)


def gaussian_kl_sampled(
    z: Tensor,
    mu: Tensor,
    logvar: Tensor,
    prior_mu: Tensor | None = None,
    prior_logvar: Tensor | None = None,
    *,
    reduction: Reduction = "mean",
) -> Tensor:
    """One-sample KL estimate log q(z|x) − log p(z) at a (reparameterised) z.

    With the standard prior and z = μ + σε this is ½Σ(z² − ε² − log σ²); its expectation over ε
    is :func:`gaussian_kl`. Post 5383: sampling this term too "converges to similar results".

    Arguments:
        z: ``(B, ...)`` a draw from q(z|x) (differentiable through μ, σ when reparameterised).
        mu, logvar: of q(z|x), ``z``'s shape.
        prior_mu, prior_logvar: as :func:`gaussian_kl`.
        reduction: "mean" (default), "sum" or "none".
    """
    m, lv = _prior(mu, logvar, prior_mu, prior_logvar, reduction)
    check_same_shape(z, mu, "z", "mu")
    per = gaussian_log_prob(z, mu, logvar) - gaussian_log_prob(z, m, lv)
    return reduce(per, reduction)


def gaussian_nll(
    x: Tensor,
    mean: Tensor,
    logvar: Tensor | None = None,
    *,
    lam: float | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    """Gaussian decoder negative log-likelihood −log N(x; m, s²), summed over non-batch dims.

    .. math:: \\tfrac12\\sum[(x - m)^2/s^2 + \\log s^2 + \\log 2π]

    Give exactly one of ``logvar`` (learned: per pixel, broadcastable, or z-dependent ``(B, ...)``)
    and ``lam`` (fixed variance s² = 1/λ: then (λ/2)‖x − m‖² + (D/2)·log(2π/λ)).

    Arguments:
        x, mean: ``(B, ...)`` data and decoder mean, same shape.
        logvar: log s², broadcastable to ``x`` (clamp it in the model, e.g. ≥ log 1e-4: on
            always-zero pixels an unclamped variance sends the likelihood to +∞).
        lam: the author's reconstruction weight λ = 1/s² (λ = 5 ↔ s ≈ 0.447) [post 5343].
        reduction: "mean" (default), "sum" or "none".

    References:
        https://kexue.fm/archives/5343 (λ is the inverse variance).
    """
    check_reduction(reduction)
    check_batched(x, "x")
    check_same_shape(x, mean, "x", "mean")
    if (logvar is None) == (lam is None):
        raise ValueError("give exactly one of logvar (learned variance) or lam (fixed, s² = 1/λ)")
    if lam is not None:
        lam = check_positive(lam, "lam")
        d = flat(x).shape[1]
        sq = flat(x - mean).pow(2).sum(1)
        per = 0.5 * lam * sq + 0.5 * d * (LOG_2PI - math.log(lam))
        return reduce(per, reduction)
    assert logvar is not None
    check_broadcasts_to(logvar, tuple(x.shape), "logvar", "x")
    return reduce(-gaussian_log_prob(x, mean, logvar), reduction)


def bernoulli_nll(x: Tensor, logits: Tensor, *, reduction: Reduction = "mean") -> Tensor:
    """Bernoulli decoder NLL Σ[softplus(l) − x·l] on logits (= BCE-with-logits summed).

    A true likelihood only for binary x: its bits never share a table with Gaussian bits.

    Arguments:
        x: ``(B, ...)`` targets in [0, 1] (binary for a likelihood).
        logits: ``x``'s shape.
        reduction: "mean" (default), "sum" or "none".
    """
    check_reduction(reduction)
    check_batched(x, "x")
    check_same_shape(x, logits, "x", "logits")
    per = F.binary_cross_entropy_with_logits(logits, x.to(logits.dtype), reduction="none")
    return reduce(flat(per).sum(1), reduction)


def elbo(log_px_z: Tensor, kl: Tensor, *, reduction: Reduction = "mean") -> Tensor:
    """Evidence lower bound E_q log p(x|z) − KL(q(z|x) ‖ p(z)) per sample (nats; maximise it).

    Post 5343 writes the loss as one KL, KL(p̃(x)q(z|x) ‖ p(x|z)p(z)) = −ELBO + const: the
    reconstruction and KL terms oppose each other and are minimised together.

    Arguments:
        log_px_z: ``(B,)`` per-sample log-likelihood of the decoder (e.g. ``-gaussian_nll(...,
            reduction="none")`` at one reparameterised z).
        kl: ``(B,)`` per-sample KL (analytic or sampled).
        reduction: "mean" (default), "sum" or "none".
    """
    check_reduction(reduction)
    check_batched(log_px_z, "log_px_z")
    check_same_shape(log_px_z, kl, "log_px_z", "kl")
    if log_px_z.dim() != 1:
        raise ValueError(f"log_px_z and kl must be per-sample (B,), got {tuple(log_px_z.shape)}")
    return reduce(log_px_z - kl, reduction)
