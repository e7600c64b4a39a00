"""Transform chain on ``torch.optim`` step hooks: ``extend(optimizer, *transforms)``.

bert4keras's optimizer extensions rewrite every parameter write ("``new_x``") by patching
``K.update`` inside nested optimizer subclasses (spec §2.2). Here the same effect comes from the
public hooks of :class:`torch.optim.Optimizer`: a step pre-hook runs every transform's
``pre_step`` (gradient transforms, learning-rate multipliers) and snapshots the parameters when a
transform needs the update ``Δ = p_new − p_old``; a step post-hook runs every ``post_step`` in
argument order, each of which may rewrite ``p = p_old + Δ'``, so the argument order is the order in
which the transforms act (optax ``chain`` semantics). Finally every transform's ``cleanup`` runs (in
reverse order), e.g. to restore learning rates that a multiplier scaled in the pre-hook.

Nothing is reordered. A transform that must act after every update rewrite (``late``:
:class:`Lookahead`, the EMA shim) raises ``ValueError`` when a non-late transform follows it.

The chain's state (step counters, Lookahead's slow weights) travels inside
``optimizer.state_dict()`` under the key ``"kexue_chain"`` as ``{transform name: state}`` and is
restored by ``optimizer.load_state_dict()``. Names are unique per optimizer: a user-given one
(``extend(opt, ("clip", GradClip(1.0)))``) or the snake-case class name, suffixed ``_1``, ``_2``, …
when taken (``lookahead``, ``lookahead_1``). Checkpoints of 0.1.0 (positional states under
``"kexue_chain.<n>"``, n = the n-th chain extended on the optimizer) are still read: see
:meth:`ChainHandle.load_state_dict`. ``handle.remove()`` removes every hook and leaves the
optimizer as it was.

References:
    Post 6418 (layer-wise LR and free gradients): https://kexue.fm/archives/6418
    bert4keras ``optimizers.py`` (``extend_with_*``), https://github.com/bojone/bert4keras
    optax ``chain`` / ``named_chain``, https://github.com/google-deepmind/optax
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

__all__ = ["ChainHandle", "Transform", "extend"]

_COUNTER_ATTR = "_kexue_chain_count"  # chains ever created on the optimizer (0.1.0 keys)
_NAMES_ATTR = "_kexue_chain_names"  # names held by live chains of the optimizer
_LIVE_ATTR = "_kexue_chain_live"  # live chains, in hook order
STATE_KEY = "kexue_chain"
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


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

    In a chain each transform has a unique name (its state key in ``optimizer.state_dict()``):
    ``default_name`` or the snake-case class name, or a name given as ``(name, transform)``.

    Parameters are selected by regular expressions (``re.search``) over their names, which come
    from the optimizer's ``param_names`` group key (pass ``model.named_parameters()`` or the
    output of :func:`param_groups` to the optimizer) or from ``extend(..., model=model)``.

    Arguments:
        include: Patterns a parameter name must match (any of them); ``None`` selects all.
        exclude: Patterns that deselect a parameter (any of them).
    """

    needs_snapshot: bool = False
    #: Transforms that must run after every Δ-rewriting transform (Lookahead, EMA) set this;
    #: :func:`extend` raises when a non-late transform is placed after one.
    late: bool = False
    #: Base of the state name in a chain (default: the snake-case class name).
    default_name: str | None = None
    #: Set by :class:`~kexue.keras_compat.optim.NonFinite`: runs first and finishes the step
    #: (``protect`` / ``finish``); :func:`extend` raises unless it is at position 0.
    wraps_step: bool = False

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

    def guarded_tensors(self) -> list[Tensor]:
        """Live state tensors that a skipped step must restore (default: none)."""
        return []

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


def _snake(name: str) -> str:
    name = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name)
    return name.lower().strip("_")


def _base_name(t: Transform) -> str:
    return t.default_name or _snake(type(t).__name__)


def _describe(t: Transform, name: str, position: int) -> str:
    return f"{type(t).__name__} {name!r} (position {position})"


def _check_order(transforms: Sequence[Transform], names: Sequence[str]) -> None:
    """Raise if a non-late transform follows a late one, or a step-wrapping one is not first
    (nothing is ever moved)."""
    for j, t in enumerate(transforms):
        if t.wraps_step and j != 0:
            raise ValueError(
                f"transforms: {_describe(t, names[j], j)} must come first (it checks the raw "
                "gradients before any other transform and restores a skipped step after all of them)"
            )
    first_late = next((i for i, t in enumerate(transforms) if t.late), None)
    if first_late is None:
        return
    for j in range(first_late + 1, len(transforms)):
        if not transforms[j].late:
            late = transforms[first_late]
            raise ValueError(
                f"transforms: {_describe(late, names[first_late], first_late)} must run last, "
                f"after every update rewrite, but {_describe(transforms[j], names[j], j)} comes "
                f"after it; transforms apply in argument order, so place "
                f"{type(late).__name__} after {type(transforms[j]).__name__}"
            )


