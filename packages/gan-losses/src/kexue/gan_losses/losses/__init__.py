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

Import order inside the room: ``ogan`` uses ``single_loss``; ``fgan``, ``gan_qp`` and
``relativistic`` share only the private helpers of ``kexue.gan_losses._validation``.
"""

from __future__ import annotations

from .bigan_qp import (
    bigan_qp_critic_loss,
    bigan_qp_distance,
    bigan_qp_generator_encoder_loss,
    bigan_qp_latent_reconstruction,
    bigan_qp_pixel_reconstruction,
)
from .classic import (
    clip_weights_,
    ebgan_discriminator_loss,
    ebgan_generator_loss,
    hinge_discriminator_loss,
    hinge_generator_loss,
    lsgan_discriminator_loss,
    lsgan_generator_loss,
    sgan_discriminator_loss,
    sgan_generator_loss,
    wgan_discriminator_loss,
    wgan_generator_loss,
)
from .energy import (
    contrastive_energy_loss,
    encoder_entropy_surrogate,
    meg_mutual_information_loss,
    mi_bce_loss,
    random_derangement,
    score_penalty,
)
from .fgan import (
    F_DIVERGENCES,
    FDivergence,
    f_gan_discriminator_loss,
    f_gan_generator_loss,
)
from .gan_qp import (
    gan_qp_discriminator_loss,
    gan_qp_distance,
    gan_qp_generator_loss,
)
from .imle import (
    imle_loss,
    imle_two_sample_loss,
    nearest_neighbour_sqdist,
    vgan_generator_loss,
)
from .ogan import (
    OGANSingleLoss,
    ogan_correlation_loss,
    ogan_encoder_loss,
    ogan_generator_loss,
    ogan_reconstruction_code,
    ogan_score,
    ogan_single_loss,
    pearson_correlation,
)
from .relativistic import (
    batch_mean,
    rahinge_discriminator_loss,
    rahinge_generator_loss,
    ralsgan_discriminator_loss,
    ralsgan_generator_loss,
    rasgan_discriminator_loss,
    rasgan_generator_loss,
    rsgan_discriminator_loss,
    rsgan_generator_loss,
)
from .single_loss import (
    SingleLoss,
    SingleLossMethod,
    forward_detached_and_attached,
    single_loss,
)

__all__ = [
    "F_DIVERGENCES",
    "FDivergence",
    "OGANSingleLoss",
    "SingleLoss",
    "SingleLossMethod",
    "batch_mean",
    "bigan_qp_critic_loss",
    "bigan_qp_distance",
    "bigan_qp_generator_encoder_loss",
    "bigan_qp_latent_reconstruction",
    "bigan_qp_pixel_reconstruction",
    "clip_weights_",
    "contrastive_energy_loss",
    "ebgan_discriminator_loss",
    "ebgan_generator_loss",
    "encoder_entropy_surrogate",
    "f_gan_discriminator_loss",
    "f_gan_generator_loss",
    "forward_detached_and_attached",
    "gan_qp_discriminator_loss",
    "gan_qp_distance",
    "gan_qp_generator_loss",
    "hinge_discriminator_loss",
    "hinge_generator_loss",
    "imle_loss",
    "imle_two_sample_loss",
    "lsgan_discriminator_loss",
    "lsgan_generator_loss",
    "meg_mutual_information_loss",
    "mi_bce_loss",
    "nearest_neighbour_sqdist",
    "ogan_correlation_loss",
    "ogan_encoder_loss",
    "ogan_generator_loss",
    "ogan_reconstruction_code",
    "ogan_score",
    "ogan_single_loss",
    "pearson_correlation",
    "rahinge_discriminator_loss",
    "rahinge_generator_loss",
    "ralsgan_discriminator_loss",
    "ralsgan_generator_loss",
    "random_derangement",
    "rasgan_discriminator_loss",
    "rasgan_generator_loss",
    "rsgan_discriminator_loss",
    "rsgan_generator_loss",
    "score_penalty",
    "sgan_discriminator_loss",
    "sgan_generator_loss",
    "single_loss",
    "vgan_generator_loss",
    "wgan_discriminator_loss",
    "wgan_generator_loss",
]
