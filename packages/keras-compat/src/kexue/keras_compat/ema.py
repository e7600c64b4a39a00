"""Exponential moving average of a model's weights (post 6575; bert4keras; timm / ema-pytorch).

Θ ← m_t·Θ + (1 − m_t)·θ after every optimiser step; Θ is used for evaluation only and never
changes the optimiser's trajectory (post 6575). :class:`EMA` keeps Θ in a deep copy of the
*unwrapped* model (never the DDP / DataParallel / ``torch.compile`` wrapper, so it stays outside
any wrapped module tree, Lightning #17847), updates it with ``torch._foreach_lerp_`` without host
synchronisation, and swaps it in place for evaluation with a bitwise restore.

References:
    https://kexue.fm/archives/6575; bert4keras ``extend_with_exponential_moving_average``;
    ``torch.optim.swa_utils.AveragedModel`` + ``get_ema_multi_avg_fn``; timm ``ModelEmaV3``.
"""

from __future__ import annotations

import copy
import math
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torch.nn.modules.utils import consume_prefix_in_state_dict_if_present

from kexue.keras_compat._ema_warmup import (
    EMAWarmup,
    WarmupSpec,
    check_decay,
    check_warmup,
    warmup_decay,
)

__all__ = ["EMA", "EMAWarmup", "ExponentialMovingAverage", "unwrap_model"]

BufferPolicy = Literal["average", "copy", "ignore"]
_POLICIES = ("average", "copy", "ignore")
_INITS = ("copy", "zero")
_PREFIXES = ("module.", "_orig_mod.")


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


