"""keras-compat's own test helpers (the shared ones come from the kexue-testing plugin)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn


def _train_alongside(
    net: nn.Module, ours: object, update_ref: Callable[[], object], steps: int = 6
) -> None:
    """SGD steps (lr 0.1) on fp32 random data (seed 4); after each, ``ours.update()`` then
    ``update_ref()``: our EMA and an anchor's see the same trajectory."""
    g = torch.Generator().manual_seed(4)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    for _ in range(steps):
        opt.zero_grad()
        net(torch.randn(6, 3, generator=g)).pow(2).mean().backward()
        opt.step()
        ours.update()
        update_ref()


@pytest.fixture
def train_alongside() -> Callable[..., None]:
    """``train_alongside(net, ours, update_ref, steps=6)``: see :func:`_train_alongside`."""
    return _train_alongside
