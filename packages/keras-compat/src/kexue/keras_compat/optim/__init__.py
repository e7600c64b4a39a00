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

from ._chain import ChainHandle, Transform, extend
from ._groups import (
    NORM_LAYERS,
    Rule,
    SetLearningRate,
    lr_scale_lambda,
    param_groups,
    scale_parametrization,
)
from ._layer_decay import default_layer_depth, layer_decay_scales
from .accumulate import Accumulator, accumulate
from .bert4keras import (
    extend_with_exponential_moving_average,
    extend_with_exponential_moving_average_v2,
    extend_with_gradient_accumulation,
    extend_with_gradient_accumulation_v2,
    extend_with_layer_adaptation,
    extend_with_layer_adaptation_v2,
    extend_with_lazy_optimization,
    extend_with_lazy_optimization_v2,
    extend_with_lookahead,
    extend_with_lookahead_v2,
    extend_with_parameter_wise_lr,
    extend_with_parameter_wise_lr_v2,
    extend_with_piecewise_linear_lr,
    extend_with_piecewise_linear_lr_v2,
    extend_with_weight_decay,
    extend_with_weight_decay_v2,
)
from .nonfinite import NonFinite
from .schedules import piecewise_linear
from .schedules_decay import (
    as_scheduler,
    cosine_decay,
    cosine_restarts,
    join_schedules,
    linear_decay,
    polynomial_decay,
    warmup_cosine,
    warmup_linear,
    warmup_polynomial,
    with_warmup,
)
from .transforms import (
    AGC,
    DeltaScale,
    GradClip,
    GradTransform,
    LayerAdaptation,
    LazyRows,
    Lookahead,
    LRMultiplier,
    WeightDecay,
)

__all__ = [
    "AGC",
    "NORM_LAYERS",
    "Accumulator",
    "ChainHandle",
    "DeltaScale",
    "GradClip",
    "GradTransform",
    "LRMultiplier",
    "LayerAdaptation",
    "LazyRows",
    "Lookahead",
    "NonFinite",
    "Rule",
    "SetLearningRate",
    "Transform",
    "WeightDecay",
    "accumulate",
    "as_scheduler",
    "cosine_decay",
    "cosine_restarts",
    "default_layer_depth",
    "extend",
    "extend_with_exponential_moving_average",
    "extend_with_exponential_moving_average_v2",
    "extend_with_gradient_accumulation",
    "extend_with_gradient_accumulation_v2",
    "extend_with_layer_adaptation",
    "extend_with_layer_adaptation_v2",
    "extend_with_lazy_optimization",
    "extend_with_lazy_optimization_v2",
    "extend_with_lookahead",
    "extend_with_lookahead_v2",
    "extend_with_parameter_wise_lr",
    "extend_with_parameter_wise_lr_v2",
    "extend_with_piecewise_linear_lr",
    "extend_with_piecewise_linear_lr_v2",
    "extend_with_weight_decay",
    "extend_with_weight_decay_v2",
    "join_schedules",
    "layer_decay_scales",
    "linear_decay",
    "lr_scale_lambda",
    "param_groups",
    "piecewise_linear",
    "polynomial_decay",
    "scale_parametrization",
    "warmup_cosine",
    "warmup_linear",
    "warmup_polynomial",
    "with_warmup",
]
