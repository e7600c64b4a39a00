"""kexue.gan_losses: GAN losses, gradient penalties and regularisers from Scientific Spaces.

Functional API (every function returns a value to minimise; ``reduction`` = mean/sum/none;
``energy=True`` selects the author's sign, lower = more real) plus small classes where state is
needed. See the package README for a map of techniques to functions and the conventions.
"""

from __future__ import annotations

from .__about__ import __version__
from ._validation import (
    Reduction,
    finite_checks,
    set_finite_checks,
)
from .losses.bigan_qp import (
    bigan_qp_critic_loss,
    bigan_qp_distance,
    bigan_qp_generator_encoder_loss,
    bigan_qp_latent_reconstruction,
    bigan_qp_pixel_reconstruction,
)
from .losses.classic import (
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
from .losses.energy import (
    contrastive_energy_loss,
    encoder_entropy_surrogate,
    meg_mutual_information_loss,
    mi_bce_loss,
    random_derangement,
    score_penalty,
)
from .losses.fgan import (
    F_DIVERGENCES,
    FDivergence,
    f_gan_discriminator_loss,
    f_gan_generator_loss,
)
from .losses.gan_qp import (
    gan_qp_discriminator_loss,
    gan_qp_distance,
    gan_qp_generator_loss,
)
from .losses.imle import (
    imle_loss,
    imle_two_sample_loss,
    nearest_neighbour_sqdist,
    vgan_generator_loss,
)
from .losses.ogan import (
    OGANSingleLoss,
    ogan_correlation_loss,
    ogan_encoder_loss,
    ogan_generator_loss,
    ogan_reconstruction_code,
    ogan_score,
    ogan_single_loss,
    pearson_correlation,
)
from .losses.relativistic import (
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
from .losses.single_loss import (
    SingleLoss,
    SingleLossMethod,
    forward_detached_and_attached,
    single_loss,
)
from .modules import (
    AdversarialLoss,
    GradientPenalty,
)
from .penalties import (
    gradient_penalty,
    interpolate,
    r1_penalty,
    r1_penalty_from_critic,
    r2_penalty,
    wgan_div_penalty,
    wgan_gp_penalty,
)
from .regularizers import (
    inject_orthogonal_gradient_,
    model_orthogonal_regularization,
    orthogonal_regularization,
    som_regularization,
    som_similarity,
)
from .spectral import (
    DEFAULT_SPECTRAL_NORM_TYPES,
    BatchNormGammaSpectralNorm,
    apply_spectral_norm,
    remove_spectral_norm,
    spectral_norm_batchnorm_gamma,
    spectral_norm_of,
)
from .training.dirac import (
    DiracGANKind,
    DiracGANTrajectory,
    dirac_gan_vector_field,
    integrate_dirac_gan,
)
from .training.ema import (
    GeneratorEMA,
    unwrap_model,
)
from .training.mcmc import (
    MALAResult,
    ReplayBuffer,
    decoupled_langevin_sample,
    langevin_sample,
    mala_sample,
)
from .training.selfmod import (
    ConditionalLatent,
    SelfModulatedBatchNorm,
)
from .training.ttur import (
    TTURConfig,
    make_optimizers,
    make_param_groups,
)

__all__ = [
    "DEFAULT_SPECTRAL_NORM_TYPES",
    "F_DIVERGENCES",
    "AdversarialLoss",
    "BatchNormGammaSpectralNorm",
    "ConditionalLatent",
    "DiracGANKind",
    "DiracGANTrajectory",
    "FDivergence",
    "GeneratorEMA",
    "GradientPenalty",
    "MALAResult",
    "OGANSingleLoss",
    "Reduction",
    "ReplayBuffer",
    "SelfModulatedBatchNorm",
    "SingleLoss",
    "SingleLossMethod",
    "TTURConfig",
    "__version__",
    "apply_spectral_norm",
    "batch_mean",
    "bigan_qp_critic_loss",
    "bigan_qp_distance",
    "bigan_qp_generator_encoder_loss",
    "bigan_qp_latent_reconstruction",
    "bigan_qp_pixel_reconstruction",
    "clip_weights_",
    "contrastive_energy_loss",
    "decoupled_langevin_sample",
    "dirac_gan_vector_field",
    "ebgan_discriminator_loss",
    "ebgan_generator_loss",
    "encoder_entropy_surrogate",
    "f_gan_discriminator_loss",
    "f_gan_generator_loss",
    "finite_checks",
    "forward_detached_and_attached",
    "gan_qp_discriminator_loss",
    "gan_qp_distance",
    "gan_qp_generator_loss",
    "gradient_penalty",
    "hinge_discriminator_loss",
    "hinge_generator_loss",
    "imle_loss",
    "imle_two_sample_loss",
    "inject_orthogonal_gradient_",
    "integrate_dirac_gan",
    "interpolate",
    "langevin_sample",
    "lsgan_discriminator_loss",
    "lsgan_generator_loss",
    "make_optimizers",
    "make_param_groups",
    "mala_sample",
    "meg_mutual_information_loss",
    "mi_bce_loss",
    "model_orthogonal_regularization",
    "nearest_neighbour_sqdist",
    "ogan_correlation_loss",
    "ogan_encoder_loss",
    "ogan_generator_loss",
    "ogan_reconstruction_code",
    "ogan_score",
    "ogan_single_loss",
    "orthogonal_regularization",
    "pearson_correlation",
    "r1_penalty",
    "r1_penalty_from_critic",
    "r2_penalty",
    "rahinge_discriminator_loss",
    "rahinge_generator_loss",
    "ralsgan_discriminator_loss",
    "ralsgan_generator_loss",
    "random_derangement",
    "rasgan_discriminator_loss",
    "rasgan_generator_loss",
    "remove_spectral_norm",
    "rsgan_discriminator_loss",
    "rsgan_generator_loss",
    "score_penalty",
    "set_finite_checks",
    "sgan_discriminator_loss",
    "sgan_generator_loss",
    "single_loss",
    "som_regularization",
    "som_similarity",
    "spectral_norm_batchnorm_gamma",
    "spectral_norm_of",
    "unwrap_model",
    "vgan_generator_loss",
    "wgan_discriminator_loss",
    "wgan_div_penalty",
    "wgan_generator_loss",
    "wgan_gp_penalty",
]
