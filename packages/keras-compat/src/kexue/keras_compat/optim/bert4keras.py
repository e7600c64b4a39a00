"""bert4keras-compatible ``extend_with_*`` shims returning ``torch.optim`` subclasses (spec §2.17).

Each ``extend_with_X(OptimizerClass, name=None)`` returns a subclass of the given optimizer class
whose constructor pops bert4keras's keyword arguments (same names, same defaults), calls the base
constructor, then registers the matching core transform on one transform chain per optimizer
instance (:func:`extend`). ``name`` sets the class ``__name__``.

Stacking order (explicit): the constructors of nested shims finish innermost first, so
``extend_with_layer_adaptation(extend_with_weight_decay(Adam))`` applies weight decay to the update
first and the trust ratio then sees the decayed update (LAMB), exactly like bert4keras's nested
subclasses. :class:`Lookahead` and the EMA act on the final parameters in bert4keras whatever the
nesting (their ``get_updates`` wrap the inner updates), so the shims insert a Δ-rewriting
transform before the chain's late transforms (an explicit rule of this module; the core
:func:`extend` never reorders) and append late ones; a piecewise-linear multiplier's ``lr`` is
restored after all of them. Transform states are keyed by name (``weight_decay``, ``lookahead``,
``ema``, …) in ``optimizer.state_dict()["kexue_chain"]``.

Parameter-name patterns (``exclude_from_weight_decay`` etc., regular expressions as in bert4keras,
``paramwise_lr_schedule`` keys as substrings) match ``named_parameters()`` names: build the
optimizer from ``model.named_parameters()`` or :func:`param_groups`.

``extend_with_gradient_accumulation`` is deliberately not shimmed (spec §5 q.2): a step hook cannot
skip a step; use :func:`accumulate`. The ``_v2`` names are aliases of the same shims.

Migration note: bert4keras's own tf.keras ``Adam`` defaults to ``epsilon=1e-6`` and has a
``bias_correction`` switch; ``torch.optim.Adam`` defaults to ``eps=1e-8`` and has no switch.

References:
    bert4keras ``optimizers.py``, https://github.com/bojone/bert4keras; post 6418 and post 6575
    (https://kexue.fm/archives/6575).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.optim import Optimizer

from ..ema import EMA
from ._chain import ChainHandle, Transform, extend
from .schedules import piecewise_linear
from .transforms import DeltaScale, LayerAdaptation, LazyRows, Lookahead, LRMultiplier, WeightDecay

#: The bert4keras extension names (``extend_with_<name>``; each also as ``extend_with_<name>_v2``).
_SHIM_NAMES = (
    "exponential_moving_average",
    "gradient_accumulation",
    "layer_adaptation",
    "lazy_optimization",
    "lookahead",
    "parameter_wise_lr",
    "piecewise_linear_lr",
    "weight_decay",
)

__all__ = [f"extend_with_{name}{suffix}" for name in _SHIM_NAMES for suffix in ("", "_v2")]

_CHAIN_ATTR = "_kexue_bert4keras_chain"


def _chain(optimizer: Optimizer) -> ChainHandle:
    """The instance's shared shim chain (created by the innermost shim)."""
    chain = optimizer.__dict__.get(_CHAIN_ATTR)
    if chain is None:
        chain = extend(optimizer)
        optimizer.__dict__[_CHAIN_ATTR] = chain
    return chain


def _add_in_bert4keras_order(chain: ChainHandle, transform: Transform) -> None:
    """Append a late transform; insert any other before the chain's late transforms."""
    index = len(chain.transforms)
    if not transform.late:
        index = next((i for i, t in enumerate(chain.transforms) if t.late), index)
    chain.insert(index, transform)


