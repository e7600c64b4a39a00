"""Exponential moving average of the generator's weights (post 6575; the recipe of post 6583).

``Θ ← αΘ + (1 − α)θ`` after every optimiser step, ``Θ₀ = θ₀``; α = 0.999, optionally 0.9999
(post 6575). Θ is used for sampling and evaluation only, never fed back into training: EMA leaves
the optimisation path unchanged and averages the orbit of a non-converging GAN towards its
centre — "the most powerful" of the author's three fixes (post 6583). EMA of D is pointless
(post 6583): D's averaged weights are never used.

This is the minimal local helper of ``kexue-gan-losses``; it is meant to be replaced by the EMA of
``kexue-keras-compat`` once that lands (spec §5 q.10).

References:
    https://kexue.fm/archives/6575; https://kexue.fm/archives/6583;
    Yazıcı et al., "The Unusual Effectiveness of Averaging in GAN Training", arXiv 1806.04498.
"""

from __future__ import annotations

import copy
import math
import sys
from collections.abc import Mapping
from typing import Any, Literal

import torch
from torch import Tensor, nn

__all__ = ["GeneratorEMA", "unwrap_model"]

BufferPolicy = Literal["copy", "average", "ignore"]
_POLICIES = ("copy", "average", "ignore")


def unwrap_model(model: nn.Module) -> nn.Module:
    """Strip ``DistributedDataParallel`` / ``DataParallel`` (``.module``) and ``torch.compile``
    (``._orig_mod``) wrappers, repeatedly.

    Only these wrapper types are unwrapped: a user module that merely has a ``module``
    attribute is returned as is.
    """
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


