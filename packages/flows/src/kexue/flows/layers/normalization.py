"""Normalisation flow layers: Glow's ActNorm, RealNVP's batch-norm flow layer, NICE's scaling.

All three are per-channel (or per-dimension) affine maps, so their log-determinants are closed
forms: ``spatial · Σ_c log-scale_c`` with ``spatial = H·W`` for images and 1 for vectors.
Channels are on dim 1 (``(B, C, H, W)`` or ``(B, C)``; any trailing dims count as "spatial").

References:
    Glow (Kingma & Dhariwal 2018, arXiv:1807.03039) §3.1; RealNVP (Dinh et al. 2016,
    arXiv:1605.08803) §3.7; NICE (Dinh et al. 2014, arXiv:1410.8516) §3.3;
    https://kexue.fm/archives/5807 and https://kexue.fm/archives/5776.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
import torch.distributed as dist
from torch import Tensor, nn

from kexue.flows.base import FlowLayer, logdet_dtype, pack_legacy_keys

__all__ = ["ActNorm", "AffineBatchNorm", "DiagonalScale"]

_STD_EPS = 1e-6  # openai/glow actnorm: logs = log(1 / (sqrt(mean(x²)) + 1e-6)) [code]


def _check_channels(x: Tensor, channels: int, name: str = "x") -> None:
    if x.dim() < 2 or x.shape[1] != channels:
        raise ValueError(
            f"{name} must have shape (B, {channels}, ...) (channels on dim 1), got {tuple(x.shape)}"
        )


def _per_channel(v: Tensor, x: Tensor) -> Tensor:
    """View a (C,) vector so that it broadcasts against x of shape (B, C, *spatial)."""
    return v.view(1, -1, *([1] * (x.dim() - 2))).to(x.dtype)


def _spatial(x: Tensor) -> int:
    return math.prod(x.shape[2:])


def _constant_logdet(per_sample: Tensor, x: Tensor) -> Tensor:
    """Broadcast a scalar log-determinant to shape (B,) in the accumulation dtype."""
    return per_sample.to(logdet_dtype(x)).expand(x.shape[0]).clone()


def _sync_group(sync: bool | str, group: object | None) -> object | bool | None:
    """Return the process group to all-reduce over, or False when moments stay local."""
    if sync is False or sync == "off":
        return False
    active = dist.is_available() and dist.is_initialized()
    if not active:
        if sync is True:
            raise RuntimeError("ActNorm(sync=True) needs an initialised torch.distributed group")
        return False
    if dist.get_world_size(group) == 1:
        return False
    return group


class ActNorm(FlowLayer):
    r"""Activation normalisation: a per-channel affine map with data-dependent initialisation.

    .. math:: y = (x + b) \odot e^{\text{logs}}, \qquad
              \log|\det J| = H W \sum_c \text{logs}_c.

    With ``init="data"`` the first forward in training mode sets, per channel over the batch and
    every position (``(N, H, W)``; the batch alone for vectors),

    .. math:: b = -\text{mean}(x), \qquad
              \text{logs} = \ln\frac{1}{\text{std}(x) + 10^{-6}}

    (population std), so that the output has zero mean and unit std per channel [Glow §3.1;
    openai/glow ``actnorm``]. Under ``torch.distributed`` the per-channel sum, sum of squared
    deviations and count are all-reduced, so every rank gets the init of the *global* batch
    (rosinality/glow-pytorch#1). A channel that is constant over the (global) batch raises
    ``ValueError`` instead of producing a huge scale or NaN (FrEIA#121). ``init="zero"`` starts at
    the identity (b = 0, logs = 0) with no data-dependent step, as Su's Keras ``Actnorm``
    (``su_compat``). The trainable log-scale is stored divided by ``logscale_factor`` and
    multiplied back (openai/glow uses 3, i.e. a 3× learning rate on logs).

    A persistent ``initialized`` buffer records whether the init happened, so a ``state_dict``
    round trip never re-initialises a trained layer. ``b`` and the stored log-scale are one
    (2, C) parameter ``bias_logs`` (one tensor fewer for the optimiser); ``bias`` and
    ``logs_param`` are views of its rows, and checkpoints of kexue-flows ≤ 0.2.0 (separate
    ``bias`` / ``logs_param``) load unchanged.

    Arguments:
        channels: number of channels C (dim 1 of the input).
        logscale_factor: multiplier of the stored log-scale; default 1.0 (openai/glow uses 3.0).
        init: ``"data"`` (default, Glow) or ``"zero"`` (Su's Keras ActNorm).
        sync: ``"auto"`` (default: all-reduce the init moments when a distributed group with more
            than one rank is initialised), ``True`` (require it) or ``False``/``"off"``.
        process_group: group for the all-reduce (default: the world).

    References:
        Glow, arXiv:1807.03039 §3.1; https://kexue.fm/archives/5807.
    """

    initialized: Tensor

    def __init__(
        self,
        channels: int,
        *,
        logscale_factor: float = 1.0,
        init: Literal["data", "zero"] = "data",
        sync: bool | Literal["auto", "off"] = "auto",
        process_group: object | None = None,
    ) -> None:
        super().__init__()
        if channels < 1:
            raise ValueError(f"channels must be >= 1, got {channels}")
        if not logscale_factor > 0:
            raise ValueError(f"logscale_factor must be > 0, got {logscale_factor}")
        if init not in ("data", "zero"):
            raise ValueError(f"init must be 'data' or 'zero', got {init!r}")
        if sync not in (True, False, "auto", "off"):
            raise ValueError(f"sync must be 'auto', 'off', True or False, got {sync!r}")
        self.channels = channels
        self.logscale_factor = float(logscale_factor)
        self.init = init
        self.sync = sync
        self.process_group = process_group
        self.bias_logs = nn.Parameter(torch.zeros(2, channels))
        self.register_buffer("initialized", torch.tensor(init == "zero"))

    @property
    def bias(self) -> Tensor:
        """The per-channel shift b, a (C,) view of ``bias_logs[0]``."""
        return self.bias_logs[0]

    @property
    def logs_param(self) -> Tensor:
        """The stored log-scale (``logs / logscale_factor``), a (C,) view of ``bias_logs[1]``."""
        return self.bias_logs[1]

    @property
    def logs(self) -> Tensor:
        """Effective per-channel log-scale ``logscale_factor · stored``, shape (C,)."""
        return self.bias_logs[1] * self.logscale_factor

    def _load_from_state_dict(
        self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any
    ) -> None:
        pack_legacy_keys(
            state_dict,
            prefix,
            "bias_logs",
            ("bias", "logs_param"),
            lambda b, s: torch.stack([b, s]),
        )
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        return (
            f"{self.channels}, logscale_factor={self.logscale_factor}, init={self.init!r}, "
            f"initialized={bool(self.initialized)}"
        )

    @torch.no_grad()
    def initialize(self, x: Tensor) -> None:
        """Data-dependent init from ``x`` (all-reduced across ranks when synchronised).

        Arguments:
            x: a batch ``(B, C, *spatial)``; its moments per channel over every other dim set
                ``b = -mean`` and ``logs = ln(1/(std + 1e-6))``.

        Raises:
            ValueError: ``x`` has the wrong channel count, non-finite values, or a channel that
                is constant over the (global) batch.
        """
        _check_channels(x, self.channels)
        group = _sync_group(self.sync, self.process_group)
        xd = x.detach().to(torch.float64).transpose(0, 1).reshape(self.channels, -1)
        stats = torch.cat([xd.sum(1), torch.tensor([float(xd.shape[1])], dtype=torch.float64)])
        extremes = torch.cat([xd.amax(1), -xd.amin(1)]) if xd.shape[1] > 0 else None
        if extremes is None:
            extremes = torch.full((2 * self.channels,), -math.inf, dtype=torch.float64)
        if group is not False:
            dist.all_reduce(stats, group=group)
            dist.all_reduce(extremes, op=dist.ReduceOp.MAX, group=group)
        count = stats[-1]
        if count < 1:
            raise ValueError("x: ActNorm data-dependent init needs a non-empty batch")
        if not torch.isfinite(stats).all():
            raise ValueError("x contains NaN or inf: ActNorm data-dependent init refused")
        mean = stats[:-1] / count
        sq = (xd - mean[:, None]).pow(2).sum(1)
        if group is not False:
            dist.all_reduce(sq, group=group)
        std = (sq / count).sqrt()
        constant = extremes[: self.channels] == -extremes[self.channels :]
        if constant.any():
            bad = constant.nonzero().flatten().tolist()
            raise ValueError(
                f"x: channel(s) {bad} are constant over the initialisation batch (zero std); "
                "ActNorm's data-dependent init would divide by ~0 (see FrEIA#121). Use a larger "
                "or more varied batch, or init='zero'."
            )
        logs = -torch.log(std + _STD_EPS)
        self.bias.copy_(-mean.to(self.bias.dtype))
        self.logs_param.copy_((logs / self.logscale_factor).to(self.logs_param.dtype))
        self.initialized.fill_(True)

    def _maybe_initialize(self, x: Tensor) -> None:
        if self.training and not bool(self.initialized):
            self.initialize(x)

    def logdet_per_sample(self, x: Tensor) -> Tensor:
        """Per-sample log-determinant ``H·W·Σ logs`` for an input shaped like ``x``, shape (B,)."""
        return _constant_logdet(self.logs.sum() * _spatial(x), x)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``y = (x + b)·exp(logs)``; initialises from ``x`` on the first training call.

        Arguments:
            x: ``(B, C, *spatial)``.
            context: ignored (accepted for the layer contract).

        Returns:
            ``(y, logdet)`` with ``y`` shaped like ``x`` and ``logdet`` of shape (B,).
        """
        _check_channels(x, self.channels)
        self._maybe_initialize(x)
        bias, stored = self.bias_logs.unbind(0)
        logs = stored * self.logscale_factor  # once, for y and the log-determinant
        y = (x + _per_channel(bias, x)) * _per_channel(logs.exp(), x)
        return y, _constant_logdet(logs.sum() * _spatial(x), x)

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``x = y·exp(-logs) - b``; returns ``(x, -H·W·Σ logs)``."""
        _check_channels(y, self.channels, "y")
        x = y * _per_channel((-self.logs).exp(), y) - _per_channel(self.bias, y)
        return x, -self.logdet_per_sample(y)


class AffineBatchNorm(FlowLayer):
    r"""RealNVP's batch-normalisation flow layer with a learned positive scale and shift.

    .. math:: y = \gamma \odot \frac{x - \mu}{\sqrt{\sigma^2 + \varepsilon}} + \beta, \qquad
              \log|\det J| = H W \sum_c \bigl(\ln\gamma_c - \tfrac12 \ln(\sigma_c^2 + \varepsilon)\bigr).

    In training mode μ and σ² are the (biased) batch statistics per channel over ``(N, H, W)``,
    treated as constants in the per-sample log-determinant (RealNVP §3.7), and the running
    statistics are updated with ``momentum`` (the running variance uses the unbiased estimate, as
    ``torch.nn.BatchNorm``). In eval mode, and always in :meth:`inverse`, the running statistics
    are used, so eval-mode ``inverse(forward(x))`` is exact. γ = exp(log_gamma) stays positive.
    Statistics are per rank under DDP (like ``nn.BatchNorm2d``; spec §6 question 4).

    Arguments:
        channels: number of channels C (dim 1).
        momentum: running-average momentum; default 0.1 (``torch.nn.BatchNorm``).
        eps: variance floor ε; default 1e-5 (``torch.nn.BatchNorm``).

    References:
        RealNVP, arXiv:1605.08803 §3.7 and appendix E; https://kexue.fm/archives/5807.
    """

    running_mean: Tensor
    running_var: Tensor

    def __init__(self, channels: int, *, momentum: float = 0.1, eps: float = 1e-5) -> None:
        super().__init__()
        if channels < 1:
            raise ValueError(f"channels must be >= 1, got {channels}")
        if not 0.0 < momentum <= 1.0:
            raise ValueError(f"momentum must be in (0, 1], got {momentum}")
        if not eps > 0:
            raise ValueError(f"eps must be > 0, got {eps}")
        self.channels = channels
        self.momentum = float(momentum)
        self.eps = float(eps)
        self.log_gamma = nn.Parameter(torch.zeros(channels))
        self.beta = nn.Parameter(torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))

    def extra_repr(self) -> str:
        return f"{self.channels}, momentum={self.momentum}, eps={self.eps}"

    def _logdet(self, var: Tensor, x: Tensor) -> Tensor:
        per = self.log_gamma.to(var.dtype) - 0.5 * torch.log(var + self.eps)
        return _constant_logdet(per.sum() * _spatial(x), x)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Normalise with batch (training) or running (eval) statistics.

        Arguments:
            x: ``(B, C, *spatial)``; training mode needs more than one value per channel.
            context: ignored.

        Returns:
            ``(y, logdet)``, ``logdet`` of shape (B,).
        """
        _check_channels(x, self.channels)
        if self.training:
            n = x.numel() // self.channels
            if n < 2:
                raise ValueError(
                    f"x: AffineBatchNorm in training mode needs > 1 value per channel, "
                    f"got shape {tuple(x.shape)}"
                )
            dims = [0, *range(2, x.dim())]
            mean = x.mean(dim=dims)
            var = x.var(dim=dims, unbiased=False)
            with torch.no_grad():
                m = self.momentum
                self.running_mean.mul_(1 - m).add_(m * mean.detach().to(self.running_mean.dtype))
                unbiased = var.detach() * (n / (n - 1))
                self.running_var.mul_(1 - m).add_(m * unbiased.to(self.running_var.dtype))
        else:
            mean, var = self.running_mean.to(x.dtype), self.running_var.to(x.dtype)
        scale = self.log_gamma.to(x.dtype).exp() * torch.rsqrt(var + self.eps)
        y = (x - _per_channel(mean, x)) * _per_channel(scale, x) + _per_channel(self.beta, x)
        return y, self._logdet(var, x)

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``x = (y − β)·sqrt(σ²_run + ε)/γ + μ_run`` with the running statistics."""
        _check_channels(y, self.channels, "y")
        mean, var = self.running_mean.to(y.dtype), self.running_var.to(y.dtype)
        inv_scale = (-self.log_gamma.to(y.dtype)).exp() * torch.sqrt(var + self.eps)
        x = (y - _per_channel(self.beta, y)) * _per_channel(inv_scale, y) + _per_channel(mean, y)
        return x, -self._logdet(var, y)


class DiagonalScale(FlowLayer):
    r"""NICE's diagonal scaling layer ``y = exp(s) ⊙ x``, the model's only volume change.

    .. math:: \log|\det J| = \sum_d s_d \quad (\times H W \text{ when } s \text{ is per-channel}).

    ``s`` has the per-sample ``shape`` given: the full event shape (e.g. ``(D,)`` for vectors or
    ``(C, H, W)``), or ``(C,)`` for a per-channel scale broadcast over the positions of
    ``(B, C, H, W)`` inputs. NICE reads exp(−s_d) as a learned per-dimension prior scale, so the
    scale ranks latent dimensions by importance [blog].

    Arguments:
        shape: shape of ``s`` (int or tuple), see above.
        init: ``"zeros"`` (default, identity) or ``"glorot_normal"`` (Su's ``ScaleLayer``: Keras
            Glorot-normal on a (1, D) weight, std √(2/(1 + D)) truncated at 2 std).
        generator: RNG for ``"glorot_normal"``.

    References:
        NICE, arXiv:1410.8516 §3.3; https://kexue.fm/archives/5776; bojone/flow ``nice.py``.
    """

    def __init__(
        self,
        shape: int | tuple[int, ...],
        *,
        init: Literal["zeros", "glorot_normal"] = "zeros",
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        if len(shape) == 0 or any(s < 1 for s in shape):
            raise ValueError(f"shape must be a non-empty tuple of positive sizes, got {shape}")
        if init not in ("zeros", "glorot_normal"):
            raise ValueError(f"init must be 'zeros' or 'glorot_normal', got {init!r}")
        self.shape = shape
        self.s = nn.Parameter(torch.zeros(shape))
        if init == "glorot_normal":
            n = math.prod(shape)
            std = math.sqrt(2.0 / (1 + n))
            with torch.no_grad():
                nn.init.trunc_normal_(self.s, std=std, a=-2 * std, b=2 * std, generator=generator)

    def extra_repr(self) -> str:
        return f"shape={self.shape}"

    def _s_for(self, x: Tensor, name: str) -> tuple[Tensor, int]:
        event = tuple(x.shape[1:])
        if event == self.shape:
            return self.s.to(x.dtype).unsqueeze(0), 1
        if len(self.shape) == 1 and x.dim() > 2 and x.shape[1] == self.shape[0]:
            return _per_channel(self.s, x), _spatial(x)
        raise ValueError(
            f"{name} must have shape (B, *{self.shape}) or (B, {self.shape[0]}, H, W) for a "
            f"per-channel scale, got {tuple(x.shape)}"
        )

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``y = exp(s) ⊙ x``; returns ``(y, Σ s · spatial)`` with logdet of shape (B,)."""
        s, spatial = self._s_for(x, "x")
        return x * s.exp(), _constant_logdet(self.s.sum() * spatial, x)

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``x = exp(−s) ⊙ y``; returns ``(x, −Σ s · spatial)``."""
        s, spatial = self._s_for(y, "y")
        return y * (-s).exp(), -_constant_logdet(self.s.sum() * spatial, y)