class ChainHandle:
    """Handle returned by :func:`extend`: runs the transforms and removes them on ``remove()``.

    Attributes:
        transforms: The transforms, in application order.
        names: Their unique names (state keys), in the same order.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        transforms: Iterable[Transform | tuple[str, Transform]],
        names: dict[int, str],
    ):
        pairs = [_as_pair(t) for t in transforms]
        self.optimizer = optimizer
        self.transforms: list[Transform] = []
        self.names: list[str] = []
        self._names = names
        taken = optimizer.__dict__.setdefault(_NAMES_ATTR, set())
        given = [n for n, _ in pairs if n is not None]
        for n in given:
            _check_name(n)
            if n in taken or given.count(n) > 1:
                raise ValueError(f"transforms: name {n!r} is already used on this optimizer")
        chosen = list(given)  # user-given names first, so auto names never take them
        new_names = []
        for n, t in pairs:
            if n is None:
                n = _free_name(_base_name(t), taken | set(chosen))
                chosen.append(n)
            new_names.append(n)
        _check_order([t for _, t in pairs], new_names)
        for (_, t), n in zip(pairs, new_names, strict=True):
            t.bind(optimizer, names)
            self.transforms.append(t)
            self.names.append(n)
        taken.update(new_names)
        count = getattr(optimizer, _COUNTER_ATTR, 0)
        setattr(optimizer, _COUNTER_ATTR, count + 1)
        #: 0.1.0 state key of this chain (read by the loader only)
        self.legacy_key = f"kexue_chain.{count}"
        optimizer.__dict__.setdefault(_LIVE_ATTR, []).append(self)
        self._handles = [
            optimizer.register_step_pre_hook(self._pre),
            optimizer.register_step_post_hook(self._post),
            optimizer.register_state_dict_post_hook(self._save),
            optimizer.register_load_state_dict_pre_hook(self._load),
        ]
        self._snapshot: dict[int, Tensor] | None = None

    def add(self, transform: Transform, name: str | None = None) -> None:
        """Append a transform (raises if that would put a non-late one after a late one)."""
        self.insert(len(self.transforms), transform, name)

    def insert(self, index: int, transform: Transform, name: str | None = None) -> None:
        """Insert a transform at ``index`` of the chain; the order is checked, never changed."""
        if not isinstance(transform, Transform):
            raise ValueError(
                f"transforms: expected Transform instances, got {type(transform).__name__}"
            )
        taken = self.optimizer.__dict__.setdefault(_NAMES_ATTR, set())
        if name is None:
            name = _free_name(_base_name(transform), taken)
        else:
            _check_name(name)
            if name in taken:
                raise ValueError(f"transforms: name {name!r} is already used on this optimizer")
        transforms = [*self.transforms]
        names = [*self.names]
        transforms.insert(index, transform)
        names.insert(index, name)
        _check_order(transforms, names)
        transform.bind(self.optimizer, self._names)
        self.transforms, self.names = transforms, names
        taken.add(name)

    # -- hooks ---------------------------------------------------------------------------------
    @torch.no_grad()
    def _pre(self, optimizer: Optimizer, args: Any, kwargs: Any) -> None:
        for t in self.transforms:
            t.pre_step(optimizer)
        if self.transforms and self.transforms[0].wraps_step:
            guarded = [x for t in self.transforms[1:] for x in t.guarded_tensors()]
            self.transforms[0].protect(guarded)  # type: ignore[attr-defined]
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
            if self.transforms and self.transforms[0].wraps_step:
                self.transforms[0].finish(optimizer)  # type: ignore[attr-defined]
        for t in reversed(self.transforms):
            t.cleanup(optimizer)

    def _save(self, optimizer: Optimizer, state: dict[str, Any]) -> dict[str, Any]:
        state.setdefault(STATE_KEY, {}).update(self.state_dict()["transforms"])
        return state

    def _load(self, optimizer: Optimizer, state: dict[str, Any]) -> dict[str, Any]:
        # ``state`` is torch's shallow copy: replace nested containers, never mutate them
        if STATE_KEY in state:
            saved = dict(state[STATE_KEY])
            mine = {n: saved.pop(n) for n in self.names if n in saved}
            self.load_state_dict({"transforms": mine})
            live = optimizer.__dict__.get(_LIVE_ATTR, [])
            if live and live[-1] is self:  # last chain to load: nothing may be left unclaimed
                saved = {n: s for n, s in saved.items() if s != {}}
                if saved:
                    raise ValueError(
                        f"optimizer state: {STATE_KEY!r} holds state for transform(s) "
                        f"{sorted(saved)} that no chain of this optimizer has; chains hold "
                        f"{sorted(n for c in live for n in c.names)}"
                    )
                state.pop(STATE_KEY)
            else:
                state[STATE_KEY] = saved
        elif self.legacy_key in state:
            self.load_state_dict(state.pop(self.legacy_key))
        return state

    # -- public --------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """``{"transforms": {name: state}}``, in chain order."""
        return {"transforms": {n: t.state_dict() for n, t in zip(self.names, self.transforms)}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`, or a 0.1.0 chain state.

        Name-keyed states (``{"transforms": {name: state}}``) are matched by name, so inserting or
        reordering transforms keeps a checkpoint loadable; a stateful transform without a saved
        state raises (a stateless one, whose ``state_dict()`` is empty, needs none).

        0.1.0 states (``{"transforms": [state, ...]}``, saved under ``"kexue_chain.<n>"``) are
        positional: the list must have one entry per transform, in the order 0.1.0 applied them —
        which is this chain's order when the chain is built as in 0.1.0 with every late
        transform written last (0.1.0 moved late transforms to the end silently).
        """
        states = state.get("transforms") if isinstance(state, dict) else None
        if isinstance(states, list):  # 0.1.0: positional
            if len(states) != len(self.transforms):
                raise ValueError(
                    f"state: 0.1.0 chain state has {len(states)} positional transform states, "
                    f"this chain has {len(self.transforms)} ({self.names})"
                )
            pairs = list(zip(self.names, self.transforms, states, strict=True))
        elif isinstance(states, dict):
            missing = [
                n for n, t in zip(self.names, self.transforms) if n not in states and t.state_dict()
            ]
            if missing:
                raise ValueError(
                    f"state: no saved state for transform(s) {missing}; saved names: "
                    f"{sorted(states)}"
                )
            pairs = [(n, t, states[n]) for n, t in zip(self.names, self.transforms) if n in states]
        else:
            raise ValueError(
                "state: expected {'transforms': {name: state}} (or a 0.1.0 list), got "
                f"{type(state).__name__}"
            )
        for i, (n, t, s) in enumerate(pairs):
            try:
                t.load_state_dict(s)
            except (KeyError, TypeError, ValueError, AttributeError) as err:
                raise ValueError(
                    f"state: cannot load the state of {type(t).__name__} {n!r} (entry {i}): "
                    f"{type(err).__name__}: {err}"
                ) from err

    def remove(self) -> None:
        """Remove every hook; the optimizer behaves as if never extended."""
        for h in self._handles:
            h.remove()
        if self._handles:
            self.optimizer.__dict__.get(_NAMES_ATTR, set()).difference_update(self.names)
            live = self.optimizer.__dict__.get(_LIVE_ATTR, [])
            if self in live:
                live.remove(self)
        self._handles = []
        for t in self.transforms:
            t.cleanup(self.optimizer)  # no-op unless a step was interrupted mid-way

    def __enter__(self) -> ChainHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


