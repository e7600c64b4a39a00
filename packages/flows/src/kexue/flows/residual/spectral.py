"""Spectral normalisation by power iteration on the layer's linear operator (i-ResNet).

The residual branch ``g`` of an i-ResNet block must satisfy Lip(g) < 1. Each linear map ``W`` in
``g`` is rescaled so that its operator 2-norm estimate σ̂ (from power iteration) is at most
``coeff``: ``W̃ = W / max(1, σ̂ / coeff)`` — i.e. only rescaled when σ̂ > coeff, as in
jhjacobsen/invertible-resnet and rtqichen/residual-flows.

For :class:`SpectralNormConv2d` the power iteration runs on the *convolution operator* (a map
``R^{C·H·W} -> R^{C'·H'·W'}``, alternating ``conv2d`` and ``conv_transpose2d``), not on the
reshaped kernel, whose norm can be far from the operator's. The operator depends on the input
spatial size, which is taken from ``input_shape`` or from the first input seen.

The power-iteration vectors ``u`` and ``v`` are buffers, so they travel with ``state_dict``:
after loading, the effective weight (and hence the i-ResNet inverse) is exactly the one that was
saved (the failure mode of jhjacobsen/invertible-resnet#3). Power iteration advances only in
training mode (and never while :func:`frozen_spectral_norm` is active); in eval mode σ̂ is
recomputed from the stored ``u``, ``v`` and the current weight.

References:
    - Miyato et al., Spectral Normalization for GANs, arXiv:1802.05957.
    - Behrmann et al., Invertible Residual Networks, arXiv:1811.00995 (§3, conv operator norm).
    - https://kexue.fm/archives/6482
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["SpectralNormConv2d", "SpectralNormLinear", "frozen_spectral_norm"]

_INIT_ITERS = 50  # power-iteration steps run when u, v are (re)initialised


def _normalize(t: Tensor, eps: float = 1e-12) -> Tensor:
    return t / t.norm().clamp_min(eps)


def _check_coeff(coeff: float, n_power_iter: int) -> None:
    if not (isinstance(coeff, (int, float)) and coeff > 0 and math.isfinite(coeff)):
        raise ValueError(f"coeff must be a positive finite number, got {coeff!r}")
    if not isinstance(n_power_iter, int) or n_power_iter < 0:
        raise ValueError(f"n_power_iter must be a non-negative int, got {n_power_iter!r}")


class _SpectralNormBase(nn.Module):
    """Shared bookkeeping: coeff, iteration counts, freezing, σ̂ bookkeeping."""

    coeff: float
    n_power_iter: int
    _frozen: bool

    def spectral_norm_estimate(self) -> Tensor:
        """Current σ̂ = uᵀ W v (no power-iteration step; a detached scalar)."""
        with torch.no_grad():
            return self._sigma(self.weight.detach())

    def _sigma(self, weight: Tensor) -> Tensor:  # pragma: no cover - overridden
        raise NotImplementedError

    def normalized_weight(self) -> Tensor:
        """The weight actually applied: ``W / max(1, σ̂/coeff)`` (differentiable in ``W``).

        Returns:
            Tensor of the weight's shape.
        """
        sigma = self._sigma(self.weight)
        factor = torch.clamp(sigma / self.coeff, min=1.0)
        return self.weight / factor

    def extra_repr(self) -> str:
        return f"coeff={self.coeff}, n_power_iter={self.n_power_iter}"


class SpectralNormLinear(_SpectralNormBase):
    """Linear layer whose matrix is spectrally normalised to ‖W̃‖₂ ≲ ``coeff``.

    ``y = W̃ x + b`` with ``W̃ = W / max(1, σ̂/coeff)``, σ̂ = uᵀ W v after ``n_power_iter`` power
    iterations ``v ← Wᵀu/‖Wᵀu‖``, ``u ← W v/‖W v‖`` per training forward (u, v carried over
    between calls, as in Miyato et al.). Gradients flow through σ̂ with u, v held fixed.

    Arguments:
        in_features: input size D_in.
        out_features: output size D_out.
        bias: whether to add a bias (the bias does not affect the Lipschitz constant).
        coeff: target bound c on the operator norm (default 0.97, i-ResNet [code]).
        n_power_iter: power-iteration steps per training forward (default 5, i-ResNet [code]).
        generator: RNG for the initial u, v and the weight init.

    Returns:
        (from ``forward``) ``(B, out_features)``.

    References:
        Miyato et al., arXiv:1802.05957; Behrmann et al., arXiv:1811.00995.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        bias: bool = True,
        coeff: float = 0.97,
        n_power_iter: int = 5,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        _check_coeff(coeff, n_power_iter)
        if in_features < 1 or out_features < 1:
            raise ValueError(
                f"in_features and out_features must be >= 1, got {in_features}, {out_features}"
            )
        self.in_features, self.out_features = in_features, out_features
        self.coeff, self.n_power_iter, self._frozen = float(coeff), n_power_iter, False
        bound = 1.0 / math.sqrt(in_features)
        w = torch.rand(out_features, in_features, generator=generator) * 2 * bound - bound
        self.weight = nn.Parameter(w)
        if bias:
            self.bias: nn.Parameter | None = nn.Parameter(
                torch.rand(out_features, generator=generator) * 2 * bound - bound
            )
        else:
            self.register_parameter("bias", None)
        self.register_buffer("u", _normalize(torch.randn(out_features, generator=generator)))
        self.register_buffer("v", _normalize(torch.randn(in_features, generator=generator)))
        self.power_iteration_(_INIT_ITERS)

    @torch.no_grad()
    def power_iteration_(self, n_iter: int) -> None:
        """Run ``n_iter`` power-iteration steps in place on the buffers ``u``, ``v``."""
        w = self.weight.detach()
        u, v = self.u, self.v
        for _ in range(n_iter):
            v = _normalize(w.t() @ u)
            u = _normalize(w @ v)
        self.u.copy_(u)
        self.v.copy_(v)

    def _sigma(self, weight: Tensor) -> Tensor:
        u, v = self.u.clone().to(weight.dtype), self.v.clone().to(weight.dtype)
        return torch.dot(u, weight @ v)

    def forward(self, x: Tensor) -> Tensor:
        """Apply the normalised linear map to ``x`` of shape ``(B, in_features)``."""
        if x.shape[-1] != self.in_features:
            raise ValueError(
                f"x must have last dimension {self.in_features}, got shape {tuple(x.shape)}"
            )
        if self.training and not self._frozen and self.n_power_iter > 0:
            self.power_iteration_(self.n_power_iter)
        return F.linear(x, self.normalized_weight(), self.bias)


