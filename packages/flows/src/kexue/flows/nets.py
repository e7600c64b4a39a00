"""Small conditioner networks for couplings and priors (not invertible themselves).

- :class:`Conv2dZeros`: Glow's zero-initialised conv whose output is scaled by
  ``exp(logscale_factor·logs)``, so couplings and learned priors start at the identity / N(0, 1).
- :class:`MLP`: NICE's ReLU multilayer perceptron.
- :class:`ConvNet`: Glow's coupling net conv3×3 → ReLU → conv1×1 → ReLU → Conv2dZeros.
- :class:`ResNet`: a small (weight-normalised) residual conv net, RealNVP style.

Every net takes ``forward(x, context=None)``; with ``context_features`` / ``context_channels``
set, the context is concatenated to ``x`` along dim 1 (for the conv nets it has the same
spatial size as ``x``, or is a vector (B, C) broadcast over the positions).

References:
    - Kingma & Dhariwal, Glow, arXiv:1807.03039 (openai/glow ``tfops.py``: conv2d_zeros,
      add_edge_padding); https://kexue.fm/archives/5807
    - Dinh et al., NICE arXiv:1410.8516; RealNVP arXiv:1605.08803.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kexue.flows.base import pack_legacy_keys

__all__ = ["MLP", "Conv2dZeros", "ConvNet", "LinearZeros", "ResNet", "make_activation"]

Padding = Literal["zeros", "edge_channel", "pad_one"]
_PADDINGS = ("zeros", "edge_channel", "pad_one")
_ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "elu": nn.ELU,
    "tanh": nn.Tanh,
    "silu": nn.SiLU,
    "gelu": nn.GELU,
    "leaky_relu": nn.LeakyReLU,
    "softplus": nn.Softplus,
}


def make_activation(
    activation: str | Callable[[], nn.Module],
    table: dict[str, Callable[[], nn.Module]] | None = None,
) -> nn.Module:
    """Build an activation module from a name or a zero-argument factory.

    Arguments:
        activation: one of ``"relu"``, ``"elu"``, ``"tanh"``, ``"silu"``, ``"gelu"``,
            ``"leaky_relu"``, ``"softplus"`` (or of ``table``), or a callable returning an
            ``nn.Module``.
        table: the names allowed (default: the list above; the residual blocks pass their
            1-Lipschitz ones).

    Returns:
        A fresh ``nn.Module``.
    """
    names = _ACTIVATIONS if table is None else table
    if isinstance(activation, str):
        if activation not in names:
            raise ValueError(
                f"activation must be one of {sorted(names)} or a callable, got {activation!r}"
            )
        return names[activation]()
    if not callable(activation):
        raise ValueError(f"activation must be a name or a callable, got {activation!r}")
    module = activation()
    if not isinstance(module, nn.Module):
        raise ValueError("activation must return an nn.Module when called")
    return module


def _concat_context(x: Tensor, context: Tensor | None, extra: int, *, spatial: bool) -> Tensor:
    """Validate ``context`` against ``x`` and concatenate it along dim 1."""
    if extra == 0:
        if context is not None:
            raise ValueError(
                "context was given but this net was built with no context features/channels "
                f"(context shape {tuple(context.shape)})"
            )
        return x
    if context is None:
        raise ValueError(f"context is required: this net expects {extra} context features/channels")
    if spatial and context.dim() == 2 and tuple(context.shape) == (x.shape[0], extra):
        context = context[:, :, None, None].expand(-1, -1, *x.shape[2:])  # a vector, broadcast
    expected = (x.shape[0], extra, *x.shape[2:]) if spatial else (x.shape[0], extra)
    if tuple(context.shape) != expected:
        raise ValueError(
            f"context must have shape {expected} for x of shape {tuple(x.shape)}, got "
            f"{tuple(context.shape)}"
        )
    return torch.cat([x, context.to(x.dtype)], dim=1)


def _pad(x: Tensor, pad: int, padding: Padding) -> Tensor:
    """Pad ``x`` by ``pad`` on each spatial side: zeros, zeros + an edge-marker channel, or ones."""
    if pad == 0:
        if padding == "edge_channel":
            return torch.cat([x, torch.zeros_like(x[:, :1])], dim=1)
        return x
    if padding == "zeros":
        return F.pad(x, (pad, pad, pad, pad))
    if padding == "pad_one":
        return F.pad(x, (pad, pad, pad, pad), value=1.0)
    # openai/glow add_edge_padding: zero-pad, and append a channel that is 1 on the border.
    marker = F.pad(torch.zeros_like(x[:, :1]), (pad, pad, pad, pad), value=1.0)
    return torch.cat([F.pad(x, (pad, pad, pad, pad)), marker], dim=1)


def _check_image(x: Tensor, channels: int) -> None:
    if x.dim() != 4 or x.shape[1] != channels:
        raise ValueError(f"x must have shape (B, {channels}, H, W), got {tuple(x.shape)}")


class _ImageConditioner(nn.Module):
    """Base of the conv conditioners: check x, concatenate the context, run ``self.net``."""

    in_channels: int
    context_channels: int
    net: nn.Module

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """``x``: (B, in_channels, H, W); ``context``: (B, context_channels, H, W) or a vector
        (B, context_channels) broadcast over the positions, if configured."""
        _check_image(x, self.in_channels)
        return self.net(_concat_context(x, context, self.context_channels, spatial=True))


class _PaddedConv2d(nn.Module):
    """A 'same' conv with a selectable padding convention (zeros, edge_channel, pad_one)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        padding: Padding,
        *,
        bias: bool = True,
    ) -> None:
        super().__init__()
        if padding not in _PADDINGS:
            raise ValueError(f"padding must be one of {_PADDINGS}, got {padding!r}")
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        self.padding = padding
        self.pad = kernel_size // 2
        extra = 1 if padding == "edge_channel" else 0
        # Zero padding is the conv's own (no padded copy of the input: ~2x faster on CPU at
        # Glow sizes); the other conventions pad explicitly.
        own = self.pad if padding == "zeros" else 0
        self.conv = nn.Conv2d(
            in_channels + extra, out_channels, kernel_size, padding=own, bias=bias
        )

    def forward(self, x: Tensor, bias: Tensor | None = None) -> Tensor:
        """The conv of ``x``; ``bias`` (C_out,) is used when the conv was built without one."""
        if self.padding != "zeros":
            x = _pad(x, self.pad, self.padding)
        if bias is None:
            return self.conv(x)
        return F.conv2d(x, self.conv.weight, bias, padding=self.conv.padding)


