"""EMA warm-up laws: the decay used at the t-th update of an :class:`~kexue.keras_compat.ema.EMA`.

One law, decay_t = clamp(1 − (1 + t/γ)^−p, min_decay, decay) (timm ``ModelEmaV3``, ema-pytorch),
and the torch-ema preset min(decay, (1 + t)/(10 + t)), which is the same law with γ = 9, p = 1
evaluated one step later. Step-offset convention: **t is the 1-based index of the update being
made** (t = 1 at the first call of ``EMA.update()``, i.e. ``num_updates`` after the update), which
is timm's ``step=num_updates`` after ``num_updates += 1``, ema-pytorch's ``step − 1`` (its first
call only initialises the copy) with ``update_after_step=0, update_every=1``, and torch-ema's
``num_updates`` after its increment. With ``update_after_step = a`` t counts the steps after the
a-th.

With ``update_every = k > 1`` or a power-function profile an update covers several optimiser steps:
:func:`decay_over` gives the decay of an update that advances the averaged step count from
``t_prev`` to ``t_prev + delta``, on the host (Python floats) or on the device (a tensor
``t_prev``, used by ``EMA(skip_nonfinite=True)`` so that no value is read back).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

__all__ = [
    "EMAWarmup",
    "WarmupSpec",
    "check_decay",
    "check_warmup",
    "decay_over",
    "warmup_decay",
]


@dataclass(frozen=True)
class EMAWarmup:
    """Inverse-gamma EMA warm-up: decay_t = clamp(1 − (1 + t/γ)^−p, min_decay, decay).

    With γ = 1 and p = 2/3 (the defaults of timm and ema-pytorch) the decay reaches 0.999 after
    about 31 600 updates; p = 3/4 reaches 0.9999 after about 215 000 (ema-pytorch's advice for
    long runs). t is the 1-based index of the update (see the module docstring).

    Arguments:
        gamma: γ > 0 (``inv_gamma`` in ema-pytorch, ``warmup_gamma`` in timm); default 1.0.
        power: p > 0 (``power`` / ``warmup_power``); default 2/3.
        min_decay: lower clamp in [0, 1] (``min_value`` / ``min_decay``); default 0.0.

    References:
        timm ``ModelEmaV3``; lucidrains ema-pytorch ``EMA.get_current_decay``;
        Karras et al., "Analyzing and Improving the Training Dynamics of Diffusion Models",
        arXiv 2312.02696 (power-function EMA profiles).
    """

    gamma: float = 1.0
    power: float = 2.0 / 3.0
    min_decay: float = 0.0

    def __post_init__(self) -> None:
        for name in ("gamma", "power"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
        check_decay(self.min_decay, "min_decay")

    def value(self, step: int, decay: float) -> float:
        """decay_t for the ``step``-th update (1-based), capped at ``decay``."""
        raw = 1.0 - (1.0 + step / self.gamma) ** (-self.power)
        return min(max(raw, self.min_decay), decay)


WarmupSpec = EMAWarmup | Literal["torch_ema"] | None


def warmup_decay(warmup: WarmupSpec, step: int, decay: float) -> float:
    """The decay used at the ``step``-th update (1-based) under ``warmup``.

    ``None``: the fixed ``decay``; an :class:`EMAWarmup`: its law; ``"torch_ema"``:
    min(decay, (1 + step)/(10 + step)) (fadel/torch_ema ``use_num_updates=True``).
    """
    if warmup is None:
        return decay
    if warmup == "torch_ema":
        return min(decay, (1.0 + step) / (10.0 + step))
    return warmup.value(step, decay)


def check_warmup(warmup: object) -> WarmupSpec:
    """Validate the ``warmup`` argument of ``EMA``."""
    if warmup is None or isinstance(warmup, EMAWarmup) or warmup == "torch_ema":
        return warmup  # type: ignore[return-value]
    raise ValueError(f"warmup must be None, an EMAWarmup or 'torch_ema', got {warmup!r}")


def check_decay(decay: object, name: str = "decay") -> float:
    """``float(decay)`` if it is a real number in [0, 1], else a ValueError naming ``name``."""
    if isinstance(decay, bool) or not isinstance(decay, (int, float)):
        raise ValueError(f"{name} must be a float in [0, 1], got {decay!r}")
    value = float(decay)
    if not (0.0 <= value <= 1.0):  # also rejects NaN
        raise ValueError(f"{name} must lie in [0, 1], got {decay!r}")
    return value


def _law_tensor(warmup: WarmupSpec, t: Tensor, decay: float) -> Tensor:
    if warmup is None:
        return torch.full_like(t, decay)
    if warmup == "torch_ema":
        return ((1.0 + t) / (10.0 + t)).clamp(max=decay)
    raw = 1.0 - (1.0 + t / warmup.gamma) ** (-warmup.power)
    return raw.clamp(min=warmup.min_decay, max=decay)


def decay_over(
    warmup: WarmupSpec,
    decay: float,
    gamma: float | None,
    per: Literal["update", "step"],
    t_prev: int | Tensor,
    delta: int,
) -> float | Tensor:
    """Decay β of an update that advances the averaged step count from ``t_prev`` to
    ``t = t_prev + delta``.

    - power profile (``gamma`` given): β = (t_prev / t)^(γ+1) = (1 − Δ/t)^(γ+1) (edm2
      ``power_function_beta``; β = 0 at the first update, a copy);
    - ``per="update"``: the law at t, once per update (ema-pytorch: not compensated for Δ);
    - ``per="step"``: Π_{j=t_prev+1}^{t} law(j) (m^Δ for a fixed decay): the per-step EMA of a
      parameter held constant between updates.

    A tensor ``t_prev`` (float64, on the shadow's device) gives a 0-d tensor, computed on the device.
    """
    t = t_prev + delta
    if isinstance(t_prev, Tensor):
        if gamma is not None:
            return (t_prev / t) ** (gamma + 1.0)
        if per == "update":
            return _law_tensor(warmup, t, decay)
        if warmup is None:
            return torch.full_like(t_prev, decay**delta)
        js = t_prev + torch.arange(1, delta + 1, dtype=t_prev.dtype, device=t_prev.device)
        return _law_tensor(warmup, js, decay).prod()
    if gamma is not None:
        return (t_prev / t) ** (gamma + 1.0)
    if per == "update":
        return warmup_decay(warmup, t, decay)
    if warmup is None:
        return decay**delta
    return math.prod(warmup_decay(warmup, j, decay) for j in range(t_prev + 1, t + 1))
