"""Non-finite gradient policy of the transform chain: skip (optax ``apply_if_finite``) or raise.

``extend(opt, NonFinite("skip"), GradClip(1.0), ...)``: before any other transform, one device flag
f = all(isfinite(‖g‖_∞)) over every gradient of the optimizer (the max-norm cannot overflow; NaN
and ±inf propagate into it). With ``"skip"`` the step still runs — deciding on the host whether to
run it would need a device→host synchronisation — but afterwards every parameter that had a
gradient, its optimizer state and the tensors other transforms declare (Lookahead's slow weights)
are put back, θ ← where(apply, θ_new, θ_old), so a skipped step leaves them bitwise unchanged
(state created by the step, e.g. Adam's moments at the first step, goes back to zeros, its initial
value). optax semantics: ``apply = f or consecutive > max_consecutive``: after more than
``max_consecutive`` non-finite steps in a row the update is applied anyway (``None``: never).
Counters (``nonfinite_consecutive``, ``nonfinite_total``, ``last_finite``) stay on the device and
are checkpointed with the chain. ``"raise"`` reads the flag back (one host sync per step) and raises
``FloatingPointError`` naming the parameters, before the optimizer touches anything.

Not restored: host-side counters (a ``LambdaLR`` scheduler's epoch, :class:`LRMultiplier`'s and
:class:`Lookahead`'s step counts), which count the skipped step, and optimizer state tensors on
another device than the gradients (torch Adam's CPU ``step`` for CUDA parameters when not
``capturable``/``fused``): restoring those would need a synchronisation.

References:
    optax ``apply_if_finite``; edm2 ``force_finite`` (zeroes NaN/inf gradients instead);
    ``torch.amp.GradScaler`` (skips the step after a host sync).
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import Tensor
from torch.optim import Optimizer

from kexue.keras_compat._ema_nonfinite import finite_flag

from ._chain import Transform, _all_params

__all__ = ["NonFinite"]


class NonFinite(Transform):
    """Skip (or raise on) optimizer steps whose gradients hold NaN/inf; must come first in the chain.

    Arguments:
        policy: ``"skip"`` (default; no host sync) or ``"raise"`` (one sync per step).
        max_consecutive: with ``"skip"``, apply a non-finite update anyway once more than this many
            consecutive steps were non-finite (optax ``max_consecutive_errors``); ``None`` (default)
            skips for ever.

    Attributes:
        consecutive / total / last_finite: device counters (int64, int64, bool), as optax's
            ``notfinite_count``, ``total_notfinite`` and ``last_finite``.

    Example:
        >>> handle = extend(opt, NonFinite("skip"), GradClip(max_norm=1.0, scope="global"))
        >>> loss.backward(); opt.step()  # a NaN gradient: parameters and Adam moments unchanged
        >>> int(handle.transforms[0].total)  # read when logging, not every step
        1
    """

    wraps_step = True

    def __init__(
        self, policy: Literal["skip", "raise"] = "skip", *, max_consecutive: int | None = None
    ) -> None:
        super().__init__()
        if policy not in ("skip", "raise"):
            raise ValueError(f"policy: expected 'skip' or 'raise', got {policy!r}")
        if max_consecutive is not None and (
            isinstance(max_consecutive, bool)
            or not isinstance(max_consecutive, int)
            or max_consecutive < 0
        ):
            raise ValueError(
                f"max_consecutive: expected None or an int >= 0, got {max_consecutive!r}"
            )
        self.policy = policy
        self.max_consecutive = max_consecutive
        self.consecutive = torch.zeros((), dtype=torch.int64)
        self.total = torch.zeros((), dtype=torch.int64)
        self.last_finite = torch.ones((), dtype=torch.bool)
        self._apply: Tensor | None = None
        self._saved: list[tuple[Tensor, Tensor]] = []
        self._created: list[tuple[dict[str, Any], str]] = []

    def _params(self, optimizer: Optimizer) -> list[Tensor]:
        return [p for p in _all_params(optimizer) if p.grad is not None]

    def pre_step(self, optimizer: Optimizer) -> None:
        params = self._params(optimizer)
        if not params:
            self._apply = None
            return
        device = params[0].grad.device
        by_kind: dict[tuple[torch.device, torch.dtype], list[Tensor]] = {}
        for p in params:
            by_kind.setdefault((p.grad.device, p.grad.dtype), []).append(p.grad)
        flag = finite_flag(list(by_kind.values()), device)
        if self.policy == "raise":
            if not bool(flag):  # the one host sync of the raise policy
                bad = [
                    self._names.get(id(p), f"param{i}")
                    for i, p in enumerate(params)
                    if not bool(torch.isfinite(p.grad).all())
                ]
                raise FloatingPointError(
                    f"NonFinite: non-finite gradients (NaN/inf) in {len(bad)} parameter(s): "
                    f"{bad[:8]}; the optimizer step was not taken"
                )
            self._apply = None
            return
        for name in ("consecutive", "total", "last_finite"):
            t = getattr(self, name)
            if t.device != device:
                setattr(self, name, t.to(device))
        bad = (~flag).to(torch.int64)
        self.consecutive.add_(1).mul_(bad)
        self.total.add_(bad)
        self.last_finite.copy_(flag)
        apply = flag
        if self.max_consecutive is not None:
            apply = flag | (self.consecutive > self.max_consecutive)
        self._apply = apply
        self._saved = [(p, p.detach().clone()) for p in params]
        self._created = []
        for p in params:
            state = optimizer.state.get(p, {})
            if not state:
                self._created.append((optimizer.state[p], "*"))
            for v in state.values():
                if isinstance(v, Tensor) and v.device == device:
                    self._saved.append((v, v.clone()))

    def protect(self, tensors: list[Tensor]) -> None:
        """Also restore ``tensors`` (other transforms' state, e.g. Lookahead's slow weights)."""
        if self._apply is not None:
            self._saved.extend((t, t.clone()) for t in tensors)

    def finish(self, optimizer: Optimizer) -> None:
        """After every post-step transform: put back what a skipped step changed."""
        apply, self._apply = self._apply, None
        if apply is None:
            return
        for live, old in self._saved:
            live.copy_(torch.where(apply.to(live.device), live, old))
        for state, _ in self._created:  # state created by this step: back to its zero start
            for v in state.values():
                if isinstance(v, Tensor) and v.device == apply.device:
                    v.copy_(torch.where(apply, v, torch.zeros_like(v)))
        self._saved, self._created = [], []

    def state_dict(self) -> dict[str, Any]:
        return {
            "nonfinite_consecutive": self.consecutive.clone(),
            "nonfinite_total": self.total.clone(),
            "last_finite": self.last_finite.clone(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.consecutive = state["nonfinite_consecutive"].clone()
        self.total = state["nonfinite_total"].clone()
        self.last_finite = state["last_finite"].clone()
