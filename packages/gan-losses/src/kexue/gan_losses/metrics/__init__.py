"""Sample metrics over features of the caller's choice: FD, KID and precision/recall/density/coverage.

Every metric takes precomputed features ``(N, d)`` or :class:`FeatureStats` accumulated over
batches (``feature_stats(feature_fn, batches)`` runs any extractor: a small classifier, Inception,
CLIP, DINO). All sums are float64.

- :mod:`.frechet` — Fréchet distance on the symmetric eigen route (no complex ``sqrtm``).
- :mod:`.kid` — KID: unbiased MMD² with the cubic kernel, mean ± sd over subsets.
- :mod:`.prdc` — precision, recall, density, coverage with k-NN balls (k = 5).
- ``_features`` — ``FeatureStats`` (streaming, DDP-mergeable) and ``feature_stats``.
"""

from __future__ import annotations

from ._features import FeatureStats, feature_stats
from .frechet import frechet_distance, frechet_distance_from_moments, trace_sqrt_product
from .kid import kernel_inception_distance, polynomial_mmd2_unbiased
from .prdc import prdc

__all__ = [
    "FeatureStats",
    "feature_stats",
    "frechet_distance",
    "frechet_distance_from_moments",
    "kernel_inception_distance",
    "polynomial_mmd2_unbiased",
    "prdc",
    "trace_sqrt_product",
]
