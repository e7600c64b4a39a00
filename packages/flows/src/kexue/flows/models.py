"""Model builders: NICE, RealNVP, Glow, i-ResNet and Residual Flows, with paper / author presets.

The i-ResNet / Residual Flow builders live in :mod:`kexue.flows._residual_models` and are
re-exported here. Each builder returns a :class:`~kexue.flows.model.Flow` or a
:class:`~kexue.flows.model.MultiScaleFlow` assembled from the package's layers, and attaches a
:class:`FlowConfig` as ``model.config``: the data range, the training noise and the sampling
temperature of the preset, which the model object itself does not encode (spec §1.3).

- ``preset="paper"``: the papers' configurations (NICE logistic prior and +U(0, 1/256) noise;
  RealNVP tanh·w scales, checkerboard/channel masks, logit α = 0.05, batch-norm layer; Glow
  affine sigmoid(ĥ+2), LU 1×1 conv, data-dependent ActNorm, learned split prior).
- ``preset="su_compat"``: Su's Keras configurations (bojone/flow ``nice.py``, ``glow.py``):
  Gaussian prior, −0.01·U noise, reverse shuffle, sampling std 0.75 (NICE); additive coupling,
  random permutation, zero-init ActNorm, conditional split prior (his ``CondActnorm`` is its
  reparametrised form), [−1, 1] data, sampling std 0.9 (Glow).

References:
    NICE arXiv:1410.8516; RealNVP arXiv:1605.08803; Glow arXiv:1807.03039; i-ResNet
    arXiv:1811.00995; Residual Flows arXiv:1906.02735; https://kexue.fm/archives/5776,
    https://kexue.fm/archives/5807, https://kexue.fm/archives/6482.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from kexue.flows._residual_models import iresnet, residual_flow
from kexue.flows.base import Compose, FlowLayer
from kexue.flows.conv1x1 import Invertible1x1Conv
from kexue.flows.coupling import AdditiveCoupling, AffineCoupling
from kexue.flows.layers import LogitTransform, Permutation, Squeeze
from kexue.flows.model import Flow, Level, MultiScaleFlow, Split
from kexue.flows.nets import MLP, ConvNet, ResNet
from kexue.flows.normalization import ActNorm, AffineBatchNorm, DiagonalScale
from kexue.flows.priors import LearnedTop, Logistic, StandardNormal

__all__ = ["FlowConfig", "glow", "iresnet", "nice", "realnvp", "residual_flow"]

Preset = Literal["paper", "su_compat"]


@dataclass(frozen=True)
class FlowConfig:
    """Data and sampling conventions of a preset, attached to built models as ``model.config``.

    Attributes:
        preset: ``"paper"`` or ``"su_compat"``.
        data_range: range of the continuous data y the model expects ((0, 1) or (−1, 1)).
        noise: training noise: ``"uniform"`` adds U(0, noise_scale) (dequantisation),
            ``"negative"`` subtracts noise_scale·U(0, 1) (Su's NICE), ``"none"``.
        noise_scale: width of the noise (1/256 for the NICE paper, 0.01 for Su's NICE).
        sample_temperature: the preset's sampling temperature / prior std (1.0 paper; 0.75 Su's
            NICE, 0.9 Su's Glow).
        clip: range samples are clipped to after the inverse (Su clips NICE samples to [0, 1]),
            or None.
    """

    preset: str
    data_range: tuple[float, float] = (0.0, 1.0)
    noise: Literal["uniform", "negative", "none"] = "uniform"
    noise_scale: float = 1.0 / 256
    sample_temperature: float = 1.0
    clip: tuple[float, float] | None = None

    def add_noise(self, x: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        """Apply the preset's training noise to ``x`` (``x ± noise_scale·U(0, 1)``).

        Arguments:
            x: continuous data in ``data_range``.
            generator: RNG of the noise.

        Returns:
            the noisy data, same shape and dtype.
        """
        if self.noise == "none":
            return x
        u = torch.rand(x.shape, generator=generator, dtype=x.dtype, device=x.device)
        sign = 1.0 if self.noise == "uniform" else -1.0
        return x + sign * self.noise_scale * u


def _check_preset(preset: str) -> None:
    if preset not in ("paper", "su_compat"):
        raise ValueError(f"preset must be 'paper' or 'su_compat', got {preset!r}")


def _check_image_shape(shape: Sequence[int], factor: int, name: str = "shape") -> tuple[int, ...]:
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"{name} must be (C, H, W), got {shape}")
    if shape[1] % factor or shape[2] % factor:
        raise ValueError(
            f"{name} needs H and W divisible by {factor} for the requested squeezes, got {shape}"
        )
    return shape


def _positive(**values: int) -> None:
    for name, v in values.items():
        if not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive int, got {v!r}")


# ------------------------------------------------------------------------------------------ NICE


def nice(
    dim: int,
    *,
    n_couplings: int = 4,
    hidden: int = 1000,
    depth: int = 5,
    prior: Literal["logistic", "normal"] | None = None,
    mixing: Literal["reverse", "random", "parity"] | None = None,
    preset: Preset = "paper",
    generator: torch.Generator | None = None,
) -> Flow:
    """NICE: additive couplings on an interleaved (even/odd) split, then a diagonal scaling.

    ``preset="paper"``: couplings alternate which parity is modified (``mixing="parity"``
    unless given), each m a ReLU MLP (``depth`` × ``hidden``), y₂ = x₂ + m(x₁); a zero-init
    :class:`DiagonalScale`; logistic prior; noise +U(0, 1/256).
    ``preset="su_compat"`` (bojone/flow ``nice.py``): before every coupling a reverse shuffle of
    the features, then the interleaved split (modify the odd indices), y₂ = x₂ − m(x₁) with
    m ending in a ReLU; Glorot-normal scale; standard normal prior; noise −0.01·U(0, 1);
    sampling std 0.75, samples clipped to [0, 1].

    Arguments:
        dim: data dimension D (784 for MNIST).
        n_couplings: coupling layers; default 4 [NICE §5.1].
        hidden: MLP width; default 1000 [NICE §5.1].
        depth: MLP hidden layers; default 5 [NICE §5.1].
        prior: ``"logistic"`` or ``"normal"``; default by preset (logistic / normal).
        mixing: ``"parity"`` (alternate the modified half), ``"reverse"`` or ``"random"``
            (permute the features before every coupling); default by preset (parity / reverse).
        preset: ``"paper"`` or ``"su_compat"``.
        generator: RNG of the random permutations and the Glorot scale init.

    Returns:
        a :class:`Flow` on ``(B, dim)`` with ``config`` (:class:`FlowConfig`).

    References:
        NICE arXiv:1410.8516; https://kexue.fm/archives/5776; bojone/flow ``nice.py``.
    """
    _check_preset(preset)
    _positive(dim=dim, n_couplings=n_couplings, hidden=hidden, depth=depth)
    if dim < 2:
        raise ValueError(f"dim must be >= 2 to split, got {dim}")
    su = preset == "su_compat"
    prior = prior or ("normal" if su else "logistic")
    mixing = mixing or ("reverse" if su else "parity")
    if prior not in ("logistic", "normal"):
        raise ValueError(f"prior must be 'logistic' or 'normal', got {prior!r}")
    if mixing not in ("reverse", "random", "parity"):
        raise ValueError(f"mixing must be 'reverse', 'random' or 'parity', got {mixing!r}")
    layers: list[FlowLayer] = []
    for i in range(n_couplings):
        parity = i % 2 if mixing == "parity" else 0
        if mixing != "parity":
            layers.append(Permutation(dim, mode=mixing, generator=generator))
        kept = (dim + 1 - parity) // 2  # x[:, parity::2]
        net = MLP(
            kept, dim - kept, hidden=hidden, depth=depth, out_activation="relu" if su else None
        )
        layers.append(
            AdditiveCoupling(net, split="parity", parity=parity, sign=-1.0 if su else 1.0)
        )
    init = "glorot_normal" if su else "zeros"
    layers.append(DiagonalScale(dim, init=init, generator=generator))
    base = StandardNormal(dim) if prior == "normal" else Logistic(dim)
    model = Flow(Compose(layers), base)
    model.config = (
        FlowConfig(
            "su_compat",
            noise="negative",
            noise_scale=0.01,
            sample_temperature=0.75,
            clip=(0.0, 1.0),
        )
        if su
        else FlowConfig("paper")
    )
    return model


# --------------------------------------------------------------------------------------- RealNVP


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
        preset: only ``"paper"`` (RealNVP has no Su configuration).

    Returns:
        a :class:`MultiScaleFlow` on ``(B, C, H, W)`` data in [0, 1], with ``config``.

    References:
        RealNVP arXiv:1605.08803 §3.6 and §4.1; https://kexue.fm/archives/5807.
    """
    if preset != "paper":
        raise ValueError(f"preset must be 'paper' for realnvp, got {preset!r}")
    _positive(scales=scales, couplings=couplings, hidden=hidden, blocks=blocks)
    c, h, w = _check_image_shape(shape, 2 ** (scales - 1))

    def coupled(channels: int, *, split: str, parity: int) -> list[FlowLayer]:
        n_in = channels if split == "checkerboard" else channels // 2
        n_out = 2 * channels if split == "checkerboard" else channels
        net = ResNet(n_in, n_out, hidden=hidden, blocks=blocks)
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
        levels.append(Level(Compose(layers), Split(c, prior="normal")))
        c //= 2
    model = MultiScaleFlow(levels, StandardNormal((c, h, w)))
    model.config = FlowConfig("paper")
    return model


# ------------------------------------------------------------------------------------------ Glow


def glow(
    shape: Sequence[int],
    *,
    levels: int = 3,
    steps: int = 32,
    hidden: int = 512,
    coupling: Literal["affine", "additive"] | None = None,
    permutation: Literal["lu", "conv", "reverse", "random"] | None = None,
    split_prior: Literal["conditional", "normal"] = "conditional",
    scale_map: str = "sigmoid2",
    actnorm_init: Literal["data", "zero"] | None = None,
    learn_top: bool | None = None,
    net_actnorm: bool = False,
    padding: Literal["zeros", "edge_channel", "pad_one"] = "zeros",
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
        coupling: ``"affine"`` or ``"additive"``; default by preset.
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
        preset: ``"paper"`` or ``"su_compat"``.
        generator: RNG of the 1×1-conv rotations and random permutations.

    Returns:
        a :class:`MultiScaleFlow` on ``(B, C, H, W)``, with ``config``.

    References:
        Glow arXiv:1807.03039; openai/glow ``model.py``; https://kexue.fm/archives/5807;
        bojone/flow ``glow.py``.
    """
    _check_preset(preset)
    _positive(levels=levels, steps=steps, hidden=hidden)
    su = preset == "su_compat"
    coupling = coupling or ("additive" if su else "affine")
    permutation = permutation or ("random" if su else "lu")
    actnorm_init = actnorm_init or ("zero" if su else "data")
    learn_top = (not su) if learn_top is None else learn_top
    if coupling not in ("affine", "additive"):
        raise ValueError(f"coupling must be 'affine' or 'additive', got {coupling!r}")
    if permutation not in ("lu", "conv", "reverse", "random"):
        raise ValueError(
            f"permutation must be 'lu', 'conv', 'reverse' or 'random', got {permutation!r}"
        )
    c, h, w = _check_image_shape(shape, 2**levels)

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
                ConvNet(half, channels, hidden=hidden, actnorm=net_actnorm, padding=padding),
                scale_map=scale_map,
                split="channel",
            )
        else:
            cpl = AdditiveCoupling(
                ConvNet(half, half, hidden=hidden, actnorm=net_actnorm, padding=padding),
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
            out.append(Level(Compose(layers), Split(c, prior=split_prior)))
            c //= 2
    top = LearnedTop((c, h, w)) if learn_top else StandardNormal((c, h, w))
    model = MultiScaleFlow(out, top)
    model.config = (
        FlowConfig(
            "su_compat", data_range=(-1.0, 1.0), noise_scale=1.0 / 256, sample_temperature=0.9
        )
        if su
        else FlowConfig("paper")
    )
    return model
