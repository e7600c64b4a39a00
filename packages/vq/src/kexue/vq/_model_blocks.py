"""Convolutional building blocks of the reference VQ-VAE models (private; see ``models.py``).

Encoder: ``downsample`` stride-2 4×4 convolutions (each halves H and W), a 3×3 convolution, residual
blocks, an activation and a 1×1 projection to the code dimension. Decoder: the transpose — a 3×3
convolution from the code dimension, residual blocks, an activation and ``upsample`` stride-2 4×4
transposed convolutions. This is the layout of the VQ-VAE paper (§4.1: "two strided convolutional
layers with stride 2 and window size 4 × 4, followed by two residual 3 × 3 blocks") and of
rosinality/vq-vae-2-pytorch; the normalisation and activation are switchable for Su's variants
(BatchNorm in bojone/vae 2019, GroupNorm + swish in bojone/FSQ 2023).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "Activation",
    "ConvDecoder",
    "ConvEncoder",
    "Norm",
    "ResBlock",
    "Trunk",
    "check_images",
    "check_indices",
    "make_activation",
    "output_activation",
    "reconstruction_loss",
]

Norm = Literal["none", "batch", "group"]
Activation = Literal["relu", "swish"]
_NORMS = ("none", "batch", "group")
_ACTIVATIONS = ("relu", "swish")


def make_activation(name: str) -> nn.Module:
    """``nn.ReLU`` for ``"relu"``, ``nn.SiLU`` (swish) for ``"swish"``."""
    if name not in _ACTIVATIONS:
        raise ValueError(f"activation must be one of {_ACTIVATIONS}, got {name!r}")
    return nn.ReLU() if name == "relu" else nn.SiLU()


def _make_norm(name: str, channels: int) -> nn.Module:
    if name not in _NORMS:
        raise ValueError(f"norm must be one of {_NORMS}, got {name!r}")
    if name == "batch":
        return nn.BatchNorm2d(channels)
    if name == "group":
        return nn.GroupNorm(_groups(channels), channels)
    return nn.Identity()


def _groups(channels: int) -> int:
    for g in (32, 16, 8, 4, 2):
        if channels % g == 0:
            return g
    return 1


class ResBlock(nn.Module):
    """Pre-activation residual block: ``x + conv1x1(act(norm(conv3x3(act(norm(x))))))``.

    Arguments:
        channels: input and output channels.
        hidden: channels of the inner 3×3 convolution (default ``channels``).
        norm: ``"none"`` (paper, rosinality), ``"batch"`` (Su 2019) or ``"group"`` (Su 2023).
        activation: ``"relu"`` (paper) or ``"swish"`` (Su 2023).
        residual_scale: the last convolution's initial weights are multiplied by this (Su 2023
            scales the residual branch's initialisation by 0.1); default 1.0.
    """

    def __init__(
        self,
        channels: int,
        *,
        hidden: int | None = None,
        norm: Norm = "none",
        activation: Activation = "relu",
        residual_scale: float = 1.0,
    ) -> None:
        super().__init__()
        hidden = channels if hidden is None else hidden
        self.branch = nn.Sequential(
            _make_norm(norm, channels),
            make_activation(activation),
            nn.Conv2d(channels, hidden, 3, padding=1),
            _make_norm(norm, hidden),
            make_activation(activation),
            nn.Conv2d(hidden, channels, 1),
        )
        if residual_scale != 1.0:
            last = self.branch[-1]
            with torch.no_grad():
                last.weight.mul_(residual_scale)
                last.bias.mul_(residual_scale)

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, H, W) → (B, C, H, W)."""
        return x + self.branch(x)


@dataclass(frozen=True)
class Trunk:
    """The residual trunk shared by :class:`ConvEncoder` and :class:`ConvDecoder`: ``res_blocks``
    :class:`ResBlock` of ``hidden`` channels (``norm``, ``activation``, ``residual_scale``), then
    a normalisation and an activation."""

    hidden: int
    res_blocks: int
    norm: Norm = "none"
    activation: Activation = "relu"
    residual_scale: float = 1.0

    def layers(self) -> list[nn.Module]:
        blocks: list[nn.Module] = [
            ResBlock(
                self.hidden,
                norm=self.norm,
                activation=self.activation,
                residual_scale=self.residual_scale,
            )
            for _ in range(self.res_blocks)
        ]
        return [*blocks, _make_norm(self.norm, self.hidden), make_activation(self.activation)]


