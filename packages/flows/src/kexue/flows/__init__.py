"""kexue.flows: normalising flows with exact likelihood.

NICE, RealNVP, Glow, i-ResNet, Residual Flows, neural spline flows and MAF / IAF (optionally
conditional) behind one layer contract: every layer maps
``forward(x, context=None) -> (y, logdet)`` and ``inverse(y, context=None) -> (x, logdet_inv)`` with a
per-sample ``logdet`` of shape ``(B,)`` (+log|det J|; losses are -log p). The fused Triton coupling
kernel sits behind :func:`fused_coupling` (``backend=`` / ``KEXUE_FLOWS_BACKEND``). Posts:
https://kexue.fm/archives/5776, https://kexue.fm/archives/5807, https://kexue.fm/archives/6482.
See the package README.

Layout: :mod:`.flow` (``Flow``, ``MultiScaleFlow``, ``FlowConfig``), :mod:`.layers` (coupling,
normalisation, 1×1 conv, permutation, reshape, logit, scale maps, spline coupling, MADE,
autoregressive), :mod:`.residual` (i-ResBlock, spectral norm, log-det estimators),
:mod:`.builders` (nice, realnvp, glow, residual, autoregressive: maf / nsf), and at the top
:mod:`.base` (the layer contract), :mod:`.functional` (reference ops), :mod:`.priors`,
:mod:`.mixture`, :mod:`.interop` (``torch.distributions``), :mod:`.nets`, :mod:`.bits`; Triton kernels in ``_kernels/triton_<op>.py`` chosen by ``_dispatch``.
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
from .builders.autoregressive import maf, nsf
from .builders.glow import glow
from .builders.nice import nice
from .builders.realnvp import realnvp
from .builders.residual import iresnet, residual_flow
from .flow import (
    Flow,
    FlowConfig,
    Level,
    MultiScaleFlow,
    Split,
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
from .interop import (
    FlowDistribution,
    LayerTransform,
    ZukoLayer,
    as_torch_distribution,
    as_transform,
    as_zuko,
    from_zuko,
)
from .layers.autoregressive import MaskedAutoregressive
from .layers.conv1x1 import (
    FoldedActNormConv,
    Invertible1x1Conv,
    fold_actnorm_conv,
)
from .layers.coupling import (
    AdditiveCoupling,
    AffineCoupling,
    channel_mask,
    checkerboard_mask,
)
from .layers.logit import LogitTransform
from .layers.made import MADE, MaskedLinear, made_degrees
from .layers.normalization import (
    ActNorm,
    AffineBatchNorm,
    DiagonalScale,
)
from .layers.permutation import Permutation
from .layers.reshape import (
    Flatten,
    Interleave,
    ParitySplit,
    Reshape,
    Squeeze,
    Unsqueeze,
    channel_merge,
    channel_split,
    parity_merge,
    parity_split,
)
from .layers.scale_maps import (
    SCALE_MAPS,
    apply_scale_map,
    get_scale_map,
    log_scale_derivative,
)
from .layers.spline_coupling import SplineCoupling
from .mixture import GaussianMixture
from .nets import (
    MLP,
    Conv2dZeros,
    ConvNet,
    LinearZeros,
    ResNet,
    make_activation,
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
from .residual.iresblock import (
    InverseInfo,
    InverseNotConverged,
    IResBlock,
    LipSwish,
    conv_residual,
    mlp_residual,
)
from .residual.roulette import (
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
from .residual.spectral import (
    SpectralNormConv2d,
    SpectralNormLinear,
    frozen_spectral_norm,
)
from .splines import RQSpline, rq_knots, rq_spline, spline_raw_sizes

__all__ = [
    "MADE",
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
    "FlowDistribution",
    "FlowLayer",
    "FoldedActNormConv",
    "GaussianMixture",
    "GaussianPrior",
    "HLayout",
    "IResBlock",
    "Interleave",
    "Inverse",
    "InverseInfo",
    "InverseNotConverged",
    "Invertible1x1Conv",
    "LayerTransform",
    "LearnedTop",
    "Level",
    "LinearZeros",
    "LipSwish",
    "Logistic",
    "LogitTransform",
    "MaskedAutoregressive",
    "MaskedLinear",
    "MultiScaleFlow",
    "ParitySplit",
    "Permutation",
    "Prior",
    "RQSpline",
    "ResNet",
    "Reshape",
    "SpectralNormConv2d",
    "SpectralNormLinear",
    "SplineCoupling",
    "Split",
    "Squeeze",
    "StandardNormal",
    "Unsqueeze",
    "ZukoLayer",
    "__version__",
    "apply_scale_map",
    "as_torch_distribution",
    "as_transform",
    "as_zuko",
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
    "from_zuko",
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
    "made_degrees",
    "maf",
    "make_activation",
    "mlp_residual",
    "neumann_logdet",
    "nice",
    "nsf",
    "parity_merge",
    "parity_split",
    "realnvp",
    "reduce_bits",
    "residual_flow",
    "resolve_levels",
    "roulette_tail_probability",
    "roulette_weights",
    "rq_knots",
    "rq_spline",
    "sample_probe",
    "spline_raw_sizes",
    "split_h",
    "truncation_bound",
    "zero_logdet",
]
