"""The transform chain: hooks, ordering, snapshot, state_dict and removal (spec §2.2, §1.5)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from kexue.keras_compat.optim._chain import ChainHandle, Transform, extend
from kexue.keras_compat.optim.transforms import (
    DeltaScale,
    GradClip,
    Lookahead,
    LRMultiplier,
    WeightDecay,
)


def _mlp() -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1)).double()


def _step(model: nn.Module, opt: torch.optim.Optimizer, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    opt.zero_grad()
    model(torch.randn(5, 3, generator=g, dtype=torch.float64)).pow(2).mean().backward()
    opt.step()


class Recorder(Transform):
    def __init__(self, log: list, tag: str, snapshot: bool = False) -> None:
        super().__init__()
        self.log, self.tag, self.needs_snapshot = log, tag, snapshot

    def pre_step(self, optimizer):
        self.log.append(("pre", self.tag))

    def post_step(self, optimizer, snapshot):
        self.log.append(("post", self.tag, snapshot is not None))

    def cleanup(self, optimizer):
        self.log.append(("cleanup", self.tag))


def test_order_and_snapshot_only_when_needed() -> None:
    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    log: list = []
    extend(opt, Recorder(log, "a"), Recorder(log, "b"))
    _step(model, opt)
    assert log == [
        ("pre", "a"),
        ("pre", "b"),
        ("post", "a", False),
        ("post", "b", False),
        ("cleanup", "b"),
        ("cleanup", "a"),
    ]
    log.clear()
    opt2 = torch.optim.SGD(model.parameters(), lr=0.1)
    extend(opt2, Recorder(log, "a", snapshot=True))
    _step(model, opt2)
    assert ("post", "a", True) in log


def test_late_transforms_run_last() -> None:
    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    la = Lookahead(2)
    wd = WeightDecay(0.1)
    handle = extend(opt, la, wd)
    assert handle.transforms == [wd, la]


def test_list_order_acts_on_the_delta() -> None:
    # DeltaScale(0.5) then WeightDecay: Δ' = 0.5Δ − lr·wd·p ; reverse: 0.5(Δ − lr·wd·p)
    out = []
    for order in ("scale_first", "decay_first"):
        model = _mlp()
        p0 = [p.detach().clone() for p in model.parameters()]
        ref = _mlp()
        ref_opt = torch.optim.SGD(ref.parameters(), lr=0.1)
        _step(ref, ref_opt)
        delta = [r.detach() - q for r, q in zip(ref.parameters(), p0, strict=True)]
        opt = torch.optim.SGD(model.named_parameters(), lr=0.1)
        ts = [DeltaScale({".": 0.5}), WeightDecay(0.2)]
        extend(opt, *(ts if order == "scale_first" else ts[::-1]))
        _step(model, opt)
        for p, q, d in zip(model.parameters(), p0, delta, strict=True):
            want = q + 0.5 * d - 0.02 * q if order == "scale_first" else q + 0.5 * (d - 0.02 * q)
            torch.testing.assert_close(p.detach(), want, rtol=1e-12, atol=1e-15)
        out.append(model[0].weight.detach().clone())
    assert not torch.allclose(out[0], out[1])


def test_remove_leaves_no_residue() -> None:
    model = _mlp()
    opt = torch.optim.SGD(model.named_parameters(), lr=0.1)
    hooks_before = (
        dict(opt._optimizer_step_pre_hooks),
        dict(opt._optimizer_step_post_hooks),
        dict(opt._optimizer_state_dict_post_hooks),
        dict(opt._optimizer_load_state_dict_pre_hooks),
    )
    handle = extend(opt, GradClip(0.01), WeightDecay(0.5), LRMultiplier(lambda s: 3.0))
    assert isinstance(handle, ChainHandle)
    _step(model, opt)
    assert "kexue_chain.0" in opt.state_dict()
    handle.remove()
    hooks_after = (
        dict(opt._optimizer_step_pre_hooks),
        dict(opt._optimizer_step_post_hooks),
        dict(opt._optimizer_state_dict_post_hooks),
        dict(opt._optimizer_load_state_dict_pre_hooks),
    )
    assert hooks_after == hooks_before
    assert opt.param_groups[0]["lr"] == 0.1
    assert not any(k.startswith("kexue") for k in opt.state_dict())
    # from here on it behaves like a plain optimizer, bitwise
    ref = _mlp()
    ref.load_state_dict(model.state_dict())
    ref_opt = torch.optim.SGD(ref.parameters(), lr=0.1)
    _step(model, opt, 3)
    _step(ref, ref_opt, 3)
    for p, q in zip(model.parameters(), ref.parameters(), strict=True):
        assert torch.equal(p, q)


def test_context_manager_removes() -> None:
    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with extend(opt, WeightDecay(0.1)):
        assert len(opt._optimizer_step_post_hooks) == 1
    assert len(opt._optimizer_step_post_hooks) == 0


def test_state_dict_roundtrip_and_mismatch() -> None:
    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    mult = LRMultiplier(lambda s: 1.0)
    handle = extend(opt, mult)
    _step(model, opt)
    _step(model, opt)
    state = handle.state_dict()
    assert state == {"transforms": [{"step": 2}]}
    mult.step = 0
    handle.load_state_dict(state)
    assert mult.step == 2
    with pytest.raises(ValueError, match="state"):
        handle.load_state_dict({"transforms": []})


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="optimizer"):
        extend(object())
    opt = torch.optim.SGD(_mlp().parameters(), lr=0.1)
    with pytest.raises(ValueError, match="transforms"):
        extend(opt, lambda o: None)
