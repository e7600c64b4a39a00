"""A device→host synchronisation counter for the tagging tests (fixture ``count_syncs``).

On CPU nothing really synchronises, so the counter records what *would* block on an accelerator:
every op that reads a tensor's values back to Python or sizes an output from them, seen at the
dispatcher (``_local_scalar_dense`` = ``item()`` / ``bool()`` / ``int()`` / ``float()``,
``nonzero``, ``masked_select``, boolean-mask indexing), plus the Python-level ``tolist()``,
``cpu()`` and ``numpy()`` (which bypass the dispatcher on CPU tensors). With CUDA, the tests
also count with ``torch.cuda.set_sync_debug_mode``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

_SYNC_OPS = {
    "aten::_local_scalar_dense",
    "aten::nonzero",
    "aten::nonzero_static",
    "aten::masked_select",
    "aten::_unique2",
    "aten::unique_consecutive",
}
_PY_METHODS = ("tolist", "cpu", "numpy")


class _SyncCounter(TorchDispatchMode):
    def __init__(self, events: list[str]) -> None:
        super().__init__()
        self.events = events

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[override]
        name = func._schema.name
        if name in _SYNC_OPS:
            self.events.append(name)
        elif name == "aten::index" and any(
            i is not None and i.dtype == torch.bool for i in args[1]
        ):
            self.events.append("aten::index (bool mask)")
        return func(*args, **(kwargs or {}))


@contextlib.contextmanager
def _count() -> Iterator[list[str]]:
    events: list[str] = []
    saved = {n: getattr(torch.Tensor, n) for n in _PY_METHODS}

    def wrap(name: str):
        method = saved[name]

        def counted(self, *args, **kwargs):
            events.append(name)
            return method(self, *args, **kwargs)

        return counted

    for name in _PY_METHODS:
        setattr(torch.Tensor, name, wrap(name))
    try:
        with _SyncCounter(events):
            yield events
    finally:
        for name, method in saved.items():
            setattr(torch.Tensor, name, method)


@pytest.fixture
def count_syncs():
    """``with count_syncs() as events: ...`` records the would-be synchronisations."""
    return _count
