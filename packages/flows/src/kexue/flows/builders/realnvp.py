"""RealNVP builder: multi-scale affine couplings with checkerboard / channel masks.

References:
    Dinh et al., RealNVP arXiv:1605.08803; https://kexue.fm/archives/5807.
"""

from __future__ import annotations

from collections.abc import Sequence

from kexue.flows.base import Compose, FlowLayer
from kexue.flows.builders._checks import Preset, check_context_dim, check_image_shape, positive
from kexue.flows.flow import FlowConfig, Level, MultiScaleFlow, Split
from kexue.flows.layers.coupling import AffineCoupling
from kexue.flows.layers.logit import LogitTransform
from kexue.flows.layers.normalization import AffineBatchNorm
from kexue.flows.layers.reshape import Squeeze
from kexue.flows.nets import ResNet
from kexue.flows.priors import StandardNormal

__all__ = ["realnvp"]


def realnvp(
    shape: Sequence[int],
    *,
    scales: int = 2,
    couplings: int = 3,
    hidden: int = 64,
    blocks: int = 2,
    scale_map: str = "tanh_w",
    logit_alpha: float | None = 0.05,
    batch_norm: bool = True,
    context_dim: int = 0,
    preset: Preset = "paper",
) -> MultiScaleFlow:
    """RealNVP multi-scale flow (chrischute/real-nvp layout).

    Every scale but the last: ``couplings`` checkerboard affine couplings (alternating masks) →
    squeeze → ``couplings`` channel-wise couplings (alternating halves) → factor out half the
    channels with an N(0, I) prior. The last scale: ``couplings + 1`` checkerboard couplings.
    Couplings are ``y = x·exp(s) + t`` (``order="realnvp"``) with s = w·tanh(ŝ) by default and a
    zero-initialised :class:`~kexue.flows.nets.ResNet`; each is followed by an
    :class:`AffineBatchNorm` when ``batch_norm`` (so exact inverses hold in eval mode). A
    :class:`LogitTransform` (α = 0.05 [RealNVP §4.1]) comes first.

    Arguments:
        shape: ``(C, H, W)``, H and W divisible by 2^(scales−1).
        scales: number of scales; default 2 (chrischute CIFAR-10).
        couplings: couplings per stage; default 3 [RealNVP §4.1].
        hidden: ResNet width; default 64 (chrischute ``mid_channels``).
        blocks: residual blocks per ResNet; default 2 (chrischute uses 8 on CIFAR-10).
        scale_map: coupling scale map; default ``"tanh_w"`` [RealNVP].
        logit_alpha: α of the logit pre-processing, or None for none.
        batch_norm: add the batch-norm flow layer after each coupling; default True [RealNVP].
        context_dim: size of a context vector (B, context_dim) for a conditional RealNVP: it is
            broadcast over the positions into every coupling ResNet, and a zero-initialised
            linear map of it shifts every split prior (the logit, batch-norm and squeeze layers
            and the top N(0, I) stay unconditional); default 0.
        preset: only ``"paper"`` (RealNVP has no Su configuration).

    Returns:
        a :class:`MultiScaleFlow` on ``(B, C, H, W)`` data in [0, 1], with ``config``.

    References:
        RealNVP arXiv:1605.08803 §3.6 and §4.1; https://kexue.fm/archives/5807.
    """
    if preset != "paper":
        raise ValueError(f"preset must be 'paper' for realnvp, got {preset!r}")
    positive(scales=scales, couplings=couplings, hidden=hidden, blocks=blocks)
    check_context_dim(context_dim)
    c, h, w = check_image_shape(shape, 2 ** (scales - 1))

    def coupled(channels: int, *, split: str, parity: int) -> list[FlowLayer]:
        n_in = channels if split == "checkerboard" else channels // 2
        n_out = 2 * channels if split == "checkerboard" else channels
        net = ResNet(n_in, n_out, hidden=hidden, blocks=blocks, context_channels=context_dim)
        layer = AffineCoupling(
            net,
            scale_map=scale_map,
            split=split,
            order="realnvp",
            parity=parity,
            features=channels if scale_map == "tanh_w" else None,
        )
        return [layer, AffineBatchNorm(channels)] if batch_norm else [layer]

    levels: list[Level] = []
    for s in range(scales):
        last = s == scales - 1
        layers: list[FlowLayer] = []
        if s == 0 and logit_alpha is not None:
            layers.append(LogitTransform(logit_alpha))
        for i in range(couplings + (1 if last else 0)):
            layers += coupled(c, split="checkerboard", parity=i % 2)
        if last:
            levels.append(Level(Compose(layers)))
            break
        layers.append(Squeeze())
        c, h, w = 4 * c, h // 2, w // 2
        for i in range(couplings):
            layers += coupled(c, split="channel", parity=i % 2)
        levels.append(
            Level(Compose(layers), Split(c, prior="normal", context_features=context_dim))
        )
        c //= 2
    model = MultiScaleFlow(levels, StandardNormal((c, h, w)))
    model.config = FlowConfig("paper")
    return model
