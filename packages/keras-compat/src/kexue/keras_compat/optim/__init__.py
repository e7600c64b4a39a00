"""Layer-wise learning rates and optimizer extensions for ``torch.optim`` (spec §2.1–2.9, §2.17).

- :func:`param_groups` / :class:`Rule` / :func:`lr_scale_lambda`: rule-based groups with
  ``lr_scale`` and ``weight_decay``; :func:`scale_parametrization`, :class:`SetLearningRate`.
- :func:`extend` + transforms: :class:`WeightDecay`, :class:`LayerAdaptation`,
  :class:`LRMultiplier`, :class:`DeltaScale`, :class:`Lookahead`, :class:`LazyRows`,
  :class:`GradClip`, :class:`AGC`, :class:`GradTransform`; :class:`NonFinite` (skip or raise on
  non-finite gradients).
- :func:`piecewise_linear`, :func:`warmup_cosine`, :func:`warmup_linear`,
  :func:`warmup_polynomial`, :func:`cosine_restarts`, :func:`with_warmup`,
  :func:`join_schedules`, :func:`as_scheduler`; :func:`accumulate`.
- bert4keras shims: ``extend_with_*`` (and ``_v2`` aliases).
"""

from __future__ import annotations

# The room's public names are its modules' ``__all__``, listed once in each module (the star
# imports take exactly those names; ``__all__ +=`` is the form type checkers follow).
from . import (
    _chain,
    _groups,
    _layer_decay,
    bert4keras,
    nonfinite,
    schedules,
    schedules_decay,
    transforms,
)
from . import accumulate as _accumulate  # the module; the name ``accumulate`` is the function
from ._chain import *  # noqa: F403
from ._groups import *  # noqa: F403
from ._layer_decay import *  # noqa: F403
from .accumulate import *  # noqa: F403
from .bert4keras import *  # noqa: F403
from .nonfinite import *  # noqa: F403
from .schedules import *  # noqa: F403
from .schedules_decay import *  # noqa: F403
from .transforms import *  # noqa: F403

__all__: list[str] = []
__all__ += _chain.__all__
__all__ += _groups.__all__
__all__ += _layer_decay.__all__
__all__ += _accumulate.__all__
__all__ += bert4keras.__all__
__all__ += nonfinite.__all__
__all__ += schedules.__all__
__all__ += schedules_decay.__all__
__all__ += transforms.__all__
