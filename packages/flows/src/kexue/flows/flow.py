"""Flow models: :class:`Flow` (transform + prior), the multi-scale :class:`MultiScaleFlow`, and the
:class:`FlowConfig` a builder attaches as ``model.config``.

``log p(x) = log p_Z(f(x)) + Σ_layers logdet`` (+ Σ_i log p(z_i | h_i) for every factored-out
z_i in a multi-scale model). ``bpd`` adds the dequantisation constant of spec §1.2 for the
declared data range. Both models return ``(z, logdet)`` from ``forward`` and ``(x, logdet_inv)``
from ``inverse``, mirroring the :class:`~kexue.flows.base.FlowLayer` contract.

References:
    - Dinh et al., RealNVP arXiv:1605.08803 (multi-scale, factor-out);
      Kingma & Dhariwal, Glow arXiv:1807.03039 (split2d, learned prior, temperature);
      https://kexue.fm/archives/5807
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from kexue.flows.base import FlowLayer, logdet_dtype, zero_logdet
from kexue.flows.bits import bits_per_dim, resolve_levels
from kexue.flows.bits import dequantize as _dequantize
from kexue.flows.nets import LinearZeros
from kexue.flows.priors import ConditionalGaussian, GaussianPrior, Prior, _check_temperature

__all__ = ["Flow", "FlowConfig", "Level", "MultiScaleFlow", "Split"]

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


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


_BPD_DOC = """Bits per dimension, spec §1.2: ``−(log p_Y(y) − D·ln(n/w))/(D·ln 2)``.

        Arguments:
            x: integer pixels in ``{0, …, n − 1}`` when ``dequantize=True`` (they are
                dequantised to y = lo + w·(x + u)/n), else already-continuous y in ``data_range``.
            n_bits: bits b (n = 2^b); give exactly one of ``n_bits`` / ``n_levels``.
            n_levels: levels n directly (e.g. 17 for sklearn digits).
            data_range: (lo, hi) of the continuous data y; default (0, 1). (−1, 1) lowers the
                constant by 1 bit/dim, matching the doubled bin width.
            dequantize: add uniform noise to integer x first; default True.
            generator: randomness of the dequantisation noise.
            context: conditioning passed to the model.

        Returns:
            bpd per sample, shape (B,).
