"""Rule-based parameter groups, layer-wise learning rates and the λ re-parametrisation trick.

Post 6418 gives a layer its own learning rate by re-parametrising θ = λφ: under SGD the effective
rate becomes λ²α, under Adam/RMSprop λα. The torch-idiomatic form is a parameter group with an
``lr_scale`` key (timm convention) that a scheduler multiplies into the group's ``lr``;
:func:`param_groups` builds the groups from rules and :func:`lr_scale_lambda` adapts any
``LambdaLR`` schedule. :func:`scale_parametrization` / :class:`SetLearningRate` reproduce the blog's
trick exactly.

References:
    Post 6418: https://kexue.fm/archives/6418
    timm ``param_groups_weight_decay`` / ``param_groups_layer_decay`` and ``Scheduler`` (lr_scale).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.optim import Optimizer

from ._layer_decay import layer_decay_scales

__all__ = [
    "NORM_LAYERS",
    "Rule",
    "SetLearningRate",
    "lr_scale_lambda",
    "param_groups",
    "scale_parametrization",
]

#: Module types whose parameters the default no-decay rule excludes from weight decay.
NORM_LAYERS: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._NormBase,
    nn.LayerNorm,
    nn.GroupNorm,
    nn.LocalResponseNorm,
    nn.RMSNorm,
)


@dataclass(frozen=True)
class Rule:
    """One parameter-group rule.

    A parameter matches when ``name`` (a regex, ``re.search`` on the full parameter name) matches
    and its owning module is an instance of ``module`` (when given); at least one of the two is
    required. ``lr_scale`` multipliers of all matching rules compose multiplicatively;
    ``weight_decay`` is an absolute value, the last matching rule that sets it wins.
    """

    name: str | None = None
    module: type[nn.Module] | tuple[type[nn.Module], ...] | None = None
    lr_scale: float = 1.0
    weight_decay: float | None = None

    def __post_init__(self) -> None:
        if self.name is None and self.module is None:
            raise ValueError("rules: a rule needs name= (regex) and/or module= (type)")
        if self.name is not None:
            try:
                re.compile(self.name)
            except re.error as err:
                raise ValueError(f"rules: invalid regular expression {self.name!r}: {err}") from err
        if self.module is not None:
            types = self.module if isinstance(self.module, tuple) else (self.module,)
            if not all(isinstance(t, type) and issubclass(t, nn.Module) for t in types):
                raise ValueError(f"rules: module= must be nn.Module types, got {self.module!r}")
        _check_scale(self.lr_scale, "lr_scale")
        if self.weight_decay is not None:
            _check_scale(self.weight_decay, "weight_decay")


def _check_scale(v: float, name: str) -> None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
        raise ValueError(f"rules: {name} must be a finite number >= 0, got {v!r}")


def _as_rule(r: Rule | Mapping[str, Any]) -> Rule:
    if isinstance(r, Rule):
        return r
    if isinstance(r, Mapping):
        unknown = set(r) - {"name", "module", "lr_scale", "weight_decay"}
        if unknown:
            raise ValueError(f"rules: unknown rule keys {sorted(unknown)}")
        return Rule(**r)
    raise ValueError(f"rules: expected Rule instances or dicts, got {type(r).__name__}")


def _is_no_decay(name: str, p: torch.Tensor, owner: nn.Module | None) -> bool:
    return p.ndim <= 1 or name.endswith(".bias") or name == "bias" or isinstance(owner, NORM_LAYERS)


def _named_with_owner(
    model: nn.Module | Iterable[tuple[str, torch.Tensor]],
) -> list[tuple[str, torch.Tensor, nn.Module | None]]:
    """Trainable ``(name, param, owning module)``; tied parameters of a module appear once."""
    out: list[tuple[str, torch.Tensor, nn.Module | None]] = []
    seen: dict[int, str] = {}
    if isinstance(model, nn.Module):
        model = getattr(model, "module", model)  # DDP / DataParallel
        model = getattr(model, "_orig_mod", model)  # torch.compile
        for mod_name, module in model.named_modules():
            for p_name, p in module.named_parameters(recurse=False):
                if id(p) in seen:
                    continue
                name = f"{mod_name}.{p_name}" if mod_name else p_name
                seen[id(p)] = name
                if p.requires_grad:
                    out.append((name, p, module))
        return out
    try:
        pairs = list(model)
    except TypeError:
        raise ValueError(
            f"model: expected an nn.Module or (name, parameter) pairs, got {type(model).__name__}"
        ) from None
    for pair in pairs:
        if not (isinstance(pair, tuple) and len(pair) == 2 and isinstance(pair[1], torch.Tensor)):
            raise ValueError("model: expected (name, parameter) pairs")
        name, p = pair
        if id(p) in seen:
            raise ValueError(f"model: parameter {name!r} was given twice (also as {seen[id(p)]!r})")
        seen[id(p)] = name
        if p.requires_grad:
            out.append((name, p, None))
    return out


def param_groups(
    model: nn.Module | Iterable[tuple[str, torch.Tensor]],
    rules: Sequence[Rule | Mapping[str, Any]] = (),
    *,
    strict: bool = False,
    no_decay: bool = True,
    weight_decay: float | None = None,
    layer_decay: float | None = None,
    depth_fn: Callable[[str], int | None] | None = None,
) -> list[dict[str, Any]]:
    """Optimizer parameter groups from rules: every trainable parameter in exactly one group.

    Each trainable parameter gets ``lr_scale`` = product of the ``lr_scale`` of every matching
    rule (1 when none matches) and of its depth scale when ``layer_decay`` is given and a ``weight_decay`` (the last matching rule that sets it, else
    ``weight_decay``). With ``no_decay=True`` parameters with ≤ 1 dimension, named ``*.bias`` or
    owned by a normalisation layer (:data:`NORM_LAYERS`) get ``weight_decay=0`` whatever the rules
    say (timm's ``param_groups_weight_decay``). Parameters with the same settings share a group; a
    group has keys ``params``, ``param_names``, ``lr_scale`` and, when set, ``weight_decay``.

    ``lr_scale`` is honoured by a scheduler (timm convention): use
    ``LambdaLR(opt, lr_scale_lambda(opt, fn))`` (also with ``fn=None`` for a constant schedule), or
    timm's schedulers. Shared (tied) parameters appear once.

    Arguments:
        model: The module (DDP / ``torch.compile`` wrappers are unwrapped), or ``(name, param)``
            pairs (then module-type rules and the norm-layer part of ``no_decay`` do not apply, and
            a parameter given twice raises).
        rules: :class:`Rule` instances or dicts with keys ``name``, ``module``, ``lr_scale``,
            ``weight_decay``.
        strict: Raise when a rule matches no trainable parameter.
        no_decay: Apply the no-decay rule.
        weight_decay: Default weight decay (``None``: leave the optimizer's default).
        layer_decay: Depth-based decay (BEiT / timm ``layer_decay``): ``lr_scale`` is multiplied by
            ``layer_decay^(L − depth)`` (embeddings depth 0, block i depth i + 1, head L); default
            None (off). See :func:`layer_decay_scales`.
        depth_fn: ``name -> depth | None`` replacing :func:`default_layer_depth` (``None`` = top).

    Returns:
        A list of group dicts for any ``torch.optim`` optimizer.

    Example:
        >>> groups = param_groups(model, [Rule(name=r"^encoder\\.", lr_scale=0.1)], weight_decay=0.05)
        >>> opt = torch.optim.AdamW(groups, lr=1e-3)
        >>> sched = LambdaLR(opt, lr_scale_lambda(opt, piecewise_linear({1000: 1.0})))
    """
    if isinstance(rules, (Rule, Mapping)):
        raise ValueError("rules: expected a sequence of rules, got a single rule")
    parsed = [_as_rule(r) for r in rules]
    if weight_decay is not None:
        _check_scale(weight_decay, "weight_decay")
    hits = [0] * len(parsed)
    groups: dict[tuple[float, float | None], dict[str, Any]] = {}
    named = _named_with_owner(model)
    depth_scale = (
        {}
        if layer_decay is None
        else layer_decay_scales([n for n, _, _ in named], layer_decay, depth_fn)
    )
    for name, p, owner in named:
        scale, wd = depth_scale.get(name, 1.0), weight_decay
        for i, rule in enumerate(parsed):
            if rule.name is not None and not re.search(rule.name, name):
                continue
            if rule.module is not None and not isinstance(owner, rule.module):
                continue
            hits[i] += 1
            scale *= rule.lr_scale
            if rule.weight_decay is not None:
                wd = rule.weight_decay
        if no_decay and _is_no_decay(name, p, owner):
            wd = 0.0
        group = groups.setdefault((scale, wd), {"params": [], "param_names": [], "lr_scale": scale})
        if wd is not None:
            group["weight_decay"] = wd
        group["params"].append(p)
        group["param_names"].append(name)
    if strict:
        for rule, n in zip(parsed, hits, strict=True):
            if n == 0:
                raise ValueError(f"rules: {rule} matches no trainable parameter (strict=True)")
    return list(groups.values())


def lr_scale_lambda(
    optimizer: Optimizer, fn: Callable[[int], float] | None = None
) -> list[Callable[[int], float]]:
    """Per-group ``LambdaLR`` lambdas ``step -> lr_scale · fn(step)`` (timm ``lr_scale`` convention).

    Arguments:
        optimizer: Optimizer whose groups may carry ``lr_scale`` (missing → 1).
        fn: Base schedule ``step -> multiplier`` (``None``: constant 1).

    Returns:
        One callable per param group, for ``LambdaLR(optimizer, lr_lambda=...)``.
    """
    if not isinstance(optimizer, Optimizer):
        raise ValueError(f"optimizer: expected a torch.optim.Optimizer, got {optimizer!r}")
    if fn is not None and not callable(fn):
        raise ValueError(f"fn: expected a callable step -> multiplier, got {fn!r}")
    base = fn if fn is not None else (lambda step: 1.0)
    out = []
    for group in optimizer.param_groups:
        scale = float(group.get("lr_scale", 1.0))
        out.append(lambda step, s=scale: s * base(step))
    return out


class _Scale(nn.Module):
    def __init__(self, lam: float) -> None:
        super().__init__()
        self.lam = lam

    def forward(self, phi: torch.Tensor) -> torch.Tensor:
        return phi * self.lam

    def right_inverse(self, w: torch.Tensor) -> torch.Tensor:
        return w / self.lam


def scale_parametrization(
    module: nn.Module, lam: float, names: Sequence[str] | str | None = None
) -> nn.Module:
    """Re-parametrise ``θ = λ·φ`` (post 6418) with ``torch.nn.utils.parametrize``; φ starts at w/λ.

    The forward pass is unchanged; the trainable tensor becomes
    ``module.parametrizations.<name>.original`` = φ. Under SGD the effective learning rate of θ is
    λ²·lr, under Adam/RMSprop λ·lr (eps → 0).

    Arguments:
        module: The layer (modified in place and returned).
        lam: λ > 0.
        names: Direct parameter names to re-parametrise (default: all of the module's own).
    """
    if not isinstance(module, nn.Module):
        raise ValueError(f"module: expected an nn.Module, got {type(module).__name__}")
    if (
        isinstance(lam, bool)
        or not isinstance(lam, (int, float))
        or not math.isfinite(lam)
        or lam <= 0
    ):
        raise ValueError(f"lam: expected a finite number > 0, got {lam!r}")
    own = [n for n, _ in module.named_parameters(recurse=False)]
    if names is None:
        names = own
    elif isinstance(names, str):
        names = [names]
    for n in names:
        if n not in own:
            raise ValueError(f"names: {n!r} is not a direct parameter of {type(module).__name__}")
        parametrize.register_parametrization(module, n, _Scale(float(lam)))
    return module


class SetLearningRate(nn.Module):
    """Shim of post 6418's ``SetLearningRate(layer, lamb, is_ada=False)`` wrapper.

    Re-parametrises every parameter of ``layer`` (and its sub-layers) as θ = s·φ so that the
    requested multiplier ``lamb`` is the effective one: s = ``lamb`` for adaptive optimisers
    (``is_ada=True``), s = √``lamb`` for SGD. Prefer :func:`param_groups` with ``lr_scale``.
    The blog's exact argument names are unverified (spec §5 q.8).

    Arguments:
        layer: The wrapped module (re-parametrised in place).
        lamb: Learning-rate multiplier > 0.
        is_ada: Whether the optimiser is adaptive (Adam, RMSprop).
    """

    def __init__(self, layer: nn.Module, lamb: float, is_ada: bool = False) -> None:
        super().__init__()
        if isinstance(lamb, bool) or not isinstance(lamb, (int, float)) or lamb <= 0:
            raise ValueError(f"lamb: expected a number > 0, got {lamb!r}")
        self.layer = layer
        self.lamb = float(lamb)
        self.is_ada = bool(is_ada)
        scale = self.lamb if is_ada else math.sqrt(self.lamb)
        for sub in list(layer.modules()):
            if list(sub.named_parameters(recurse=False)):
                scale_parametrization(sub, scale)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.layer(*args, **kwargs)
