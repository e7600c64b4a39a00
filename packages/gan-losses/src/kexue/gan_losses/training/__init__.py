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

from .dirac import *  # noqa: F403 - re-exports dirac.__all__
from .dirac import __all__ as _dirac_all
from .ema import *  # noqa: F403 - re-exports ema.__all__
from .ema import __all__ as _ema_all
from .mcmc import *  # noqa: F403 - re-exports mcmc.__all__
from .mcmc import __all__ as _mcmc_all
from .selfmod import *  # noqa: F403 - re-exports selfmod.__all__
from .selfmod import __all__ as _selfmod_all
from .ttur import *  # noqa: F403 - re-exports ttur.__all__
from .ttur import __all__ as _ttur_all

__all__ = [
    *_dirac_all,
    *_ema_all,
    *_mcmc_all,
    *_selfmod_all,
    *_ttur_all,
]
