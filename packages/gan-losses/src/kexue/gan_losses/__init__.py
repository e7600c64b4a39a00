"""kexue.gan_losses: GAN losses, gradient penalties and regularisers from Scientific Spaces.

Functional API (every function returns a value to minimise; ``reduction`` = mean/sum/none;
``energy=True`` selects the author's sign, lower = more real) plus small classes where state is
needed. See the package README for a map of techniques to functions and the conventions.
"""

from __future__ import annotations

from .__about__ import __version__
from ._validation import *  # noqa: F403 - re-exports _validation.__all__
from ._validation import __all__ as _validation_all
from .dragan import *  # noqa: F403 - re-exports dragan.__all__
from .dragan import __all__ as _dragan_all
from .lazy import *  # noqa: F403 - re-exports lazy.__all__
from .lazy import __all__ as _lazy_all
from .lecam import *  # noqa: F403 - re-exports lecam.__all__
from .lecam import __all__ as _lecam_all
from .losses import *  # noqa: F403 - re-exports losses.__all__
from .losses import __all__ as _losses_all
from .modules import *  # noqa: F403 - re-exports modules.__all__
from .modules import __all__ as _modules_all
from .penalties import *  # noqa: F403 - re-exports penalties.__all__
from .penalties import __all__ as _penalties_all
from .regularizers import *  # noqa: F403 - re-exports regularizers.__all__
from .regularizers import __all__ as _regularizers_all
from .spectral import *  # noqa: F403 - re-exports spectral.__all__
from .spectral import __all__ as _spectral_all
from .training import *  # noqa: F403 - re-exports training.__all__
from .training import __all__ as _training_all

__all__ = [
    "__version__",
    *_validation_all,
    *_dragan_all,
    *_lazy_all,
    *_lecam_all,
    *_losses_all,
    *_modules_all,
    *_penalties_all,
    *_regularizers_all,
    *_spectral_all,
    *_training_all,
]
