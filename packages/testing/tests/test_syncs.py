"""The host-sync counter: what each mode sees, and that it leaves torch as it found it."""

from __future__ import annotations

import pytest
import torch

from kexue.testing import HostSyncs, count_host_syncs


def test_python_level_counter_names_each_read_back() -> None:
    x = torch.tensor([1.0, -2.0])
    with count_host_syncs() as syncs:
        x[0].item()
        bool(x[0] > 0)
        int(x[0])
        float(x[1])
        x.tolist()
        x.nonzero()
        x.cpu()
        torch.equal(x, x)
        x + 1  # no sync
    assert syncs.names == [
        "item", "__bool__", "__int__", "__float__", "tolist", "nonzero", "cpu", "equal"
    ]  # fmt: skip
    assert syncs.count == len(syncs) == 8
    syncs.reset()
    assert syncs.count == 0


def test_dispatch_counter_sees_every_kind_of_sync() -> None:
    x = torch.tensor([1.0, -2.0])
    with count_host_syncs(dispatch=True) as syncs:
        x[0].item()
        bool(x[0] > 0)
        int(x[0])
        float(x[1])
        x.tolist()
        x[x > 0]  # boolean mask: invisible to the Python-level counter
        x.nonzero()
        x.cpu()
        x * 2  # no sync
    assert len(syncs) == 8, syncs
    assert "aten::index (bool mask)" in syncs.names


def test_dispatch_counter_sees_syncs_inside_torch_functions() -> None:
    x = torch.tensor([1.0, 0.0, 3.0])
    with count_host_syncs() as python_level:
        torch.masked_select(x, x > 0)
    with count_host_syncs(dispatch=True) as dispatched:
        torch.masked_select(x, x > 0)
    assert python_level.names == []
    assert dispatched.names == ["aten::masked_select"]


@pytest.mark.parametrize("dispatch", [False, True])
def test_torch_is_restored_afterwards(dispatch: bool) -> None:
    before = {n: torch.Tensor.__dict__.get(n) for n in ("item", "tolist", "__bool__")}
    equal = torch.equal
    with count_host_syncs(dispatch=dispatch) as syncs:
        pass
    assert {n: torch.Tensor.__dict__.get(n) for n in before} == before
    assert torch.equal is equal
    torch.tensor([1.0]).item()
    assert syncs.count == 0


def test_host_syncs_fixture_counts_the_test(host_syncs: HostSyncs) -> None:
    x = torch.arange(3)
    x.tolist()
    int(x[1])
    assert host_syncs.names == ["tolist", "__int__"]
