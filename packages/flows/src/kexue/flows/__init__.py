"""kexue.flows: normalising flows with exact likelihood.

NICE, RealNVP, Glow, i-ResNet and Residual Flows behind one layer contract: every layer maps
``forward(x, context=None) -> (y, logdet)`` and ``inverse(y, context=None) -> (x, logdet_inv)`` with a
per-sample ``logdet`` of shape ``(B,)`` (+log|det J|; losses are -log p). Builders live in
:mod:`kexue.flows.models`; the fused Triton coupling kernel sits behind :func:`fused_coupling`
(``backend=`` / ``KEXUE_FLOWS_BACKEND``). Posts: https://kexue.fm/archives/5776,
https://kexue.fm/archives/5807, https://kexue.fm/archives/6482. See the package README.
"""

from __future__ import annotations

from .__about__ import __version__
from .base import (
    Compose,
    FlowLayer,
    Inverse,
    logdet_dtype,
    zero_logdet,
)
from .bits import (
    bits_per_dim,
    dequantize,
    reduce_bits,
    resolve_levels,
)
from .conv1x1 import (
    FoldedActNormConv,
    Invertible1x1Conv,
    fold_actnorm_conv,
)
from .coupling import (
    AdditiveCoupling,
    AffineCoupling,
    channel_mask,
    checkerboard_mask,
)
from .functional import (
    CouplingKind,
    CouplingOrder,
    HLayout,
    coupling_forward,
    coupling_inverse,
    fused_coupling,
    join_h,
    split_h,
)
from .iresblock import (
    InverseInfo,
    InverseNotConverged,
    IResBlock,
    LipSwish,
    conv_residual,
    mlp_residual,
)
from .layers import (
    Flatten,
    Interleave,
    LogitTransform,
    ParitySplit,
    Permutation,
    Reshape,
    Squeeze,
    Unsqueeze,
    channel_merge,
    channel_split,
    parity_merge,
    parity_split,
)
from .model import (
    Flow,
    Level,
    MultiScaleFlow,
    Split,
)
from .models import (
    FlowConfig,
    glow,
    iresnet,
    nice,
    realnvp,
    residual_flow,
)
from .nets import (
    MLP,
    Conv2dZeros,
    ConvNet,
    LinearZeros,
    ResNet,
    make_activation,
)
from .normalization import (
    ActNorm,
    AffineBatchNorm,
    DiagonalScale,
)
from .priors import (
    ConditionalGaussian,
    DiagonalGaussian,
    GaussianPrior,
    LearnedTop,
    Logistic,
    Prior,
    StandardNormal,
)
from .roulette import (
    exact_logdet,
    exact_series_logdet,
    hutchinson_logdet,
    jacobian_matrix,
    neumann_logdet,
    roulette_tail_probability,
    roulette_weights,
    sample_probe,
    truncation_bound,
)
from .scale_maps import (
    SCALE_MAPS,
    apply_scale_map,
    get_scale_map,
    log_scale_derivative,
)
from .spectral import (
    SpectralNormConv2d,
    SpectralNormLinear,
    frozen_spectral_norm,
)

__all__ = [
    "MLP",
    "SCALE_MAPS",
    "ActNorm",
    "AdditiveCoupling",
    "AffineBatchNorm",
    "AffineCoupling",
    "Compose",
    "ConditionalGaussian",
    "Conv2dZeros",
    "ConvNet",
    "CouplingKind",
    "CouplingOrder",
    "DiagonalGaussian",
    "DiagonalScale",
    "Flatten",
    "Flow",
    "FlowConfig",
    "FlowLayer",
    "FoldedActNormConv",
    "GaussianPrior",
    "HLayout",
    "IResBlock",
    "Interleave",
    "Inverse",
    "InverseInfo",
    "InverseNotConverged",
    "Invertible1x1Conv",
    "LearnedTop",
    "Level",
    "LinearZeros",
    "LipSwish",
    "Logistic",
    "LogitTransform",
    "MultiScaleFlow",
    "ParitySplit",
    "Permutation",
    "Prior",
    "ResNet",
    "Reshape",
    "SpectralNormConv2d",
    "SpectralNormLinear",
    "Split",
    "Squeeze",
    "StandardNormal",
    "Unsqueeze",
    "__version__",
    "apply_scale_map",
    "bits_per_dim",
    "channel_mask",
    "channel_merge",
    "channel_split",
    "checkerboard_mask",
    "conv_residual",
    "coupling_forward",
    "coupling_inverse",
    "dequantize",
    "exact_logdet",
    "exact_series_logdet",
    "fold_actnorm_conv",
    "frozen_spectral_norm",
    "fused_coupling",
    "get_scale_map",
    "glow",
    "hutchinson_logdet",
    "iresnet",
    "jacobian_matrix",
    "join_h",
    "log_scale_derivative",
    "logdet_dtype",
    "make_activation",
    "mlp_residual",
    "neumann_logdet",
    "nice",
    "parity_merge",
    "parity_split",
    "realnvp",
    "reduce_bits",
    "residual_flow",
    "resolve_levels",
    "roulette_tail_probability",
    "roulette_weights",
    "sample_probe",
    "split_h",
    "truncation_bound",
    "zero_logdet",
]
