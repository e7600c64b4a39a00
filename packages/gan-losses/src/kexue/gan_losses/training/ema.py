"""Weight EMA of the generator (post 6575; the third fix of post 6583) — a small one, on purpose.

``Θ ← αΘ + (1 − α)θ`` after every optimiser step, ``Θ₀ = θ₀``; α = 0.999, optionally 0.9999
(post 6575). Θ is used for sampling and evaluation only, never fed back into training: EMA leaves
the optimisation path unchanged and averages the orbit of a non-converging GAN towards its
centre — "the most powerful" of the author's three fixes (post 6583). EMA of D is pointless
(post 6583): D's averaged weights are never used.

Why gan-losses keeps its own. ``kexue-gan-losses`` depends on torch only, and the G-weight EMA is
part of its scope (spec §1.1, §2.16), so :class:`GeneratorEMA` stays: the fixed-decay average that
the posts use, nothing more. The full EMA is ``kexue.keras_compat.EMA`` (distribution
``kexue-keras-compat``): warm-up laws (timm, torch-ema), zero init with bias correction,
``attach`` to an optimiser, ``swapped`` weights, ``update_bn``, shadow on another device. For the
same decay, init and buffer policy the two give the same average (``GeneratorEMA(g, d)`` ≡
``keras_compat.EMA(g, d, buffers="copy")``); switch to it when you need one of those features.

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
from torch import nn

__all__ = ["GeneratorEMA", "unwrap_model"]

BufferPolicy = Literal["copy", "average", "ignore"]
_POLICIES = ("copy", "average", "ignore")


def unwrap_model(model: nn.Module) -> nn.Module:
    """Strip ``DistributedDataParallel`` / ``DataParallel`` (``.module``) and ``torch.compile``
    (``._orig_mod``) wrappers, repeatedly; any other module (even one with a ``module``
    attribute) is returned as is."""
    wrappers: tuple[type, ...] = (nn.DataParallel, nn.parallel.DistributedDataParallel)
    # torch.compile's wrapper type exists only once torch._dynamo is imported: never import it here.
    compiled = getattr(sys.modules.get("torch._dynamo.eval_frame"), "OptimizedModule", None)
    while True:
        if isinstance(model, wrappers):
            model = model.module
        elif compiled is not None and isinstance(model, compiled):
            model = model._orig_mod
        else:
            return model


class GeneratorEMA:
    """Shadow copy of a model whose weights track an exponential moving average.

    The shadow :attr:`module` is a deep copy of the unwrapped model with ``requires_grad=False``.
    ``GeneratorEMA`` is not an ``nn.Module``: stored on a model it registers no submodule and never
    reaches an optimiser built from ``model.parameters()``.

    :meth:`update` lerps floating parameters with one ``torch._foreach_lerp_``. Buffers follow
    ``buffers``: ``"copy"`` (default; BN statistics and spectral-norm ``u``, ``v`` from the live
    model), ``"average"`` (floating buffers lerped, as StudioGAN) or ``"ignore"`` (kept from the
    initial copy). Integer buffers (``num_batches_tracked``) are always copied, never lerped.

    Arguments:
        model: the generator, possibly wrapped in DDP / DataParallel / ``torch.compile``.
        decay: α in [0, 1]; default 0.999 (post 6575; 0.9999 smoother, less detailed).
        buffers: ``"copy"``, ``"average"`` or ``"ignore"``.
        dtype: floating dtype of the shadow; ``torch.float32`` keeps an fp32 average of a bf16 /
            fp16 model (the updates ``(1 − α)(θ − Θ)`` vanish in bf16). Default: the model's.
        warmup: the first ``warmup`` updates copy θ instead of averaging (StudioGAN's
            ``g_ema_start``, 1000 in its CIFAR BigGAN config); default None.

    Example:
        >>> g = nn.Linear(4, 4)
        >>> ema = GeneratorEMA(g, decay=0.999)
        >>> # after each optimiser step: ema.update(g); sample with ema.module(z)
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
        self.dtype, self.warmup, self.num_updates = dtype, warmup, 0
        self.module: nn.Module = copy.deepcopy(unwrap_model(model))
        if dtype is not None:
            self.module.to(dtype=dtype)  # floating parameters and buffers only
        self.module.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the shadow towards ``model``: ``Θ ← αΘ + (1 − α)θ`` (see the class docstring)."""
        copying = self.warmup is not None and self.num_updates < self.warmup
        lerp, copy_ = [], []
        for kind, e, m in _pairs(self.module, unwrap_model(model)):
            average = kind == "param" or self.buffers == "average"
            if e.is_floating_point() and average and not copying:
                lerp.append((e, m.to(device=e.device, dtype=e.dtype)))
            elif not e.is_floating_point() or self.buffers == "copy" or copying or average:
                copy_.append((e, m))
        for e, m in copy_:
            e.copy_(m)
        if lerp:
            torch._foreach_lerp_([e for e, _ in lerp], [m for _, m in lerp], 1.0 - self.decay)
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
        if state_dict.get("buffers", self.buffers) not in _POLICIES:
            raise ValueError(f"state_dict['buffers'] must be one of {_POLICIES}")
        self.module.load_state_dict(state_dict["module"])
        self.module.requires_grad_(False)
        self.decay = _check_decay(state_dict["decay"])
        self.num_updates = int(state_dict["num_updates"])
        self.buffers = state_dict.get("buffers", self.buffers)
        self.warmup = state_dict.get("warmup", self.warmup)

    def __repr__(self) -> str:
        return (
            f"GeneratorEMA(decay={self.decay}, buffers={self.buffers!r}, dtype={self.dtype}, "
            f"warmup={self.warmup}, num_updates={self.num_updates}, "
            f"module={type(self.module).__name__})"
        )


def _pairs(shadow: nn.Module, source: nn.Module) -> list[tuple[str, Any, Any]]:
    """``(kind, shadow tensor, source tensor)`` by name; raises if the two structures differ."""
    out = []
    for kind, named in (("param", nn.Module.named_parameters), ("buffer", nn.Module.named_buffers)):
        ours, theirs = dict(named(shadow)), dict(named(source))
        if list(ours) != list(theirs):
            differ = sorted(set(ours) ^ set(theirs))
            raise ValueError(
                "model does not have the structure the EMA was built from; differing names: "
                f"{differ[:8] or 'same names in a different order'}"
            )
        for name, e in ours.items():
            if e.shape != theirs[name].shape:
                raise ValueError(
                    f"model tensor {name!r} has shape {tuple(theirs[name].shape)}, "
                    f"the EMA's {tuple(e.shape)}"
                )
            out.append((kind, e, theirs[name]))
    return out


def _check_decay(decay: float) -> float:
    decay = float(decay)
    if not (0.0 <= decay <= 1.0) or math.isnan(decay):
        raise ValueError(f"decay must lie in [0, 1], got {decay}")
    return decay
