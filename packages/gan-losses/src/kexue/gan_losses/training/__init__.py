"""Training machinery around the losses: optimiser recipes, samplers, layers, dynamics tools.

Nothing here is a loss; these are the pieces a GAN or energy-model training loop needs next to
them (spec §1.1). Everything is re-exported at the package root.

- :mod:`.ttur` — two time-scale update rule: ``TTURConfig``, param groups and optimisers.
- :mod:`.ema` — ``GeneratorEMA``, a small weight EMA of G for sampling (post 6575).
- :mod:`.mcmc` — Langevin (ε and decoupled IGEBM forms), MALA and a replay buffer (posts 6331,
  6612).
- :mod:`.selfmod` — SELF-MOD: self-modulated batch norm for G (post 6549).
- :mod:`.dirac` — the 2-D Dirac-GAN ODEs of post 6583 and an RK4 / Euler integrator.
"""

from __future__ import annotations

from .dirac import (
    DiracGANKind,
    DiracGANTrajectory,
    dirac_gan_vector_field,
    integrate_dirac_gan,
)
from .ema import (
    GeneratorEMA,
    unwrap_model,
)
from .mcmc import (
    MALAResult,
    ReplayBuffer,
    decoupled_langevin_sample,
    langevin_sample,
    mala_sample,
)
from .selfmod import (
    ConditionalLatent,
    SelfModulatedBatchNorm,
)
from .ttur import (
    TTURConfig,
    make_optimizers,
    make_param_groups,
)

__all__ = [
    "ConditionalLatent",
    "DiracGANKind",
    "DiracGANTrajectory",
    "GeneratorEMA",
    "MALAResult",
    "ReplayBuffer",
    "SelfModulatedBatchNorm",
    "TTURConfig",
    "decoupled_langevin_sample",
    "dirac_gan_vector_field",
    "integrate_dirac_gan",
    "langevin_sample",
    "make_optimizers",
    "make_param_groups",
    "mala_sample",
    "unwrap_model",
]
