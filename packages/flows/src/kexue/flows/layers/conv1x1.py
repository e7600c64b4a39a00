"""Glow's invertible 1×1 convolution (plain and LU-parametrised) and the ActNorm+1×1 fold.

A 1×1 convolution with a C×C matrix W acts as ``y[:, :, i, j] = W · x[:, :, i, j]`` at every
position, so ``log|det J| = H·W·ln|det W|``. Determinants, LU factors and inverses are computed in
float64 and cast back (openai/glow; spec §1.4), because dense inversion is sensitive to the
conditioning of W (openai/glow#82). Inputs are ``(B, C, H, W)`` images or ``(B, C)`` vectors
(channels on dim 1; any trailing dims count as positions).

References:
    Glow (Kingma & Dhariwal 2018, arXiv:1807.03039) §3.2; https://kexue.fm/archives/5807.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kexue.flows.base import FlowLayer, logdet_dtype, pack_legacy_keys
from kexue.flows.layers.normalization import ActNorm

__all__ = ["FoldedActNormConv", "Invertible1x1Conv", "fold_actnorm_conv"]


def _check_channels(x: Tensor, channels: int, name: str) -> None:
    if x.dim() < 2 or x.shape[1] != channels:
        raise ValueError(
            f"{name} must have shape (B, {channels}, ...) (channels on dim 1), got {tuple(x.shape)}"
        )


def _apply_matrix(w: Tensor, x: Tensor, bias: Tensor | None = None) -> Tensor:
    """``W·x`` along dim 1 at every position (+ bias), for ``(B, C)`` or ``(B, C, *spatial)``."""
    w = w.to(x.dtype)
    b = None if bias is None else bias.to(x.dtype)
    if x.dim() == 2:
        return F.linear(x, w, b)
    if x.dim() == 4:
        return F.conv2d(x, w[:, :, None, None], b)
    y = torch.einsum("ij,bj...->bi...", w, x)
    return y if b is None else y + b.view(1, -1, *([1] * (x.dim() - 2)))


def _random_rotation(channels: int, generator: torch.Generator | None) -> Tensor:
    """Q factor of a Gaussian C×C matrix (float64), openai/glow's ``invertible_1x1_conv`` init."""
    a = torch.randn(channels, channels, dtype=torch.float64, generator=generator)
    q, r = torch.linalg.qr(a)
    return q * torch.sign(torch.diagonal(r))[None, :]  # Haar-distributed orthogonal matrix


def _pack_lu(lower: Tensor, upper: Tensor, log_s: Tensor) -> Tensor:
    """One C×C tensor: strict lower of ``lower``, strict upper of ``upper``, ``log_s`` diagonal."""
    return torch.tril(lower, -1) + torch.triu(upper, 1) + torch.diag(log_s)


