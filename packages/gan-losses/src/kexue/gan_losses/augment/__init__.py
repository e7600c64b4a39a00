"""Differentiable augmentation for small-data GANs: DiffAugment and ADA's adaptive probability.

- :mod:`.diffaug` — DiffAugment (colour, translation, cutout), one policy for reals and fakes.
- :mod:`.ada` — ``ADAController``: the r_t heuristic (target 0.6) adapting a probability ``p``
  that gates any differentiable augmentation per sample.
"""

from __future__ import annotations

from .ada import ADAController
from .diffaug import *  # noqa: F403 - re-exports diffaug.__all__
from .diffaug import __all__ as _diffaug_all

__all__ = ["ADAController", *_diffaug_all]