class Conv2dZeros(nn.Module):
    """Zero-initialised 'same' convolution with a learned output log-scale (Glow).

    ``out = conv(x) · exp(logscale_factor · logs)`` with the conv weight, bias and ``logs``
    (one per output channel) all zero at init, so the output is exactly 0 until trained.
    The bias and ``logs`` are stored as one (2, C_out) parameter ``bias_logs`` (one tensor fewer
    for the optimiser; ``bias`` and ``logs`` are views of it, and checkpoints of kexue-flows
    ≤ 0.2.0 with separate ``conv.conv.bias`` / ``logs`` load unchanged).

    Arguments:
        in_channels: input channels C_in.
        out_channels: output channels C_out.
        kernel_size: odd kernel size; default 3 [Glow ``conv2d_zeros``].
        logscale_factor: multiplier of ``logs`` (a learning-rate boost); default 3.0 [openai/glow].
        padding: ``"zeros"`` (default), ``"edge_channel"`` (openai's extra border-marker
            channel) or ``"pad_one"`` (rosinality pads with 1).

    Returns:
        (from ``forward``) ``(B, C_out, H, W)``.

    References:
        Kingma & Dhariwal, Glow, arXiv:1807.03039 (openai/glow ``tfops.conv2d_zeros``).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        *,
        logscale_factor: float = 3.0,
        padding: Padding = "zeros",
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.logscale_factor = float(logscale_factor)
        self.conv = _PaddedConv2d(in_channels, out_channels, kernel_size, padding, bias=False)
        nn.init.zeros_(self.conv.conv.weight)
        self.bias_logs = nn.Parameter(torch.zeros(2, out_channels))

    @property
    def bias(self) -> Tensor:
        """The conv bias, a (C_out,) view of ``bias_logs[0]``."""
        return self.bias_logs[0]

    @property
    def logs(self) -> Tensor:
        """The stored output log-scale, a (C_out, 1, 1) view of ``bias_logs[1]``."""
        return self.bias_logs[1].view(-1, 1, 1)

    def output_scale(self) -> Tensor:
        """``exp(logscale_factor · logs)``, shape (C_out,)."""
        return torch.exp(self.bias_logs[1] * self.logscale_factor)

    def _load_from_state_dict(
        self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any
    ) -> None:
        pack_legacy_keys(
            state_dict, prefix, "bias_logs", ("conv.conv.bias", "logs"),
            lambda b, logs: torch.stack([b, logs.reshape(-1)]),
        )  # fmt: skip
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x: Tensor) -> Tensor:
        """``conv(x) · exp(logscale_factor · logs)``; ``x``: (B, C_in, H, W)."""
        _check_image(x, self.in_channels)
        b, logs = self.bias_logs.unbind(0)
        scale = torch.exp(logs * self.logscale_factor)
        return self.conv(x, b) * scale.view(-1, 1, 1)


class LinearZeros(nn.Module):
    """Zero-initialised linear layer with a learned output log-scale (vector Conv2dZeros).

    ``out = (W x + b) · exp(logscale_factor · logs)``, all parameters zero at init.

    Arguments:
        in_features: input features.
        out_features: output features.
        logscale_factor: multiplier of ``logs``; default 3.0 [openai/glow ``linear_zeros``].

    References:
        Kingma & Dhariwal, Glow, arXiv:1807.03039.
    """

    def __init__(self, in_features: int, out_features: int, *, logscale_factor: float = 3.0):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)
        self.logscale_factor = float(logscale_factor)
        self.logs = nn.Parameter(torch.zeros(out_features))

    def forward(self, x: Tensor) -> Tensor:
        """``(W x + b) · exp(logscale_factor · logs)``; ``x``: (B, in_features)."""
        return self.linear(x) * torch.exp(self.logs * self.logscale_factor)


class MLP(nn.Module):
    """ReLU multilayer perceptron: ``depth`` hidden layers of width ``hidden``, linear output.

    Arguments:
        in_features: input features (without context).
        out_features: output features.
        hidden: hidden width; default 1000 [NICE MNIST, arXiv:1410.8516].
        depth: number of hidden layers; default 5 [NICE MNIST].
        activation: hidden activation name or factory; default ``"relu"``.
        out_activation: optional activation after the output layer (Su's NICE ends with a ReLU,
            bojone/flow ``nice.py``); default None.
        zero_init: zero the last layer so the net outputs 0 at init; default False.
        context_features: features of a context vector concatenated to the input; default 0.

    Returns:
        (from ``forward``) ``(B, out_features)``.

    References:
        Dinh et al., NICE, arXiv:1410.8516; https://kexue.fm/archives/5776
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        hidden: int = 1000,
        depth: int = 5,
        activation: str | Callable[[], nn.Module] = "relu",
        out_activation: str | Callable[[], nn.Module] | None = None,
        zero_init: bool = False,
        context_features: int = 0,
    ) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        self.in_features = in_features
        self.context_features = context_features
        layers: list[nn.Module] = []
        width = in_features + context_features
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), make_activation(activation)]
            width = hidden
        last = nn.Linear(width, out_features)
        if zero_init:
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)
        layers.append(last)
        if out_activation is not None:
            layers.append(make_activation(out_activation))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """``x``: (B, in_features); ``context``: (B, context_features) when configured."""
        if x.dim() != 2 or x.shape[1] != self.in_features:
            raise ValueError(f"x must have shape (B, {self.in_features}), got {tuple(x.shape)}")
        return self.net(_concat_context(x, context, self.context_features, spatial=False))


