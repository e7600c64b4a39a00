"""Piecewise-linear learning-rate multipliers (bert4keras ``piecewise_linear`` / ``lr_schedule``).

References:
    bert4keras ``backend.piecewise_linear`` and ``extend_with_piecewise_linear_lr``,
    https://github.com/bojone/bert4keras
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import numpy as np

__all__ = ["piecewise_linear"]


def piecewise_linear(
    schedule: Mapping[int, float], from_zero: bool = True
) -> Callable[[int], float]:
    """Piecewise-linear multiplier ``step -> value`` through the knots of ``schedule``.

    Linear interpolation between the sorted knots ``{step: value}``; constant before the first and
    after the last knot. With ``from_zero=True`` a ``(0, 0.0)`` knot is prepended when the schedule
    does not start at step 0 (bert4keras semantics), i.e. a linear warm-up from 0. E.g.
    ``{1000: 1, 2000: 0.1}`` gives 0, 0.5, 1, 0.55, 0.1, 0.1 at steps 0, 500, 1000, 1500, 2000,
    3000. bert4keras's default schedule is ``{0: 1}`` (constant 1).

    Arguments:
        schedule: ``{step: multiplier}``, non-empty, integer steps ≥ 0, finite values.
        from_zero: Prepend the ``(0, 0)`` knot when step 0 is absent.

    Returns:
        A callable for ``torch.optim.lr_scheduler.LambdaLR`` or :class:`LRMultiplier`.

    Example:
        >>> sched = LambdaLR(opt, piecewise_linear({1000: 1.0, 2000: 0.1}))
    """
    if not isinstance(schedule, Mapping) or not schedule:
        raise ValueError(f"schedule: expected a non-empty mapping step -> value, got {schedule!r}")
    knots = []
    for step, value in schedule.items():
        if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 0:
            raise ValueError(f"schedule: steps must be integers >= 0, got {step!r}")
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
        ):
            raise ValueError(f"schedule: values must be finite numbers, got {value!r} at {step}")
        knots.append((int(step), float(value)))
    knots.sort()
    if from_zero and knots[0][0] != 0:
        knots.insert(0, (0, 0.0))
    xs = np.array([k for k, _ in knots], dtype=np.float64)
    ys = np.array([v for _, v in knots], dtype=np.float64)

    def multiplier(step: int) -> float:
        return float(np.interp(float(step), xs, ys))

    multiplier.knots = knots  # type: ignore[attr-defined]
    return multiplier
