"""Glow builder: ActNorm → invertible 1×1 conv → coupling steps, multi-scale with a learned prior.

``preset="su_compat"`` follows Su's Keras ``glow.py`` (additive coupling, random permutation,
zero-init ActNorm, conditional split prior, [−1, 1] data, sampling std 0.9).

References:
    Kingma & Dhariwal, Glow arXiv:1807.03039; https://kexue.fm/archives/6482.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch

from kexue.flows.base import Compose, FlowLayer
from kexue.flows.builders._checks import (
    Preset,
    check_context_dim,
    check_image_shape,
    check_preset,
    positive,
)
from kexue.flows.flow import FlowConfig, Level, MultiScaleFlow, Split
from kexue.flows.layers.conv1x1 import Invertible1x1Conv
from kexue.flows.layers.coupling import AdditiveCoupling, AffineCoupling
from kexue.flows.layers.normalization import ActNorm
from kexue.flows.layers.permutation import Permutation
from kexue.flows.layers.reshape import Squeeze
from kexue.flows.layers.spline_coupling import SplineCoupling
from kexue.flows.nets import ConvNet
from kexue.flows.priors import LearnedTop, Prior, StandardNormal

__all__ = ["glow"]


def glow(
    shape: Sequence[int],
    *,
    levels: int = 3,
    steps: int = 32,
    hidden: int = 512,
    coupling: Literal["affine", "additive", "spline"] | None = None,
    permutation: Literal["lu", "conv", "reverse", "random"] | None = None,
    split_prior: Literal["conditional", "normal"] = "conditional",
    scale_map: str = "sigmoid2",
    actnorm_init: Literal["data", "zero"] | None = None,
    learn_top: bool | None = None,
    net_actnorm: bool = False,
    padding: Literal["zeros", "edge_channel", "pad_one"] = "zeros",
    bins: int = 8,
    bound: float = 5.0,
    context_dim: int = 0,
    preset: Preset = "paper",
    generator: torch.Generator | None = None,
) -> MultiScaleFlow:
    """Glow: ``levels`` × (squeeze → ``steps`` × [ActNorm → permutation → coupling] → split).

    The last level has no split; its output gets the learned top prior (``learn_top``) or
    N(0, I). Coupling nets are :class:`~kexue.flows.nets.ConvNet` (conv3×3 → ReLU → conv1×1 → ReLU
    → Conv2dZeros; ``net_actnorm=True`` adds openai's ActNorm after each hidden conv), so every
    coupling starts at the identity up to σ(2) for ``sigmoid2``.
    ActNorm uses openai's ``logscale_factor = 3``.

    ``preset="paper"``: affine coupling with ``sigmoid2``, LU 1×1 conv, data-dependent ActNorm,
    data in [0, 1]. ``preset="su_compat"`` (bojone/flow ``glow.py``): additive coupling, random
    permutation, zero-init ActNorm, Su's squeeze channel order, standard-normal top prior,
    conditional split prior (his ``CondActnorm``), data in [−1, 1], sampling std 0.9
    (Su used levels=3, steps=10, hidden=512). Explicit arguments override the preset.

    Arguments:
        shape: ``(C, H, W)`` with even C·4 splits: H, W divisible by 2^levels.
        levels: L; default 3 [Glow CIFAR-10].
        steps: K steps per level; default 32 [Glow CIFAR-10].
        hidden: coupling-net width; default 512 [Glow].
        coupling: ``"affine"``, ``"additive"`` or ``"spline"`` (a rational-quadratic
            :class:`~kexue.flows.layers.spline_coupling.SplineCoupling`, K = ``bins`` on
            [−``bound``, ``bound``]; the ActNorm before it standardises its input); default by
            preset.
        permutation: ``"lu"``, ``"conv"`` (plain 1×1), ``"reverse"`` or ``"random"``; default by
            preset.
        split_prior: ``"conditional"`` (learned, default) or ``"normal"``.
        scale_map: affine scale map; default ``"sigmoid2"`` [openai/glow].
        actnorm_init: ``"data"`` or ``"zero"``; default by preset.
        net_actnorm: ActNorm inside the coupling nets (openai/glow); default False (its
            data-dependent init runs per process: under DDP run one forward before wrapping).
        padding: the nets' border convention: ``"zeros"`` (default), ``"edge_channel"``
            (openai/glow) or ``"pad_one"`` (rosinality).
        learn_top: learned top prior (openai ``learntop``); default by preset (True for
            ``paper``; False for ``su_compat``, whose loss is Σ½z² on the top latent).
        bins: spline bins K (``coupling="spline"``); default 8 [NSF].
        bound: spline interval B (``coupling="spline"``); default 5.0 [zuko].
        context_dim: size of a context vector (B, context_dim) for a conditional Glow: it is
            broadcast over the positions and concatenated to every coupling net's input, and a
            zero-initialised linear map of it shifts every split prior and the learned top
            (ActNorm stays unconditional); default 0.
        preset: ``"paper"`` or ``"su_compat"``.
        generator: RNG of the 1×1-conv rotations and random permutations.

    Returns:
        a :class:`MultiScaleFlow` on ``(B, C, H, W)``, with ``config``.

    References:
        Glow arXiv:1807.03039; openai/glow ``model.py``; https://kexue.fm/archives/5807;
        bojone/flow ``glow.py``.
    """
    check_preset(preset)
    positive(levels=levels, steps=steps, hidden=hidden)
    check_context_dim(context_dim)
    su = preset == "su_compat"
    coupling = coupling or ("additive" if su else "affine")
    permutation = permutation or ("random" if su else "lu")
    actnorm_init = actnorm_init or ("zero" if su else "data")
    learn_top = (not su) if learn_top is None else learn_top
    if coupling not in ("affine", "additive", "spline"):
        raise ValueError(f"coupling must be 'affine', 'additive' or 'spline', got {coupling!r}")
    if permutation not in ("lu", "conv", "reverse", "random"):
        raise ValueError(
            f"permutation must be 'lu', 'conv', 'reverse' or 'random', got {permutation!r}"
        )
    c, h, w = check_image_shape(shape, 2**levels)

    def step(channels: int) -> list[FlowLayer]:
        norm = ActNorm(channels, logscale_factor=3.0, init=actnorm_init)
        if permutation in ("lu", "conv"):
            perm: FlowLayer = Invertible1x1Conv(
                channels, lu=permutation == "lu", generator=generator
            )
        else:
            perm = Permutation(channels, mode=permutation, generator=generator)
        half = channels // 2
        if coupling == "affine":
            cpl: FlowLayer = AffineCoupling(
                ConvNet(
                    half,
                    channels,
                    hidden=hidden,
                    actnorm=net_actnorm,
                    padding=padding,
                    context_channels=context_dim,
                ),
                scale_map=scale_map,
                split="channel",
            )
        elif coupling == "spline":
            cpl = SplineCoupling(
                ConvNet(
                    half, half * (3 * bins - 1), hidden=hidden, actnorm=net_actnorm,
                    padding=padding, context_channels=context_dim,
                ),
                bins=bins, bound=bound, split="channel",
            )  # fmt: skip
        else:
            cpl = AdditiveCoupling(
                ConvNet(
                    half,
                    half,
                    hidden=hidden,
                    actnorm=net_actnorm,
                    padding=padding,
                    context_channels=context_dim,
                ),
                split="channel",
            )
        return [norm, perm, cpl]

    out: list[Level] = []
    for level in range(levels):
        c, h, w = 4 * c, h // 2, w // 2
        layers: list[FlowLayer] = [Squeeze(order="su" if su else "default")]
        for _ in range(steps):
            layers += step(c)
        if level == levels - 1:
            out.append(Level(Compose(layers)))
        else:
            out.append(
                Level(Compose(layers), Split(c, prior=split_prior, context_features=context_dim))
            )
            c //= 2
    if learn_top:
        top: Prior = LearnedTop((c, h, w), context_features=context_dim)
    else:
        top = StandardNormal((c, h, w))
    model = MultiScaleFlow(out, top)
    model.config = (
        FlowConfig(
            "su_compat", data_range=(-1.0, 1.0), noise_scale=1.0 / 256, sample_temperature=0.9
        )
        if su
        else FlowConfig("paper")
    )
    return model