class _NetActNorm(nn.Module):
    """Non-invertible ActNorm used *inside* a conditioner net (Glow): data-dependent init."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.logs = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.register_buffer("initialized", torch.tensor(False))

    def forward(self, x: Tensor) -> Tensor:
        if not bool(self.initialized) and self.training:
            with torch.no_grad():
                mean = x.mean(dim=(0, 2, 3), keepdim=True)
                std = (x - mean).pow(2).mean(dim=(0, 2, 3), keepdim=True).sqrt()
                self.bias.copy_(-mean)
                self.logs.copy_(-torch.log(std + 1e-6))
                self.initialized.fill_(True)
        return (x + self.bias) * torch.exp(self.logs)


class ConvNet(_ImageConditioner):
    """Glow's coupling network: conv3×3 → [ActNorm] → ReLU → conv1×1 → [ActNorm] → ReLU →
    Conv2dZeros3×3.

    The last layer is :class:`Conv2dZeros`, so the output is exactly 0 at init and an affine
    coupling starts at the identity up to its constant scale (σ(2) ≈ 0.881 for ``sigmoid2``).

    Arguments:
        in_channels: input channels (without context).
        out_channels: output channels (2× the transformed half for affine couplings).
        hidden: hidden width; default 512 [Glow CIFAR, openai/glow ``width``].
        kernel_size: kernel of the first and last convs; default 3 [Glow].
        actnorm: ActNorm (data-dependent init on the first training call, non-invertible use)
            after the hidden convs, as openai/glow; default False (plain norm-free net). Under
            DDP, run one forward before wrapping the model (or broadcast afterwards): the init
            is per process.
        padding: ``"zeros"`` (default), ``"edge_channel"`` (openai) or ``"pad_one"`` (rosinality)
            for the 3×3 convs.
        context_channels: channels of a spatial context concatenated to the input; default 0.

    Returns:
        (from ``forward``) ``(B, out_channels, H, W)``.

    References:
        Kingma & Dhariwal, Glow, arXiv:1807.03039 (openai/glow ``model.py`` ``f``).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        hidden: int = 512,
        kernel_size: int = 3,
        actnorm: bool = False,
        padding: Padding = "zeros",
        context_channels: int = 0,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.context_channels = context_channels
        c_in = in_channels + context_channels
        layers: list[nn.Module] = [_PaddedConv2d(c_in, hidden, kernel_size, padding)]
        if actnorm:
            layers.append(_NetActNorm(hidden))
        # in-place ReLUs: a conv's (or ActNorm's) backward does not need its output (same values,
        # two activation copies fewer per net)
        layers += [nn.ReLU(inplace=True), nn.Conv2d(hidden, hidden, 1)]
        if actnorm:
            layers.append(_NetActNorm(hidden))
        layers += [
            nn.ReLU(inplace=True),
            Conv2dZeros(hidden, out_channels, kernel_size, padding=padding),
        ]
        self.net = nn.Sequential(*layers)