class Invertible1x1Conv(FlowLayer):
    r"""Invertible 1×1 convolution ``y = W·x`` per position, plain or LU-parametrised.

    .. math:: \log|\det J| = H W \ln|\det W|.

    * ``lu=False``: W is a free C×C parameter; ``ln|det W|`` comes from ``torch.linalg.slogdet``
      in float64 (differentiable) and the inverse from a float64 ``torch.linalg.inv``.
    * ``lu=True`` (default, rosinality's choice for speed):
      ``W = P·L·(U + diag(sign·exp(log_s)))`` with P a fixed permutation, L unit lower-triangular,
      U strictly upper-triangular, ``sign`` fixed and ``log_s`` trained; ``log|det W| = Σ log_s``.
      The inverse solves the triangular factors in float64.

    W starts as the Q factor of a Gaussian matrix (a random rotation, |det W| = 1) unless
    ``weight`` is given. The LU form stores L, U and ``log_s`` in ONE C×C parameter ``lu_packed``
    (strict lower triangle = L, strict upper = U, diagonal = ``log_s``, the LAPACK packing), so
    the optimiser sees one tensor instead of three; ``lower``, ``upper`` and ``log_s`` are
    views, and checkpoints of kexue-flows ≤ 0.2.0 (separate tensors) load unchanged.

    Arguments:
        channels: C.
        lu: LU parametrisation (default True).
        weight: optional initial C×C invertible matrix (e.g. to compare the two forms); the
            parameters take its floating dtype (default dtype otherwise).
        generator: RNG for the random rotation.

    References:
        Glow, arXiv:1807.03039 §3.2 and Table 1; https://kexue.fm/archives/5807.
    """

    def __init__(
        self,
        channels: int,
        *,
        lu: bool = True,
        weight: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if channels < 1:
            raise ValueError(f"channels must be >= 1, got {channels}")
        dtype = torch.get_default_dtype()
        if weight is None:
            w0 = _random_rotation(channels, generator)
        else:
            if weight.is_floating_point():
                dtype = weight.dtype
            if weight.shape != (channels, channels):
                raise ValueError(
                    f"weight must have shape ({channels}, {channels}), got {tuple(weight.shape)}"
                )
            w0 = weight.detach().to(torch.float64)
            if not torch.isfinite(w0).all() or torch.linalg.matrix_rank(w0) < channels:
                raise ValueError("weight must be finite and invertible")
        self.channels = channels
        self.lu = lu
        if not lu:
            self.weight_param = nn.Parameter(w0.to(dtype))
            return
        p, lower, upper = torch.linalg.lu(w0)
        s = torch.diagonal(upper)
        self.register_buffer("perm", p.to(dtype))
        self.register_buffer("sign_s", torch.sign(s).to(dtype))
        self.register_buffer("lower_mask", torch.tril(torch.ones(channels, channels), -1).to(dtype))
        self.register_buffer("eye", torch.eye(channels, dtype=dtype))
        self.lu_packed = nn.Parameter(_pack_lu(lower, upper, torch.log(s.abs())).to(dtype))

    @property
    def lower(self) -> Tensor:
        """L's strict lower triangle, (C, C) (L = this + I)."""
        return torch.tril(self.lu_packed, -1)

    @property
    def upper(self) -> Tensor:
        """U's strict upper triangle, (C, C)."""
        return torch.triu(self.lu_packed, 1)

    @property
    def log_s(self) -> Tensor:
        """``log|s|``, the log-magnitudes of U's diagonal, a (C,) view of the packed diagonal."""
        return torch.diagonal(self.lu_packed)

    def _load_from_state_dict(
        self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any
    ) -> None:
        if self.lu:
            pack_legacy_keys(state_dict, prefix, "lu_packed", ("lower", "upper", "log_s"), _pack_lu)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        return f"{self.channels}, lu={self.lu}"

    def _factors(self, dtype: torch.dtype) -> tuple[Tensor, Tensor, Tensor]:
        return self._lu_factors(dtype)[:3]

    def _lu_factors(self, dtype: torch.dtype) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """P, L, U and log|s| (the packed diagonal, read once for W and the log-determinant)."""
        packed = self.lu_packed.to(dtype)
        mask = self.lower_mask.to(dtype)
        log_s = torch.diagonal(packed)
        lower = packed * mask + self.eye.to(dtype)
        diag = self.sign_s.to(dtype) * log_s.exp()
        upper = packed * mask.T + torch.diag(diag)
        return self.perm.to(dtype), lower, upper, log_s

    @property
    def weight(self) -> Tensor:
        """The current C×C matrix W (differentiable w.r.t. the parameters)."""
        if not self.lu:
            return self.weight_param
        p, lower, upper = self._factors(self.lu_packed.dtype)
        return p @ lower @ upper

    def log_abs_det(self) -> Tensor:
        """``ln|det W|`` as a 0-dim tensor in float64 (differentiable)."""
        if self.lu:
            return self.log_s.to(torch.float64).sum()
        return torch.linalg.slogdet(self.weight_param.to(torch.float64)).logabsdet

    def inverse_weight(self) -> Tensor:
        """``W⁻¹`` computed in float64 (differentiable), returned in float64."""
        if not self.lu:
            return torch.linalg.inv(self.weight_param.to(torch.float64))
        p, lower, upper = self._factors(torch.float64)
        # W = P L U  =>  W^{-1} = U^{-1} L^{-1} P^T, by two triangular solves
        t = torch.linalg.solve_triangular(lower, p.T, upper=False, unitriangular=True)
        return torch.linalg.solve_triangular(upper, t, upper=True)

    def _logdet(self, x: Tensor, sign: float, log_abs_det: Tensor | None = None) -> Tensor:
        spatial = math.prod(x.shape[2:])
        ld = (sign * spatial) * (self.log_abs_det() if log_abs_det is None else log_abs_det)
        return ld.to(logdet_dtype(x)).expand(x.shape[0]).clone()

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``y = W·x`` per position; ``logdet = H·W·ln|det W|`` of shape (B,).

        Arguments:
            x: ``(B, C, H, W)`` or ``(B, C)``.
            context: ignored.
        """
        _check_channels(x, self.channels, "x")
        if not self.lu:
            return _apply_matrix(self.weight, x), self._logdet(x, 1.0)
        p, lower, upper, log_s = self._lu_factors(self.lu_packed.dtype)
        ld = log_s.to(torch.float64).sum()  # = log_abs_det(), from the same diagonal
        return _apply_matrix(p @ lower @ upper, x), self._logdet(x, 1.0, ld)

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``x = W⁻¹·y`` with W⁻¹ from float64; ``logdet_inv = −H·W·ln|det W|``."""
        _check_channels(y, self.channels, "y")
        return _apply_matrix(self.inverse_weight(), y), self._logdet(y, -1.0)


def fold_actnorm_conv(actnorm: ActNorm, conv: Invertible1x1Conv) -> tuple[Tensor, Tensor]:
    r"""Fold ``ActNorm`` followed by a 1×1 conv into one affine 1×1 conv ``y = W'·x + b'``.

    With ActNorm ``(x + b)·exp(logs)`` and then W:

    .. math:: W' = W\,\mathrm{diag}(e^{\text{logs}}), \qquad b' = W' b, \qquad
              \log|\det J| = H W \bigl(\textstyle\sum_c \text{logs}_c + \ln|\det W|\bigr).

    The result is differentiable w.r.t. W (or its LU factors), logs and b, so the fold can be
    recomputed every training step (spec §3.3 item 2).

    Arguments:
        actnorm: an :class:`ActNorm` with C channels (already initialised if data-dependent).
        conv: an :class:`Invertible1x1Conv` with C channels.

    Returns:
        ``(W', b')`` of shapes (C, C) and (C,).

    References:
        Glow, arXiv:1807.03039 §3.1–3.2 (spec §3.3 item 2).
    """
    if actnorm.channels != conv.channels:
        raise ValueError(
            f"actnorm and conv must have equal channels, got {actnorm.channels} and {conv.channels}"
        )
    w = conv.weight
    w_fold = w * actnorm.logs.to(w.dtype).exp()[None, :]
    return w_fold, w_fold @ actnorm.bias.to(w.dtype)


class FoldedActNormConv(FlowLayer):
    """ActNorm then invertible 1×1 conv, computed as one affine 1×1 conv (one activation pass).

    Wraps (and shares the parameters of) an :class:`ActNorm` and an :class:`Invertible1x1Conv`;
    ``forward`` equals ``conv(actnorm(x))`` in value, log-determinant and gradients, but runs a
    single ``conv2d`` with the folded weight and bias from :func:`fold_actnorm_conv`. A
    data-dependent ActNorm still initialises from ``x`` on the first training call. The inverse is
    ``x = diag(exp(−logs))·W⁻¹·y − b`` with W⁻¹ in float64.

    Arguments:
        actnorm: the :class:`ActNorm` (C channels).
        conv: the :class:`Invertible1x1Conv` (C channels).

    References:
        Glow, arXiv:1807.03039 §3.1–3.2 (spec §3.3 item 2).
    """

    def __init__(self, actnorm: ActNorm, conv: Invertible1x1Conv) -> None:
        super().__init__()
        if actnorm.channels != conv.channels:
            raise ValueError(
                f"actnorm and conv must have equal channels, got {actnorm.channels} and "
                f"{conv.channels}"
            )
        self.actnorm = actnorm
        self.conv = conv
        self.channels = conv.channels

    def _logdet(self, x: Tensor, sign: float) -> Tensor:
        spatial = math.prod(x.shape[2:])
        total = self.actnorm.logs.to(torch.float64).sum() + self.conv.log_abs_det()
        return ((sign * spatial) * total).to(logdet_dtype(x)).expand(x.shape[0]).clone()

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``y = W'·x + b'``; ``logdet = H·W·(Σ logs + ln|det W|)`` of shape (B,)."""
        _check_channels(x, self.channels, "x")
        self.actnorm._maybe_initialize(x)
        w_fold, b_fold = fold_actnorm_conv(self.actnorm, self.conv)
        return _apply_matrix(w_fold, x, b_fold), self._logdet(x, 1.0)

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``x = exp(−logs)⊙(W⁻¹·y) − b``; ``logdet_inv = −H·W·(Σ logs + ln|det W|)``."""
        _check_channels(y, self.channels, "y")
        logs = self.actnorm.logs.to(torch.float64)
        w_inv = (-logs).exp()[:, None] * self.conv.inverse_weight()
        b_inv = -self.actnorm.bias.to(torch.float64)
        return _apply_matrix(w_inv, y, b_inv), self._logdet(y, -1.0)