"""


def _check_finite(x: Tensor, name: str) -> None:
    """Reject NaN/inf input at a flow's entry point: once per call, on every device (one sync).

    ``aminmax`` propagates NaN and is cheaper than ``isfinite(x).all()``; empty tensors pass.
    """
    if x.numel() and x.is_floating_point():
        lo, hi = x.detach().aminmax()
        if not bool(torch.isfinite(lo) & torch.isfinite(hi)):
            raise ValueError(f"{name} contains NaN or inf (shape {tuple(x.shape)})")


class _BitsPerDim(nn.Module):
    """Base of the flow models: :meth:`bpd` from the model's ``log_prob``, parameters and buffers."""

    def log_prob(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        raise NotImplementedError

    def bpd(
        self,
        x: Tensor,
        *,
        n_bits: int | None = None,
        n_levels: int | None = None,
        data_range: tuple[float, float] = (0.0, 1.0),
        dequantize: bool = True,
        generator: torch.Generator | None = None,
        context: Tensor | None = None,
    ) -> Tensor:
        n = resolve_levels(n_bits=n_bits, n_levels=n_levels)
        if dequantize:
            # Dequantise in the model's floating dtype (parameters first, then buffers).
            floats = (
                t
                for t in itertools.chain(self.parameters(), self.buffers())
                if t.is_floating_point()
            )
            ref = next(floats, None)
            dtype = ref.dtype if ref is not None else None
            y = _dequantize(x, n_levels=n, generator=generator, data_range=data_range, dtype=dtype)
        else:
            y = x
        log_p = self.log_prob(y, context)
        num_dims = math.prod(y.shape[1:])  # not y[0]: an empty batch has no first sample
        return bits_per_dim(log_p, num_dims=num_dims, n_levels=n, data_range=data_range)

    bpd.__doc__ = _BPD_DOC


class Flow(_BitsPerDim):
    """A normalising flow ``z = f(x)`` with a base distribution p_Z.

    Arguments:
        transform: the invertible :class:`FlowLayer` f (e.g. a ``Compose``).
        prior: the base distribution (a :class:`~kexue.flows.priors.Prior`).
        context_embedding: optional module applied once per call to the context; its output
            is what every layer and the prior receive (nflows ``embedding_net``); default None.

    ``forward(x, context) -> (z, logdet)``, ``inverse(z, context) -> (x, logdet_inv)``,
    ``log_prob(x, context) -> (B,)``, ``sample(n, temperature=..., context=...)``,
    ``bpd(x, ...)``. A conditional flow takes a context ``(B, C)`` in every call (``sample``:
    one row per sample).

    References:
        Dinh et al., NICE arXiv:1410.8516; nflows ``Flow``; https://kexue.fm/archives/5776
    """

    def __init__(
        self, transform: FlowLayer, prior: Prior, *, context_embedding: nn.Module | None = None
    ) -> None:
        super().__init__()
        if not isinstance(transform, FlowLayer):
            raise ValueError(f"transform must be a FlowLayer, got {type(transform).__name__}")
        if not isinstance(prior, Prior):
            raise ValueError(f"prior must be a Prior, got {type(prior).__name__}")
        self.transform = transform
        self.prior = prior
        self.context_embedding = context_embedding

    def _embed(self, context: Tensor | None) -> Tensor | None:
        if context is None or self.context_embedding is None:
            return context
        return self.context_embedding(context)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``(z, logdet) = f(x)``."""
        _check_finite(x, "x")
        return self.transform(x, self._embed(context))

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``(x, logdet_inv) = f⁻¹(z)``."""
        _check_finite(z, "z")
        return self.transform.inverse(z, self._embed(context))

    def log_prob(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """``log p_Z(f(x)) + logdet`` per sample, shape (B,)."""
        _check_finite(x, "x")
        context = self._embed(context)
        z, logdet = self.transform(x, context)
        return self.prior.log_prob(z, context) + logdet

    def sample(
        self,
        n: int,
        *,
        temperature: float = 1.0,
        context: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """``f⁻¹(z)`` with ``z`` from the prior at ``temperature`` (z = μ + σ·T·ε).

        A conditional flow needs ``context`` of shape ``(n, C)``: one row per sample.
        """
        context = self._embed(context)
        z = self.prior.sample(n, temperature=temperature, context=context, generator=generator)
        return self.transform.inverse(z, context)[0]


class Split(nn.Module):
    """Factor out half the channels (Glow ``split2d`` / RealNVP factor-out).

    ``h`` (B, C, H, W) → kept ``h1 = h[:, :C/2]`` and factored ``z = h[:, C/2:]`` with the prior
    ``N(μ(h1), σ(h1))`` (``"conditional"``: μ, log σ from a zero-initialised conv of h1, so it is
    N(0, 1) at init) or ``N(0, I)`` (``"normal"``, RealNVP).

    Arguments:
        channels: C, the channels of the input (must be even).
        prior: ``"conditional"`` (default, Glow) or ``"normal"`` (RealNVP).
        context_features: size of a context vector (B, C_ctx) whose zero-initialised linear map
            is added to (μ, log σ) at every position (a conditional flow's split prior, like
            openai/glow's class-conditional ``ycond``); default 0.

    References:
        Kingma & Dhariwal, Glow arXiv:1807.03039 (openai/glow ``split2d``); Dinh et al., RealNVP
        arXiv:1605.08803 §3.6.
    """

    def __init__(
        self,
        channels: int,
        *,
        prior: Literal["conditional", "normal"] = "conditional",
        context_features: int = 0,
    ) -> None:
        super().__init__()
        if channels < 2 or channels % 2:
            raise ValueError(f"channels must be even and >= 2 to split, got {channels}")
        if prior not in ("conditional", "normal"):
            raise ValueError(f"prior must be 'conditional' or 'normal', got {prior!r}")
        self.channels = channels
        self.prior_kind = prior
        half = channels // 2
        self.prior = ConditionalGaussian(half, half) if prior == "conditional" else None
        self.context_features = context_features
        self.cond = LinearZeros(context_features, channels) if context_features else None

    def _check_h(self, h: Tensor) -> None:
        if h.dim() != 4 or h.shape[1] != self.channels:
            raise ValueError(
                f"h must have shape (B, {self.channels}, H, W) (even channels), got "
                f"{tuple(h.shape)}"
            )

    def _check_pair(self, h_keep: Tensor, z: Tensor, name: str) -> None:
        half = self.channels // 2
        if h_keep.dim() != 4 or h_keep.shape[1] != half:
            raise ValueError(f"h_keep must have shape (B, {half}, H, W), got {tuple(h_keep.shape)}")
        if z.shape != h_keep.shape:
            raise ValueError(
                f"{name} must have the shape of h_keep {tuple(h_keep.shape)}, got {tuple(z.shape)}"
            )

    def params(self, h_keep: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Prior mean and log-scale of z given the kept half (and context), each (B, C/2, H, W)."""
        if self.prior is None:
            mean = log_scale = torch.zeros_like(h_keep)
        else:
            mean, log_scale = self.prior.params(h_keep, h_keep.shape[0])
        if self.cond is None:
            return mean, log_scale
        want = (h_keep.shape[0], self.context_features)
        if context is None or tuple(context.shape) != want:
            got = None if context is None else tuple(context.shape)
            raise ValueError(f"context must have shape {want} for this split, got {got}")
        c = self.cond(context.to(h_keep.dtype))[:, :, None, None]
        return mean + c[:, 0::2], log_scale + c[:, 1::2]

    def forward(self, h: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """``(h_keep, z, log p(z | h_keep))`` with log p of shape (B,)."""
        self._check_h(h)
        h_keep, z = h.chunk(2, dim=1)
        mean, log_scale = self.params(h_keep, context)
        acc = logdet_dtype(h)
        e = (z.to(acc) - mean.to(acc)) * torch.exp(-log_scale.to(acc))
        lp = -0.5 * e.square() - log_scale.to(acc) - _HALF_LOG_2PI
        return h_keep, z, lp.flatten(1).sum(dim=1)

    def inverse(self, h_keep: Tensor, z: Tensor) -> Tensor:
        """Concatenate the kept half and z back into h (exact)."""
        self._check_pair(h_keep, z, "z")
        return torch.cat([h_keep, z], dim=1)

    def eps(self, z: Tensor, h_keep: Tensor, context: Tensor | None = None) -> Tensor:
        """``ε = (z − μ(h_keep))/σ(h_keep)``."""
        self._check_pair(h_keep, z, "z")
        mean, log_scale = self.params(h_keep, context)
        return (z - mean) * torch.exp(-log_scale)

    def from_eps(
        self,
        eps: Tensor,
        h_keep: Tensor,
        temperature: float = 1.0,
        context: Tensor | None = None,
    ) -> Tensor:
        """``z = μ(h_keep) + σ(h_keep)·T·ε``."""
        _check_temperature(temperature)
        self._check_pair(h_keep, eps, "eps")
        mean, log_scale = self.params(h_keep, context)
        return mean + torch.exp(log_scale) * (temperature * eps)

    def sample(
        self,
        h_keep: Tensor,
        *,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        context: Tensor | None = None,
    ) -> Tensor:
        """``z = μ + σ·T·ε``, ε ~ N(0, I) of h_keep's shape."""
        eps = torch.randn(
            h_keep.shape, generator=generator, device=h_keep.device, dtype=h_keep.dtype
        )
        return self.from_eps(eps, h_keep, temperature, context)


class Level(nn.Module):
    """One scale of a :class:`MultiScaleFlow`: a transform, then an optional :class:`Split`.

    Arguments:
        transform: the level's :class:`FlowLayer` (e.g. ``Compose(Squeeze(), steps...)``).
        split: a :class:`Split` applied to its output, or None (e.g. the last level).
    """

    def __init__(self, transform: FlowLayer, split: Split | None = None) -> None:
        super().__init__()
        if not isinstance(transform, FlowLayer):
            raise ValueError(f"transform must be a FlowLayer, got {type(transform).__name__}")
        if split is not None and not isinstance(split, Split):
            raise ValueError(f"split must be a Split or None, got {type(split).__name__}")
        self.transform = transform
        self.split = split


class MultiScaleFlow(_BitsPerDim):
    """Multi-scale flow (RealNVP/Glow): levels of transforms, each optionally factoring out z_i.

    ``forward(x) -> (z_list, logdet)`` with ``z_list = [z_1, …, z_L_split, z_top]`` (the factored
    latents in order, then the final output), ``logdet`` the sum of the transforms' logdets.
    ``inverse(z_list) -> (x, logdet_inv)`` reconstructs x exactly.
    ``log_prob(x) = log p_top(z_top) + Σ_i log p(z_i | h_i) + logdet``.
    ``sample(n, temperature=T)`` scales every level's ε by T (z_i = μ_i + σ_i·T·ε_i).
    ``eps(x)`` / ``from_eps(eps_list, temperature=T)``: the standardised noises and back.

    Arguments:
        levels: the :class:`Level` sequence.
        top_prior: prior of the final output (e.g. ``LearnedTop((C, H, W))``).

    References:
        Kingma & Dhariwal, Glow arXiv:1807.03039; Dinh et al., RealNVP arXiv:1605.08803;
        https://kexue.fm/archives/5807
    """

    def __init__(self, levels: Sequence[Level], top_prior: Prior) -> None:
        super().__init__()
        levels = list(levels)
        if not levels:
            raise ValueError("levels must be a non-empty sequence of Level")
        for i, level in enumerate(levels):
            if not isinstance(level, Level):
                raise ValueError(f"levels[{i}] must be a Level, got {type(level).__name__}")
        if not isinstance(top_prior, Prior):
            raise ValueError(f"top_prior must be a Prior, got {type(top_prior).__name__}")
        self.levels = nn.ModuleList(levels)
        self.top_prior = top_prior

    @property
    def num_latents(self) -> int:
        """Length of ``z_list``: one per split, plus the top latent."""
        return sum(level.split is not None for level in self.levels) + 1

    def _encode(
        self, x: Tensor, context: Tensor | None
    ) -> tuple[list[Tensor], list[Tensor], Tensor, Tensor]:
        _check_finite(x, "x")  # every public encoder (forward, log_prob, eps, bpd) runs this once
        h = x
        z_list: list[Tensor] = []
        keeps: list[Tensor] = []
        logdet = zero_logdet(x)
        log_p = zero_logdet(x)
        for level in self.levels:
            h, ld = level.transform(h, context)
            logdet = logdet + ld
            if level.split is not None:
                h, z, lp = level.split(h, context)
                z_list.append(z)
                keeps.append(h)
                log_p = log_p + lp
        z_list.append(h)
        return z_list, keeps, logdet, log_p

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[list[Tensor], Tensor]:
        """``(z_list, logdet)``; see the class docstring."""
        z_list, _, logdet, _ = self._encode(x, context)
        return z_list, logdet

    def _check_list(self, z_list: Sequence[Tensor], name: str) -> None:
        if not isinstance(z_list, (list, tuple)) or len(z_list) != self.num_latents:
            got = len(z_list) if isinstance(z_list, (list, tuple)) else type(z_list).__name__
            raise ValueError(f"{name} must be a list of {self.num_latents} tensors, got {got}")

    def inverse(
        self, z_list: Sequence[Tensor], context: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Reconstruct ``x`` from ``z_list`` (exact): ``(x, logdet_inv)``."""
        self._check_list(z_list, "z_list")
        for i, z in enumerate(z_list):
            _check_finite(z, f"z_list[{i}]")
        h = z_list[-1]
        k = len(z_list) - 2
        logdet = zero_logdet(h)
        for level in reversed(self.levels):
            if level.split is not None:
                h = level.split.inverse(h, z_list[k])
                k -= 1
            h, ld = level.transform.inverse(h, context)
            logdet = logdet + ld
        return h, logdet

    def log_prob(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """``log p_top(z_top) + Σ_i log p(z_i | h_i) + logdet`` per sample, shape (B,)."""
        z_list, _, logdet, log_p = self._encode(x, context)
        return self.top_prior.log_prob(z_list[-1], context) + log_p + logdet

    def eps(self, x: Tensor, context: Tensor | None = None) -> list[Tensor]:
        """Standardised noises ``[ε_1, …, ε_top]`` of x (the top one needs a Gaussian prior)."""
        if not isinstance(self.top_prior, GaussianPrior):
            raise ValueError("eps needs a Gaussian top_prior")
        z_list, keeps, _, _ = self._encode(x, context)
        splits = [lv.split for lv in self.levels if lv.split is not None]
        out = [s.eps(z, h, context) for s, z, h in zip(splits, z_list[:-1], keeps)]
        out.append(self.top_prior.eps(z_list[-1], context))
        return out

    def from_eps(
        self,
        eps_list: Sequence[Tensor],
        *,
        temperature: float = 1.0,
        context: Tensor | None = None,
    ) -> Tensor:
        """Decode standardised noises: every ``z_i = μ_i + σ_i·T·ε_i``, then invert."""
        _check_temperature(temperature)
        self._check_list(eps_list, "eps_list")
        if not isinstance(self.top_prior, GaussianPrior):
            raise ValueError("from_eps needs a Gaussian top_prior")
        h = self.top_prior.from_eps(eps_list[-1], context, temperature)
        return self._decode(
            h,
            lambda split, h_keep, k: split.from_eps(eps_list[k], h_keep, temperature, context),
            context,
        )

    def _decode(
        self,
        h: Tensor,
        make_z: Callable[[Split, Tensor, int], Tensor],
        context: Tensor | None,
    ) -> Tensor:
        """Invert the levels from the top latent ``h``; ``make_z(split, h_keep, k)`` gives z_k."""
        k = self.num_latents - 2
        for level in reversed(self.levels):
            if level.split is not None:
                h = level.split.inverse(h, make_z(level.split, h, k))
                k -= 1
            h, _ = level.transform.inverse(h, context)
        return h

    def sample(
        self,
        n: int,
        *,
        temperature: float = 1.0,
        context: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Sample x: the top z and every level's z_i drawn at ``temperature``."""
        _check_temperature(temperature)
        h = self.top_prior.sample(n, temperature=temperature, context=context, generator=generator)
        return self._decode(
            h,
            lambda split, h_keep, k: split.sample(
                h_keep, temperature=temperature, generator=generator, context=context
            ),
            context,
        )