class _ResBlock(nn.Module):
    def __init__(self, channels: int, kernel_size: int, weight_norm: bool) -> None:
        super().__init__()
        pad = kernel_size // 2
        conv1 = nn.Conv2d(channels, channels, kernel_size, padding=pad)
        conv2 = nn.Conv2d(channels, channels, kernel_size, padding=pad)
        if weight_norm:
            conv1 = nn.utils.parametrizations.weight_norm(conv1)
            conv2 = nn.utils.parametrizations.weight_norm(conv2)
        self.body = nn.Sequential(nn.ReLU(), conv1, nn.ReLU(), conv2)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class ResNet(_ImageConditioner):
    """Small residual conv net (RealNVP style): conv_in → ``blocks`` × residual block → ReLU →
    Conv2dZeros.

    Each residual block is ``x + conv(ReLU(conv(ReLU(x))))`` with weight normalisation by
    default (RealNVP uses weight-normalised ResNets). The output layer is zero-initialised.

    Arguments:
        in_channels: input channels (without context).
        out_channels: output channels.
        hidden: hidden width; default 64 [chrischute/real-nvp CIFAR ``mid_channels``].
        blocks: number of residual blocks; default 2 (chrischute uses 8 on CIFAR-10).
        kernel_size: odd kernel size; default 3.
        weight_norm: weight-normalise the block convs; default True [RealNVP §3.7].
        context_channels: channels of a spatial context concatenated to the input; default 0.

    Returns:
        (from ``forward``) ``(B, out_channels, H, W)``.

    References:
        Dinh et al., RealNVP, arXiv:1605.08803; https://kexue.fm/archives/5807
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        hidden: int = 64,
        blocks: int = 2,
        kernel_size: int = 3,
        weight_norm: bool = True,
        context_channels: int = 0,
    ) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        self.in_channels = in_channels
        self.context_channels = context_channels
        pad = kernel_size // 2
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels + context_channels, hidden, kernel_size, padding=pad)
        ]
        layers += [_ResBlock(hidden, kernel_size, weight_norm) for _ in range(blocks)]
        layers += [nn.ReLU(), Conv2dZeros(hidden, out_channels, kernel_size)]
        self.net = nn.Sequential(*layers)
