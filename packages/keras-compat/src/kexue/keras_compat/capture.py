"""Intermediate outputs and losses added from inside modules (post 6575; Keras ``add_loss``).

Keras reads a layer's output through a new functional ``Model`` and an arbitrary tensor through
``K.function``; in eager PyTorch both become a context manager around an ordinary forward:
:func:`capture` fills a dict with submodule outputs (forward hooks, removed on exit) and with
tensors published by :class:`Tap` modules or :func:`record` calls. :class:`AuxLosses` collects
losses that modules add with :func:`add_loss` during a forward (VAE KL, centre loss, MoE
balancing), as Keras's ``Layer.add_loss``.

References:
    https://kexue.fm/archives/6575; Keras ``Layer.add_loss``; timm ``AttentionExtract``.
"""

from __future__ import annotations

import difflib
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, Literal

import torch
from torch import Tensor, nn

from kexue.keras_compat.ema import unwrap_model

__all__ = ["AuxLosses", "Tap", "add_loss", "capture", "record"]

_LOCK = threading.Lock()
_CAPTURES: list[_Capture] = []  # process-wide: DataParallel replicas run in other threads
_COLLECTORS: list[AuxLosses] = []


def _detach(value: Any) -> Any:
    if isinstance(value, Tensor):
        return value.detach()
    if isinstance(value, tuple) and hasattr(value, "_fields"):  # namedtuple
        return type(value)(*(_detach(v) for v in value))
    if isinstance(value, (tuple, list)):
        return type(value)(_detach(v) for v in value)
    if isinstance(value, dict):
        return {k: _detach(v) for k, v in value.items()}
    return value


class _Capture:
    def __init__(self, names: set[str], detach: bool, keep: str) -> None:
        self.names = names
        self.detach = detach
        self.keep = keep
        self.out: dict[str, Any] = {}

    def store(self, name: str, value: Any) -> None:
        value = _detach(value) if self.detach else value
        if self.keep == "all":
            self.out.setdefault(name, []).append(value)
        else:
            self.out[name] = value


@contextmanager
def capture(
    model: nn.Module,
    names: Iterable[str],
    *,
    records: Iterable[str] = (),
    detach: bool = True,
    keep: Literal["last", "all"] = "last",
) -> Iterator[dict[str, Any]]:
    """Collect intermediate values of ``model`` during the forward passes run inside the block.

    Each entry of ``names`` is a qualified submodule name (``"encoder.layers.0.attn"``; its
    forward output is captured by a forward hook) or the name of a :class:`Tap` inside ``model``.
    Names filled by :func:`record` calls are declared in ``records`` (they cannot be checked in
    advance). Hooks are removed on exit, also on exception; outputs and gradients of the model are
    unchanged (the hooks only read).

    Arguments:
        model: the model (DDP / DataParallel / ``torch.compile`` wrappers are stripped for name
            lookup).
        names: submodule names and :class:`Tap` names; unknown names raise ValueError.
        records: names published with :func:`record` inside the forward.
        detach: store ``detach()``-ed values (default); False keeps the graph, e.g. to build a
            loss on a captured feature.
        keep: ``"last"`` (default) keeps the last value when a module runs several times;
            ``"all"`` stores a list of every value, in call order.

    Returns:
        A dict, filled during the forward passes: name → output (a tensor, or the module's
        tuple / dict output with tensors detached).

    Example:
        >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
        >>> with capture(net, ["1"]) as out:
        ...     y = net(torch.randn(3, 4))
        >>> out["1"].shape
        torch.Size([3, 8])
    """
    if keep not in ("last", "all"):
        raise ValueError(f"keep must be 'last' or 'all', got {keep!r}")
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be an nn.Module, got {type(model).__name__}")
    names = [names] if isinstance(names, str) else list(names)
    records = [records] if isinstance(records, str) else list(records)
    root = unwrap_model(model)
    modules = dict(root.named_modules())
    taps = {m.name for m in modules.values() if isinstance(m, Tap)}
    targets: dict[str, nn.Module] = {}
    for name in names:
        if not isinstance(name, str):
            raise ValueError(f"names must be strings, got {name!r}")
        if name in taps:
            continue
        if name in modules and name != "":
            targets[name] = modules[name]
            continue
        close = difflib.get_close_matches(name, [*modules, *taps], n=3)
        raise ValueError(
            f"names: {name!r} is neither a submodule of {type(root).__name__} nor a Tap in it"
            + (f"; did you mean {close}?" if close else "")
            + " (names filled by record() go in records=)"
        )
    state = _Capture(set(taps & set(names)) | set(records), detach, keep)
    handles = []
    try:
        for name, module in targets.items():
            handles.append(module.register_forward_hook(_make_hook(state, name)))
        with _LOCK:
            _CAPTURES.append(state)
        yield state.out
    finally:
        for h in handles:
            h.remove()
        with _LOCK:
            if state in _CAPTURES:
                _CAPTURES.remove(state)