def _shim(
    base: type[Optimizer],
    name: str | None,
    suffix: str,
    defaults: dict[str, Any],
    make: Callable[[Optimizer, dict[str, Any]], Transform],
) -> type[Optimizer]:
    if not (isinstance(base, type) and issubclass(base, Optimizer)):
        raise ValueError(f"base_optimizer: expected a torch.optim.Optimizer subclass, got {base!r}")
    if name is not None and not (isinstance(name, str) and name.isidentifier()):
        raise ValueError(f"name: expected an identifier string, got {name!r}")

    def __init__(self: Optimizer, params: Any, *args: Any, **kwargs: Any) -> None:
        own = {k: kwargs.pop(k) if k in kwargs else copy.deepcopy(v) for k, v in defaults.items()}
        base.__init__(self, params, *args, **kwargs)
        for k, v in own.items():
            setattr(self, k, v)
        _add_in_bert4keras_order(_chain(self), make(self, own))

    cls_name = name or f"{base.__name__}{suffix}"
    cls = type(cls_name, (base,), {"__init__": __init__, "__module__": __name__})
    cls.__qualname__ = cls_name
    cls.__doc__ = (
        f"{base.__name__} extended by bert4keras ``extend_with_{suffix}``-style shim; extra "
        f"keyword arguments (defaults): {defaults}."
    )
    return cls


def extend_with_weight_decay(base_optimizer: type[Optimizer], name: str | None = None):
    """Decoupled weight decay after the update (:class:`WeightDecay`).

    Keyword arguments (bert4keras defaults): ``weight_decay_rate=0.01``,
    ``exclude_from_weight_decay=[]`` (regexes over parameter names). With ``Adam`` this equals
    ``torch.optim.AdamW(weight_decay=weight_decay_rate)`` up to rounding.
    """
    return _shim(
        base_optimizer,
        name,
        "WithWeightDecay",
        {"weight_decay_rate": 0.01, "exclude_from_weight_decay": []},
        lambda o, kw: WeightDecay(kw["weight_decay_rate"], exclude=kw["exclude_from_weight_decay"]),
    )


def extend_with_layer_adaptation(base_optimizer: type[Optimizer], name: str | None = None):
    """LAMB trust ratio on the update (:class:`LayerAdaptation`).

    Keyword arguments (bert4keras defaults): ``exclude_from_layer_adaptation=[]``.
    """
    return _shim(
        base_optimizer,
        name,
        "WithLayerAdaptation",
        {"exclude_from_layer_adaptation": []},
        lambda o, kw: LayerAdaptation(exclude=kw["exclude_from_layer_adaptation"]),
    )


def extend_with_piecewise_linear_lr(base_optimizer: type[Optimizer], name: str | None = None):
    """Piecewise-linear LR multiplier (:class:`LRMultiplier` + :func:`piecewise_linear`).

    Keyword arguments (bert4keras defaults): ``lr_schedule={0: 1}`` (string keys from JSON configs
    are converted to int, as bert4keras does). The multiplier at the n-th ``step()`` (0-based) is
    ``piecewise_linear(lr_schedule)(n)`` and scales the group's current (scheduled) ``lr`` (v2).
    """

    def make(o: Optimizer, kw: dict[str, Any]) -> Transform:
        schedule = kw["lr_schedule"]
        if not isinstance(schedule, dict):
            raise ValueError(f"lr_schedule: expected a dict step -> multiplier, got {schedule!r}")
        try:
            schedule = {int(k): v for k, v in schedule.items()}
        except (TypeError, ValueError):
            raise ValueError(f"lr_schedule: steps must be integers, got {schedule!r}") from None
        o.lr_schedule = schedule
        return LRMultiplier(piecewise_linear(schedule))

    return _shim(base_optimizer, name, "WithPiecewiseLinearLR", {"lr_schedule": {0: 1}}, make)


def extend_with_gradient_accumulation(
    base_optimizer: type[Optimizer] | None = None, name: str | None = None
):
    """Not shimmed (spec §5 q.2): raises ``NotImplementedError`` pointing to :func:`accumulate`.

    A step hook cannot skip a step; ``.grad`` already accumulates in PyTorch. Use
    ``kexue.keras_compat.optim.accumulate(optimizer, grad_accum_steps, model=...)``.
    """
    raise NotImplementedError(
        "extend_with_gradient_accumulation is not provided: PyTorch accumulates .grad natively; "
        "use kexue.keras_compat.optim.accumulate(optimizer, steps=grad_accum_steps, model=model) "
        "(divides the loss by k, steps every k-th micro-step, DDP no_sync on the others)"
    )


