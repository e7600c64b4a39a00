"""The losses, one module per family. Every function returns a value to minimise.

Functional API (scores in, scalar or ``(B,)`` out; ``reduction`` = mean/sum/none; ``energy=True``
selects the author's sign, lower = more real). Everything here is re-exported at the package root
and, for the functions, in :mod:`kexue.gan_losses.functional`.

- :mod:`.classic` — SGAN (saturating / non-saturating), LSGAN, hinge, WGAN (+ ``clip_weights_``),
  EBGAN margin.
- :mod:`.relativistic` — RSGAN (paired) and RaSGAN, RaLSGAN, RaHinge (optionally all-gathered means).
- :mod:`.fgan` — f-GAN for KL, reverse KL, Pearson χ², squared Hellinger, JS, GAN.
- :mod:`.gan_qp` — GAN-QP (post 6163): L1 / RMS-L2 pair distances, λ = 10.
- :mod:`.ogan` — O-GAN (post 6409): encoder score, Pearson term, the author's single loss.
- :mod:`.bigan_qp` — BiGAN-QP (post 6214): joint critic loss and reconstructions.
- :mod:`.energy` — the energy view (posts 6316, 6331, 6612): score penalty, contrastive energy loss,
  MEG mutual-information terms.
- :mod:`.imle` — IMLE (post 6394) and the VI proximal regulariser.
- :mod:`.single_loss` — the single-loss trick (post 6387): D and G in one loss, one optimiser.
- :mod:`.conditional` — class-conditional D: projection-discriminator scores, AC-GAN class loss.

Import order inside the room: ``ogan`` uses ``single_loss``; ``fgan``, ``gan_qp`` and
``relativistic`` share only the private helpers of ``kexue.gan_losses._validation``.
"""

from __future__ import annotations

from .bigan_qp import *  # noqa: F403 - re-exports bigan_qp.__all__
from .bigan_qp import __all__ as _bigan_qp_all
from .classic import *  # noqa: F403 - re-exports classic.__all__
from .classic import __all__ as _classic_all
from .conditional import *  # noqa: F403 - re-exports conditional.__all__
from .conditional import __all__ as _conditional_all
from .energy import *  # noqa: F403 - re-exports energy.__all__
from .energy import __all__ as _energy_all
from .fgan import *  # noqa: F403 - re-exports fgan.__all__
from .fgan import __all__ as _fgan_all
from .gan_qp import *  # noqa: F403 - re-exports gan_qp.__all__
from .gan_qp import __all__ as _gan_qp_all
from .imle import *  # noqa: F403 - re-exports imle.__all__
from .imle import __all__ as _imle_all
from .ogan import *  # noqa: F403 - re-exports ogan.__all__
from .ogan import __all__ as _ogan_all
from .relativistic import *  # noqa: F403 - re-exports relativistic.__all__
from .relativistic import __all__ as _relativistic_all
from .single_loss import *  # noqa: F403 - re-exports single_loss.__all__
from .single_loss import __all__ as _single_loss_all

__all__ = [
    *_bigan_qp_all,
    *_classic_all,
    *_conditional_all,
    *_energy_all,
    *_fgan_all,
    *_gan_qp_all,
    *_imle_all,
    *_ogan_all,
    *_relativistic_all,
    *_single_loss_all,
]