class ConvEncoder(nn.Module):
    """``downsample`` stride-2 convolutions, the :class:`Trunk` and a 1×1 projection.

    (B, in_channels, H, W) → (B, out_channels, H / 2^downsample, W / 2^downsample).

    Arguments:
        in_channels: input channels.
        out_channels: output channels (the code dimension, or features for a next level).
        trunk: the residual trunk; the first of several stride-2 convolutions outputs
            ``trunk.hidden // 2`` channels (rosinality).
        downsample: number of stride-2 convolutions (≥ 0).
    """

    def __init__(self, in_channels: int, out_channels: int, trunk: Trunk, *, downsample: int):
        super().__init__()
        hidden, layers, c = trunk.hidden, [], in_channels
        for i in range(downsample):
            c_out = hidden if i == downsample - 1 else max(hidden // 2, 1)
            layers += [
                nn.Conv2d(c, c_out, 4, stride=2, padding=1),
                make_activation(trunk.activation),
            ]
            c = c_out
        layers += [nn.Conv2d(c, hidden, 3, padding=1), *trunk.layers()]
        layers.append(nn.Conv2d(hidden, out_channels, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        """(B, C_in, H, W) → (B, C_out, H / 2^downsample, W / 2^downsample)."""
        return self.net(x)


class ConvDecoder(nn.Module):
    """The transpose of :class:`ConvEncoder`: 3×3 convolution, the :class:`Trunk`, ``upsample``
    stride-2 transposed convolutions.

    (B, in_channels, h, w) → (B, out_channels, h·2^upsample, w·2^upsample).

    Arguments:
        in_channels: input channels (the code dimension, or a concatenation of levels).
        out_channels: output channels.
        trunk: the residual trunk; the first of several transposed convolutions outputs
            ``trunk.hidden // 2`` channels.
        upsample: number of stride-2 transposed convolutions (≥ 0; with 0 a final 1×1
            convolution maps to ``out_channels``).
    """

    def __init__(self, in_channels: int, out_channels: int, trunk: Trunk, *, upsample: int):
        super().__init__()
        hidden = trunk.hidden
        layers = [nn.Conv2d(in_channels, hidden, 3, padding=1), *trunk.layers()]
        c = hidden
        for i in range(upsample):
            last = i == upsample - 1
            c_out = out_channels if last else max(hidden // 2, 1)
            layers.append(nn.ConvTranspose2d(c, c_out, 4, stride=2, padding=1))
            if not last:
                layers.append(make_activation(trunk.activation))
            c = c_out
        if upsample == 0:
            layers.append(nn.Conv2d(hidden, out_channels, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        """(B, C_in, h, w) → (B, C_out, h·2^upsample, w·2^upsample)."""
        return self.net(x)


def output_activation(x: Tensor, name: str) -> Tensor:
    """Apply the output activation ``"none"``, ``"tanh"`` or ``"sigmoid"`` to decoder outputs."""
    if name == "tanh":
        return torch.tanh(x)
    if name == "sigmoid":
        return torch.sigmoid(x)
    return x


def reconstruction_loss(x_hat: Tensor, x: Tensor, reduction: str) -> Tensor:
    """Squared error: ``"mean"`` over all elements, or ``"sum_per_sample"`` (summed over C, H, W,
    averaged over B; Su 2023)."""
    if reduction == "mean":
        return F.mse_loss(x_hat, x)
    return (x_hat - x).pow(2).flatten(1).sum(1).mean()


def check_images(x: Tensor, in_channels: int, factor: int, cls: str) -> None:
    """Raise ValueError naming ``x`` unless it is (B, in_channels, H, W) with H, W multiples of
    ``factor``."""
    if not isinstance(x, Tensor) or x.dim() != 4:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"{cls}: x must be (B, C, H, W), got shape {shape}")
    if x.shape[1] != in_channels:
        raise ValueError(
            f"{cls}: x has {x.shape[1]} channels (shape {tuple(x.shape)}), expected "
            f"in_channels={in_channels}"
        )
    if x.shape[2] % factor or x.shape[3] % factor:
        raise ValueError(
            f"{cls}: x's height and width must be multiples of {factor}, got shape {tuple(x.shape)}"
        )


def check_indices(indices: Tensor, num_codes: int, name: str, stages: int | None = None) -> None:
    """Raise ValueError naming ``name`` unless ``indices`` is an integer (B, h, w) grid in [0, K)
    (with ``stages`` = Q: a (B, h, w, Q) grid)."""
    ndim, form = (3, "(B, h, w)") if stages is None else (4, f"(B, h, w, {stages})")
    if (
        not isinstance(indices, Tensor)
        or indices.dim() != ndim
        or (stages is not None and indices.shape[-1] != stages)
    ):
        shape = tuple(indices.shape) if isinstance(indices, Tensor) else type(indices).__name__
        raise ValueError(f"{name} must be a {form} integer tensor, got shape {shape}")
    if indices.dtype.is_floating_point or indices.dtype == torch.bool:
        raise ValueError(f"{name} must be an integer tensor, got dtype {indices.dtype}")
    if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= num_codes):
        raise ValueError(
            f"{name} must lie in [0, {num_codes}), got range "
            f"[{int(indices.min())}, {int(indices.max())}]"
        )