class GeneratorEMA:
    """Shadow copy of a model whose weights track an exponential moving average.

    The shadow is a deep copy of the (unwrapped) model, ``Θ₀ = θ₀``, with ``requires_grad=False``
    on every parameter. It is available as :attr:`module` for sampling; ``GeneratorEMA`` itself is
    not an ``nn.Module``, so storing it on a model does not register the shadow as a submodule and
    it never reaches an optimiser built from ``model.parameters()`` (do not assign ``.module``
    itself to a training model's attribute).

    Each :meth:`update` does ``Θ ← αΘ + (1 − α)θ`` for floating parameters with
    ``torch._foreach_lerp_`` (one fused call per device and dtype). Buffers follow ``buffers``:
    ``"copy"`` (default; BN running statistics and spectral-norm ``u``, ``v`` taken from the live
    model), ``"average"`` (floating buffers lerped like parameters, as StudioGAN) or ``"ignore"``
    (kept from the initial copy). Integer buffers (``num_batches_tracked``) are always copied,
    never lerped.

    Arguments:
        model: the generator, possibly wrapped in DDP / DataParallel / ``torch.compile``.
        decay: α in [0, 1]; default 0.999 (post 6575; 0.9999 for smoother, less detailed
            samples). ``decay=0`` makes the shadow a copy of the model.
        buffers: ``"copy"``, ``"average"`` or ``"ignore"``; see above.
        dtype: floating dtype of the shadow; ``torch.float32`` keeps an fp32 average for a bf16
            or fp16 model (small updates ``(1 − α)(θ − Θ)`` vanish in bf16). Default: the model's.
        warmup: the first ``warmup`` updates copy θ instead of averaging (StudioGAN's
            ``g_ema_start``, 1000 in its CIFAR BigGAN config); default None = average from the
            first update.

    Example:
        >>> g = nn.Linear(4, 4)
        >>> ema = GeneratorEMA(g, decay=0.999)
        >>> # after each optimiser step: ema.update(g); sample with ema.module(z)

    References:
        https://kexue.fm/archives/6575; https://kexue.fm/archives/6583.
    """

    def __init__(
        self,
        model: nn.Module,
        decay: float = 0.999,
        *,
        buffers: BufferPolicy = "copy",
        dtype: torch.dtype | None = None,
        warmup: int | None = None,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise ValueError(f"model must be an nn.Module, got {type(model).__name__}")
        self.decay = _check_decay(decay)
        if buffers not in _POLICIES:
            raise ValueError(f"buffers must be one of {_POLICIES}, got {buffers!r}")
        if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
            raise ValueError(f"dtype must be a floating torch.dtype or None, got {dtype!r}")
        if warmup is not None and (not isinstance(warmup, int) or warmup < 0):
            raise ValueError(f"warmup must be an int >= 0 or None, got {warmup!r}")
        self.buffers: BufferPolicy = buffers
        self.dtype = dtype
        self.warmup = warmup
        self.num_updates = 0
        source = unwrap_model(model)
        self.module: nn.Module = copy.deepcopy(source)
        if dtype is not None:
            self.module.to(dtype=dtype)  # floating parameters and buffers only
        self.module.requires_grad_(False)
        self._param_names = [n for n, _ in self.module.named_parameters()]
        self._buffer_names = [n for n, _ in self.module.named_buffers()]

    def _pairs(
        self, model: nn.Module
    ) -> tuple[list[tuple[Tensor, Tensor]], list[tuple[Tensor, Tensor]]]:
        source = unwrap_model(model)
        src_params = dict(source.named_parameters())
        src_buffers = dict(source.named_buffers())
        if list(src_params) != self._param_names or list(src_buffers) != self._buffer_names:
            missing = sorted(set(self._param_names) ^ set(src_params))
            missing += sorted(set(self._buffer_names) ^ set(src_buffers))
            raise ValueError(
                "model does not have the structure the EMA was built from; differing names: "
                f"{missing[:8] or 'same names in a different order'}"
            )
        shadow_params = dict(self.module.named_parameters())
        shadow_buffers = dict(self.module.named_buffers())
        params = [(shadow_params[n], src_params[n]) for n in self._param_names]
        buffers = [(shadow_buffers[n], src_buffers[n]) for n in self._buffer_names]
        for (e, m), n in zip(params + buffers, self._param_names + self._buffer_names):
            if e.shape != m.shape:
                raise ValueError(
                    f"model tensor {n!r} has shape {tuple(m.shape)}, the EMA's {tuple(e.shape)}"
                )
        return params, buffers

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the shadow towards ``model``: ``Θ ← αΘ + (1 − α)θ`` (see the class docstring).

        Arguments:
            model: the live generator (DDP / DataParallel / compiled wrappers are stripped).
        """
        params, buffers = self._pairs(model)
        copying = self.warmup is not None and self.num_updates < self.warmup
        lerp: list[tuple[Tensor, Tensor]] = []
        copy_: list[tuple[Tensor, Tensor]] = []
        for e, m in params:
            (lerp if e.is_floating_point() and not copying else copy_).append((e, m))
        for e, m in buffers:
            if not e.is_floating_point():
                copy_.append((e, m))
            elif self.buffers == "average" and not copying:
                lerp.append((e, m))
            elif self.buffers == "copy" or copying:
                copy_.append((e, m))
        for e, m in copy_:
            e.copy_(m)
        if lerp:
            weight = 1.0 - self.decay
            shadows = [e for e, _ in lerp]
            sources = [m.to(device=e.device, dtype=e.dtype) for e, m in lerp]
            if hasattr(torch, "_foreach_lerp_"):
                torch._foreach_lerp_(shadows, sources, weight)
            else:  # pragma: no cover - very old torch
                for e, m in zip(shadows, sources):
                    e.lerp_(m, weight)
        self.num_updates += 1

    def state_dict(self) -> dict[str, Any]:
        """The shadow's ``state_dict`` plus ``decay``, ``num_updates`` and the options."""
        return {
            "module": self.module.state_dict(),
            "decay": self.decay,
            "num_updates": self.num_updates,
            "buffers": self.buffers,
            "warmup": self.warmup,
        }

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore from :meth:`state_dict` (the shadow keeps its own dtype and device)."""
        missing = {"module", "decay", "num_updates"} - set(state_dict)
        if missing:
            raise ValueError(f"state_dict is missing keys {sorted(missing)}")
        self.module.load_state_dict(state_dict["module"])
        self.module.requires_grad_(False)
        self.decay = _check_decay(state_dict["decay"])
        self.num_updates = int(state_dict["num_updates"])
        if "buffers" in state_dict:
            if state_dict["buffers"] not in _POLICIES:
                raise ValueError(f"state_dict['buffers'] must be one of {_POLICIES}")
            self.buffers = state_dict["buffers"]
        if "warmup" in state_dict:
            self.warmup = state_dict["warmup"]

    def __repr__(self) -> str:
        return (
            f"GeneratorEMA(decay={self.decay}, buffers={self.buffers!r}, dtype={self.dtype}, "
            f"warmup={self.warmup}, num_updates={self.num_updates}, "
            f"module={type(self.module).__name__})"
        )


def _check_decay(decay: float) -> float:
    decay = float(decay)
    if not (0.0 <= decay <= 1.0) or math.isnan(decay):
        raise ValueError(f"decay must lie in [0, 1], got {decay}")
    return decay
