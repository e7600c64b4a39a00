"""kexue.vae: Gaussian VAEs with likelihood bounds, the one-step clustering VAE, GLO / IMLE / GLANN.

From Su Jianlin's posts VAE II–IV (https://kexue.fm/archives/5343, 5383, 5887) and the GLANN post
(https://kexue.fm/archives/6394). Reference ops in :mod:`kexue.vae.functional`; models in
:mod:`kexue.vae.models` and :mod:`kexue.vae.glann`; clustering scores in :mod:`kexue.vae.clustering`;
sample metrics (FD / KID / PRDC of ``kexue.gan_losses.metrics``) over the digits classifier of
:mod:`kexue.vae.classifier`; digits data in :mod:`kexue.vae.data` (``digits`` extra); training loops
in :mod:`kexue.vae.train`. See the package README.
"""

from __future__ import annotations

from .__about__ import __version__
from ._validation import Reduction
from .classifier import DigitsFeatureNet, extract_features, train_feature_net
from .cluster_init import DIGITS_CLUSTER_FIT, fit_cluster_vae_digits, gmm_partition
from .clustering import (
    adjusted_rand_index,
    clusters_used,
    contingency,
    hungarian_accuracy,
    linear_assignment,
    normalized_mutual_info,
    purity,
)
from .functional import *  # noqa: F403 - re-exports functional.__all__
from .functional import __all__ as _functional_all
from .glann import GLANN, GLO, digits_generator
from .models import PRESETS, ClusteringVAE, ClusterPreset, GaussianVAE
from .nets import MLP, author_conv_decoder, author_conv_encoder
from .sample_metrics import nearest_train_distance, sample_quality
from .train import (
    evaluate_clustering,
    evaluate_likelihood,
    fit_cluster_vae,
    fit_glann,
    fit_glo,
    fit_vae,
)

__all__ = [
    "DIGITS_CLUSTER_FIT",
    "GLANN",
    "GLO",
    "MLP",
    "PRESETS",
    "ClusterPreset",
    "ClusteringVAE",
    "DigitsFeatureNet",
    "GaussianVAE",
    "Reduction",
    "author_conv_decoder",
    "author_conv_encoder",
    "digits_generator",
    "evaluate_clustering",
    "evaluate_likelihood",
    "extract_features",
    "fit_cluster_vae",
    "fit_cluster_vae_digits",
    "fit_glann",
    "fit_glo",
    "fit_vae",
    "gmm_partition",
    "nearest_train_distance",
    "sample_quality",
    "train_feature_net",
    "__version__",
    "adjusted_rand_index",
    "clusters_used",
    "contingency",
    "hungarian_accuracy",
    "linear_assignment",
    "normalized_mutual_info",
    "purity",
    *_functional_all,
]
