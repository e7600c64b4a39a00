"""Non-finite guard of :class:`~kexue.keras_compat.ema.EMA` (``skip_nonfinite=True``), without host
synchronisation in the update.

One device flag per update, f = all(isfinite(‖θ_i‖_∞)) over the live floating tensors (the
max-norm cannot overflow, and NaN / ±inf propagate into it); the EMA then lerps towards
where(f, θ, Θ), so a bad update leaves Θ bitwise unchanged (``weight·f`` would not: 0·NaN = NaN).
The counters stay on the device (optax ``apply_if_finite``: ``notfinite_count`` — consecutive,
reset by a finite update — ``total_notfinite`` and ``last_finite``); only the optional limit check
reads one of them back, every ``check_every`` updates.

References:
    optax ``apply_if_finite``; ultralytics PR #24307 / issue #24615 (an EMA poisoned by NaN).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

__all__ = ["NonFiniteGuard", "check_finite_state", "finite_flag"]


def finite_flag(groups: Sequence[Sequence[Tensor]], device: torch.device) -> Tensor:
    """0-d bool tensor on ``device``: every element of every tensor is finite (no host sync)."""
    norms = [
        n.to(device=device, dtype=torch.float32)
        for tensors in groups
        if tensors
        for n in torch._foreach_norm(list(tensors), float("inf"))
    ]
    if not norms:
        return torch.ones((), dtype=torch.bool, device=device)
    return torch.isfinite(torch.stack(norms)).all()


class NonFiniteGuard:
    """Device counters of non-finite updates and the optional limit.

    Attributes:
        consecutive: non-finite updates since the last finite one (0-d int64 tensor).
        total: non-finite updates ever (never reset).
        last_finite: call index of the last finite update (0 before any).
    """

    def __init__(self, device: torch.device, max_consecutive: int | None, check_every: int) -> None:
        for name, value, low in (
            ("max_consecutive_nonfinite", max_consecutive, 0),
            ("check_every", check_every, 1),
        ):
            if value is None and name == "max_consecutive_nonfinite":
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        self.max_consecutive = max_consecutive
        self.check_every = check_every
        zero = torch.zeros((), dtype=torch.int64, device=device)
        self.consecutive, self.total, self.last_finite = zero.clone(), zero.clone(), zero.clone()

    def record(self, flag: Tensor, call: int) -> None:
        """Advance the counters by one update whose finiteness is ``flag`` (on device)."""
        bad = (~flag).to(torch.int64)
        self.consecutive.add_(1).mul_(bad)
        self.total.add_(bad)
        self.last_finite.copy_(torch.where(flag, call, self.last_finite))

    def check(self, call: int) -> None:
        """Every ``check_every`` calls (one host sync), raise past ``max_consecutive`` bad updates."""
        if self.max_consecutive is None or call % self.check_every:
            return
        n = int(self.consecutive)
        if n > self.max_consecutive:
            raise FloatingPointError(
                f"EMA: {n} consecutive updates saw non-finite model weights (NaN/inf), more than "
                f"max_consecutive_nonfinite={self.max_consecutive}; the average was left unchanged "
                f"since update {int(self.last_finite)}"
            )

    def state_dict(self) -> dict[str, Any]:
        return {
            "nonfinite_consecutive": self.consecutive.clone(),
            "nonfinite_total": self.total.clone(),
            "last_finite": self.last_finite.clone(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for key, attr in (
            ("nonfinite_consecutive", self.consecutive),
            ("nonfinite_total", self.total),
            ("last_finite", self.last_finite),
        ):
            if key in state:
                attr.copy_(torch.as_tensor(state[key]))


def check_finite_state(weights: Mapping[str, Any], what: str) -> None:
    """Raise ``ValueError`` naming the floating tensors of ``weights`` that hold NaN or inf."""
    bad = [
        name
        for name, v in weights.items()
        if isinstance(v, Tensor) and v.is_floating_point() and not bool(torch.isfinite(v).all())
    ]
    if bad:
        raise ValueError(
            f"{what}: non-finite values (NaN/inf) in {len(bad)} tensor(s): {bad[:8]}; refusing to "
            "load a poisoned average (pass allow_nonfinite=True to load it anyway)"
        )
