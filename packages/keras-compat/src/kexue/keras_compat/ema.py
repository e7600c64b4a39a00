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
import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

import torch
from torch import Tensor, nn

from kexue.keras_compat._ema_nonfinite import NonFiniteGuard, finite_flag
from kexue.keras_compat._ema_state import EMACheckpoint
from kexue.keras_compat._ema_util import (
    _averageable,
    _check_int,
    _home_device,
    _power_gamma,
    unwrap_model,
)
from kexue.keras_compat._ema_warmup import (
    EMAWarmup,
    WarmupSpec,
    check_decay,
    check_warmup,
    decay_over,
)
from kexue.keras_compat._power import gamma_to_sigma_rel

__all__ = ["EMA", "EMAWarmup", "ExponentialMovingAverage", "unwrap_model"]

BufferPolicy = Literal["average", "copy", "ignore"]
_POLICIES = ("average", "copy", "ignore")
_INITS = ("copy", "zero")


class EMA(EMACheckpoint):
    """Exponential moving average of a model's parameters (and, per policy, buffers).

    After each optimiser step, :meth:`update` does Θ ← m_t·Θ + (1 − m_t)·θ, with
    m_t = ``decay`` or the warm-up law (t = 1 at the first update, see ``warmup``), or the
    power-function profile of ``sigma_rel`` / ``gamma`` (used by :class:`PowerEMA`). The defaults
    average at every call, from the first one, and never read a value back to the host.

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
        update_every: average every k-th :meth:`update` call (default 1).
        update_after_step: calls 1 … a only copy θ into Θ (the first one and every k-th); the
            averaging starts after them and t counts the steps after the a-th (default 0).
        decay_per: ``"update"`` (ema-pytorch: one factor m_t per applied update, so the horizon
            in steps grows k-fold) or ``"step"`` (the horizon stays in steps: m^k for a fixed
            decay, Π m_j of the warm-up law over the k steps). Default ``"update"``; power
            profiles always count steps (Δt = k, not ema-pytorch ``KarrasEMA``'s Δt = 1).
        sigma_rel / gamma: a power-function profile (Karras et al. 2023): β = (1 − Δt/t)^(γ+1),
            t the averaged step count; give one of the two (:func:`sigma_rel_to_gamma`).
            ``decay`` and ``warmup`` are then unused.
        skip_nonfinite: when True, an update whose live weights hold NaN/inf leaves Θ bitwise
            unchanged and is not counted (t does not advance), checked on the device without a
            host sync; counters ``nonfinite_consecutive`` / ``nonfinite_total`` /
            ``last_finite`` go to :meth:`state_dict`. Default False (today's behaviour).
        max_consecutive_nonfinite: with ``skip_nonfinite``, raise ``FloatingPointError`` when
            more consecutive updates than this were skipped (checked every ``check_every``
            updates, one host sync each time). Default None (never raise).
        check_every: see above; default 1.
        switch_every: Switch EMA (Li et al. 2024, arXiv 2402.09240): every this many calls, after
            the update, the EMA is loaded into the live model (:meth:`switch`). Default None.
        switch_weight: 1.0 copies Θ into θ; w < 1 lerps θ ← θ + w(Θ − θ) (ema-pytorch
            ``update_model_with_ema_beta = 1 − w``).

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
        update_every: int = 1,
        update_after_step: int = 0,
        decay_per: Literal["update", "step"] | None = None,
        sigma_rel: float | None = None,
        gamma: float | None = None,
        skip_nonfinite: bool = False,
        max_consecutive_nonfinite: int | None = None,
        check_every: int = 1,
        switch_every: int | None = None,
        switch_weight: float = 1.0,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise ValueError(f"model must be an nn.Module, got {type(model).__name__}")
        self.decay = check_decay(decay)
        self.warmup: WarmupSpec = check_warmup(warmup)
        self.update_every = _check_int(update_every, "update_every", 1)
        self.update_after_step = _check_int(update_after_step, "update_after_step", 0)
        self.gamma = _power_gamma(sigma_rel, gamma, self.warmup)
        self.sigma_rel = None if self.gamma is None else gamma_to_sigma_rel(self.gamma)
        if decay_per not in (None, "update", "step"):
            raise ValueError(f"decay_per must be 'update' or 'step', got {decay_per!r}")
        if self.gamma is not None and decay_per == "update" and self.update_every > 1:
            raise ValueError(
                "decay_per='update' with a power profile and update_every > 1 would take Δt = 1 "
                "for k steps (ema-pytorch KarrasEMA's profile error); use decay_per='step'"
            )
        self.decay_per: Literal["update", "step"] = decay_per or (
            "step" if self.gamma is not None else "update"
        )
        self.switch_every = (
            None if switch_every is None else _check_int(switch_every, "switch_every", 1)
        )
        self.switch_weight = check_decay(switch_weight, "switch_weight")
        if init == "zero" and self.update_after_step:
            raise ValueError("update_after_step copies the weights: it needs init='copy'")
        if self.switch_every is not None and init == "zero":
            raise ValueError("switch_every needs init='copy' (a zero-started average is biased)")
        self.skip_nonfinite = bool(skip_nonfinite)
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
        self.num_updates = 0  # applied averaging updates
        self.num_calls = 0  # update() calls
        self._last_call = 0  # call index of the last averaging update (or copy phase end)
        self._model = unwrap_model(model)
        self._backup: tuple[list[Tensor], list[Tensor]] | None = None
        self._plan: tuple[tuple[int, ...], list[tuple[Tensor, Tensor, bool]]] | None = None
        self.module: nn.Module = copy.deepcopy(self._model)
        if self.device is not None or dtype is not None:
            self.module.to(device=self.device, dtype=dtype)  # floating tensors only for dtype
        self.module.requires_grad_(False)
        self.module.eval()
        home = _home_device(self.module, self._model)
        # averaged steps t and Π m_i (bias correction): host numbers, or device tensors when the
        # non-finite guard decides on the device whether an update counts
        self._t: int | Tensor = 0
        self._decay_product: float | Tensor = 1.0
        self._guard: NonFiniteGuard | None = None
        if self.skip_nonfinite:
            self._guard = NonFiniteGuard(home, max_consecutive_nonfinite, check_every)
            self._t = torch.zeros((), dtype=torch.float64, device=home)
            self._decay_product = torch.ones((), dtype=torch.float64, device=home)
        elif max_consecutive_nonfinite is not None:
            raise ValueError("max_consecutive_nonfinite needs skip_nonfinite=True")
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
        """Decay of the averaging update that brings the averaged step count t to ``step``
        (1-based; default: the next update), covering ``update_every`` steps."""
        delta = self.update_every
        if step is None:
            t_prev = self._t if isinstance(self._t, int) else int(self._t.item())
            step = t_prev + delta
        step = int(step)
        delta = min(delta, step)
        return float(
            decay_over(self.warmup, self.decay, self.gamma, self.decay_per, step - delta, delta)
        )

    def _groups(
        self, source: nn.Module
    ) -> dict[tuple[torch.device, torch.dtype], tuple[list[Tensor], list[Tensor]]]:
        """(shadows, sources) of the averaged tensors by (device, dtype); copied ones are copied.

        The pairing (names, shapes, policies) is checked once per set of live tensors and cached
        under their identities, so a step pays one walk over ``source``'s tensors, not the checks.
        """
        key = tuple(map(id, itertools.chain(source.parameters(), source.buffers())))
        if self._plan is None or self._plan[0] != key:
            plan = [(e, m, a) for _, e, m, a in self._pairs(source) if a is not None]
            self._plan = (key, plan)  # type: ignore[assignment]
        groups: dict[tuple[torch.device, torch.dtype], tuple[list[Tensor], list[Tensor]]] = {}
        for e, m, averaged in self._plan[1]:
            if e.dtype != m.dtype or e.device != m.device:
                m = m.to(device=e.device, dtype=e.dtype)
            if averaged:
                shadows, sources = groups.setdefault((e.device, e.dtype), ([], []))
                shadows.append(e)
                sources.append(m)
            else:
                e.copy_(m)
        return groups

    @torch.no_grad()
    def update(self, model: nn.Module | None = None) -> None:
        """One call after an optimiser step: copy, average or pass, per ``update_every`` and
        ``update_after_step`` (default: average towards ``model`` at every call).

        ``model`` defaults to the model given at construction; wrappers are stripped. Floating
        tensors are updated with one ``torch._foreach_lerp_`` per (device, dtype) group; no
        ``.item()`` or other host synchronisation (also with ``skip_nonfinite``, unless
        ``max_consecutive_nonfinite`` is checked at this call).
        """
        source = self._resolve(model)
        self.num_calls += 1
        call, after, k = self.num_calls, self.update_after_step, self.update_every
        if call <= after:
            if call == 1 or call % k == 0:
                self._lerp(self._groups(source), 0.0, call, advance=0)
            self._last_call = call
            return
        if (call - after) % k:
            return
        delta = call - max(self._last_call, after)
        self._last_call = call
        decay = decay_over(self.warmup, self.decay, self.gamma, self.decay_per, self._t, delta)
        self._lerp(self._groups(source), decay, call, advance=delta)
        self.num_updates += 1
        if self.switch_every is not None and call % self.switch_every == 0:
            self.switch(source)

    def _lerp(self, groups: dict, decay: float | Tensor, call: int, advance: int) -> None:
        """Θ ← lerp(Θ, θ, 1 − decay) on every group; with the guard, towards where(f, θ, Θ)."""
        if self._guard is None:
            weight = 1.0 - decay
            for shadows, sources in groups.values():
                torch._foreach_lerp_(shadows, sources, weight)
            self._t += advance
            self._decay_product *= decay if advance else 1.0
            return
        flag = finite_flag([src for _, src in groups.values()], self._t.device)
        w = 1.0 - torch.as_tensor(decay, dtype=torch.float64, device=self._t.device)
        for shadows, sources in groups.values():
            safe = [torch.where(flag.to(e.device), m, e) for e, m in zip(shadows, sources)]
            wg = w.to(device=shadows[0].device, dtype=shadows[0].dtype)
            torch._foreach_lerp_(shadows, safe, [wg] * len(safe))  # a lone tensor weight syncs
        if advance:
            kept = flag.to(torch.float64)
            self._t.add_(kept * advance)
            self._decay_product.mul_(torch.where(flag, 1.0 - w, 1.0))
        self._guard.record(flag, call)
        self._guard.check(call)

    @torch.no_grad()
    def switch(self, model: nn.Module | None = None) -> None:
        """Switch EMA: load the average into ``model`` (θ ← lerp(θ, Θ, ``switch_weight``)),
        parameters and averaged buffers, in place (the optimizer and its state are untouched).

        Deterministic, so DDP ranks switching on the same call stay identical.

        References:
            Li et al., "Switch EMA", arXiv 2402.09240; ema-pytorch ``update_model_with_ema_every``.
        """
        pairs = [p for p in self._pairs(self._resolve(model)) if p[3]]
        if self.switch_weight == 1.0:
            for _, e, m, _ in pairs:
                m.copy_(e)
        else:
            for _, e, m, _ in pairs:
                m.lerp_(e.to(device=m.device, dtype=m.dtype), self.switch_weight)

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
        return 1.0 - float(self._decay_product)

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
    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(decay={self.decay}, warmup={self.warmup!r}, "
            f"buffers={self.buffers!r}, init={self.init!r}, dtype={self.dtype}, "
            f"device={self.device}, num_updates={self.num_updates}, "
            f"update_every={self.update_every}, update_after_step={self.update_after_step}, "
            f"sigma_rel={self.sigma_rel}, skip_nonfinite={self.skip_nonfinite}, "
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
        self.num_updates = self.num_calls = self._last_call = 0
        self._set_t(0)
        self._set_product(1.0)
