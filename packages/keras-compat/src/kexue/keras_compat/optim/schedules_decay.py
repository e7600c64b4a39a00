"""Warm-up + decay learning-rate multipliers: cosine / linear / polynomial, warm restarts, joins.

Every function returns a callable ``step -> multiplier`` (peak = 1), for
``torch.optim.lr_scheduler.LambdaLR`` (see :func:`as_scheduler`, which also honours per-group
``lr_scale``) or for :class:`~kexue.keras_compat.optim.LRMultiplier` inside the transform chain.
Steps are 0-based optimizer steps.

Formulas (optax @2edbcbe, timm @aa4b585 ``CosineLRScheduler``):

- linear warm-up: init + (1 − init)·t/w for t < w (optax ``linear_schedule``, timm
  ``warmup_lr_init``);
- cosine decay over T: (1 − α)·(½(1 + cos(π·min(t, T)/T)))^p + α, α = ``end`` (optax
  ``cosine_decay_schedule``);
- linear decay: 1 + min(t, T)/T·(end − 1); polynomial: (1 − end)(1 − min(t, T)/T)^p + end (optax
  ``polynomial_schedule``);
- warm restarts (SGDR, timm cycles): cycle i of length T·mult^i with peak decay^i.

References:
    Loshchilov & Hutter, SGDR, arXiv 1608.03983; optax ``warmup_cosine_decay_schedule``,
    ``join_schedules``; timm ``CosineLRScheduler``; Goyal et al. (linear warm-up), arXiv 1706.02677.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Literal

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

__all__ = [
    "as_scheduler",
    "cosine_decay",
    "cosine_restarts",
    "join_schedules",
    "linear_decay",
    "polynomial_decay",
    "warmup_cosine",
    "warmup_linear",
    "warmup_polynomial",
    "with_warmup",
]

Schedule = Callable[[int], float]


def _num(value: object, name: str, low: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name}: expected a finite number, got {value!r}")
    if low is not None and value < low:
        raise ValueError(f"{name}: expected >= {low}, got {value!r}")
    return float(value)


def _steps(value: object, name: str, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name}: expected an integer >= {low}, got {value!r}")
    return value


def cosine_decay(steps: int, end: float = 0.0, exponent: float = 1.0) -> Schedule:
    """(1 − end)·(½(1 + cos(π·min(t, T)/T)))^exponent + end over T = ``steps`` (optax
    ``cosine_decay_schedule`` with init 1, alpha = end)."""
    T, a, p = _steps(steps, "steps"), _num(end, "end"), _num(exponent, "exponent", 0.0)

    def fn(t: int) -> float:
        frac = min(max(t, 0), T) / T
        return (1.0 - a) * (0.5 * (1.0 + math.cos(math.pi * frac))) ** p + a

    return fn


def linear_decay(steps: int, end: float = 0.0) -> Schedule:
    """1 + min(t, T)/T·(end − 1) over T = ``steps`` (optax ``linear_schedule`` from 1)."""
    T, a = _steps(steps, "steps"), _num(end, "end")
    return lambda t: 1.0 + min(max(t, 0), T) / T * (a - 1.0)


def polynomial_decay(steps: int, end: float = 0.0, power: float = 1.0) -> Schedule:
    """(1 − end)·(1 − min(t, T)/T)^power + end (optax ``polynomial_schedule``, timm
    ``PolyLRScheduler``)."""
    T, a, p = _steps(steps, "steps"), _num(end, "end"), _num(power, "power", 0.0)
    return lambda t: (1.0 - a) * (1.0 - min(max(t, 0), T) / T) ** p + a


def with_warmup(fn: Schedule, warmup: int, init: float = 0.0) -> Schedule:
    """Linear warm-up from ``init`` to 1 over ``warmup`` steps, then ``fn(t − warmup)``."""
    if not callable(fn):
        raise ValueError(f"fn: expected a callable step -> multiplier, got {fn!r}")
    w, i = _steps(warmup, "warmup", 0), _num(init, "init")
    if w == 0:
        return fn
    return lambda t: i + (1.0 - i) * t / w if t < w else float(fn(t - w))


def join_schedules(schedules: Sequence[Schedule], boundaries: Sequence[int]) -> Schedule:
    """optax ``join_schedules``: schedule k runs on [b_{k−1}, b_k) at step t − b_{k−1}."""
    if len(schedules) != len(boundaries) + 1 or not schedules:
        raise ValueError(
            f"schedules/boundaries: need len(schedules) == len(boundaries) + 1, got "
            f"{len(schedules)} and {len(boundaries)}"
        )
    bounds = [_steps(b, "boundaries", 0) for b in boundaries]
    if bounds != sorted(bounds):
        raise ValueError(f"boundaries: expected increasing steps, got {list(boundaries)}")

    def fn(t: int) -> float:
        start = 0
        for k, b in enumerate(bounds):
            if t < b:
                return float(schedules[k](t - start))
            start = b
        return float(schedules[-1](t - start))

    return fn


def warmup_cosine(
    warmup: int,
    total: int,
    init: float = 0.0,
    end: float = 0.0,
    exponent: float = 1.0,
    convention: Literal["optax", "timm", "timm_prefix"] = "optax",
) -> Schedule:
    """Linear warm-up then cosine decay to ``end``, reached at step ``total`` in every convention.

    - ``"optax"`` / ``"timm_prefix"``: the cosine runs over [warmup, total] (optax
      ``warmup_cosine_decay_schedule(init, 1, warmup, total, end, exponent)`` — its ``decay_steps``
      includes the warm-up; timm ``warmup_prefix=True`` with ``t_initial = total − warmup``);
    - ``"timm"``: the cosine runs on the absolute step over [0, total] and the warm-up overrides
      its first ``warmup`` steps (timm's default ``warmup_prefix=False``, ``t_initial = total``),
      so part of the decay has elapsed when the warm-up ends.

    ``exponent`` is optax's (timm has none: use 1 with the timm conventions).
    """
    w, T = _steps(warmup, "warmup", 0), _steps(total, "total")
    if w >= T:
        raise ValueError(f"warmup: expected < total ({total}), got {warmup!r}")
    if convention in ("optax", "timm_prefix"):
        return with_warmup(cosine_decay(T - w, end, exponent), w, init)
    if convention != "timm":
        raise ValueError(
            f"convention: expected 'optax', 'timm' or 'timm_prefix', got {convention!r}"
        )
    cos = cosine_decay(T, end, exponent)
    i = _num(init, "init")
    return lambda t: i + (1.0 - i) * t / w if t < w else cos(t)


def warmup_linear(warmup: int, total: int, init: float = 0.0, end: float = 0.0) -> Schedule:
    """Linear warm-up to 1 at ``warmup``, then linear decay to ``end`` at ``total``."""
    w, T = _steps(warmup, "warmup", 0), _steps(total, "total")
    if w >= T:
        raise ValueError(f"warmup: expected < total ({total}), got {warmup!r}")
    return with_warmup(linear_decay(T - w, end), w, init)


def warmup_polynomial(
    warmup: int, total: int, power: float = 1.0, init: float = 0.0, end: float = 0.0
) -> Schedule:
    """Linear warm-up to 1 at ``warmup``, then polynomial decay of ``power`` to ``end`` at
    ``total``."""
    w, T = _steps(warmup, "warmup", 0), _steps(total, "total")
    if w >= T:
        raise ValueError(f"warmup: expected < total ({total}), got {warmup!r}")
    return with_warmup(polynomial_decay(T - w, end, power), w, init)


def cosine_restarts(
    period: int,
    *,
    mult: float = 1.0,
    decay: float = 1.0,
    end: float = 0.0,
    cycles: int | None = None,
) -> Schedule:
    """Cosine with warm restarts (SGDR; timm ``CosineLRScheduler`` cycles).

    Cycle i lasts T·mult^i steps and decays from decay^i to ``end``:
    end + ½(decay^i − end)(1 + cos(π·t_i/T_i)). After ``cycles`` cycles (default: never) the
    multiplier stays at ``end``. Compose with :func:`with_warmup` for a warm-up.
    """
    T = _steps(period, "period")
    m, d, a = _num(mult, "mult", 1.0), _num(decay, "decay", 0.0), _num(end, "end")
    limit = None if cycles is None else _steps(cycles, "cycles")

    def fn(t: int) -> float:
        t = max(t, 0)
        if m == 1.0:
            i, t_i, t_cur = t // T, float(T), float(t - T * (t // T))
        else:
            i = math.floor(math.log(1.0 - t / T * (1.0 - m), m))
            t_i = T * m**i
            t_cur = t - (1.0 - m**i) / (1.0 - m) * T
            if t_cur >= t_i:  # rounding at a cycle boundary
                i, t_cur, t_i = i + 1, t_cur - t_i, t_i * m
        if limit is not None and i >= limit:
            return a
        return a + 0.5 * (d**i - a) * (1.0 + math.cos(math.pi * t_cur / t_i))

    return fn


def as_scheduler(optimizer: Optimizer, fn: Schedule, last_epoch: int = -1) -> LambdaLR:
    """``LambdaLR`` running ``fn`` on every group, times the group's ``lr_scale`` (timm convention,
    see :func:`~kexue.keras_compat.optim.param_groups`); call ``.step()`` after each
    ``optimizer.step()``."""
    from ._groups import lr_scale_lambda

    return LambdaLR(optimizer, lr_scale_lambda(optimizer, fn), last_epoch=last_epoch)
