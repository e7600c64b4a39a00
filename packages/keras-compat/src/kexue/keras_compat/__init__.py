"""kexue.keras_compat: the "make Keras cooler" toolbox for plain PyTorch.

Loop-agnostic utilities for ``nn.Module`` + ``torch.optim`` code (posts 6418 and 6575, and
bert4keras's optimizer extensions): rule-based parameter groups and layer-wise learning rates, an
optimizer transform chain on ``torch.optim`` step hooks, weight EMA with a swap context, capture of
intermediate outputs, auxiliary losses, process-safe data helpers, ``scan``, and bert4keras-compatible
names. See the package README for the map of names and the stacking order.
"""

from __future__ import annotations

from . import optim
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
from .optim import *  # noqa: F403  (the optim room's public names: optim.__all__)
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

__all__: list[str] = [
    "EMA",
    "RNN",
    "AuxLosses",
    "DataGenerator",
    "EMAWarmup",
    "ExponentialMovingAverage",
    "PowerEMA",
    "RunningMean",
    "ShardedIterable",
    "ShuffleBuffer",
    "Tap",
    "__version__",
    "add_loss",
    "capture",
    "euler_step",
    "gamma_to_sigma_rel",
    "is_rank_zero",
    "mixup_loss",
    "odeint",
    "parallel_apply",
    "parallel_apply_generator",
    "posthoc_coefficients",
    "progbar",
    "reconstruct",
    "record",
    "rk4_step",
    "sample_beta",
    "scan",
    "seed_worker",
    "sequence_masking",
    "sequence_padding",
    "sigma_rel_to_gamma",
    "unwrap_model",
]
__all__ += optim.__all__
