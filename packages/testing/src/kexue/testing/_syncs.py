"""Count device→host synchronisations: the budget of a training step, checked on CPU."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

__all__ = ["HostSyncs", "count_host_syncs"]

# Python-level ways to pull a value off the device (dispatch=False).
_METHODS = (
    "item",
    "tolist",
    "cpu",
    "numpy",
    "nonzero",
    "__bool__",
    "__int__",
    "__float__",
    "__index__",
)
_FUNCTIONS = ("equal", "allclose")

# dispatch=True: ops that read values back or size their output from them, seen at the dispatcher
# (``_local_scalar_dense`` = ``item()`` / ``bool()`` / ``int()`` / ``float()``), plus the
# Python-level methods that bypass the dispatcher on CPU tensors.
_SYNC_OPS = frozenset(
    {
        "aten::_local_scalar_dense",
        "aten::nonzero",
        "aten::nonzero_static",
        "aten::masked_select",
        "aten::_unique2",
        "aten::unique_consecutive",
    }
)
_DISPATCH_METHODS = ("tolist", "cpu", "numpy")


class HostSyncs:
    """The device→host synchronisations seen while counting, in order.

    ``names`` lists them (a method name such as ``"tolist"``, or an op such as
    ``"aten::nonzero"``); ``count`` and ``len()`` give how many; :meth:`reset` starts over. A test
    compares the count against the step's budget and shows ``names`` when it fails.
    """

    def __init__(self) -> None:
        self.names: list[str] = []

    @property
    def count(self) -> int:
        return len(self.names)

    def reset(self) -> None:
        """Forget the synchronisations seen so far."""
        self.names.clear()

    def __len__(self) -> int:
        return len(self.names)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __repr__(self) -> str:
        return f"HostSyncs({self.names!r})"

    def _wrap(self, name: str, fn: Callable) -> Callable:
        @functools.wraps(fn)
        def counted(*args, **kwargs):
            self.names.append(name)
            return fn(*args, **kwargs)

        return counted


class _DispatchCounter(TorchDispatchMode):
    def __init__(self, syncs: HostSyncs) -> None:
        super().__init__()
        self.syncs = syncs

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[override]
        name = func._schema.name
        if name in _SYNC_OPS:
            self.syncs.names.append(name)
        elif name == "aten::index" and any(
            i is not None and i.dtype == torch.bool for i in args[1]
        ):
            self.syncs.names.append("aten::index (bool mask)")
        return func(*args, **(kwargs or {}))


@contextlib.contextmanager
def count_host_syncs(*, dispatch: bool = False) -> Iterator[HostSyncs]:
    """Record the device→host synchronisations made inside the ``with`` block.

    On CPU nothing really synchronises, so the counter records what *would* block on an
    accelerator, on every machine. Two ways of seeing them:

    - ``dispatch=False`` (what the ``host_syncs`` fixture uses): the explicit Python-level reads,
      ``Tensor.item``, ``tolist``, ``cpu``, ``numpy``, ``nonzero``, ``__bool__``, ``__int__``,
      ``__float__``, ``__index__``, ``torch.equal`` and ``torch.allclose``. Implicit syncs inside
      ops (boolean-mask indexing, ``masked_select``) are not seen.
    - ``dispatch=True``: every op that reads values back or sizes its output from them, seen at the
      dispatcher (``item()`` / ``bool()`` / ``int()`` / ``float()`` as ``_local_scalar_dense``,
      ``nonzero``, ``masked_select``, ``unique``, boolean-mask indexing, also inside torch's own
      functions), plus ``tolist()``, ``cpu()`` and ``numpy()``, which bypass the dispatcher on CPU.

    Arguments:
        dispatch: count at the dispatcher instead of at the Python methods.

    Returns:
        A context manager yielding the :class:`HostSyncs` it fills.

    Example:
        >>> x = torch.tensor([1.0, -2.0])
        >>> with count_host_syncs() as syncs:
        ...     _ = x.tolist(), bool(x[0] > 0)
        >>> syncs.names
        ['tolist', '__bool__']
    """
    syncs = HostSyncs()
    with pytest.MonkeyPatch.context() as mp:
        methods = _DISPATCH_METHODS if dispatch else _METHODS
        for name in methods:
            mp.setattr(torch.Tensor, name, syncs._wrap(name, getattr(torch.Tensor, name)))
        if dispatch:
            with _DispatchCounter(syncs):
                yield syncs
        else:
            for name in _FUNCTIONS:
                mp.setattr(torch, name, syncs._wrap(name, getattr(torch, name)))
            yield syncs
