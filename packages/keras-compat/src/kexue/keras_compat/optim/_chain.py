"""Transform chain on ``torch.optim`` step hooks: ``extend(optimizer, *transforms)``.

bert4keras's optimizer extensions rewrite every parameter write ("``new_x``") by patching
``K.update`` inside nested optimizer subclasses (spec §2.2). Here the same effect comes from the
public hooks of :class:`torch.optim.Optimizer`: a step pre-hook runs every transform's
``pre_step`` (gradient transforms, learning-rate multipliers) and snapshots the parameters when a
transform needs the update ``Δ = p_new − p_old``; a step post-hook runs every ``post_step`` in list
order, each of which may rewrite ``p = p_old + Δ'``, so the list order is the order in which the
transforms act on the update delta. Finally every transform's ``cleanup`` runs (in reverse order),
e.g. to restore learning rates that a multiplier scaled in the pre-hook.

The chain's state (step counters, Lookahead's slow weights) travels inside
``optimizer.state_dict()`` under the key ``"kexue_chain.<n>"`` and is restored by
``optimizer.load_state_dict()``; ``handle.remove()`` removes every hook and leaves the optimizer as
it was.

References:
    Post 6418 (layer-wise LR and free gradients): https://kexue.fm/archives/6418
    bert4keras ``optimizers.py`` (``extend_with_*``), https://github.com/bojone/bert4keras
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

__all__ = ["ChainHandle", "Transform", "extend"]

_COUNTER_ATTR = "_kexue_chain_count"


class Transform:
    """Base class (and protocol) of optimizer transforms run by :func:`extend`.

    A transform may override:

    - ``pre_step(optimizer)``: runs once per ``optimizer.step()``, before the update, on the final
      (accumulated, all-reduced) gradients.
    - ``post_step(optimizer, snapshot)``: runs after the update; ``snapshot`` maps ``id(p)`` to the
      pre-step value of ``p`` for every parameter selected by a transform whose
      ``needs_snapshot`` is true (else ``None``).
    - ``cleanup(optimizer)``: runs after every ``post_step`` of the chain, in reverse list order.
    - ``state_dict()`` / ``load_state_dict(state)``.

    Parameters are selected by regular expressions (``re.search``) over their names, which come
    from the optimizer's ``param_names`` group key (pass ``model.named_parameters()`` or the
    output of :func:`param_groups` to the optimizer) or from ``extend(..., model=model)``.

    Arguments:
        include: Patterns a parameter name must match (any of them); ``None`` selects all.
        exclude: Patterns that deselect a parameter (any of them).
    """

    needs_snapshot: bool = False
    #: Transforms that must run after every Δ-rewriting transform (Lookahead, EMA) set this.
    late: bool = False

    def __init__(
        self, *, include: Sequence[str] | None = None, exclude: Sequence[str] = ()
    ) -> None:
        self.include = None if include is None else _patterns(include, "include")
        self.exclude = _patterns(exclude, "exclude")
        self._names: dict[int, str] = {}
        self._cache: dict[int, bool] = {}

    # -- binding and selection ---------------------------------------------------------------
    def bind(self, optimizer: Optimizer, names: dict[int, str]) -> None:
        """Called by :func:`extend` with ``{id(p): name}`` (possibly empty)."""
        self._names = names
        self._cache = {}
        if (self.include or self.exclude) and not names:
            raise ValueError(
                f"{type(self).__name__}: include/exclude patterns need parameter names; build the "
                "optimizer from model.named_parameters() or param_groups(), or pass model= to "
                "extend()"
            )

    def selects(self, p: Tensor) -> bool:
        """Whether this transform acts on parameter ``p``."""
        key = id(p)
        hit = self._cache.get(key)
        if hit is None:
            name = self._names.get(key)
            if name is None:
                hit = self.include is None and not self.exclude
            else:
                hit = (
                    self.include is None or any(r.search(name) for r in self.include)
                ) and not any(r.search(name) for r in self.exclude)
            self._cache[key] = hit
        return hit

    def selected(
        self, optimizer: Optimizer, *, with_grad: bool = True
    ) -> Iterator[tuple[dict[str, Any], list[Tensor]]]:
        """Yield ``(group, params)`` for each group with at least one selected parameter."""
        for group in optimizer.param_groups:
            ps = [
                p
                for p in group["params"]
                if self.selects(p) and (not with_grad or p.grad is not None)
            ]
            if ps:
                yield group, ps

    # -- protocol ----------------------------------------------------------------------------
    def pre_step(self, optimizer: Optimizer) -> None:
        """Run before the base update (default: nothing)."""

    def post_step(self, optimizer: Optimizer, snapshot: dict[int, Tensor] | None) -> None:
        """Run after the base update (default: nothing)."""

    def cleanup(self, optimizer: Optimizer) -> None:
        """Run after every ``post_step`` of the chain (default: nothing)."""

    def state_dict(self) -> dict[str, Any]:
        """State to checkpoint (default: empty)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (default: nothing)."""


def _patterns(patterns: Sequence[str] | str, name: str) -> list[re.Pattern[str]]:
    if isinstance(patterns, str):
        patterns = [patterns]
    out = []
    for pat in patterns:
        if not isinstance(pat, str):
            raise ValueError(f"{name}: patterns must be strings, got {type(pat).__name__}")
        try:
            out.append(re.compile(pat))
        except re.error as err:
            raise ValueError(f"{name}: invalid regular expression {pat!r}: {err}") from err
    return out


def param_names(optimizer: Optimizer, model: torch.nn.Module | None = None) -> dict[int, str]:
    """``{id(p): name}`` from the groups' ``param_names`` and/or ``model.named_parameters()``."""
    names: dict[int, str] = {}
    if model is not None:
        model = getattr(model, "module", model)  # DDP / DataParallel
        model = getattr(model, "_orig_mod", model)  # torch.compile
        names.update({id(p): n for n, p in model.named_parameters()})
    for group in optimizer.param_groups:
        if "param_names" in group:
            names.update(
                {id(p): n for p, n in zip(group["params"], group["param_names"], strict=True)}
            )
    return names


