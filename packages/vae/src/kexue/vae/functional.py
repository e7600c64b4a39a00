"""Flat re-export of every reference op of ``kexue.vae`` (pure PyTorch; the specification).

- :mod:`kexue.vae.elbo`: ``reparameterize``, ``gaussian_kl``, ``gaussian_kl_sampled``,
  ``gaussian_nll``, ``bernoulli_nll``, ``elbo``;
- :mod:`kexue.vae.likelihood`: ``iwae_bound``, ``log_likelihood_is``, ``bits_per_dim``,
  ``dequantize``;
- :mod:`kexue.vae.cluster_loss`: ``cluster_vae_loss``, ``cluster_kl_matrix``,
  ``optimal_cluster_posterior``, ``vade_responsibility``;
- :mod:`kexue.vae.glo`: ``laplacian_pyramid``, ``pyramid_reconstruct``, ``lap1_loss``,
  ``perceptual_distance``, ``project_codes``;
- :mod:`kexue.vae.imle`: ``imle_match``, ``imle_loss_pooled``.
"""

from __future__ import annotations

from .cluster_loss import (
    cluster_kl_matrix,
    cluster_vae_loss,
    optimal_cluster_posterior,
    vade_responsibility,
)
from .elbo import (
    bernoulli_nll,
    elbo,
    gaussian_kl,
    gaussian_kl_sampled,
    gaussian_log_prob,
    gaussian_nll,
    reparameterize,
)
from .glo import (
    lap1_loss,
    laplacian_pyramid,
    perceptual_distance,
    project_codes,
    pyramid_reconstruct,
)
from .imle import imle_loss_pooled, imle_match
from .likelihood import bits_per_dim, dequantize, iwae_bound, log_likelihood_is

__all__ = [
    "bernoulli_nll",
    "bits_per_dim",
    "cluster_kl_matrix",
    "cluster_vae_loss",
    "dequantize",
    "elbo",
    "gaussian_kl",
    "gaussian_kl_sampled",
    "gaussian_log_prob",
    "gaussian_nll",
    "imle_loss_pooled",
    "imle_match",
    "iwae_bound",
    "lap1_loss",
    "laplacian_pyramid",
    "log_likelihood_is",
    "optimal_cluster_posterior",
    "perceptual_distance",
    "project_codes",
    "pyramid_reconstruct",
    "reparameterize",
    "vade_responsibility",
]
