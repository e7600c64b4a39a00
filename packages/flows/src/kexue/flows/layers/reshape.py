"""Volume-preserving reshapes and the split/merge helpers couplings use (spec §2.1).

- :class:`ParitySplit` / :class:`Interleave` (even indices first, and back), :class:`Squeeze` /
  :class:`Unsqueeze` (2×2 space-to-channel), :class:`Reshape` / :class:`Flatten`: all logdet 0,
  exact round trips.
- Functional helpers for couplings: :func:`parity_split`, :func:`parity_merge`,
  :func:`channel_split`, :func:`channel_merge`.

References:
    - Dinh et al., NICE arXiv:1410.8516 (parity split); https://kexue.fm/archives/5776
    - Dinh et al., RealNVP arXiv:1605.08803 (squeeze); Kingma & Dhariwal, Glow
      arXiv:1807.03039; https://kexue.fm/archives/5807
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor

from kexue.flows.base import FlowLayer, zero_logdet

__all__ = [
    "Flatten",
    "Interleave",
    "ParitySplit",
    "Reshape",
    "Squeeze",
    "Unsqueeze",
    "channel_merge",
    "channel_split",
    "parity_merge",
    "parity_split",
]


def _check_dim_size(x: Tensor, dim: int, size: int | None, name: str, *, even: bool) -> None:
    if x.dim() <= dim:
        raise ValueError(f"{name} must have more than {dim} dimensions, got shape {tuple(x.shape)}")
    if size is not None and x.shape[dim] != size:
        raise ValueError(
            f"{name} must have size {size} along dim {dim}, got shape {tuple(x.shape)}"
        )
    if even and x.shape[dim] % 2:
        raise ValueError(
            f"{name} needs an even size along dim {dim} (odd channels/features), got shape "
            f"{tuple(x.shape)}"
        )


def parity_split(x: Tensor, *, dim: int = 1) -> tuple[Tensor, Tensor]:
    """Split ``x`` into its even and odd indices along ``dim`` (NICE's partition).

    Arguments:
        x: tensor with an even size along ``dim``.
        dim: the split dimension; default 1 (features / channels).

    Returns:
        ``(x[..., 0::2, ...], x[..., 1::2, ...])``.
    """
    _check_dim_size(x, dim, None, "x", even=True)
    idx_even = torch.arange(0, x.shape[dim], 2, device=x.device)
    return x.index_select(dim, idx_even), x.index_select(dim, idx_even + 1)


def parity_merge(x_even: Tensor, x_odd: Tensor, *, dim: int = 1) -> Tensor:
    """Re-interleave even and odd parts (inverse of :func:`parity_split`).

    Arguments:
        x_even: values for the even indices.
        x_odd: values for the odd indices; same shape as ``x_even``.
        dim: the interleaved dimension; default 1.

    Returns:
        Tensor with twice the size along ``dim``.
    """
    if x_even.shape != x_odd.shape:
        raise ValueError(
            f"x_even and x_odd must have the same shape, got {tuple(x_even.shape)} and "
            f"{tuple(x_odd.shape)}"
        )
    stacked = torch.stack([x_even, x_odd], dim=dim + 1)
    shape = list(x_even.shape)
    shape[dim] *= 2
    return stacked.reshape(shape)


def channel_split(x: Tensor, *, dim: int = 1) -> tuple[Tensor, Tensor]:
    """Split ``x`` into its first and second halves along ``dim`` (RealNVP/Glow channel mask).

    Arguments:
        x: tensor with an even size along ``dim``.
        dim: default 1.

    Returns:
        ``(first half, second half)``.
    """
    _check_dim_size(x, dim, None, "x", even=True)
    a, b = x.chunk(2, dim=dim)
    return a, b


def channel_merge(x_a: Tensor, x_b: Tensor, *, dim: int = 1) -> Tensor:
    """Concatenate two halves along ``dim`` (inverse of :func:`channel_split`)."""
    if x_a.shape != x_b.shape:
        raise ValueError(
            f"x_a and x_b must have the same shape, got {tuple(x_a.shape)} and {tuple(x_b.shape)}"
        )
    return torch.cat([x_a, x_b], dim=dim)


class ParitySplit(FlowLayer):
    """Reorder ``dim`` as [even indices | odd indices] (NICE's partition as a layer); logdet 0.

    After it, a channel/feature half split sees x_I1 = x[0::2] and x_I2 = x[1::2]; follow the
    coupling with :class:`Interleave` to restore the order (Su's NICE, bojone/flow ``nice.py``).

    Arguments:
        dim: the reordered dimension; default 1. Its size must be even.

    References:
        Dinh et al., NICE arXiv:1410.8516 §5.1; https://kexue.fm/archives/5776
    """

    def __init__(self, *, dim: int = 1) -> None:
        super().__init__()
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        self.dim = dim

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``cat(x[0::2], x[1::2])`` along ``dim``."""
        even, odd = parity_split(x, dim=self.dim)
        return torch.cat([even, odd], dim=self.dim), zero_logdet(x)

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Re-interleave the two halves."""
        a, b = channel_split(y, dim=self.dim)
        return parity_merge(a, b, dim=self.dim), zero_logdet(y)


class Interleave(ParitySplit):
    """Inverse of :class:`ParitySplit`: interleave [first half | second half] into even/odd.

    Arguments:
        dim: default 1; size must be even.
    """

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Interleave the halves of ``x`` along ``dim``."""
        return super().inverse(x, context)

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Move even indices first, odd second."""
        return super().forward(y, context)


class Squeeze(FlowLayer):
    """Space-to-channel: (B, C, H, W) → (B, 4C, H/2, W/2), each 2×2 block into channels; logdet 0.

    Arguments:
        order: channel layout of the output. ``"default"`` (openai/glow and rosinality):
            channel index ``c·4 + 2i + j`` for pixel offset (i, j) of input channel c.
            ``"su"`` (bojone/flow ``flow_layers.py``, channels-last permutation (0,1,3,2,4,5)):
            index ``(2i + j)·C + c``. Only a convention; both are exact.

    References:
        Dinh et al., RealNVP arXiv:1605.08803 §3.6; Kingma & Dhariwal, Glow arXiv:1807.03039;
        https://kexue.fm/archives/5807
    """

    def __init__(self, *, order: Literal["default", "su"] = "default") -> None:
        super().__init__()
        if order not in ("default", "su"):
            raise ValueError(f"order must be 'default' or 'su', got {order!r}")
        self.order = order

    def _squeeze(self, x: Tensor, name: str) -> Tensor:
        if x.dim() != 4:
            raise ValueError(f"{name} must have shape (B, C, H, W), got {tuple(x.shape)}")
        b, c, h, w = x.shape
        if h % 2 or w % 2:
            raise ValueError(f"{name} needs even H and W to squeeze, got shape {tuple(x.shape)}")
        v = x.reshape(b, c, h // 2, 2, w // 2, 2)
        perm = (0, 1, 3, 5, 2, 4) if self.order == "default" else (0, 3, 5, 1, 2, 4)
        return v.permute(*perm).reshape(b, 4 * c, h // 2, w // 2)

    def _unsqueeze(self, y: Tensor, name: str) -> Tensor:
        if y.dim() != 4:
            raise ValueError(f"{name} must have shape (B, C, H, W), got {tuple(y.shape)}")
        b, c4, h, w = y.shape
        if c4 % 4:
            raise ValueError(
                f"{name} needs channels divisible by 4 to unsqueeze, got shape {tuple(y.shape)}"
            )
        c = c4 // 4
        if self.order == "default":
            v = y.reshape(b, c, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3)
        else:
            v = y.reshape(b, 2, 2, c, h, w).permute(0, 3, 4, 1, 5, 2)
        return v.reshape(b, c, 2 * h, 2 * w)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Squeeze ``x``: (B, C, H, W) → (B, 4C, H/2, W/2)."""
        return self._squeeze(x, "x"), zero_logdet(x)

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Unsqueeze ``y``: (B, 4C, H, W) → (B, C, 2H, 2W)."""
        return self._unsqueeze(y, "y"), zero_logdet(y)

    def extra_repr(self) -> str:
        return f"order={self.order!r}"


class Unsqueeze(Squeeze):
    """Channel-to-space, the inverse of :class:`Squeeze`: (B, 4C, H, W) → (B, C, 2H, 2W).

    Arguments:
        order: ``"default"`` or ``"su"``, as in :class:`Squeeze`.
    """

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Unsqueeze ``x``."""
        return self._unsqueeze(x, "x"), zero_logdet(x)

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Squeeze ``y``."""
        return self._squeeze(y, "y"), zero_logdet(y)


class Reshape(FlowLayer):
    """Reshape the event: (B, *in_shape) → (B, *out_shape); logdet 0.

    Arguments:
        in_shape: event shape of the input.
        out_shape: event shape of the output (same number of elements).
    """

    def __init__(self, in_shape: Sequence[int], out_shape: Sequence[int]) -> None:
        super().__init__()
        self.in_shape = tuple(int(s) for s in in_shape)
        self.out_shape = tuple(int(s) for s in out_shape)
        if math.prod(self.in_shape) != math.prod(self.out_shape):
            raise ValueError(
                f"in_shape {self.in_shape} and out_shape {self.out_shape} must have the same "
                "number of elements"
            )

    @staticmethod
    def _reshape(x: Tensor, src: tuple[int, ...], dst: tuple[int, ...], name: str) -> Tensor:
        if tuple(x.shape[1:]) != src:
            raise ValueError(f"{name} must have shape (B, *{src}), got {tuple(x.shape)}")
        return x.reshape(x.shape[0], *dst)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """(B, *in_shape) → (B, *out_shape)."""
        return self._reshape(x, self.in_shape, self.out_shape, "x"), zero_logdet(x)

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """(B, *out_shape) → (B, *in_shape)."""
        return self._reshape(y, self.out_shape, self.in_shape, "y"), zero_logdet(y)

    def extra_repr(self) -> str:
        return f"in_shape={self.in_shape}, out_shape={self.out_shape}"


class Flatten(Reshape):
    """Flatten the event: (B, *shape) → (B, prod(shape)); logdet 0.

    Arguments:
        shape: event shape of the input, e.g. (C, H, W).
    """

    def __init__(self, shape: Sequence[int]) -> None:
        super().__init__(shape, (math.prod(int(s) for s in shape),))