class SpectralNormConv2d(_SpectralNormBase):
    """2-D convolution normalised by the operator norm of the convolution itself.

    The power iteration acts on the linear operator ``A: x ↦ conv2d(x, W)`` for inputs of shape
    ``(C_in, H, W)``: ``v ← Aᵀu/‖Aᵀu‖`` (``conv_transpose2d``), ``u ← A v/‖A v‖``; σ̂ = ⟨u, A v⟩
    and ``W̃ = W / max(1, σ̂/coeff)``. ``u`` and ``v`` are buffers shaped like one output and one
    input sample; they are created from ``input_shape`` or lazily on the first forward, and a
    loaded ``state_dict`` resizes them to the saved shape. A new input spatial size re-initialises
    them (with ``50`` warm-up iterations).

    Arguments:
        in_channels: C_in.
        out_channels: C_out.
        kernel_size: square kernel size k (odd; padding ``k // 2`` keeps H, W by default).
        stride: convolution stride (default 1).
        padding: zero padding (default ``kernel_size // 2``).
        bias: whether to add a per-channel bias.
        coeff: target bound c on the operator norm (default 0.97, i-ResNet [code]).
        n_power_iter: power-iteration steps per training forward (default 5, i-ResNet [code]).
        input_shape: ``(C_in, H, W)`` of one input sample, if known in advance.
        generator: RNG for the weight init and the initial u, v.

    Returns:
        (from ``forward``) ``(B, C_out, H', W')``.

    References:
        Behrmann et al., arXiv:1811.00995 (§3: normalising the conv operator, not the kernel);
        Gouk et al., arXiv:1804.04368.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        *,
        stride: int = 1,
        padding: int | None = None,
        bias: bool = True,
        coeff: float = 0.97,
        n_power_iter: int = 5,
        input_shape: tuple[int, int, int] | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        _check_coeff(coeff, n_power_iter)
        if in_channels < 1 or out_channels < 1 or kernel_size < 1 or stride < 1:
            raise ValueError(
                "in_channels, out_channels, kernel_size and stride must be >= 1, got "
                f"{in_channels}, {out_channels}, {kernel_size}, {stride}"
            )
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride = kernel_size, stride
        self.padding = kernel_size // 2 if padding is None else padding
        self.coeff, self.n_power_iter, self._frozen = float(coeff), n_power_iter, False
        fan_in = in_channels * kernel_size * kernel_size
        bound = 1.0 / math.sqrt(fan_in)
        shape = (out_channels, in_channels, kernel_size, kernel_size)
        self.weight = nn.Parameter(torch.rand(shape, generator=generator) * 2 * bound - bound)
        if bias:
            self.bias: nn.Parameter | None = nn.Parameter(
                torch.rand(out_channels, generator=generator) * 2 * bound - bound
            )
        else:
            self.register_parameter("bias", None)
        self._generator = generator
        self.register_buffer("u", torch.empty(0))
        self.register_buffer("v", torch.empty(0))
        if input_shape is not None:
            self._init_vectors(tuple(input_shape))

    def _conv(self, x: Tensor, weight: Tensor) -> Tensor:
        return F.conv2d(x, weight, None, self.stride, self.padding)

    def _conv_t(self, y: Tensor, weight: Tensor, in_hw: tuple[int, int]) -> Tensor:
        out_pad = []
        for size_in, size_out in zip(in_hw, y.shape[-2:], strict=True):
            natural = (size_out - 1) * self.stride - 2 * self.padding + self.kernel_size
            out_pad.append(size_in - natural)
        return F.conv_transpose2d(
            y, weight, None, self.stride, self.padding, output_padding=tuple(out_pad)
        )

    @torch.no_grad()
    def _init_vectors(self, input_shape: tuple[int, ...]) -> None:
        if len(input_shape) != 3 or input_shape[0] != self.in_channels:
            raise ValueError(
                f"input_shape must be (C_in={self.in_channels}, H, W), got {input_shape}"
            )
        w = self.weight.detach()
        v = torch.randn((1, *input_shape), generator=self._generator).to(w)
        u = self._conv(v, w)
        self.v = _normalize(v)
        self.u = _normalize(torch.randn(u.shape, generator=self._generator).to(w))
        self.power_iteration_(_INIT_ITERS)

    @property
    def input_shape(self) -> tuple[int, ...] | None:
        """Per-sample input shape ``(C_in, H, W)`` the operator norm refers to (None if unset)."""
        return tuple(self.v.shape[1:]) if self.v.numel() else None

    @torch.no_grad()
    def power_iteration_(self, n_iter: int) -> None:
        """Run ``n_iter`` power-iteration steps on the conv operator, updating ``u``, ``v``."""
        if not self.v.numel():
            raise ValueError("input_shape is unknown: pass input_shape= or run a forward first")
        w = self.weight.detach()
        u, v = self.u, self.v
        hw = (v.shape[-2], v.shape[-1])
        for _ in range(n_iter):
            v = _normalize(self._conv_t(u, w, hw))
            u = _normalize(self._conv(v, w))
        self.u.copy_(u)
        self.v.copy_(v)

    def _sigma(self, weight: Tensor) -> Tensor:
        u, v = self.u.clone().to(weight.dtype), self.v.clone().to(weight.dtype)
        return (u * self._conv(v, weight)).sum()

    def _load_from_state_dict(
        self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any
    ) -> None:
        for name in ("u", "v"):
            key = prefix + name
            if key in state_dict and state_dict[key].shape != getattr(self, name).shape:
                setattr(self, name, torch.empty_like(state_dict[key]))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x: Tensor) -> Tensor:
        """Apply the normalised convolution to ``x`` of shape ``(B, C_in, H, W)``."""
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"x must have shape (B, {self.in_channels}, H, W), got {tuple(x.shape)}"
            )
        if self.input_shape != tuple(x.shape[1:]):
            self._init_vectors(tuple(x.shape[1:]))
        if self.training and not self._frozen and self.n_power_iter > 0:
            self.power_iteration_(self.n_power_iter)
        return F.conv2d(x, self.normalized_weight(), self.bias, self.stride, self.padding)


@contextlib.contextmanager
def frozen_spectral_norm(module: nn.Module) -> Iterator[None]:
    """Context manager: no power-iteration updates in any spectral-norm layer of ``module``.

    Used by the i-ResNet inverse so that every fixed-point step applies the same ``g``.

    Arguments:
        module: any module; its :class:`SpectralNormLinear` / :class:`SpectralNormConv2d`
            submodules are frozen for the duration of the block.
    """
    layers = [m for m in module.modules() if isinstance(m, _SpectralNormBase)]
    previous = [m._frozen for m in layers]
    for m in layers:
        m._frozen = True
    try:
        yield
    finally:
        for m, p in zip(layers, previous, strict=True):
            m._frozen = p