def _as_pair(item: Any) -> tuple[str | None, Transform]:
    if isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], Transform):
        return item[0], item[1]
    if not isinstance(item, Transform):
        raise ValueError(
            "transforms: expected Transform instances or (name, Transform) pairs, got "
            f"{type(item).__name__}"
        )
    return None, item


def _check_name(name: Any) -> None:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ValueError(f"transforms: a name must be an identifier string, got {name!r}")


def _free_name(base: str, taken: set[str]) -> str:
    if base not in taken:
        return base
    i = 1
    while f"{base}_{i}" in taken:
        i += 1
    return f"{base}_{i}"


def extend(
    optimizer: Optimizer,
    *transforms: Transform | tuple[str, Transform],
    model: torch.nn.Module | None = None,
) -> ChainHandle:
    """Run ``transforms`` around every ``optimizer.step()``, in argument order, through step hooks.

    Pre-step: each transform's ``pre_step`` in argument order (gradient transforms see the final
    accumulated, all-reduced gradient exactly once per step), then a snapshot of the parameters
    only if some transform needs ``Δ``. Post-step: each ``post_step`` in argument order — the order
    of application on the update delta, e.g. ``[WeightDecay, LayerAdaptation]`` ≈ LAMB (the trust
    ratio sees the decayed update) — then each ``cleanup`` in reverse order. Nothing is reordered:
    a transform flagged ``late`` (:class:`Lookahead`) must come after every non-late one, else
    ``ValueError`` names both and their positions.

    Arguments:
        optimizer: Any :class:`torch.optim.Optimizer`.
        transforms: :class:`Transform` instances, or ``(name, transform)`` pairs, in application
            order. The name keys the transform's state in ``optimizer.state_dict()``; by default
            it is the snake-case class name, suffixed ``_1``, ``_2``, … when already used on this
            optimizer.
        model: Optional module whose ``named_parameters()`` names the parameters for include /
            exclude patterns (not needed when the optimizer's groups carry ``param_names``).

    Returns:
        A :class:`ChainHandle`; ``handle.remove()`` unregisters every hook.

    Example:
        >>> opt = torch.optim.SGD(model.named_parameters(), lr=0.1)
        >>> handle = extend(opt, GradClip(max_norm=1.0), WeightDecay(0.01, exclude=[r"bias"]))
        >>> handle.names
        ['grad_clip', 'weight_decay']
    """
    if not isinstance(optimizer, Optimizer):
        raise ValueError(
            f"optimizer: expected a torch.optim.Optimizer, got {type(optimizer).__name__}"
        )
    return ChainHandle(optimizer, transforms, param_names(optimizer, model))
