"""Training losses: sampled softmax / NCE / negative sampling, margin softmax losses, JoSE.

- :mod:`.sampled` — ``NoiseSampler``, ``nce_loss``, ``neg_sampling_loss``, ``sampled_softmax_loss``.
- :mod:`.cosine` — ``CosineClassifier``: L2-normalised features × weights → cosines in [-1, 1].
- :mod:`.margin` — AM-Softmax, CosFace, ArcFace, SphereFace, simpler-A on those cosines.
- :mod:`.jose` — spherical text embeddings (JoSE) and the Riemannian SGD step.
"""

from __future__ import annotations

from .cosine import CosineClassifier
from .jose import (
    JoSE,
    RiemannianSGD,
    jose_loss,
    sphere_sgd_step,
    sphere_step_factor,
    sphere_tangent_grad,
)
from .margin import (
    MARGIN_LOSS_DEFAULTS,
    MarginSoftmaxLoss,
    am_softmax_loss,
    arcface_loss,
    cosface_loss,
    margin_logits,
    simpler_a_softmax_loss,
    sphereface_loss,
)
from .sampled import (
    NoiseSampler,
    find_accidental_hits,
    nce_loss,
    neg_sampling_loss,
    sampled_softmax_loss,
    subsample_keep_prob,
)

__all__ = [
    "MARGIN_LOSS_DEFAULTS",
    "CosineClassifier",
    "JoSE",
    "MarginSoftmaxLoss",
    "NoiseSampler",
    "RiemannianSGD",
    "am_softmax_loss",
    "arcface_loss",
    "cosface_loss",
    "find_accidental_hits",
    "jose_loss",
    "margin_logits",
    "nce_loss",
    "neg_sampling_loss",
    "sampled_softmax_loss",
    "simpler_a_softmax_loss",
    "sphere_sgd_step",
    "sphere_step_factor",
    "sphere_tangent_grad",
    "sphereface_loss",
    "subsample_keep_prob",
]
