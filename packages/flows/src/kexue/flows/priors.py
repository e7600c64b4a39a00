"""Base distributions (priors) p_Z for flows: normal, logistic, learned and conditional Gaussians.

Every prior has ``log_prob(z, context=None) -> (B,)`` (summed over the event dimensions,
float32, or float64 for float64 inputs) and ``sample(n, *, temperature=1.0, context=None,
generator=None)``. Gaussian priors also have ``eps(z, context)`` = (z − μ)/σ and
``from_eps(eps, context, temperature)`` = μ + σ·T·ε, for exact reconstruction and temperature
sampling (spec §1.2: z = μ + σ·T·ε).

References:
    - Dinh et al., NICE, arXiv:1410.8516 (logistic prior); https://kexue.fm/archives/5776
    - Kingma & Dhariwal, Glow, arXiv:1807.03039 (split2d conditional prior, learntop);
      https://kexue.fm/archives/5807
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kexue.flows.base import logdet_dtype, pack_legacy_keys
from kexue.flows.nets import Conv2dZeros, LinearZeros

__all__ = [
    "ConditionalGaussian",
    "DiagonalGaussian",
    "GaussianPrior",
    "LearnedTop",
    "Logistic",
    "Prior",
    "StandardNormal",
]

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def _shape(shape: int | Sequence[int]) -> tuple[int, ...]:
    out = (int(shape),) if isinstance(shape, int) else tuple(int(s) for s in shape)
    if not out or any(s < 1 for s in out):
        raise ValueError(f"shape must be a non-empty tuple of positive ints, got {shape!r}")
    return out


def _check_temperature(temperature: float) -> None:
    if not temperature >= 0.0 or math.isinf(temperature):
        raise ValueError(f"temperature must be finite and >= 0, got {temperature}")


def _check_n(n: int) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be an int >= 0, got {n!r}")


class Prior(nn.Module):
    """Abstract base distribution with ``log_prob``, ``sample`` and ``rsample``.

    Subclasses implement ``log_prob(z, context=None) -> (B,)`` and
    ``_draw(n, temperature, context, generator) -> (n, *shape)``; :meth:`sample` validates its
    arguments once and calls ``_draw``. A prior whose draw is not pathwise in every parameter
    sets ``has_rsample`` False: its ``sample`` then runs without gradients and ``rsample``
    raises with ``_no_rsample_reason``.
    """

    has_rsample: bool = True
    _no_rsample_reason = "is not available: the draw is not pathwise in every parameter"

    def log_prob(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        """Per-sample log-density ``(B,)``."""
        raise NotImplementedError

    def _draw(
        self, n: int, temperature: float, context: Tensor | None, generator: torch.Generator | None
    ) -> Tensor:
        raise NotImplementedError

    def sample(
        self,
        n: int,
        *,
        temperature: float = 1.0,
        context: Tensor | None = None,
        generator: torch.Generator | None = None,
        pathwise: bool = False,
    ) -> Tensor:
        """Draw ``n`` samples at ``temperature``: ``(n, *shape)`` on the prior's device and dtype.

        Differentiable in the parameters when ``has_rsample`` (Gaussian priors: z = μ + σ·T·ε),
        else drawn without gradients. ``pathwise=True`` (what :meth:`rsample` passes) raises
        unless ``has_rsample``.
        """
        if pathwise and not self.has_rsample:
            raise RuntimeError(f"{type(self).__name__}.rsample {self._no_rsample_reason}")
        _check_n(n)
        _check_temperature(temperature)
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.has_rsample):
            return self._draw(n, temperature, context, generator)

    #: Pathwise sample (gradients through the parameters): ``sample(..., pathwise=True)``.
    rsample = functools.partialmethod(sample, pathwise=True)


class GaussianPrior(Prior):
    """Base of the diagonal-Gaussian priors: subclasses provide ``params(context, n)`` = (μ, log σ).

    ``log_prob = Σ −½((z−μ)/σ)² − log σ − ½ ln 2π``; ``sample`` and ``from_eps`` give
    ``μ + σ·T·ε`` with ε ~ N(0, I).
    """

    shape: tuple[int, ...]

    def params(self, context: Tensor | None, n: int) -> tuple[Tensor, Tensor]:
        """Mean and log-scale, broadcastable to ``(n, *shape)``."""
        raise NotImplementedError

    def _check_z(self, z: Tensor, name: str = "z") -> None:
        if z.dim() != len(self.shape) + 1 or tuple(z.shape[1:]) != self.shape:
            raise ValueError(
                f"{name} must have shape (B, {', '.join(map(str, self.shape))}), "
                f"got {tuple(z.shape)}"
            )

    def log_prob(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        """``Σ_d −½((z−μ)/σ)² − log σ − ½ ln 2π`` per sample; ``z``: (B, *shape) → (B,)."""
        self._check_z(z)
        mean, log_scale = self.params(context, z.shape[0])
        acc = logdet_dtype(z)
        zz, mean, log_scale = z.to(acc), mean.to(acc), log_scale.to(acc)
        e = (zz - mean) * torch.exp(-log_scale)
        lp = -0.5 * e.square() - log_scale - _HALF_LOG_2PI
        return lp.expand_as(zz).flatten(1).sum(dim=1)  # flatten: an empty batch works too

    def eps(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        """Standardised noise ``ε = (z − μ)/σ``, same shape as ``z``."""
        self._check_z(z)
        mean, log_scale = self.params(context, z.shape[0])
        return (z - mean) * torch.exp(-log_scale)

    def from_eps(
        self, eps: Tensor, context: Tensor | None = None, temperature: float = 1.0
    ) -> Tensor:
        """``z = μ + σ·T·ε`` (exact inverse of :meth:`eps` at ``temperature = 1``)."""
        _check_temperature(temperature)
        self._check_z(eps, "eps")
        mean, log_scale = self.params(context, eps.shape[0])
        return mean + torch.exp(log_scale) * (temperature * eps)

    def _draw(
        self, n: int, temperature: float, context: Tensor | None, generator: torch.Generator | None
    ) -> Tensor:
        """``z = μ + σ·T·ε``, ε ~ N(0, I) of shape ``(n, *μ.shape[1:])``."""
        mean, log_scale = self.params(context, n)
        shape = (n, *mean.shape[1:])
        eps = torch.randn(shape, generator=generator, device=mean.device, dtype=mean.dtype)
        return mean + torch.exp(log_scale) * (temperature * eps)


class StandardNormal(GaussianPrior):
    """Standard normal prior N(0, I): ``log p(z) = Σ −½z² − ½ ln 2π``. Ignores ``context``.

    Arguments:
        shape: event shape, e.g. ``(D,)`` or ``(C, H, W)``.

    References:
        Dinh et al., NICE, arXiv:1410.8516 (Gaussian prior for TFD; Su's NICE uses it,
        https://kexue.fm/archives/5776).
    """

    def __init__(self, shape: int | Sequence[int]) -> None:
        super().__init__()
        self.shape = _shape(shape)
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)

    def params(self, context: Tensor | None, n: int) -> tuple[Tensor, Tensor]:
        zero = self._anchor.expand(1, *self.shape)
        return zero, zero


class DiagonalGaussian(GaussianPrior):
    """Diagonal Gaussian with learned per-dimension mean μ and log-scale log σ (both zero-init).

    Arguments:
        shape: event shape.

    References:
        Dinh et al., NICE, arXiv:1410.8516 (the diagonal scale read as a prior scale,
        https://kexue.fm/archives/5776).
    """

    def __init__(self, shape: int | Sequence[int]) -> None:
        super().__init__()
        self.shape = _shape(shape)
        self.loc = nn.Parameter(torch.zeros(self.shape))
        self.log_scale = nn.Parameter(torch.zeros(self.shape))

    def params(self, context: Tensor | None, n: int) -> tuple[Tensor, Tensor]:
        return self.loc.unsqueeze(0), self.log_scale.unsqueeze(0)


class ConditionalGaussian(GaussianPrior):
    """Gaussian whose (μ, log σ) come from a zero-initialised 3×3 conv of a conditioning tensor.

    ``h = Conv2dZeros(context)`` with ``2·channels_out`` channels; μ = h[:, 0::2],
    log σ = h[:, 1::2] (openai/glow's interleaved split2d prior). At init it is exactly N(0, I).

    Arguments:
        channels_in: channels of the conditioning tensor (the kept half of a split).
        channels_out: channels of z (the factored-out half).
        logscale_factor: of the Conv2dZeros; default 3.0 [openai/glow].

    Returns:
        (``log_prob``) ``(B,)``; ``context`` (B, channels_in, H, W) is required and z is
        (B, channels_out, H, W).

    References:
        Kingma & Dhariwal, Glow, arXiv:1807.03039 (openai/glow ``split2d_prior``).
    """

    def __init__(self, channels_in: int, channels_out: int, *, logscale_factor: float = 3.0):
        super().__init__()
        self.channels_in = channels_in
        self.channels_out = channels_out
        self.conv = Conv2dZeros(channels_in, 2 * channels_out, logscale_factor=logscale_factor)

    def _check_context(self, context: Tensor | None, n: int | None) -> Tensor:
        if context is None:
            raise ValueError("context is required by ConditionalGaussian")
        if context.dim() != 4 or context.shape[1] != self.channels_in:
            raise ValueError(
                f"context must have shape (B, {self.channels_in}, H, W), got {tuple(context.shape)}"
            )
        if n is not None and context.shape[0] != n:
            raise ValueError(
                f"context batch {context.shape[0]} does not match the batch/n {n} "
                f"(context shape {tuple(context.shape)})"
            )
        return context

    def _check_z(self, z: Tensor, name: str = "z") -> None:
        if z.dim() != 4 or z.shape[1] != self.channels_out:
            raise ValueError(
                f"{name} must have shape (B, {self.channels_out}, H, W), got {tuple(z.shape)}"
            )

    def params(self, context: Tensor | None, n: int) -> tuple[Tensor, Tensor]:
        h = self.conv(self._check_context(context, n))
        return h[:, 0::2], h[:, 1::2]

    def log_prob(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        """Per-sample Gaussian log-density of ``z`` given ``context``; → (B,)."""
        self._check_z(z)
        ctx = self._check_context(context, z.shape[0])
        if ctx.shape[2:] != z.shape[2:]:
            raise ValueError(
                f"context spatial size {tuple(ctx.shape[2:])} must match z's {tuple(z.shape[2:])}"
            )
        return super().log_prob(z, ctx)


class LearnedTop(GaussianPrior):
    """Glow's ``learntop`` prior: a zero-initialised conv applied to zeros → per-position N(μ, σ).

    openai/glow computes ``h = Conv2dZeros(zeros(1, 2C, H, W))``; a zero-padded conv of zeros is
    its bias at every position, so only the bias and log-scale matter and they are stored
    directly: ``h = bias · exp(3·logs)`` (one (2, 2C) parameter ``bias_logs``, the same values
    as the conv without a weight that never receives a gradient; checkpoints of kexue-flows
    ≤ 0.2.0, which held that conv, load unchanged). μ = h[:, 0::2], log σ = h[:, 1::2]. With
    ``context_features > 0`` a zero-initialised linear map of a class vector
    (B, context_features) is added to h (Glow's ``ycond``). N(0, I) at init.

    Arguments:
        shape: event shape ``(C, H, W)``.
        context_features: size of an optional class-conditioning vector; default 0.

    References:
        Kingma & Dhariwal, Glow, arXiv:1807.03039 (openai/glow ``prior``, ``learntop``).
    """

    logscale_factor = 3.0  # openai/glow conv2d_zeros

    def __init__(self, shape: Sequence[int], *, context_features: int = 0) -> None:
        super().__init__()
        self.shape = _shape(shape)
        if len(self.shape) != 3:
            raise ValueError(f"shape must be (C, H, W), got {shape!r}")
        c = self.shape[0]
        self.bias_logs = nn.Parameter(torch.zeros(2, 2 * c))
        self.context_features = context_features
        self.cond = LinearZeros(context_features, 2 * c) if context_features else None

    def _load_from_state_dict(
        self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any
    ) -> None:
        pack_legacy_keys(
            state_dict, prefix, "bias_logs", ("conv.conv.conv.bias", "conv.logs"),
            lambda b, logs: torch.stack([b, logs.reshape(-1)]),
        )  # fmt: skip
        state_dict.pop(prefix + "conv.conv.conv.weight", None)  # zero forever: unused
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def params(self, context: Tensor | None, n: int) -> tuple[Tensor, Tensor]:
        ref = self.bias_logs
        b, logs = ref.unbind(0)
        h = (b * torch.exp(logs * self.logscale_factor)).view(1, -1, 1, 1)
        h = h.expand(1, -1, *self.shape[1:])
        if self.cond is not None:
            if context is None or context.shape != (n, self.context_features):
                got = None if context is None else tuple(context.shape)
                raise ValueError(
                    f"context must have shape ({n}, {self.context_features}), got {got}"
                )
            h = h + self.cond(context.to(ref.dtype))[:, :, None, None]
        return h[:, 0::2], h[:, 1::2]


class Logistic(Prior):
    """Factorised standard logistic prior: ``log p(z) = Σ −softplus(z) − softplus(−z)``.

    Sampling: ``z = T·logit(u)``, u ~ U(0, 1). Ignores ``context``.

    Arguments:
        shape: event shape.

    References:
        Dinh et al., NICE, arXiv:1410.8516 §3.4 (MNIST, SVHN, CIFAR-10 prior).
    """

    def __init__(self, shape: int | Sequence[int]) -> None:
        super().__init__()
        self.shape = _shape(shape)
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)

    def log_prob(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        """``Σ −softplus(z) − softplus(−z)`` per sample → (B,)."""
        if z.dim() != len(self.shape) + 1 or tuple(z.shape[1:]) != self.shape:
            raise ValueError(
                f"z must have shape (B, {', '.join(map(str, self.shape))}), got {tuple(z.shape)}"
            )
        zz = z.to(logdet_dtype(z))
        return (-F.softplus(zz) - F.softplus(-zz)).flatten(1).sum(dim=1)

    def _draw(
        self, n: int, temperature: float, context: Tensor | None, generator: torch.Generator | None
    ) -> Tensor:
        """``T·logit(u)``, u ~ U(0, 1): ``(n, *shape)``."""
        ref = self._anchor
        u = torch.rand((n, *self.shape), generator=generator, device=ref.device, dtype=ref.dtype)
        tiny = torch.finfo(ref.dtype).tiny
        u = u.clamp(min=tiny, max=1.0 - torch.finfo(ref.dtype).eps)
        return temperature * (torch.log(u) - torch.log1p(-u))
