"""Optimizer transforms for :func:`extend`: update-delta rewrites and gradient transforms.

Update transforms (post-step, on ``Δ = p_new − p_old``): :class:`WeightDecay`,
:class:`LayerAdaptation`, :class:`DeltaScale`, :class:`LazyRows`, :class:`Lookahead` (must be
placed last: :func:`extend` raises otherwise).
Learning-rate transform: :class:`LRMultiplier` (scales each group's ``lr`` in the pre-hook and
restores it after every other transform). Gradient transforms (pre-step, once per optimizer step,
on the final accumulated and DDP all-reduced gradient — spec §2.8): :class:`GradClip`,
:class:`AGC`, :class:`GradTransform`.

References:
    Post 6418 (free gradients): https://kexue.fm/archives/6418
    bert4keras ``optimizers.py``: ``extend_with_weight_decay``, ``extend_with_layer_adaptation``,
    ``extend_with_lookahead``, ``extend_with_lazy_optimization``, ``extend_with_parameter_wise_lr``.
    Lookahead: Zhang et al., arXiv:1907.08610. LAMB: You et al., arXiv:1904.00962.
    AGC: Brock et al., arXiv:2102.06171 (timm ``adaptive_clip_grad``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import torch
from torch import Tensor
from torch.optim import Optimizer

from ._chain import Transform, _all_params

__all__ = [
    "AGC",
    "DeltaScale",
    "GradClip",
    "GradTransform",
    "LRMultiplier",
    "LayerAdaptation",
    "LazyRows",
    "Lookahead",
    "WeightDecay",
]


def _check_number(value: float, name: str, *, low: float = 0.0, allow_low: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name}: expected a finite number, got {value!r}")
    if value < low or (value == low and not allow_low):
        op = ">=" if allow_low else ">"
        raise ValueError(f"{name}: expected {op} {low}, got {value!r}")
    return float(value)


def _lr(group: dict[str, Any]) -> float:
    lr = group["lr"]
    return float(lr.item()) if isinstance(lr, Tensor) else float(lr)


class WeightDecay(Transform):
    """Decoupled weight decay on the update: ``p_new −= lr · rate · p_old``.

    Applied after the base update with the group's current (scheduled) ``lr``, as bert4keras's
    tf.keras (v2) extension does. With a base optimizer whose update does not read ``p`` (SGD, Adam)
    this equals ``torch.optim.AdamW``'s decoupled decay. Prefer a per-group ``weight_decay`` with
    ``AdamW``; this transform exists for the bert4keras shim and for bases without decoupled decay.

    Arguments:
        rate: Decay rate (bert4keras ``weight_decay_rate``, default 0.01).
        include: Name patterns to decay (default all).
        exclude: Name patterns never decayed (bert4keras ``exclude_from_weight_decay``).
    """

    needs_snapshot = True

    def __init__(
        self,
        rate: float = 0.01,
        *,
        include: Sequence[str] | None = None,
        exclude: Sequence[str] = (),
    ) -> None:
        super().__init__(include=include, exclude=exclude)
        self.rate = _check_number(rate, "rate")

    def post_step(self, optimizer: Optimizer, snapshot: dict[int, Tensor] | None) -> None:
        assert snapshot is not None
        for group, ps in self.selected(optimizer):
            coef = _lr(group) * self.rate
            if coef:
                torch._foreach_add_(ps, [snapshot[id(p)] for p in ps], alpha=-coef)


class LayerAdaptation(Transform):
    """LAMB trust ratio on any optimizer: ``p_new = p_old + r·Δ``, ``r = ‖p_old‖ / ‖Δ / lr‖``.

    ``lr`` is clamped below at ``eps``; ``r = 1`` when either norm is zero, so a zero-norm parameter
    (e.g. a zero-initialised bias) takes the plain update. Per parameter, the final update norm is
    ``lr · ‖p_old‖``.

    Arguments:
        exclude: Name patterns left untouched (bert4keras ``exclude_from_layer_adaptation``).
        include: Name patterns to adapt (default all).
        eps: Lower clamp of ``lr`` (Keras ``epsilon()``, 1e-7).
    """

    needs_snapshot = True

    def __init__(
        self,
        *,
        include: Sequence[str] | None = None,
        exclude: Sequence[str] = (),
        eps: float = 1e-7,
    ) -> None:
        super().__init__(include=include, exclude=exclude)
        self.eps = _check_number(eps, "eps", allow_low=False)

    def post_step(self, optimizer: Optimizer, snapshot: dict[int, Tensor] | None) -> None:
        assert snapshot is not None
        for group, ps in self.selected(optimizer):
            lr = max(_lr(group), self.eps)
            olds = [snapshot[id(p)] for p in ps]
            deltas = torch._foreach_sub(ps, olds)
            x_norms = torch._foreach_norm(olds)
            d_norms = torch._foreach_norm(deltas)
            for p, old, d, xn, dn in zip(ps, olds, deltas, x_norms, d_norms, strict=True):
                g_norm = dn / lr
                ratio = torch.where((xn > 0) & (g_norm > 0), xn / g_norm, torch.ones_like(xn))
                p.copy_(old + ratio.to(d.dtype) * d)


class DeltaScale(Transform):
    """Per-parameter update scale ``p_new = p_old + s·Δ`` (bert4keras ``parameter_wise_lr``).

    ``s`` is the product of the values of every pattern that matches the parameter name; parameters
    matching no pattern are left untouched (scale 1). Scaling Δ equals scaling ``lr`` for SGD and
    Adam without weight decay.

    Arguments:
        scales: ``{pattern: multiplier}``.
        match: ``"regex"`` (``re.search``) or ``"substring"`` (bert4keras: ``key in name``).
    """

    needs_snapshot = True

    def __init__(
        self, scales: Mapping[str, float], *, match: Literal["regex", "substring"] = "regex"
    ) -> None:
        if not isinstance(scales, Mapping):
            raise ValueError(f"scales: expected a mapping pattern -> multiplier, got {scales!r}")
        if match not in ("regex", "substring"):
            raise ValueError(f"match: expected 'regex' or 'substring', got {match!r}")
        keys = [k if match == "regex" else re.escape(k) for k in scales]
        super().__init__(include=keys)
        self.scales = [
            (pat, _check_number(v, f"scales[{k!r}]"))
            for pat, (k, v) in zip(self.include or [], scales.items(), strict=True)
        ]

    def _scale(self, p: Tensor) -> float:
        name = self._names.get(id(p), "")
        s = 1.0
        for pat, v in self.scales:
            if pat.search(name):
                s *= v
        return s

    def post_step(self, optimizer: Optimizer, snapshot: dict[int, Tensor] | None) -> None:
        for _, ps in self.selected(optimizer):
            assert snapshot is not None
            for p in ps:
                old = snapshot[id(p)]
                p.copy_(torch.lerp(old, p, self._scale(p)))


class LRMultiplier(Transform):
    """Multiply every group's ``lr`` by ``fn(step)`` during the step, then restore it.

    ``step`` counts ``optimizer.step()`` calls (0 on the first) and lives in ``state_dict``. The
    multiplier composes with any external ``LRScheduler`` and with per-group ``lr_scale``; the
    original ``lr`` object is put back after every other transform of the chain ran, so weight
    decay and layer adaptation see the multiplied rate (bert4keras v2 semantics).

    Arguments:
        fn: ``step -> multiplier``, e.g. :func:`piecewise_linear`.
    """

    def __init__(self, fn: Callable[[int], float]) -> None:
        if not callable(fn):
            raise ValueError(f"fn: expected a callable step -> multiplier, got {fn!r}")
        super().__init__()
        self.fn = fn
        self.step = 0
        self._saved: list[Any] | None = None

    def pre_step(self, optimizer: Optimizer) -> None:
        m = float(self.fn(self.step))
        self._saved = [g["lr"] for g in optimizer.param_groups]
        for g in optimizer.param_groups:
            g["lr"] = g["lr"] * m

    def cleanup(self, optimizer: Optimizer) -> None:
        if self._saved is None:
            return
        for g, lr in zip(optimizer.param_groups, self._saved, strict=True):
            g["lr"] = lr
        self._saved = None
        self.step += 1

    def state_dict(self) -> dict[str, Any]:
        return {"step": self.step}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step = int(state["step"])


class Lookahead(Transform):
    """Lookahead: every ``k`` steps, ``slow ← slow + α(fast − slow)`` and ``fast ← slow``.

    Slow weights start as a **copy** of the parameters before the first step (paper semantics; the
    zero start of bert4keras is a bug that shrinks every weight by ``α`` at the first sync, spec
    §4.4). Synchronisation happens after steps k, 2k, …; slow weights and the step counter are in
    ``state_dict``. Must come after every Δ-rewriting transform of its chain (``late``):
    :func:`extend` raises ``ValueError`` when it is placed elsewhere.

    Arguments:
        k: Steps per slow update (bert4keras ``steps_per_slow_update``, default 5).
        alpha: Slow step size (bert4keras ``slow_step_size``, default 0.5).
    """

    late = True

    def __init__(self, k: int = 5, alpha: float = 0.5) -> None:
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k: expected an integer >= 1, got {k!r}")
        super().__init__()
        self.k = k
        self.alpha = _check_number(alpha, "alpha")
        if self.alpha > 1:
            raise ValueError(f"alpha: expected a value in [0, 1], got {alpha!r}")
        self.step = 0
        self.slow: dict[int, Tensor] = {}  # flat parameter index -> slow weights

    def pre_step(self, optimizer: Optimizer) -> None:
        # copy-initialise (also parameters of groups added later with add_param_group)
        for i, p in enumerate(_all_params(optimizer)):
            if i not in self.slow:
                self.slow[i] = p.detach().clone()

    def post_step(self, optimizer: Optimizer, snapshot: dict[int, Tensor] | None) -> None:
        self.step += 1
        if self.step % self.k:
            return
        params = _all_params(optimizer)
        fast = [p for p in params]
        slow = [self.slow[i] for i in range(len(params))]
        torch._foreach_lerp_(slow, fast, self.alpha)
        torch._foreach_copy_(fast, slow)

    def guarded_tensors(self) -> list[Tensor]:
        return list(self.slow.values())

    def state_dict(self) -> dict[str, Any]:
        return {"step": self.step, "slow": {i: t.clone() for i, t in self.slow.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step = int(state["step"])
        self.slow = {int(i): t.clone() for i, t in state["slow"].items()}


class LazyRows(Transform):
    """Keep rows whose gradient is all zero along the last axis (bert4keras lazy optimization).

    For the selected parameters (typically embeddings), rows with an all-zero gradient keep their
    pre-step value bitwise; the optimizer's moments still update with the zero gradient. This
    differs from ``nn.Embedding(sparse=True)`` + ``torch.optim.SparseAdam``, which also leaves the
    moments of absent rows untouched.

    Arguments:
        include: Name patterns of lazily updated parameters (bert4keras
            ``include_in_lazy_optimization``); ``None`` selects every parameter.
    """

    needs_snapshot = True

    def __init__(self, include: Sequence[str] | None = None) -> None:
        super().__init__(include=include)

    def post_step(self, optimizer: Optimizer, snapshot: dict[int, Tensor] | None) -> None:
        assert snapshot is not None
        for _, ps in self.selected(optimizer):
            for p in ps:
                keep = (p.grad != 0).any(dim=-1, keepdim=True)
                p.copy_(torch.where(keep, p, snapshot[id(p)]))


def _upcast(t: Tensor) -> Tensor:
    return t if t.dtype in (torch.float32, torch.float64) else t.float()


def _finite_or_zero(n: Tensor) -> Tensor:
    return torch.where(torch.isfinite(n), n, torch.zeros_like(n))


class GradClip(Transform):
    """Gradient clipping by norm or value, once per optimizer step, on the final gradient.

    ``scope`` pins what a norm threshold applies to (the transformers PR #614 regression):
    ``"tensor"`` — each parameter's gradient norm separately (Keras ``clipnorm``, post 6418's
    per-gradient clipping); ``"group"`` — the joint norm of each param group;
    ``"global"`` — the joint norm of every selected parameter (``torch.nn.utils.clip_grad_norm_``).
    Coefficient: ``min(1, max_norm / (norm + 1e-6))``. ``max_value`` clamps elementwise to
    ``[−max_value, max_value]`` after the norm clip.

    Non-finite gradients never spread (no host sync is needed for this): a tensor whose norm is
    NaN/inf is left as it is (coefficient 1, so an inf gradient does not become inf·0 = NaN), and
    the group / global norm is the norm of the finite tensors only, so one NaN element does not turn
    the other parameters' gradients NaN (``clip_grad_norm_`` does). To skip such a step instead,
    put :class:`NonFinite` first in the chain; ``last_total_norm`` still reports the raw norm
    (NaN/inf), for logging.

    The pre-clip per-tensor norms are kept in ``last_norms`` (``{name: norm}``, computed in the
    same pass as the clip) for logging; ``last_total_norm`` holds the global norm.

    Arguments:
        max_norm: Norm threshold (``None`` disables norm clipping).
        max_value: Value threshold (``None`` disables value clipping).
        scope: ``"tensor"`` (default), ``"group"`` or ``"global"``.
        norm_type: Order of the norm (default 2).
        include / exclude: Name patterns; unmatched parameters are left bitwise untouched.
    """

    def __init__(
        self,
        max_norm: float | None = None,
        *,
        max_value: float | None = None,
        scope: Literal["tensor", "group", "global"] = "tensor",
        norm_type: float = 2.0,
        include: Sequence[str] | None = None,
        exclude: Sequence[str] = (),
    ) -> None:
        super().__init__(include=include, exclude=exclude)
        if max_norm is None and max_value is None:
            raise ValueError("max_norm: give max_norm and/or max_value")
        self.max_norm = None if max_norm is None else _check_number(max_norm, "max_norm")
        self.max_value = None if max_value is None else _check_number(max_value, "max_value")
        if scope not in ("tensor", "group", "global"):
            raise ValueError(f"scope: expected 'tensor', 'group' or 'global', got {scope!r}")
        self.scope = scope
        self.norm_type = _check_number(norm_type, "norm_type", allow_low=False)
        self.last_norms: dict[str, Tensor] = {}
        self.last_total_norm: Tensor | None = None

    def _total(self, norms: Sequence[Tensor]) -> Tensor:
        return torch.linalg.vector_norm(torch.stack(norms), self.norm_type)

    def _coef(self, norm: Tensor, own: Tensor) -> Tensor:
        """min(1, max_norm / (norm + 1e-6)); 1 for a tensor whose own norm is not finite."""
        coef = (self.max_norm / (norm + 1e-6)).clamp(max=1.0)  # type: ignore[operator]
        return torch.where(torch.isfinite(own), coef, torch.ones_like(coef))

    def pre_step(self, optimizer: Optimizer) -> None:
        groups = [(g, ps) for g, ps in self.selected(optimizer)]
        grads_by_group = [[p.grad for p in ps] for _, ps in groups]
        norms_by_group = [
            [_upcast(n) for n in torch._foreach_norm(gs, self.norm_type)] for gs in grads_by_group
        ]
        flat = [n for ns in norms_by_group for n in ns]
        self.last_norms = {
            self._names.get(id(p), f"param{i}"): n.detach()
            for i, (p, n) in enumerate(zip([p for _, ps in groups for p in ps], flat, strict=True))
        }
        self.last_total_norm = self._total(flat).detach() if flat else None
        if self.max_norm is not None and flat:
            total_finite = self._total([_finite_or_zero(n) for n in flat])
            for gs, ns in zip(grads_by_group, norms_by_group, strict=True):
                if self.scope == "tensor":
                    coefs = [self._coef(n, n) for n in ns]
                else:
                    total = (
                        self._total([_finite_or_zero(n) for n in ns])
                        if self.scope == "group"
                        else total_finite
                    )
                    coefs = [self._coef(total, n) for n in ns]
                torch._foreach_mul_(gs, [c.to(g.dtype) for c, g in zip(coefs, gs, strict=True)])
        if self.max_value is not None:
            for gs in grads_by_group:
                torch._foreach_clamp_min_(gs, -self.max_value)
                torch._foreach_clamp_max_(gs, self.max_value)


def _unitwise_norm(x: Tensor, norm_type: float) -> Tensor:
    if x.ndim <= 1:
        return torch.linalg.vector_norm(x, norm_type)
    return torch.linalg.vector_norm(x, norm_type, dim=tuple(range(1, x.ndim)), keepdim=True)


class AGC(Transform):
    """Adaptive gradient clipping (NFNets), with timm ``adaptive_clip_grad`` semantics.

    Unit-wise (per output row; whole tensor for ≤ 1-D): ``max = clip_factor · max(‖p‖, eps)``; where
    ``‖g‖ ≥ max`` the gradient becomes ``g · max / max(‖g‖, 1e-6)``.

    Arguments:
        clip_factor: Ratio threshold (timm default 0.01).
        eps: Lower bound of the parameter norm (timm default 1e-3).
        norm_type: Order of the norm (default 2).
        include / exclude: Name patterns (the paper excludes the final classifier).
    """

    def __init__(
        self,
        clip_factor: float = 0.01,
        *,
        eps: float = 1e-3,
        norm_type: float = 2.0,
        include: Sequence[str] | None = None,
        exclude: Sequence[str] = (),
    ) -> None:
        super().__init__(include=include, exclude=exclude)
        self.clip_factor = _check_number(clip_factor, "clip_factor", allow_low=False)
        self.eps = _check_number(eps, "eps")
        self.norm_type = _check_number(norm_type, "norm_type", allow_low=False)

    def pre_step(self, optimizer: Optimizer) -> None:
        for _, ps in self.selected(optimizer):
            for p in ps:
                g = p.grad.detach()
                max_norm = _unitwise_norm(p.detach(), self.norm_type).clamp(min=self.eps)
                max_norm = max_norm * self.clip_factor
                g_norm = _unitwise_norm(g, self.norm_type)
                clipped = g * (max_norm / g_norm.clamp(min=1e-6))
                g.copy_(torch.where(g_norm < max_norm, g, clipped))


class GradTransform(Transform):
    """Apply any callable to each selected gradient, once per optimizer step (post 6418).

    ``fn(grad)`` may modify ``grad`` in place and return ``None``, or return a new tensor of the
    same shape, which is copied into ``p.grad``.

    Arguments:
        fn: ``grad -> Tensor | None``.
        include / exclude: Name patterns; unmatched parameters are left bitwise untouched.
    """

    def __init__(
        self,
        fn: Callable[[Tensor], Tensor | None],
        *,
        include: Sequence[str] | None = None,
        exclude: Sequence[str] = (),
    ) -> None:
        if not callable(fn):
            raise ValueError(f"fn: expected a callable grad -> Tensor | None, got {fn!r}")
        super().__init__(include=include, exclude=exclude)
        self.fn = fn

    def pre_step(self, optimizer: Optimizer) -> None:
        with torch.no_grad():
            for _, ps in self.selected(optimizer):
                for p in ps:
                    out = self.fn(p.grad)
                    if out is not None and out is not p.grad:
                        if out.shape != p.grad.shape:
                            raise ValueError(
                                f"fn: returned shape {tuple(out.shape)} for a gradient of shape "
                                f"{tuple(p.grad.shape)}"
                            )
                        p.grad.copy_(out)
