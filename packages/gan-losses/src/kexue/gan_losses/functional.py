"""One flat functional namespace: every reference loss, penalty and regulariser op.

The ops themselves live in their family modules (:mod:`kexue.gan_losses.losses`,
:mod:`kexue.gan_losses.penalties`, :mod:`kexue.gan_losses.regularizers`,
:mod:`kexue.gan_losses.dragan`, :mod:`kexue.gan_losses.lazy`, :mod:`kexue.gan_losses.lecam`); this
module only gathers
the functions (no classes, no training machinery) so that one import reaches all of them, as
``torch.nn.functional`` does::

    import kexue.gan_losses.functional as GF

    loss_d = GF.wgan_discriminator_loss(r, f) + GF.wgan_gp_penalty(critic, x_real, x_fake)

They are the pure-PyTorch references: always importable, CPU-correct, and what the ``nn.Module``
wrappers of :mod:`kexue.gan_losses.modules` call.
"""

from __future__ import annotations

from .dragan import dragan_penalty, dragan_points
from .lazy import lazy_adam_hparams, lazy_r1_penalty, lazy_schedule, path_length_penalty
from .lecam import lecam_regularization
from .losses.bigan_qp import *  # noqa: F403 - re-exports bigan_qp.__all__ (functions only)
from .losses.bigan_qp import __all__ as _bigan_qp_all
from .losses.classic import *  # noqa: F403 - re-exports classic.__all__ (functions only)
from .losses.classic import __all__ as _classic_all
from .losses.conditional import acgan_class_loss, projection_scores
from .losses.energy import *  # noqa: F403 - re-exports energy.__all__ (functions only)
from .losses.energy import __all__ as _energy_all
from .losses.fgan import f_gan_discriminator_loss, f_gan_generator_loss
from .losses.gan_qp import *  # noqa: F403 - re-exports gan_qp.__all__ (functions only)
from .losses.gan_qp import __all__ as _gan_qp_all
from .losses.imle import *  # noqa: F403 - re-exports imle.__all__ (functions only)
from .losses.imle import __all__ as _imle_all
from .losses.ogan import *  # noqa: F403 - ogan.__all__; only its functions are listed below
from .losses.ogan import OGANSingleLoss as _OGANSingleLoss
from .losses.ogan import __all__ as _ogan_all
from .losses.relativistic import *  # noqa: F403 - re-exports relativistic.__all__ (functions only)
from .losses.relativistic import __all__ as _relativistic_all
from .losses.single_loss import forward_detached_and_attached, single_loss
from .penalties import *  # noqa: F403 - re-exports penalties.__all__ (functions only)
from .penalties import __all__ as _penalties_all
from .regularizers import *  # noqa: F403 - re-exports regularizers.__all__ (functions only)
from .regularizers import __all__ as _regularizers_all

# Every function of the losses, penalties and regularizers; from the modules that also hold classes
# or constants (fgan, single_loss) the functions by name, from ogan all names but its class.
__all__ = [
    *_bigan_qp_all,
    *_classic_all,
    *_energy_all,
    *_gan_qp_all,
    *_imle_all,
    *_relativistic_all,
    *_penalties_all,
    *_regularizers_all,
    "f_gan_discriminator_loss",
    "f_gan_generator_loss",
    *(name for name in _ogan_all if name != _OGANSingleLoss.__name__),
    "forward_detached_and_attached",
    "single_loss",
    "acgan_class_loss",
    "projection_scores",
    "dragan_penalty",
    "dragan_points",
    "lazy_adam_hparams",
    "lazy_r1_penalty",
    "lazy_schedule",
    "path_length_penalty",
    "lecam_regularization",
]
