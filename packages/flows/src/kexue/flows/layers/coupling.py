"""Coupling layers (NICE additive, RealNVP/Glow affine) and their masks.

A coupling splits x into a kept part x_a and a transformed part x_b, computes h = net(x_a[, context])
and applies the elementwise map of :mod:`kexue.flows.functional` to x_b (through the fused op, so a
CUDA input runs the Triton kernel). Splits:

- ``"channel"``: halves of dim 1 (Glow's z1/z2; RealNVP's channel-wise mask). parity 0 keeps the
  first half. net: (B, C/2, *) → (B, C/2, *) additive or (B, C, *) affine.
- ``"parity"``: even/odd indices of dim 1 (NICE / Su's interleaved split). parity 0 keeps the even
  indices. Odd sizes allowed (the kept part is the larger).
- ``"checkerboard"`` (images): RealNVP's b_ij = (i + j + parity) mod 2 = 1 marks kept pixels; the
  net sees b⊙x (B, C, H, W) and returns full-size parameters, (B, C, H, W) additive or
  (B, 2C, H, W) affine, of which the transformed pixels are used.
- ``"mask"``: any fixed binary ``mask`` (1 = kept) over ``x.shape[1:]`` (or (H, W) for images),
  with the checkerboard's net contract.

References: NICE arXiv:1410.8516 §3; RealNVP arXiv:1605.08803 §3.4; Glow arXiv:1807.03039 §3.3;
https://kexue.fm/archives/5776, https://kexue.fm/archives/5807.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from kexue.flows.base import FlowLayer
from kexue.flows.functional import fused_coupling, split_h
from kexue.flows.layers.scale_maps import SCALE_MAPS

__all__ = ["AdditiveCoupling", "AffineCoupling", "channel_mask", "checkerboard_mask"]

_SPLITS = ("channel", "parity", "checkerboard", "mask")


def checkerboard_mask(
    h: int,
    w: int,
    *,
    parity: int = 0,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    """RealNVP checkerboard mask b_ij = (i + j + parity) mod 2 (1 = kept, 0 = transformed).

    Arguments:
        h: height (≥ 1).
        w: width (≥ 1).
        parity: 0 or 1; parity 1 gives 1 − b (alternate couplings use alternate parities).
        dtype: output dtype (default float32).
        device: output device.

    Returns:
        (h, w) tensor of zeros and ones.

    References:
        RealNVP, Dinh et al. 2016, arXiv:1605.08803 §3.4; chrischute/real-nvp.
    """
    if h < 1 or w < 1:
        raise ValueError(f"h and w must be positive, got h={h}, w={w}")
    if parity not in (0, 1):
        raise ValueError(f"parity must be 0 or 1, got {parity}")
    i = torch.arange(h, device=device).view(-1, 1)
    j = torch.arange(w, device=device).view(1, -1)
    return ((i + j + parity) % 2).to(dtype)


def channel_mask(
    c: int,
    *,
    parity: int = 0,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    """Channel-wise mask: 1 on the kept half (the first half for parity 0, the second for 1).

    Arguments:
        c: number of channels (even, ≥ 2).
        parity: 0 or 1.
        dtype: output dtype (default float32).
        device: output device.

    Returns:
        (c,) tensor of zeros and ones.

    References:
        RealNVP arXiv:1605.08803 §3.4 (channel-wise masking); Glow's z1/z2 split.
    """
    if c < 2 or c % 2:
        raise ValueError(f"c must be even and >= 2, got {c}")
    if parity not in (0, 1):
        raise ValueError(f"parity must be 0 or 1, got {parity}")
    m = torch.zeros(c, dtype=dtype, device=device)
    if parity == 0:
        m[: c // 2] = 1
    else:
        m[c // 2 :] = 1
    return m


class _Coupling(FlowLayer):
    """Shared split / net call / merge logic of the coupling layers."""

    _affine = False

    def __init__(
        self,
        net: nn.Module,
        *,
        split: str,
        parity: int,
        mask: Tensor | None,
        backend: str,
        deterministic: bool,
    ) -> None:
        super().__init__()
        if split not in _SPLITS:
            raise ValueError(f"split must be one of {_SPLITS}, got {split!r}")
        if parity not in (0, 1):
            raise ValueError(f"parity must be 0 or 1, got {parity}")
        if backend not in ("auto", "triton", "torch"):
            raise ValueError(f"backend must be 'auto', 'triton' or 'torch', got {backend!r}")
        if (split == "mask") != (mask is not None):
            raise ValueError("mask must be given exactly when split='mask'")
        self.net = net
        self.split = split
        self.parity = parity
        self.backend = backend
        self.deterministic = deterministic
        if mask is not None:
            if mask.dim() < 1 or not torch.all((mask == 0) | (mask == 1)):
                raise ValueError(f"mask must be a 0/1 tensor, got shape {tuple(mask.shape)}")
            self.register_buffer("mask", mask.detach().to(torch.bool).clone())
        else:
            self.register_buffer("mask", None)
        self._index_cache: dict[Any, Tensor] = {}

    # -- splitting -----------------------------------------------------------------------------
    def _check(self, x: Tensor, context: Tensor | None, name: str) -> None:
        if x.dim() < 2:
            raise ValueError(f"{name} must be (B, D) or (B, C, H, W), got shape {tuple(x.shape)}")
        if self.split == "channel" and x.shape[1] % 2:
            raise ValueError(
                f"{name} needs an even size of dim 1 for split='channel', got shape "
                f"{tuple(x.shape)}"
            )
        if self.split == "parity" and x.shape[1] < 2:
            raise ValueError(f"{name} needs dim 1 >= 2 for split='parity', got {tuple(x.shape)}")
        if self.split == "checkerboard" and x.dim() != 4:
            raise ValueError(
                f"{name} must be (B, C, H, W) for split='checkerboard', got {tuple(x.shape)}"
            )
        if self.split == "mask":
            m = self.mask
            assert m is not None
            if tuple(m.shape) not in (tuple(x.shape[1:]), tuple(x.shape[2:])):
                raise ValueError(
                    f"mask of shape {tuple(m.shape)} does not fit {name} of shape "
                    f"{tuple(x.shape)} (want x.shape[1:] or x.shape[2:])"
                )
        if context is not None and (context.dim() < 1 or context.shape[0] != x.shape[0]):
            raise ValueError(
                f"context must have the batch size of {name} ({x.shape[0]}), got shape "
                f"{tuple(context.shape)}"
            )

    def _kept_mask(self, x: Tensor) -> Tensor:
        """Kept-positions mask over x.shape[1:] (bool)."""
        if self.split == "checkerboard":
            m = checkerboard_mask(x.shape[2], x.shape[3], parity=self.parity, device=x.device)
            m = m.to(torch.bool)
        else:
            assert self.mask is not None
            m = self.mask.to(x.device)
        return m.expand(x.shape[1:])

    def _transformed_index(self, x: Tensor) -> Tensor:
        key = (tuple(x.shape[1:]), str(x.device))
        idx = self._index_cache.get(key)
        if idx is None:
            idx = torch.nonzero(~self._kept_mask(x).reshape(-1)).squeeze(1)
            self._index_cache[key] = idx
        return idx

    def _split(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
        """Return (net input, transformed part x_b, flat index of x_b or None)."""
        if self.split == "channel":
            a, b = x.chunk(2, dim=1)  # even channels (checked); backward: one cat
            return (a, b, None) if self.parity == 0 else (b, a, None)
        if self.split == "parity":
            return x[:, self.parity :: 2], x[:, 1 - self.parity :: 2], None
        idx = self._transformed_index(x)
        kept = self._kept_mask(x).to(x.dtype)
        return x * kept, x.flatten(1).index_select(1, idx), idx

    def _merge(self, x: Tensor, x_a: Tensor, y_b: Tensor, idx: Tensor | None) -> Tensor:
        if self.split == "channel":
            return torch.cat([x_a, y_b] if self.parity == 0 else [y_b, x_a], dim=1)
        if self.split == "parity":
            out = torch.empty_like(x)
            out[:, self.parity :: 2] = x_a
            out[:, 1 - self.parity :: 2] = y_b
            return out
        assert idx is not None
        return x.flatten(1).index_copy(1, idx, y_b).view_as(x)

    def _channels_b(self, x: Tensor) -> Tensor:
        """Indices of dim 1 that belong to the transformed part (channel/parity splits)."""
        c = x.shape[1]
        if self.split == "channel":
            half = c // 2
            return torch.arange(half, c) if self.parity == 0 else torch.arange(0, half)
        return torch.arange(1 - self.parity, c, 2)

    # -- net parameters ------------------------------------------------------------------------
    def _run_net(self, x_a: Tensor, context: Tensor | None) -> Tensor:
        return self.net(x_a) if context is None else self.net(x_a, context)

    def _params(
        self, x: Tensor, x_a: Tensor, x_b: Tensor, idx: Tensor | None, context: Tensor | None
    ) -> tuple[Tensor, str]:
        """Network output reshaped for the fused op: (h, h_layout)."""
        h = self._run_net(x_a, context)
        factor = 2 if self._affine else 1
        if idx is None:
            want = (x_b.shape[0], factor * x_b.shape[1], *x_b.shape[2:])
        else:
            want = (x.shape[0], factor * x.shape[1], *x.shape[2:])
        if tuple(h.shape) != want:
            raise ValueError(
                f"net output must have shape {want} for input of shape {tuple(x.shape)} and "
                f"split={self.split!r}, got {tuple(h.shape)}"
            )
        layout = getattr(self, "h_layout", "interleave")
        if idx is None:
            return h, layout
        if not self._affine:
            return h.flatten(1).index_select(1, idx), layout
        shift, raw = split_h(h, layout)
        raw_g = raw.flatten(1).index_select(1, idx)
        shift_g = shift.flatten(1).index_select(1, idx)
        return torch.cat([raw_g, shift_g], dim=1), "chunk"

    def _scale_weight(self, x: Tensor, idx: Tensor | None) -> Tensor | None:
        return None

    def _couple(self, x: Tensor, context: Tensor | None, inverse: bool) -> tuple[Tensor, Tensor]:
        self._check(x, context, "y" if inverse else "x")
        x_a, x_b, idx = self._split(x)
        h, layout = self._params(x, x_a, x_b, idx, context)
        kept = x_a if idx is None else x
        y_b, logdet = fused_coupling(
            x_b,
            h,
            kind="affine" if self._affine else "additive",
            scale_map=getattr(self, "scale_map", "sigmoid2"),
            order=getattr(self, "order", "glow"),
            h_layout=layout,  # type: ignore[arg-type]
            sign=float(getattr(self, "sign", 1.0)),
            scale_weight=self._scale_weight(x, idx),
            inverse=inverse,
            backend=self.backend,
            deterministic=self.deterministic,
        )
        return self._merge(x, kept, y_b, idx), logdet

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Transform x_b given net(x_a[, context]); return ``(y, logdet)`` with logdet (B,)."""
        return self._couple(x, context, inverse=False)

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Undo :meth:`forward` (the kept part is unchanged, so the net sees the same input)."""
        return self._couple(y, context, inverse=True)


class AdditiveCoupling(_Coupling):
    """NICE additive coupling: y_a = x_a, y_b = x_b + sign·m(x_a[, context]); logdet = 0.

    Arguments:
        net: maps the kept part (and ``context`` when given, as ``net(x_a, context)``) to the
            shift m, shaped like x_b (channel/parity splits) or like x (checkerboard/mask).
        split: ``"channel"`` (default), ``"parity"``, ``"checkerboard"`` or ``"mask"``.
        parity: 0 or 1, which part is kept; alternate it between layers.
        sign: +1 (NICE paper, default) or −1 (Su's ``nice.py``: y2 = x2 − m(x1)).
        mask: kept-positions mask (1 = kept) for ``split="mask"``.
        backend: ``"auto"``, ``"triton"`` or ``"torch"`` (see :func:`kexue.flows._dispatch`).
        deterministic: Triton only: deterministic logdet reduction.

    Returns:
        (from ``forward``) ``(y, logdet)``, logdet zeros (B,).

    References:
        NICE, Dinh et al. 2014, arXiv:1410.8516 §3.2; https://kexue.fm/archives/5776;
        bojone/flow ``nice.py``.
    """

    _affine = False

    def __init__(
        self,
        net: nn.Module,
        *,
        split: str = "channel",
        parity: int = 0,
        sign: float = 1.0,
        mask: Tensor | None = None,
        backend: str = "auto",
        deterministic: bool = True,
    ) -> None:
        super().__init__(
            net, split=split, parity=parity, mask=mask, backend=backend,
            deterministic=deterministic,
        )  # fmt: skip
        if sign not in (1, -1):
            raise ValueError(f"sign must be +1 or -1, got {sign}")
        self.sign = float(sign)


class AffineCoupling(_Coupling):
    """Affine coupling: y_a = x_a, y_b = (x_b + t)·scale(ĥ) (Glow) or x_b·scale(ĥ) + t (RealNVP).

    (t, ĥ) = split(net(x_a[, context])) by ``h_layout``; logdet = Σ log scale(ĥ) per sample.
    At init with a zero-initialised last layer (``Conv2dZeros``) t = 0 and ĥ = 0, so the default
    ``sigmoid2`` coupling multiplies x_b by σ(2) ≈ 0.881.

    Arguments:
        net: maps the kept part (and ``context`` as ``net(x_a, context)``) to h with twice the
            channels of x_b (channel/parity splits) or of x (checkerboard/mask).
        scale_map: one of :data:`kexue.flows.layers.scale_maps.SCALE_MAPS`; default ``"sigmoid2"``
            (Glow, openai/glow; bounded, spec §1.4).
        split: ``"channel"`` (default), ``"parity"``, ``"checkerboard"`` or ``"mask"``.
        order: ``"glow"`` (default; (x + t)·scale) or ``"realnvp"`` (x·exp(s) + t).
        h_layout: ``"interleave"`` (default; openai/glow t = h[:, 0::2], ĥ = h[:, 1::2]) or
            ``"chunk"`` (rosinality: ĥ, t = h.chunk(2, 1)).
        parity: 0 or 1, which part is kept.
        mask: kept-positions mask for ``split="mask"``.
        features: size of dim 1 of the input; required for ``scale_map="tanh_w"``, which learns a
            per-channel w (init 1, plain parameter instead of RealNVP's weight-normalised one).
        backend: ``"auto"``, ``"triton"`` or ``"torch"``.
        deterministic: Triton only: per-tile logdet partials + a second reduction (default True)
            instead of atomics.

    Returns:
        (from ``forward``) ``(y, logdet)``, logdet (B,) fp32 (fp64 for fp64 inputs).

    References:
        RealNVP arXiv:1605.08803 §3.3; Glow arXiv:1807.03039 §3.3 and openai/glow ``model.py``;
        https://kexue.fm/archives/5807.
    """

    _affine = True

    def __init__(
        self,
        net: nn.Module,
        *,
        scale_map: str = "sigmoid2",
        split: str = "channel",
        order: str = "glow",
        h_layout: str = "interleave",
        parity: int = 0,
        mask: Tensor | None = None,
        features: int | None = None,
        backend: str = "auto",
        deterministic: bool = True,
    ) -> None:
        super().__init__(
            net, split=split, parity=parity, mask=mask, backend=backend,
            deterministic=deterministic,
        )  # fmt: skip
        if scale_map not in SCALE_MAPS:
            raise ValueError(f"scale_map must be one of {sorted(SCALE_MAPS)}, got {scale_map!r}")
        if order not in ("glow", "realnvp"):
            raise ValueError(f"order must be 'glow' or 'realnvp', got {order!r}")
        if h_layout not in ("interleave", "chunk"):
            raise ValueError(f"h_layout must be 'interleave' or 'chunk', got {h_layout!r}")
        self.scale_map = scale_map
        self.order = order
        self.h_layout = h_layout
        self.features = features
        if scale_map == "tanh_w":
            if features is None or features < 1:
                raise ValueError("features (size of dim 1 of x) is required for tanh_w")
            self.tanh_weight = nn.Parameter(torch.ones(features))
        else:
            self.tanh_weight = None

    def _scale_weight(self, x: Tensor, idx: Tensor | None) -> Tensor | None:
        w = self.tanh_weight
        if w is None:
            return None
        if x.shape[1] != self.features:
            raise ValueError(
                f"x has {x.shape[1]} channels but the layer was built with features="
                f"{self.features}, got shape {tuple(x.shape)}"
            )
        if idx is None:
            return w.index_select(0, self._channels_b(x).to(w.device))
        full = w.view(-1, *([1] * (x.dim() - 2))).expand(x.shape[1:]).reshape(-1)
        return full.index_select(0, idx)