def _make_hook(state: _Capture, name: str) -> Any:
    def hook(module: nn.Module, args: Any, output: Any) -> None:
        state.store(name, output)

    return hook


def record(name: str, tensor: Any) -> Any:
    """Publish ``tensor`` under ``name`` to every active :func:`capture` that asked for it
    (``records=[name]`` or a :class:`Tap` of that name); a no-op otherwise. Returns ``tensor``.

    Example:
        >>> attn = record("block0.attn", torch.softmax(torch.randn(2, 3, 3), -1))
    """
    if _CAPTURES:
        for state in list(_CAPTURES):
            if name in state.names:
                state.store(name, tensor)
    return tensor


class Tap(nn.Module):
    """Identity module that publishes its input to :func:`capture` under ``name``.

    Arguments:
        name: the name to ask :func:`capture` for.

    Example:
        >>> net = nn.Sequential(nn.Linear(4, 8), Tap("hidden"), nn.ReLU())
        >>> with capture(net, ["hidden"]) as out:
        ...     _ = net(torch.randn(2, 4))
        >>> out["hidden"].shape
        torch.Size([2, 8])
    """

    def __init__(self, name: str) -> None:
        super().__init__()
        if not isinstance(name, str) or not name:
            raise ValueError(f"name must be a non-empty string, got {name!r}")
        self.name = name

    def forward(self, x: Any) -> Any:
        return record(self.name, x)

    def extra_repr(self) -> str:
        return repr(self.name)


class AuxLosses:
    """Collector for losses added with :func:`add_loss` inside modules (Keras ``add_loss``).

    Entering the collector clears it and makes it the innermost active one: :func:`add_loss`
    reaches only the innermost collector, so nested collectors are isolated. After exit the
    collector is inactive (later :func:`add_loss` calls do not reach it) but keeps its losses,
    so ``aux.total()`` can be used after the block; the next entry clears them.

    Example:
        >>> with AuxLosses() as aux:
        ...     add_loss(torch.tensor(0.5), weight=0.1)
        >>> aux.total()
        tensor(0.0500)
    """

    def __init__(self) -> None:
        self.losses: list[tuple[str | None, Tensor]] = []

    def __enter__(self) -> AuxLosses:
        self.losses = []
        with _LOCK:
            _COLLECTORS.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        with _LOCK:
            if self in _COLLECTORS:
                _COLLECTORS.remove(self)

    def add(self, loss: Tensor, weight: float = 1.0, name: str | None = None) -> None:
        """Append ``weight * loss`` (a scalar tensor) to this collector."""
        if not isinstance(loss, Tensor) or loss.numel() != 1:
            raise ValueError(
                f"loss must be a scalar tensor, got {type(loss).__name__}"
                + (f" of shape {tuple(loss.shape)}" if isinstance(loss, Tensor) else "")
            )
        self.losses.append((name, loss.reshape(()) * weight if weight != 1.0 else loss.reshape(())))

    def total(self) -> Tensor:
        """Σ weight·loss over the collected losses (a 0-dim zero tensor when empty)."""
        if not self.losses:
            return torch.zeros(())
        return torch.stack([t for _, t in self.losses]).sum()

    def by_name(self) -> dict[str | None, Tensor]:
        """Weighted losses summed per ``name`` (None for unnamed ones)."""
        out: dict[str | None, Tensor] = {}
        for name, t in self.losses:
            out[name] = out[name] + t if name in out else t
        return out

    def __len__(self) -> int:
        return len(self.losses)


def add_loss(
    loss: Tensor, weight: float = 1.0, *, name: str | None = None, strict: bool = False
) -> None:
    """Add ``weight * loss`` to the innermost active :class:`AuxLosses` collector.

    Outside any collector this is a silent no-op (a module works the same at inference and in
    loops that ignore aux losses); ``strict=True`` raises RuntimeError instead.

    Arguments:
        loss: a scalar tensor (gradients flow through it).
        weight: multiplier; default 1.0.
        name: optional label, see :meth:`AuxLosses.by_name`.
        strict: raise when no collector is active.
    """
    if not _COLLECTORS:
        if strict:
            raise RuntimeError("add_loss(strict=True) called outside an AuxLosses collector")
        return
    _COLLECTORS[-1].add(loss, weight, name)
