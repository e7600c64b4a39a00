"""The ``host_syncs`` fixture: count device→host synchronisations (the budget of a training step).

The same fixture sits in ``tests/{losses,seq2seq,tasks}/conftest.py`` (tests never import each
other). It counts the explicit ways Python code pulls a value off the device: ``Tensor.item``,
``tolist``, ``cpu``, ``numpy``, ``__bool__``, ``__int__``, ``__float__``, ``__index__``,
``nonzero`` and ``torch.equal`` / ``torch.allclose``. It runs on CPU tensors, where these calls
cost nothing, so that the count is checked on every machine; implicit syncs inside kernels
(e.g. boolean-mask indexing on CUDA) are not seen.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator

import pytest
import torch

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


class HostSyncs:
    """``count`` of host syncs since the last :meth:`reset`; ``names`` lists them in order."""

    def __init__(self) -> None:
        self.names: list[str] = []

    @property
    def count(self) -> int:
        return len(self.names)

    def reset(self) -> None:
        self.names.clear()

    def wrap(self, name: str, fn: Callable) -> Callable:
        @functools.wraps(fn)
        def counted(*args, **kwargs):
            self.names.append(name)
            return fn(*args, **kwargs)

        return counted


@pytest.fixture
def host_syncs(monkeypatch: pytest.MonkeyPatch) -> Iterator[HostSyncs]:
    counter = HostSyncs()
    for name in _METHODS:
        monkeypatch.setattr(torch.Tensor, name, counter.wrap(name, getattr(torch.Tensor, name)))
    for name in _FUNCTIONS:
        monkeypatch.setattr(torch, name, counter.wrap(name, getattr(torch, name)))
    yield counter