def _all_params(optimizer: Optimizer) -> list[Tensor]:
    return [p for group in optimizer.param_groups for p in group["params"]]


class ChainHandle:
    """Handle returned by :func:`extend`: runs the transforms and removes them on ``remove()``."""

    def __init__(
        self, optimizer: Optimizer, transforms: Iterable[Transform], names: dict[int, str]
    ):
        transforms = list(transforms)
        for t in transforms:
            if not isinstance(t, Transform):
                raise ValueError(
                    f"transforms: expected Transform instances, got {type(t).__name__}"
                )
        self.optimizer = optimizer
        self.transforms: list[Transform] = []
        self._names = names
        count = getattr(optimizer, _COUNTER_ATTR, 0)
        setattr(optimizer, _COUNTER_ATTR, count + 1)
        self.key = f"kexue_chain.{count}"
        for t in transforms:
            self.add(t)
        self._handles = [
            optimizer.register_step_pre_hook(self._pre),
            optimizer.register_step_post_hook(self._post),
            optimizer.register_state_dict_post_hook(self._save),
            optimizer.register_load_state_dict_pre_hook(self._load),
        ]
        self._snapshot: dict[int, Tensor] | None = None

    def add(self, transform: Transform) -> None:
        """Append a transform, keeping ``late`` transforms (Lookahead, EMA) at the end."""
        if not isinstance(transform, Transform):
            raise ValueError(
                f"transforms: expected Transform instances, got {type(transform).__name__}"
            )
        transform.bind(self.optimizer, self._names)
        if transform.late:
            self.transforms.append(transform)
        else:
            idx = next((i for i, t in enumerate(self.transforms) if t.late), len(self.transforms))
            self.transforms.insert(idx, transform)

    # -- hooks ---------------------------------------------------------------------------------
    @torch.no_grad()
    def _pre(self, optimizer: Optimizer, args: Any, kwargs: Any) -> None:
        for t in self.transforms:
            t.pre_step(optimizer)
        takers = [t for t in self.transforms if t.needs_snapshot]
        if not takers:
            self._snapshot = None
            return
        snap: dict[int, Tensor] = {}
        for p in _all_params(optimizer):
            if p.grad is not None and id(p) not in snap and any(t.selects(p) for t in takers):
                snap[id(p)] = p.detach().clone()
        self._snapshot = snap

    def _post(self, optimizer: Optimizer, args: Any, kwargs: Any) -> None:
        snapshot, self._snapshot = self._snapshot, None
        with torch.no_grad():
            for t in self.transforms:
                t.post_step(optimizer, snapshot)
        for t in reversed(self.transforms):
            t.cleanup(optimizer)

    def _save(self, optimizer: Optimizer, state: dict[str, Any]) -> dict[str, Any]:
        state[self.key] = self.state_dict()
        return state

    def _load(self, optimizer: Optimizer, state: dict[str, Any]) -> dict[str, Any]:
        mine = state.pop(self.key, None)
        if mine is not None:
            self.load_state_dict(mine)
        return state

    # -- public --------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Per-transform states, in chain order."""
        return {"transforms": [t.state_dict() for t in self.transforms]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`; the chain must hold the same transforms in the same order."""
        states = state.get("transforms") if isinstance(state, dict) else None
        if not isinstance(states, list) or len(states) != len(self.transforms):
            raise ValueError(
                f"state: expected {len(self.transforms)} transform states, got "
                f"{None if states is None else len(states)}"
            )
        for t, s in zip(self.transforms, states, strict=True):
            t.load_state_dict(s)

    def remove(self) -> None:
        """Remove every hook; the optimizer behaves as if never extended."""
        for h in self._handles:
            h.remove()
        self._handles = []
        for t in self.transforms:
            t.cleanup(self.optimizer)  # no-op unless a step was interrupted mid-way

    def __enter__(self) -> ChainHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


def extend(
    optimizer: Optimizer, *transforms: Transform, model: torch.nn.Module | None = None
) -> ChainHandle:
    """Run ``transforms`` around every ``optimizer.step()`` through the optimizer's step hooks.

    Pre-step: each transform's ``pre_step`` in list order (gradient transforms see the final
    accumulated, all-reduced gradient exactly once per step), then a snapshot of the parameters
    only if some transform needs ``Δ``. Post-step: each ``post_step`` in list order — the list order
    is the application order on the update delta, e.g. ``[WeightDecay, LayerAdaptation]`` ≈ LAMB
    (the trust ratio sees the decayed update) — then each ``cleanup`` in reverse order. Transforms
    flagged ``late`` (:class:`Lookahead`) always run after the others.

    Arguments:
        optimizer: Any :class:`torch.optim.Optimizer`.
        transforms: :class:`Transform` instances, in application order.
        model: Optional module whose ``named_parameters()`` names the parameters for include /
            exclude patterns (not needed when the optimizer's groups carry ``param_names``).

    Returns:
        A :class:`ChainHandle`; ``handle.remove()`` unregisters every hook.

    Example:
        >>> opt = torch.optim.SGD(model.named_parameters(), lr=0.1)
        >>> handle = extend(opt, GradClip(max_norm=1.0), WeightDecay(0.01, exclude=[r"bias"]))
    """
    if not isinstance(optimizer, Optimizer):
        raise ValueError(
            f"optimizer: expected a torch.optim.Optimizer, got {type(optimizer).__name__}"
        )
    return ChainHandle(optimizer, transforms, param_names(optimizer, model))
