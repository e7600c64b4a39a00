"""Quantiser factory of the VQ-VAE models: any kexue quantiser on a (B, D, h, w) latent grid.

``make_quantizer(kind, num_codes, code_dim, **kwargs)`` builds one of :data:`QUANTIZER_KINDS`
behind the channels-first interface the models use (``forward`` returns a
:class:`~kexue.vq.quantizer.QuantizerOutput` whose ``quantized`` is (B, D, h, w); ``lookup`` maps an
index grid back to (B, D, h, w); ``num_codes`` is K per stage / head).
"""

from __future__ import annotations

import math
from typing import Any

from torch import Tensor, nn

from .fsq import FSQ, FSQ_LEVELS
from .lfq import LFQ
from .quantizer import QuantizerOutput, VectorQuantizer
from .residual import ResidualVQ
from .residual_fsq import ResidualFSQ
from .residual_lfq import ResidualLFQ
from .simvq import SimVQ

__all__ = ["QUANTIZER_KINDS", "ChannelsFirst", "make_quantizer", "num_codes_of", "stages_of"]

#: The ``quantizer=`` choices of :class:`~kexue.vq.VQVAE` / :class:`~kexue.vq.VQVAE2`.
QUANTIZER_KINDS = ("vq", "fsq", "lfq", "simvq", "residual_vq", "residual_fsq", "residual_lfq")


class ChannelsFirst(nn.Module):
    """Run a channels-last quantiser ((..., D) input) on (B, D, *spatial) tensors.

    ``forward`` moves D last, quantises and moves it back; ``lookup`` returns (B, D, *spatial).
    Indices keep the quantiser's shape ((B, *spatial) or (B, *spatial, Q)).
    """

    def __init__(self, quantizer: nn.Module) -> None:
        super().__init__()
        self.quantizer = quantizer
        self.num_codes = int(quantizer.num_codes)

    def forward(self, x: Tensor, **kwargs: Any) -> QuantizerOutput:
        """(B, D, *spatial) → QuantizerOutput with ``quantized`` (B, D, *spatial)."""
        if x.dim() < 2:
            raise ValueError(f"x must be (B, D, *spatial), got shape {tuple(x.shape)}")
        out = self.quantizer(x.movedim(1, -1), **kwargs)
        return out._replace(quantized=out.quantized.movedim(-1, 1))

    def lookup(self, indices: Tensor) -> Tensor:
        """Index grid → codes (B, D, *spatial)."""
        return self.quantizer.lookup(indices).movedim(-1, 1)


def _bits(num_codes: int, kind: str) -> int:
    bits = int(math.log2(num_codes)) if num_codes >= 1 else 0
    if 2**bits != num_codes:
        raise ValueError(f"quantizer={kind!r} needs num_codes a power of 2, got {num_codes}")
    return bits


def _levels(num_codes: int, kwargs: dict[str, Any], kind: str) -> list[int]:
    levels = kwargs.pop("levels", None)
    if levels is not None:
        return list(levels)
    bits = math.log2(num_codes) if num_codes >= 1 else 0.5
    if not bits.is_integer() or int(bits) not in FSQ_LEVELS:
        raise ValueError(
            f"quantizer={kind!r}: pass levels=, or num_codes = 2^b with b in {sorted(FSQ_LEVELS)} "
            f"(FSQ_LEVELS), got num_codes={num_codes}"
        )
    return list(FSQ_LEVELS[int(bits)])


def make_quantizer(kind: str, num_codes: int, code_dim: int, **kwargs: Any) -> nn.Module:
    """A channels-first quantiser of ``code_dim`` features with ``num_codes`` codes per stage.

    - ``"vq"``: :class:`VectorQuantizer` (K = num_codes; kwargs are its options).
    - ``"simvq"``: :class:`SimVQ`.
    - ``"fsq"``: :class:`FSQ` with ``levels=`` or the paper's table for num_codes = 2^b
      (:data:`FSQ_LEVELS`: 2^8 → [8, 6, 5], 240 codes); projections to/from ``code_dim``.
    - ``"lfq"``: :class:`LFQ` with log2(num_codes) bits; projections to/from ``code_dim``.
    - ``"residual_vq"`` / ``"residual_fsq"`` / ``"residual_lfq"``: ``num_quantizers=`` stages
      (required) of the above; indices (B, h, w, Q).

    Arguments:
        kind: one of :data:`QUANTIZER_KINDS`.
        num_codes: K per stage (for FSQ the product of the levels when ``levels`` is given).
        code_dim: D, the latent channels.
        **kwargs: passed to the quantiser (``levels`` and ``num_quantizers`` are taken here).
    """
    kwargs = dict(kwargs)
    if kind not in QUANTIZER_KINDS:
        raise ValueError(f"quantizer must be one of {QUANTIZER_KINDS}, got {kind!r}")
    if "layout" in kwargs or "dim" in kwargs:
        raise ValueError("quantizer kwargs must not set layout or dim: the models fix them")
    stages = kwargs.pop("num_quantizers", None) if kind.startswith("residual_") else None
    if kind.startswith("residual_") and stages is None:
        raise ValueError(f"quantizer={kind!r} needs num_quantizers=")
    if kind == "vq":
        return VectorQuantizer(num_codes, code_dim, layout="channels_first", **kwargs)
    if kind == "simvq":
        return SimVQ(num_codes, code_dim, layout="channels_first", **kwargs)
    if kind == "residual_vq":
        return ResidualVQ(stages, num_codes, code_dim, layout="channels_first", **kwargs)
    if kind == "fsq":
        return ChannelsFirst(FSQ(_levels(num_codes, kwargs, kind), code_dim, **kwargs))
    if kind == "residual_fsq":
        levels = _levels(num_codes, kwargs, kind)
        return ChannelsFirst(ResidualFSQ(levels, stages, code_dim, **kwargs))
    if kind == "lfq":
        return ChannelsFirst(LFQ(_bits(num_codes, kind), code_dim, **kwargs))
    return ChannelsFirst(ResidualLFQ(_bits(num_codes, kind), stages, code_dim, **kwargs))


def num_codes_of(quantizer: nn.Module) -> int:
    """K per stage / head of a quantiser built by :func:`make_quantizer`."""
    layers = getattr(quantizer, "layers", None)  # ResidualVQ
    return int(layers[0].num_codes if layers is not None else quantizer.num_codes)


def stages_of(quantizer: nn.Module) -> int | None:
    """Q of a residual quantiser (indices (B, h, w, Q)), None for a single one."""
    inner = getattr(quantizer, "quantizer", quantizer)
    if hasattr(inner, "num_quantizers"):
        return int(inner.num_quantizers)
    layers = getattr(inner, "layers", None)
    return len(layers) if layers is not None else None
