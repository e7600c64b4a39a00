"""Sample quality of image generators over a digits classifier's features (spec §2.10).

FD, KID and PRDC are those of ``kexue.gan_losses.metrics`` (one implementation in the workspace);
this module only feeds them features of :class:`kexue.vae.DigitsFeatureNet` and adds the mean
nearest-training-image distance (memorisation check). Protocol of the benchmark: reference = the
360 held-out test images, 360 candidates per model (FD's upward bias grows as N falls), KID over
100 subsets of 300; never use training images as the reference (copies score P = D = 1).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from kexue.gan_losses.metrics import frechet_distance, kernel_inception_distance, prdc

from .classifier import DigitsFeatureNet, extract_features
from .imle import imle_match

__all__ = ["nearest_train_distance", "sample_quality"]


@torch.no_grad()
def nearest_train_distance(samples: Tensor, train: Tensor, *, chunk: int = 256) -> float:
    """Mean Euclidean pixel distance from each sample to its nearest training image."""
    _, sq = imle_match(samples, train, chunk=chunk)
    return float(sq.double().sqrt().mean())


@torch.no_grad()
def sample_quality(
    net: DigitsFeatureNet,
    reference: Tensor,
    samples: Tensor,
    *,
    kid_subsets: int = 100,
    kid_subset_size: int = 300,
    k: int = 5,
    generator: torch.Generator | None = None,
) -> dict[str, Any]:
    """FD, KID (mean, sd), precision / recall / density / coverage of ``samples`` vs ``reference``.

    Features of both sets are divided by the mean feature norm of ``reference`` (spec §2.10's
    probe), so the numbers do not depend on the feature net's overall scale.

    Arguments:
        net: the frozen feature net (the metric's; a different one from any training loss).
        reference: held-out images ``(N, 1, 8, 8)`` in [0, 1]; samples: ``(M, 1, 8, 8)``.
        kid_subsets, kid_subset_size: KID subsets (100 of 300 for 360 vs 360).
        k: PRDC's nearest-neighbour index.
        generator: for the KID subsets.
    """
    fr, fs = extract_features(net, reference), extract_features(net, samples)
    # one constant for both sets: the reference's mean feature norm becomes 1 (KID's cubic
    # kernel (xᵀy/d + 1)³ is scale-sensitive; FD then reads in units of that norm²)
    unit = fr.norm(dim=1).mean().clamp_min(1e-12)
    fr, fs = fr / unit, fs / unit
    kid, kid_sd = kernel_inception_distance(
        fr, fs, subsets=kid_subsets, subset_size=kid_subset_size, generator=generator
    )
    return {
        "fd": float(frechet_distance(fr, fs)),
        "kid": float(kid),
        "kid_sd": float(kid_sd),
        **prdc(fr, fs, k=k),
    }
