"""Checkpoints of :class:`~kexue.keras_compat.ema.EMA`: ``state_dict`` / ``load_state_dict``.

The state of 0.2 adds ``num_calls``, ``t`` (averaged steps), ``last_call`` and, with
``skip_nonfinite``, the non-finite counters; a 0.1 state (without them) loads as an EMA that
averaged at every call. Loading refuses floating tensors with NaN/inf unless told otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.modules.utils import consume_prefix_in_state_dict_if_present

from kexue.keras_compat._ema_nonfinite import NonFiniteGuard, check_finite_state
from kexue.keras_compat._ema_warmup import WarmupSpec, decay_over

__all__ = ["EMACheckpoint"]

_PREFIXES = ("module.", "_orig_mod.")


class EMACheckpoint:
    """Mixin: the checkpoint methods of :class:`~kexue.keras_compat.ema.EMA`."""

    module: nn.Module
    num_updates: int
    num_calls: int
    decay: float
    init: str
    buffers: str
    warmup: WarmupSpec
    gamma: float | None
    _t: int | Tensor
    _last_call: int
    _decay_product: float | Tensor
    _guard: NonFiniteGuard | None

    def state_dict(self) -> dict[str, Any]:
        """``{"module": shadow state_dict (unwrapped names), "num_updates", "num_calls", "t",
        "last_call", "decay_product", "decay", "init", "buffers"}`` (+ the non-finite counters
        with ``skip_nonfinite``); ``decay``, ``init`` and ``buffers`` are informational."""
        state: dict[str, Any] = {
            "module": self.module.state_dict(),
            "num_updates": self.num_updates,
            "num_calls": self.num_calls,
            "t": self._t.clone() if isinstance(self._t, Tensor) else self._t,
            "last_call": self._last_call,
            "decay_product": (
                self._decay_product.clone()
                if isinstance(self._decay_product, Tensor)
                else self._decay_product
            ),
            "decay": self.decay,
            "init": self.init,
            "buffers": self.buffers,
        }
        if self._guard is not None:
            state.update(self._guard.state_dict())
        return state

    def load_state_dict(
        self, state_dict: Mapping[str, Any], *, allow_nonfinite: bool = False
    ) -> None:
        """Load :meth:`state_dict` output, or a bare model / ``AveragedModel`` state dict.

        ``module.`` (DDP, ``AveragedModel``) and ``_orig_mod.`` (``torch.compile``) prefixes are
        stripped with ``consume_prefix_in_state_dict_if_present`` when the names do not match as
        they are. Hyperparameters (decay, warm-up, policy) stay those of the constructor. A bare
        dict keeps ``num_updates`` unless it carries ``AveragedModel``'s ``n_averaged``
        (num_updates = n_averaged − 1: its first average is the copy). A 0.1 state (without
        ``num_calls`` / ``t``) loads as ``num_calls = t = num_updates`` (it averaged every call).

        Raises:
            ValueError: when a floating tensor holds NaN/inf (a poisoned average), unless
                ``allow_nonfinite=True``.
        """
        if not isinstance(state_dict, Mapping):
            raise ValueError(f"state_dict must be a mapping, got {type(state_dict).__name__}")
        full = isinstance(state_dict.get("module"), Mapping)
        weights = dict(state_dict["module"] if full else state_dict)
        n_averaged = None if full else weights.pop("n_averaged", None)
        if not allow_nonfinite:
            check_finite_state(weights, "EMA.load_state_dict")
        expected = set(self.module.state_dict())
        for _ in range(4):
            if set(weights) == expected:
                break
            for prefix in _PREFIXES:
                consume_prefix_in_state_dict_if_present(weights, prefix)  # type: ignore[arg-type]
        self.module.load_state_dict(weights)
        if full:
            self.num_updates = int(state_dict.get("num_updates", 0))
            self.num_calls = int(state_dict.get("num_calls", self.num_updates))
            self._last_call = int(state_dict.get("last_call", self.num_calls))
            self._set_t(state_dict.get("t", self.num_updates))
            product = state_dict.get("decay_product")
            self._set_product(product if product is not None else self._product())
            if self._guard is not None:
                self._guard.load_state_dict(state_dict)
        elif n_averaged is not None:
            self.num_updates = self.num_calls = self._last_call = max(int(n_averaged) - 1, 0)
            self._set_t(self.num_updates)
            self._set_product(self._product())

    def _set_t(self, t: int | Tensor) -> None:
        if isinstance(self._t, Tensor):
            self._t.copy_(torch.as_tensor(t, dtype=torch.float64))
        else:
            self._t = int(t)

    def _set_product(self, product: float | Tensor) -> None:
        if isinstance(self._decay_product, Tensor):
            self._decay_product.copy_(torch.as_tensor(product, dtype=torch.float64))
        else:
            self._decay_product = float(product)

    def _product(self) -> float:
        return math.prod(
            float(decay_over(self.warmup, self.decay, self.gamma, "update", t - 1, 1))
            for t in range(1, self.num_updates + 1)
        )
