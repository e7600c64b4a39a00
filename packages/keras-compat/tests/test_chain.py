"""The transform chain: hooks, ordering, snapshot, state_dict and removal (spec §2.2, §1.5)."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import torch
from torch import nn

from kexue.keras_compat.optim import bert4keras as b4k
from kexue.keras_compat.optim._chain import ChainHandle, Transform, extend
from kexue.keras_compat.optim.transforms import (
    DeltaScale,
    GradClip,
    GradTransform,
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


def test_argument_order_is_kept_and_misplaced_late_transform_raises() -> None:
    model = _mlp()
    opt = torch.optim.SGD(model.named_parameters(), lr=0.1)
    la, wd = Lookahead(2), WeightDecay(0.1)
    handle = extend(opt, wd, la)
    assert handle.transforms == [wd, la]
    assert handle.names == ["weight_decay", "lookahead"]
    opt2 = torch.optim.SGD(model.parameters(), lr=0.1)
    msg = (
        "transforms: Lookahead 'lookahead' (position 0) must run last, after every update "
        "rewrite, but WeightDecay 'weight_decay' (position 1) comes after it; transforms apply "
        "in argument order, so place Lookahead after WeightDecay"
    )
    with pytest.raises(ValueError, match=re.escape(msg)):
        extend(opt2, Lookahead(2), WeightDecay(0.1))
    # nothing was registered by the failed call
    assert not opt2._optimizer_step_post_hooks
    assert extend(opt2, WeightDecay(0.1), Lookahead(2)).names == ["weight_decay", "lookahead"]
    # appending after a late transform raises as well; late after late is fine
    with pytest.raises(ValueError, match=r"Lookahead 'lookahead' \(position 1\) must run last"):
        handle.add(DeltaScale({".": 0.5}))
    handle.add(Lookahead(3))
    assert handle.names == ["weight_decay", "lookahead", "lookahead_1"]
    handle.insert(0, DeltaScale({".": 0.5}), name="half")
    assert handle.names == ["half", "weight_decay", "lookahead", "lookahead_1"]


def test_non_commuting_gradient_transforms_follow_argument_order() -> None:
    # clip-then-scale: g' = 3·clip(g); scale-then-clip: g' = clip(3g); both by hand
    def clip(g: torch.Tensor, c: float = 0.05) -> torch.Tensor:
        return g * min(1.0, c / (g.norm().item() + 1e-6))

    results = {}
    for order in ("clip_first", "scale_first"):
        model = _mlp()
        p0 = [p.detach().clone() for p in model.parameters()]
        grads = _grads(model)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        ts = [("clip", GradClip(0.05)), ("scale", GradTransform(lambda g: g * 3.0))]
        extend(opt, *(ts if order == "clip_first" else ts[::-1]))
        _step(model, opt)
        for p, q, g in zip(model.parameters(), p0, grads, strict=True):
            g2 = 3.0 * clip(g) if order == "clip_first" else clip(3.0 * g)
            torch.testing.assert_close(p.detach(), q - 0.1 * g2, rtol=1e-12, atol=1e-15)
        results[order] = model[0].weight.detach().clone()
    assert not torch.allclose(results["clip_first"], results["scale_first"])


def _grads(model: nn.Module) -> list[torch.Tensor]:
    ref = _mlp()
    ref.load_state_dict(model.state_dict())
    g = torch.Generator().manual_seed(0)
    ref(torch.randn(5, 3, generator=g, dtype=torch.float64)).pow(2).mean().backward()
    return [p.grad.detach().clone() for p in ref.parameters()]


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
    assert set(opt.state_dict()["kexue_chain"]) == {"grad_clip", "weight_decay", "lr_multiplier"}
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
    assert state == {"transforms": {"lr_multiplier": {"step": 2}}}
    mult.step = 0
    handle.load_state_dict(state)
    assert mult.step == 2
    with pytest.raises(ValueError, match=r"no saved state for transform\(s\) \['lr_multiplier'\]"):
        handle.load_state_dict({"transforms": {}})
    with pytest.raises(ValueError, match=re.escape("0.1.0 chain state has 0 positional")):
        handle.load_state_dict({"transforms": []})


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="optimizer"):
        extend(object())
    opt = torch.optim.SGD(_mlp().parameters(), lr=0.1)
    with pytest.raises(ValueError, match="transforms"):
        extend(opt, lambda o: None)


# -- checkpoints: name-keyed state and the 0.1.0 loader ---------------------------------------
#
# ``data/chain_state_0.1.0.pt`` was written by the 0.1.0 ``optim/`` code (unchanged from the 0.1.0
# release commit 8c9c124 to bf9720a, where it ran; ema.py had a 5-line, format-neutral fix) running
# exactly ``_v010_scenario`` and ``_train`` below: 4 steps, then ``state_dict()`` of the models and
# optimizers (``"kexue_chain.<n>": {"transforms": [state, ...]}``, positional, late transforms
# last), then 5 more steps whose results are stored as ``*_after``.

FIXTURE = Path(__file__).parent / "data" / "chain_state_0.1.0.pt"


def _v010_scenario(seed: int = 3):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    opt = torch.optim.SGD(model.named_parameters(), lr=0.1, momentum=0.9)
    extend(
        opt,
        GradClip(max_norm=0.5),
        LRMultiplier(lambda s: 1 / (1 + s)),
        WeightDecay(0.05),
        Lookahead(k=3, alpha=0.5),
    )
    extend(opt, LRMultiplier(lambda s: 0.9**s))
    torch.manual_seed(seed + 1)
    shim_model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    cls = b4k.extend_with_exponential_moving_average(
        b4k.extend_with_weight_decay(
            b4k.extend_with_lookahead(b4k.extend_with_piecewise_linear_lr(torch.optim.Adam))
        )
    )
    shim_opt = cls(
        shim_model.named_parameters(),
        lr=0.01,
        lr_schedule={0: 0.0, 4: 1.0},
        steps_per_slow_update=2,
        weight_decay_rate=0.1,
        ema_momentum=0.8,
    )
    return model, opt, shim_model, shim_opt


def _train(model: nn.Module, opt: torch.optim.Optimizer, steps: int, start: int) -> None:
    for i in range(start, start + steps):
        g = torch.Generator().manual_seed(100 + i)
        opt.zero_grad()
        model(torch.randn(6, 3, generator=g, dtype=torch.float64)).pow(2).mean().backward()
        opt.step()


def _chains(opt: torch.optim.Optimizer) -> list[ChainHandle]:
    return list(opt._kexue_chain_live)


def _assert_state_equal(a, b) -> None:
    if isinstance(a, dict):
        assert isinstance(b, dict) and {str(k) for k in a} == {str(k) for k in b}
        bs = {str(k): v for k, v in b.items()}
        for k, v in a.items():
            _assert_state_equal(v, bs[str(k)])
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _assert_state_equal(x, y)
    elif isinstance(a, torch.Tensor):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    else:
        assert a == b


def _v010_keys(state: dict, old: dict) -> dict:
    """``state`` restricted to the keys 0.1.0 saved (0.2's EMA state adds num_calls, t, ...)."""
    return {k: v for k, v in state.items() if k in old} if isinstance(old, dict) else state


def test_v010_checkpoint_restores_identical_state_and_steps() -> None:
    fx = torch.load(FIXTURE, weights_only=True)
    assert {"kexue_chain.0", "kexue_chain.1"} <= set(fx["optimizer"])
    model, opt, shim_model, shim_opt = _v010_scenario()
    model.load_state_dict(fx["model"])
    opt.load_state_dict(fx["optimizer"])
    shim_model.load_state_dict(fx["shim_model"])
    shim_opt.load_state_dict(fx["shim_optimizer"])
    # identical state: every transform holds what 0.1.0 saved at its position
    for o, saved in ((opt, fx["optimizer"]), (shim_opt, fx["shim_optimizer"])):
        for n, chain in enumerate(_chains(o)):
            old = saved[f"kexue_chain.{n}"]["transforms"]
            _assert_state_equal(
                [_v010_keys(t.state_dict(), o) for o, t in zip(old, chain.transforms)], old
            )
    assert [c.names for c in _chains(opt)] == [
        ["grad_clip", "lr_multiplier", "weight_decay", "lookahead"],
        ["lr_multiplier_1"],
    ]
    assert _chains(shim_opt)[0].names == ["lr_multiplier", "weight_decay", "lookahead", "ema"]
    # identical subsequent steps (0.1.0 ran the same 5 steps after saving)
    _train(model, opt, 5, 4)
    _train(shim_model, shim_opt, 5, 4)
    _assert_state_equal(model.state_dict(), fx["model_after"])
    _assert_state_equal(shim_model.state_dict(), fx["shim_model_after"])
    _assert_state_equal(
        _v010_keys(shim_opt.ema.state_dict(), fx["shim_ema_after"]), fx["shim_ema_after"]
    )
    # the keys 0.2 adds to the EMA state are consistent with 0.1.0's averaging at every call
    ema_state = shim_opt.ema.state_dict()
    n = fx["shim_ema_after"]["num_updates"]
    assert (ema_state["num_calls"], ema_state["t"], ema_state["last_call"]) == (n, n, n)
    # and a save from the new code is name-keyed, without the 0.1.0 keys
    new = opt.state_dict()
    assert not any(k.startswith("kexue_chain.") for k in new)
    assert list(new["kexue_chain"]) == [
        "grad_clip",
        "lr_multiplier",
        "weight_decay",
        "lookahead",
        "lr_multiplier_1",
    ]


def _to_v010(state: dict, opt: torch.optim.Optimizer) -> dict:
    """Re-key a new state dict the way 0.1.0 wrote it: one positional list per chain."""
    old = {k: v for k, v in state.items() if k != "kexue_chain"}
    for n, chain in enumerate(_chains(opt)):
        old[f"kexue_chain.{n}"] = {
            "transforms": [state["kexue_chain"][name] for name in chain.names]
        }
    return old


def _two_lookaheads(seed: int = 5, extra: bool = False):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    opt = torch.optim.Adam(model.named_parameters(), lr=0.05)
    head = [("clip", GradClip(max_norm=10.0))] if extra else []
    extend(opt, *head, LRMultiplier(lambda s: 0.95**s), Lookahead(k=3, alpha=0.5))
    extend(opt, Lookahead(k=2, alpha=0.3))
    return model, opt


@pytest.mark.parametrize("fmt", ["named", "v010"])
def test_state_round_trip_restores_identical_steps(fmt: str) -> None:
    ref, ref_opt = _two_lookaheads()
    _train(ref, ref_opt, 9, 0)

    first, opt1 = _two_lookaheads()
    _train(first, opt1, 4, 0)  # mid-cycle for both Lookaheads
    state = copy.deepcopy(opt1.state_dict())
    assert list(state["kexue_chain"]) == ["lr_multiplier", "lookahead", "lookahead_1"]
    if fmt == "v010":
        state = _to_v010(state, opt1)
    model_state = copy.deepcopy(first.state_dict())
    before = copy.deepcopy(state)

    resumed, opt2 = _two_lookaheads(seed=9)  # different init: everything comes from the state
    resumed.load_state_dict(model_state)
    opt2.load_state_dict(state)
    _assert_state_equal(state, before)  # the caller's checkpoint is not mutated
    for c1, c2 in zip(_chains(opt1), _chains(opt2), strict=True):
        _assert_state_equal(c2.state_dict(), c1.state_dict())
    _train(resumed, opt2, 5, 4)
    _assert_state_equal(resumed.state_dict(), ref.state_dict())


def test_named_state_survives_an_inserted_stateless_transform() -> None:
    first, opt1 = _two_lookaheads()
    _train(first, opt1, 4, 0)
    state = copy.deepcopy(opt1.state_dict())
    _, opt2 = _two_lookaheads(extra=True)  # GradClip inserted at position 0 of the first chain
    opt2.load_state_dict(state)
    assert _chains(opt2)[0].names == ["clip", "lr_multiplier", "lookahead"]
    for c1, c2 in zip(_chains(opt1), _chains(opt2), strict=True):
        _assert_state_equal(
            {n: s for n, s in c2.state_dict()["transforms"].items() if n != "clip"},
            c1.state_dict()["transforms"],
        )
    # positional (0.1.0) states cannot survive the insertion: refused, not misassigned
    old = _to_v010(copy.deepcopy(opt1.state_dict()), opt1)
    _, opt3 = _two_lookaheads(extra=True)
    with pytest.raises(
        ValueError,
        match=re.escape("0.1.0 chain state has 2 positional transform states, this chain has 3"),
    ):
        opt3.load_state_dict(old)


def test_named_state_mismatches_raise() -> None:
    first, opt1 = _two_lookaheads()
    _train(first, opt1, 2, 0)
    state = opt1.state_dict()
    model = _mlp()
    lone = torch.optim.Adam(model.parameters(), lr=0.05)
    extend(lone, Lookahead(k=3))
    with pytest.raises(ValueError, match=r"\['lookahead_1', 'lr_multiplier'\] that no chain"):
        lone.load_state_dict(state)
    renamed = torch.optim.Adam(model.parameters(), lr=0.05)
    extend(renamed, LRMultiplier(lambda s: 1.0), ("slow", Lookahead(k=3)))
    with pytest.raises(ValueError, match=r"no saved state for transform\(s\) \['slow'\]"):
        renamed.load_state_dict(state)


def test_names_unique_user_given_and_released() -> None:
    opt = torch.optim.SGD(_mlp().parameters(), lr=0.1)
    h1 = extend(opt, ("lookahead_1", Lookahead(2)), Lookahead(3), Lookahead(4))
    assert h1.names == ["lookahead_1", "lookahead", "lookahead_2"]
    with pytest.raises(ValueError, match="name 'lookahead' is already used"):
        extend(opt, ("lookahead", Lookahead(2)))
    with pytest.raises(ValueError, match="name must be an identifier"):
        extend(opt, ("a.b", Lookahead(2)))
    h2 = extend(opt, WeightDecay(0.1))
    h1.remove()
    assert extend(opt, Lookahead(2)).names == ["lookahead"]
    assert h2.names == ["weight_decay"]
