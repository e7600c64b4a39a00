"""Helpers of :class:`~kexue.keras_compat.ema.EMA`: unwrapping, argument checks, devices."""

from __future__ import annotations

import sys

import torch
from torch import Tensor, nn

from kexue.keras_compat._ema_warmup import WarmupSpec
from kexue.keras_compat._power import gamma_to_sigma_rel, sigma_rel_to_gamma

__all__ = ["unwrap_model"]


def unwrap_model(model: nn.Module) -> nn.Module:
    """Strip ``DistributedDataParallel`` / ``DataParallel`` (``.module``) and ``torch.compile``
    (``._orig_mod``) wrappers, repeatedly; any other module is returned as is."""
    wrappers: tuple[type, ...] = (nn.DataParallel, nn.parallel.DistributedDataParallel)
    # A torch.compile wrapper can only exist once torch._dynamo is imported: look it up without
    # importing it (the import costs ~1 s and ~70 MiB on first use).
    compiled = sys.modules.get("torch._dynamo.eval_frame")
    compiled_type = getattr(compiled, "OptimizedModule", None)
    while True:
        if isinstance(model, wrappers):
            model = model.module
        elif compiled_type is not None and isinstance(model, compiled_type):
            model = model._orig_mod
        else:
            return model


def _averageable(t: Tensor) -> bool:
    return t.is_floating_point() or t.is_complex()


def _check_int(value: object, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return value


def _power_gamma(sigma_rel: float | None, gamma: float | None, warmup: WarmupSpec) -> float | None:
    if sigma_rel is not None and gamma is not None:
        raise ValueError("give sigma_rel or gamma, not both")
    if sigma_rel is None and gamma is None:
        return None
    if warmup is not None:
        raise ValueError("a power profile (sigma_rel / gamma) has no warmup law; pass warmup=None")
    if gamma is not None:
        gamma_to_sigma_rel(gamma)  # validates gamma > 0
        return float(gamma)
    return sigma_rel_to_gamma(sigma_rel)  # type: ignore[arg-type]


def _home_device(shadow: nn.Module, live: nn.Module) -> torch.device:
    for t in (*shadow.parameters(), *shadow.buffers(), *live.parameters()):
        return t.device
    return torch.device("cpu")
