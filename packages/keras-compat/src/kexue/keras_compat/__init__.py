"""kexue.keras_compat: the "make Keras cooler" toolbox for plain PyTorch.

Loop-agnostic utilities for ``nn.Module`` + ``torch.optim`` code (posts 6418 and 6575, and
bert4keras's optimizer extensions): rule-based parameter groups and layer-wise learning rates, an
optimizer transform chain on ``torch.optim`` step hooks, weight EMA with a swap context, capture of
intermediate outputs, auxiliary losses, process-safe data helpers, ``scan``, and bert4keras-compatible
names. See the package README for the map of names and the stacking order.
"""

from __future__ import annotations

from .__about__ import __version__
from ._power import gamma_to_sigma_rel, sigma_rel_to_gamma
from .capture import (
    AuxLosses,
    Tap,
    add_loss,
    capture,
    record,
)
from .data import (
    DataGenerator,
    ShardedIterable,
    ShuffleBuffer,
    seed_worker,
)
from .data_padding import (
    sequence_masking,
    sequence_padding,
)
from .ema import (
    EMA,
    EMAWarmup,
    ExponentialMovingAverage,
    unwrap_model,
)
from .optim import (
    AGC,
    NORM_LAYERS,
    Accumulator,
    ChainHandle,
    DeltaScale,
    GradClip,
    GradTransform,
    LayerAdaptation,
    LazyRows,
    Lookahead,
    LRMultiplier,
    NonFinite,
    Rule,
    SetLearningRate,
    Transform,
    WeightDecay,
    accumulate,
    extend,
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
    lr_scale_lambda,
    param_groups,
    piecewise_linear,
    scale_parametrization,
)
from .parallel import (
    parallel_apply,
    parallel_apply_generator,
)
from .posthoc import PowerEMA, posthoc_coefficients, reconstruct
from .progress import (
    RunningMean,
    is_rank_zero,
    progbar,
)
from .recurrent import (
    RNN,
    euler_step,
    odeint,
    rk4_step,
    scan,
)
from .regularizers import (
    mixup_loss,
    sample_beta,
)

__all__ = [
    "AGC",
    "EMA",
    "NORM_LAYERS",
    "RNN",
    "Accumulator",
    "AuxLosses",
    "ChainHandle",
    "DataGenerator",
    "DeltaScale",
    "EMAWarmup",
    "ExponentialMovingAverage",
    "GradClip",
    "GradTransform",
    "LRMultiplier",
    "LayerAdaptation",
    "LazyRows",
    "Lookahead",
    "NonFinite",
    "PowerEMA",
    "Rule",
    "RunningMean",
    "SetLearningRate",
    "ShardedIterable",
    "ShuffleBuffer",
    "Tap",
    "Transform",
    "WeightDecay",
    "__version__",
    "accumulate",
    "add_loss",
    "capture",
    "euler_step",
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
    "gamma_to_sigma_rel",
    "is_rank_zero",
    "lr_scale_lambda",
    "mixup_loss",
    "odeint",
    "parallel_apply",
    "parallel_apply_generator",
    "param_groups",
    "piecewise_linear",
    "posthoc_coefficients",
    "progbar",
    "reconstruct",
    "record",
    "rk4_step",
    "sample_beta",
    "scale_parametrization",
    "scan",
    "seed_worker",
    "sequence_masking",
    "sequence_padding",
    "sigma_rel_to_gamma",
    "unwrap_model",
]
