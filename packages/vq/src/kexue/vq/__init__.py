"""kexue.vq: vector quantisation with an exact, memory-flat nearest-code search.

:class:`VectorQuantizer` (straight-through estimator, codebook/commitment losses or EMA codebook with
consistent initialisation, dead-code restart, k-means++ init, cosine codebooks, low-dimensional
projection, DDP-synchronised statistics), :class:`ResidualVQ`, :class:`GroupedVQ`, the
:class:`VQVAE` / :class:`VQVAE2` models, and :func:`nearest_code`, which never forms an N×K tensor:
the torch reference chunks over N, the fused Triton kernel (``backend=`` / ``KEXUE_VQ_BACKEND``)
streams the codebook. EMA statistics are buffers, not parameters. Post:
https://kexue.fm/archives/6760 (VQ-VAE); paper arXiv:1711.00937. See the package README.
"""

from __future__ import annotations

from .__about__ import __version__
from .ema import (
    ema_codebook,
    ema_update_,
    laplace_smoothed,
)
from .fsq import (
    FSQ,
    FSQ_LEVELS,
    MAX_IMPLICIT_CODES,
)
from .functional import (
    DEFAULT_CHUNK_BYTES,
    code_counts_and_sums,
    nearest_code,
    nearest_code_reference,
    perplexity,
    usage,
)
from .kmeans import (
    kmeans,
)
from .lfq import (
    LFQ,
    lfq_entropies,
)
from .model_quantizers import (
    QUANTIZER_KINDS,
    make_quantizer,
)
from .models import (
    PRESETS,
    VQVAE,
    VQVAE2,
    VQVAELoss,
)
from .quantizer import (
    QUANTIZER_PRESETS,
    QuantizerOutput,
    VectorQuantizer,
)
from .quantizer_dropout import (
    QuantizerDropout,
)
from .residual import (
    GroupedResidualVQ,
    GroupedVQ,
    ResidualVQ,
)
from .residual_fsq import (
    ResidualFSQ,
)
from .residual_lfq import (
    ResidualLFQ,
)
from .restart import (
    DeadCodeRestart,
)
from .rotation import (
    rotation_trick,
)
from .sampling import (
    gumbel_nearest,
)
from .simvq import (
    SimVQ,
)
from .stats import (
    CodebookStats,
)

__all__ = [
    "DEFAULT_CHUNK_BYTES",
    "FSQ",
    "FSQ_LEVELS",
    "LFQ",
    "MAX_IMPLICIT_CODES",
    "PRESETS",
    "QUANTIZER_KINDS",
    "QUANTIZER_PRESETS",
    "VQVAE",
    "VQVAE2",
    "CodebookStats",
    "DeadCodeRestart",
    "GroupedResidualVQ",
    "GroupedVQ",
    "QuantizerDropout",
    "QuantizerOutput",
    "ResidualFSQ",
    "ResidualLFQ",
    "ResidualVQ",
    "SimVQ",
    "VQVAELoss",
    "VectorQuantizer",
    "__version__",
    "code_counts_and_sums",
    "ema_codebook",
    "ema_update_",
    "gumbel_nearest",
    "kmeans",
    "laplace_smoothed",
    "lfq_entropies",
    "make_quantizer",
    "nearest_code",
    "nearest_code_reference",
    "perplexity",
    "rotation_trick",
    "usage",
]