class EMA:
    """Exponential moving average of a model's parameters (and, per policy, buffers).

    After each optimiser step, :meth:`update` does Θ ← m_t·Θ + (1 − m_t)·θ, with
    m_t = ``decay`` or the warm-up law (t = 1 at the first update, see ``warmup``).

    * ``init="copy"`` (default): Θ₀ = θ₀, the first average of ``AveragedModel`` and Keras's
      momentum-0 first step; for constant θ, Θ_n = θ + (θ₀ − θ)·mⁿ.
    * ``init="zero"``: Θ₀ = 0, Θ_t = Σ_{i≤t} (1 − m) m^{t−i} θ_i (bert4keras); the debiased
      average divides by 1 − Π_{i≤t} m_i (= 1 − m^t without warm-up), applied by
      :meth:`apply_ema_weights` / :meth:`swapped` (``bias_correction`` defaults to True for this
      init). :attr:`module` always holds the raw accumulator Θ.

    Floating parameters are averaged (all of them, trainable or not). Buffers follow ``buffers``:
    ``"average"`` (floating buffers lerped like parameters, as ``AveragedModel(use_buffers=True)``
    and timm), ``"copy"`` (taken from the live model at each update) or ``"ignore"`` (kept from
    the construction-time copy; use with :meth:`update_bn`). Integer buffers
    (``num_batches_tracked``) are always copied, never averaged.

    Distributed: call :meth:`update` on every rank (deterministic, so averaged parameters stay
    identical after DDP's all-reduce); checkpoint from rank 0. Buffers the ranks compute locally
    (BatchNorm statistics without ``SyncBatchNorm``) differ between ranks in the live model, and
    their averages differ likewise: use ``SyncBatchNorm``, or ``buffers="ignore"`` plus
    :meth:`update_bn` before evaluation. The shadow's ``state_dict`` has the unwrapped names,
    and :meth:`load_state_dict` strips ``module.`` / ``_orig_mod.`` prefixes.

    Arguments:
        model: the live model, possibly wrapped (DDP / DataParallel / ``torch.compile``); the
            EMA keeps the unwrapped module for ``update()`` without argument.
        decay: m in [0, 1]; default 0.999 (bert4keras ``ema_momentum``; the blog uses 0.9999).
        warmup: ``None`` (fixed decay), an :class:`EMAWarmup` (decay_t = clamp(1 − (1 + t/γ)^−p,
            min_decay, decay), timm / ema-pytorch) or ``"torch_ema"`` (min(decay,
            (1 + t)/(10 + t)), torch-ema). t is the 1-based index of the update.
        buffers: ``"average"`` (default), ``"copy"`` or ``"ignore"``; see above.
        device: device of the shadow (e.g. ``"cpu"`` to keep it off the GPU); default the model's.
        dtype: floating dtype of the shadow; ``torch.float32`` keeps an fp32 average for a bf16 /
            fp16 model (updates (1 − m)(θ − Θ) vanish in bf16). Default: the model's.
        init: ``"copy"`` (default) or ``"zero"`` (bert4keras, with bias correction).

    Example:
        >>> net = nn.Linear(4, 2)
        >>> opt = torch.optim.SGD(net.parameters(), lr=0.1)
        >>> ema = EMA(net, decay=0.99, warmup=EMAWarmup())
        >>> handle = ema.attach(opt)  # ema.update() after every opt.step()
        >>> with ema.swapped(net):  # evaluate with averaged weights, restored bitwise on exit
        ...     y = net(torch.zeros(1, 4))

    References:
        https://kexue.fm/archives/6575; bert4keras ``extend_with_exponential_moving_average``;
        Polyak & Juditsky (1992); timm ``ModelEmaV3``; ema-pytorch; torch-ema.
    """

    def __init__(
        self,
        model: nn.Module,
        decay: float = 0.999,
        *,
        warmup: WarmupSpec = None,
        buffers: BufferPolicy = "average",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        init: Literal["copy", "zero"] = "copy",
    ) -> None:
        if not isinstance(model, nn.Module):
            raise ValueError(f"model must be an nn.Module, got {type(model).__name__}")
        self.decay = check_decay(decay)
        self.warmup: WarmupSpec = check_warmup(warmup)
        if buffers not in _POLICIES:
            raise ValueError(f"buffers must be one of {_POLICIES}, got {buffers!r}")
        if init not in _INITS:
            raise ValueError(f"init must be one of {_INITS}, got {init!r}")
        if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
            raise ValueError(f"dtype must be a floating torch.dtype or None, got {dtype!r}")
        self.buffers: BufferPolicy = buffers
        self.init = init
        self.dtype = dtype
        self.device = None if device is None else torch.device(device)
        self.num_updates = 0
        self._decay_product = 1.0  # Π m_i over the updates so far (bias correction)
        self._model = unwrap_model(model)
        self._backup: tuple[list[Tensor], list[Tensor]] | None = None
        self.module: nn.Module = copy.deepcopy(self._model)
        if self.device is not None or dtype is not None:
            self.module.to(device=self.device, dtype=dtype)  # floating tensors only for dtype
        self.module.requires_grad_(False)
        self.module.eval()
        if init == "zero":
            with torch.no_grad():
                for _, shadow, _, averaged in self._pairs(self._model):
                    if averaged:
                        shadow.zero_()

    # ------------------------------------------------------------------ internals
    def _resolve(self, model: nn.Module | None) -> nn.Module:
        if model is None:
            return self._model
        if not isinstance(model, nn.Module):
            raise ValueError(f"model must be an nn.Module or None, got {type(model).__name__}")
        return unwrap_model(model)

    def _pairs(self, source: nn.Module) -> list[tuple[str, Tensor, Tensor, bool | None]]:
        """(name, shadow, live, averaged) for every tensor; averaged is None for ignored ones."""
        shadow_named = list(self.module.named_parameters()) + list(self.module.named_buffers())
        live_named = list(source.named_parameters()) + list(source.named_buffers())
        n_params = sum(1 for _ in self.module.parameters())
        if [n for n, _ in shadow_named] != [n for n, _ in live_named]:
            if any(m is self.module for m in source.modules()):
                raise ValueError(
                    "model contains the EMA's shadow module as a submodule; keep ema.module "
                    "outside the trained (and DDP-wrapped) module tree"
                )
            diff = sorted({n for n, _ in shadow_named} ^ {n for n, _ in live_named})
            raise ValueError(
                "model does not have the structure the EMA was built from; differing names: "
                f"{diff[:8] or 'same names in a different order'}"
            )
        out: list[tuple[str, Tensor, Tensor, bool | None]] = []
        for i, ((name, e), (_, m)) in enumerate(zip(shadow_named, live_named)):
            if e.shape != m.shape:
                raise ValueError(
                    f"model tensor {name!r} has shape {tuple(m.shape)}, the EMA's {tuple(e.shape)}"
                )
            if not _averageable(e):
                averaged: bool | None = False
            elif i < n_params or self.buffers == "average":
                averaged = True
            elif self.buffers == "copy":
                averaged = False
            else:
                averaged = None
            out.append((name, e, m.detach(), averaged))
        return out

    # ------------------------------------------------------------------ updates
    def get_decay(self, step: int | None = None) -> float:
        """m_t for the ``step``-th update (1-based); default: the next update."""
        step = self.num_updates + 1 if step is None else int(step)
        return warmup_decay(self.warmup, step, self.decay)

    @torch.no_grad()
    def update(self, model: nn.Module | None = None) -> None:
        """One EMA step towards ``model`` (default: the model given at construction).

        Wrappers are stripped. Floating tensors are updated with one ``torch._foreach_lerp_``
        per (device, dtype) group; no ``.item()`` or other host synchronisation.
        """
        source = self._resolve(model)
        decay = self.get_decay()
        groups: dict[tuple[torch.device, torch.dtype], tuple[list[Tensor], list[Tensor]]] = {}
        for _, e, m, averaged in self._pairs(source):
            if averaged is None:
                continue
            if e.dtype != m.dtype or e.device != m.device:
                m = m.to(device=e.device, dtype=e.dtype)
            if averaged:
                shadows, sources = groups.setdefault((e.device, e.dtype), ([], []))
                shadows.append(e)
                sources.append(m)
            else:
                e.copy_(m)
        weight = 1.0 - decay
        for shadows, sources in groups.values():
            if hasattr(torch, "_foreach_lerp_"):
                torch._foreach_lerp_(shadows, sources, weight)
            else:  # pragma: no cover - torch without foreach lerp
                torch._foreach_mul_(shadows, decay)
                torch._foreach_add_(shadows, sources, alpha=weight)
        self.num_updates += 1
        self._decay_product *= decay

    def attach(self, optimizer: torch.optim.Optimizer) -> Any:
        """Call :meth:`update` after every ``optimizer.step()``; returns the hook handle
        (``handle.remove()`` detaches)."""
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise ValueError(
                f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}"
            )

        def _hook(opt: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
            self.update()

        return optimizer.register_step_post_hook(_hook)

    # ------------------------------------------------------------------ swapping
    @property
    def bias_correction_factor(self) -> float:
        """1 − Π_{i≤t} m_i: the divisor debiasing a zero-initialised average."""
        return 1.0 - self._decay_product

    @torch.no_grad()
    def apply_ema_weights(
        self, model: nn.Module | None = None, bias_correction: bool | None = None
    ) -> None:
        """Back up ``model``'s weights and load the averages into it, in place (post 6575).

        Parameters and (unless ``buffers="ignore"``) buffers are overwritten with
        ``copy_`` (cast to the model's dtype); :meth:`reset_old_weights` restores them bitwise.
        The optimizer, its state and the parameter objects are untouched.

        Arguments:
            model: default the model given at construction; wrappers are stripped.
            bias_correction: divide averaged tensors by 1 − Π m_i (bert4keras
                ``apply_ema_weights(bias_correction=True)``). Default: True for ``init="zero"``,
                False for ``init="copy"`` (where it is invalid: the copy start is unbiased).
        """
        if self._backup is not None:
            raise RuntimeError("EMA weights are already applied; call reset_old_weights() first")
        if bias_correction is None:
            bias_correction = self.init == "zero"
        if bias_correction and self.init != "zero":
            raise ValueError("bias_correction=True requires init='zero' (copy init is unbiased)")
        correction = self.bias_correction_factor
        if bias_correction and self.num_updates == 0:
            raise RuntimeError("bias-corrected weights are undefined before the first update()")
        pairs = [p for p in self._pairs(self._resolve(model)) if p[3] is not None]
        live = [m for _, _, m, _ in pairs]
        backup = [m.clone() for m in live]
        for _, e, m, averaged in pairs:
            m.copy_(e / correction if (bias_correction and averaged) else e)
        self._backup = (live, backup)

    @torch.no_grad()
    def reset_old_weights(self) -> None:
        """Restore the weights backed up by :meth:`apply_ema_weights`, bitwise."""
        if self._backup is None:
            raise RuntimeError("no EMA weights applied; call apply_ema_weights() first")
        live, backup = self._backup
        for m, b in zip(live, backup):
            m.copy_(b)
        self._backup = None

    @contextmanager
    def swapped(
        self, model: nn.Module | None = None, *, bias_correction: bool | None = None
    ) -> Iterator[nn.Module | None]:
        """Context manager: the averages in ``model`` inside, its own weights restored bitwise
        on exit, also on exception.

        The copies run under ``no_grad`` and in place (same parameter objects, optimizer state
        untouched); the body itself is not put under ``no_grad``. Do not swap between a forward
        and its backward (in-place copies bump autograd version counters).

        Example:
            >>> with ema.swapped(model):  # doctest: +SKIP
            ...     val_loss = evaluate(model)
        """
        self.apply_ema_weights(model, bias_correction=bias_correction)
        try:
            yield model if model is not None else self._model
        finally:
            self.reset_old_weights()

    def update_bn(self, loader: Any, device: torch.device | str | None = None) -> None:
        """Recompute BatchNorm statistics of :attr:`module` on ``loader``
        (``torch.optim.swa_utils.update_bn``). Later :meth:`update` calls overwrite them unless
        ``buffers="ignore"``."""
        torch.optim.swa_utils.update_bn(loader, self.module, device=device)
        self.module.eval()

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """``{"module": shadow state_dict (unwrapped names), "num_updates", "decay_product",
        "decay", "init", "buffers"}``; the last three are informational."""
        return {
            "module": self.module.state_dict(),
            "num_updates": self.num_updates,
            "decay_product": self._decay_product,
            "decay": self.decay,
            "init": self.init,
            "buffers": self.buffers,
        }

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Load :meth:`state_dict` output, or a bare model / ``AveragedModel`` state dict.

        ``module.`` (DDP, ``AveragedModel``) and ``_orig_mod.`` (``torch.compile``) prefixes are
        stripped with ``consume_prefix_in_state_dict_if_present`` when the names do not match as
        they are. Hyperparameters (decay, warm-up, policy) stay those of the constructor. A bare
        dict keeps ``num_updates`` unless it carries ``AveragedModel``'s ``n_averaged``
        (num_updates = n_averaged − 1: its first average is the copy).
        """
        if not isinstance(state_dict, Mapping):
            raise ValueError(f"state_dict must be a mapping, got {type(state_dict).__name__}")
        full = isinstance(state_dict.get("module"), Mapping)
        weights = dict(state_dict["module"] if full else state_dict)
        n_averaged = None if full else weights.pop("n_averaged", None)
        expected = set(self.module.state_dict())
        for _ in range(4):
            if set(weights) == expected:
                break
            for prefix in _PREFIXES:
                consume_prefix_in_state_dict_if_present(weights, prefix)  # type: ignore[arg-type]
        self.module.load_state_dict(weights)
        if full:
            self.num_updates = int(state_dict.get("num_updates", 0))
            product = state_dict.get("decay_product")
            self._decay_product = float(product) if product is not None else self._product()
        elif n_averaged is not None:
            self.num_updates = max(int(n_averaged) - 1, 0)
            self._decay_product = self._product()

    def _product(self) -> float:
        return math.prod(self.get_decay(t) for t in range(1, self.num_updates + 1))

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(decay={self.decay}, warmup={self.warmup!r}, "
            f"buffers={self.buffers!r}, init={self.init!r}, dtype={self.dtype}, "
            f"device={self.device}, num_updates={self.num_updates}, "
            f"module={type(self.module).__name__})"
        )


class ExponentialMovingAverage(EMA):
    """The blog's EMA class (post 6575): ``EMA(model, momentum, init="copy", buffers="average")``.

    Keras usage ``EMAer = ExponentialMovingAverage(model); EMAer.inject()`` after ``compile``
    becomes ``EMAer.inject(optimizer)`` (updates after every step); ``initialize()`` copies the
    current weights into the shadows; ``apply_ema_weights()`` backs up and loads the averages;
    ``reset_old_weights()`` restores.

    Arguments:
        model: the model (wrappers are stripped).
        momentum: the decay; default 0.9999 (post 6575).

    References:
        https://kexue.fm/archives/6575.
    """

    def __init__(self, model: nn.Module, momentum: float = 0.9999) -> None:
        super().__init__(model, decay=momentum, init="copy", buffers="average")
        self.momentum = self.decay
        self._handle: Any = None

    def inject(self, optimizer: torch.optim.Optimizer) -> Any:
        """Update the averages after every ``optimizer.step()`` (the blog adds the update ops to
        the training function); returns the hook handle. Injecting twice replaces the hook."""
        if self._handle is not None:
            self._handle.remove()
        self._handle = self.attach(optimizer)
        return self._handle

    @torch.no_grad()
    def initialize(self) -> None:
        """Copy the model's current weights into the shadows and restart the count."""
        for _, e, m, averaged in self._pairs(self._model):
            if averaged is not None:
                e.copy_(m)
        self.num_updates = 0
        self._decay_product = 1.0