def extend_with_lookahead(base_optimizer: type[Optimizer], name: str | None = None):
    """Lookahead with copy-initialised slow weights (:class:`Lookahead`; always last).

    Keyword arguments (bert4keras defaults): ``steps_per_slow_update=5``, ``slow_step_size=0.5``.
    Unlike bert4keras, the slow weights start as a copy of the parameters (its zero start is a bug).
    """
    return _shim(
        base_optimizer,
        name,
        "WithLookahead",
        {"steps_per_slow_update": 5, "slow_step_size": 0.5},
        lambda o, kw: Lookahead(kw["steps_per_slow_update"], kw["slow_step_size"]),
    )


def extend_with_lazy_optimization(base_optimizer: type[Optimizer], name: str | None = None):
    """Rows with all-zero gradient keep their value (:class:`LazyRows`).

    Keyword arguments (bert4keras defaults): ``include_in_lazy_optimization=[]`` (regexes; the
    default selects nothing, as in bert4keras).
    """
    return _shim(
        base_optimizer,
        name,
        "WithLazyOptimization",
        {"include_in_lazy_optimization": []},
        lambda o, kw: LazyRows(include=kw["include_in_lazy_optimization"]),
    )


class _ParamBag(nn.Module):
    def __init__(self, params: list[torch.Tensor]) -> None:
        super().__init__()
        self.params = nn.ParameterList(params)


class _EMATransform(Transform):
    late = True
    default_name = "ema"

    def __init__(self, ema: EMA) -> None:
        super().__init__()
        self.ema = ema

    def post_step(self, optimizer: Optimizer, snapshot: dict[int, torch.Tensor] | None) -> None:
        self.ema.update()

    def state_dict(self) -> dict[str, Any]:
        return self.ema.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.ema.load_state_dict(state)


def _apply_ema_weights(self: Optimizer, bias_correction: bool = True) -> None:
    """Back up the parameters and load the (bias-corrected) averages (bert4keras semantics)."""
    self.ema.apply_ema_weights(bias_correction=bias_correction)


def _reset_old_weights(self: Optimizer) -> None:
    """Restore the parameters backed up by ``apply_ema_weights``, bitwise."""
    self.ema.reset_old_weights()


def extend_with_exponential_moving_average(
    base_optimizer: type[Optimizer], name: str | None = None
):
    """Weight EMA over the optimizer's parameters, zero-initialised (bert4keras semantics).

    Keyword arguments (bert4keras defaults): ``ema_momentum=0.999``. Uses
    ``kexue.keras_compat.ema.EMA(init="zero", buffers="ignore")`` (always last in the chain).
    Methods: ``apply_ema_weights(bias_correction=True)`` (divides by 1 − m^t) and
    ``reset_old_weights()``; the :class:`EMA` object is ``optimizer.ema``.
    """

    def make(o: Optimizer, kw: dict[str, Any]) -> Transform:
        params = [p for g in o.param_groups for p in g["params"]]
        o.ema = EMA(_ParamBag(params), kw["ema_momentum"], init="zero", buffers="ignore")
        return _EMATransform(o.ema)

    cls = _shim(base_optimizer, name, "WithEMA", {"ema_momentum": 0.999}, make)
    cls.apply_ema_weights = _apply_ema_weights
    cls.reset_old_weights = _reset_old_weights
    return cls


def extend_with_parameter_wise_lr(base_optimizer: type[Optimizer], name: str | None = None):
    """Per-parameter update multipliers (:class:`DeltaScale`, substring matching).

    Keyword arguments (bert4keras defaults): ``paramwise_lr_schedule={}``; every key contained in a
    parameter name multiplies in; unmatched parameters keep scale 1.
    """
    return _shim(
        base_optimizer,
        name,
        "WithParameterWiseLR",
        {"paramwise_lr_schedule": {}},
        lambda o, kw: DeltaScale(kw["paramwise_lr_schedule"], match="substring"),
    )


extend_with_weight_decay_v2 = extend_with_weight_decay
extend_with_layer_adaptation_v2 = extend_with_layer_adaptation
extend_with_piecewise_linear_lr_v2 = extend_with_piecewise_linear_lr
extend_with_gradient_accumulation_v2 = extend_with_gradient_accumulation
extend_with_lookahead_v2 = extend_with_lookahead
extend_with_lazy_optimization_v2 = extend_with_lazy_optimization
extend_with_exponential_moving_average_v2 = extend_with_exponential_moving_average
extend_with_parameter_wise_lr_v2 = extend_with_parameter_wise_lr
