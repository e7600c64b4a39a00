"""Tests for the generator weight EMA (spec §2.16, §3.1 "EMA")."""

from __future__ import annotations

import copy
import io

import pytest
import torch
from torch import nn
from torch.testing import assert_close

from kexue.gan_losses.spectral import apply_spectral_norm
from kexue.gan_losses.training.ema import GeneratorEMA, unwrap_model


def _model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2))


def _set_all(model: nn.Module, value: float) -> None:
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(value)


@pytest.mark.parametrize("decay", [0.9, 0.999])
def test_constant_target_closed_form(decay):
    model = _model()
    p0 = {n: p.detach().clone() for n, p in model.named_parameters()}
    ema = GeneratorEMA(model, decay=decay)
    _set_all(model, 0.25)  # constant θ = p after the copy-initialisation Θ₀ = θ₀
    n = 37
    for _ in range(n):
        ema.update(model)
    for name, p in ema.module.named_parameters():
        expected = 0.25 + (p0[name] - 0.25) * decay**n
        assert_close(p, expected, rtol=1e-5, atol=1e-6)
    assert ema.num_updates == n


def test_copy_initialised_frozen_and_outside_every_optimizer():
    model = _model()
    ema = GeneratorEMA(model)
    for (n1, p), (n2, q) in zip(model.named_parameters(), ema.module.named_parameters()):
        assert n1 == n2
        assert_close(p, q, rtol=0, atol=0)
        assert p.data_ptr() != q.data_ptr()
        assert not q.requires_grad and p.requires_grad
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    optimised = {id(p) for g in opt.param_groups for p in g["params"]}
    assert not optimised & {id(q) for q in ema.module.parameters()}
    # storing the helper on a model does not register the shadow as a submodule
    holder = nn.Module()
    holder.net = model
    holder.ema = ema
    assert {id(p) for p in holder.parameters()} == {id(p) for p in model.parameters()}
    assert not isinstance(ema, nn.Module)
    # a training step of the model leaves the shadow untouched until update()
    before = [q.clone() for q in ema.module.parameters()]
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    for q, b in zip(ema.module.parameters(), before):
        assert_close(q, b, rtol=0, atol=0)
        assert q.grad is None


def test_integer_buffers_copied_float_buffers_by_policy():
    for policy in ("copy", "average", "ignore"):
        model = _model()
        ema = GeneratorEMA(model, decay=0.5, buffers=policy)
        bn0 = copy.deepcopy(model[1])
        model.train()
        for _ in range(3):
            model(torch.randn(8, 3, generator=torch.Generator().manual_seed(1)))
        ema.update(model)
        e_bn, m_bn = ema.module[1], model[1]
        assert e_bn.num_batches_tracked.dtype == torch.int64
        assert int(e_bn.num_batches_tracked) == 3  # copied, never lerped (lerp would give 1)
        if policy == "copy":
            assert_close(e_bn.running_mean, m_bn.running_mean, rtol=0, atol=0)
        elif policy == "average":
            assert_close(
                e_bn.running_mean,
                0.5 * bn0.running_mean + 0.5 * m_bn.running_mean,
                rtol=0,
                atol=1e-7,
            )
        else:
            assert_close(e_bn.running_mean, bn0.running_mean, rtol=0, atol=0)


def test_lerp_formula_one_step():
    model = _model()
    ema = GeneratorEMA(model, decay=0.75)
    old = [q.clone() for q in ema.module.parameters()]
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.ones_like(p))
    ema.update(model)
    for q, o, p in zip(ema.module.parameters(), old, model.parameters()):
        assert_close(q, 0.75 * o + 0.25 * p, rtol=1e-6, atol=1e-7)


def test_dataparallel_wrapper_is_stripped():
    model = _model()
    wrapped = nn.DataParallel(model)
    ema = GeneratorEMA(wrapped, decay=0.0)
    assert [n for n, _ in ema.module.named_parameters()] == [n for n, _ in model.named_parameters()]
    _set_all(model, 1.5)
    ema.update(wrapped)
    for q in ema.module.parameters():
        assert_close(q, torch.full_like(q, 1.5), rtol=0, atol=0)
    assert unwrap_model(nn.DataParallel(nn.DataParallel(model))) is model


def test_module_attribute_named_module_is_not_unwrapped():
    class Holder(nn.Module):
        def __init__(self):
            super().__init__()
            self.module = nn.Linear(2, 2)
            self.head = nn.Linear(2, 1)

    h = Holder()
    assert unwrap_model(h) is h
    ema = GeneratorEMA(h)
    assert {n for n, _ in ema.module.named_parameters()} == {n for n, _ in h.named_parameters()}


def test_state_dict_round_trip():
    model = _model()
    ema = GeneratorEMA(model, decay=0.9, buffers="average")
    _set_all(model, 0.1)
    for _ in range(4):
        ema.update(model)
    buf = io.BytesIO()
    torch.save(ema.state_dict(), buf)
    buf.seek(0)
    restored = GeneratorEMA(_model(seed=5), decay=0.5)
    restored.load_state_dict(torch.load(buf))
    assert restored.decay == 0.9 and restored.num_updates == 4 and restored.buffers == "average"
    for (n, p), (_, q) in zip(
        ema.module.state_dict().items(), restored.module.state_dict().items()
    ):
        assert_close(p, q, rtol=0, atol=0, msg=n)
    assert all(not q.requires_grad for q in restored.module.parameters())
    ema.update(model)
    restored.update(model)
    for p, q in zip(ema.module.parameters(), restored.module.parameters()):
        assert_close(p, q, rtol=0, atol=0)
    with pytest.raises(ValueError, match="state_dict"):
        restored.load_state_dict({"module": {}})


def test_bf16_model_with_fp32_shadow():
    model = _model().to(torch.bfloat16)
    ema = GeneratorEMA(model, decay=0.999, dtype=torch.float32)
    assert all(q.dtype == torch.float32 for q in ema.module.parameters())
    assert ema.module[1].running_mean.dtype == torch.float32
    assert ema.module[1].num_batches_tracked.dtype == torch.int64
    p0 = [q.clone() for q in ema.module.parameters()]
    _set_all(model, 1.0)  # exactly representable in bf16
    n = 50
    for _ in range(n):
        ema.update(model)
    for q, o in zip(ema.module.parameters(), p0):
        assert_close(q, 1.0 + (o - 1.0) * 0.999**n, rtol=1e-5, atol=1e-6)
    # a bf16 shadow cannot represent the small steps: it stalls (why fp32 matters)
    stalled = GeneratorEMA(_model().to(torch.bfloat16), decay=0.999)
    start = [q.clone() for q in stalled.module.parameters()]
    model2 = _model().to(torch.bfloat16)
    with torch.no_grad():
        for p in model2.parameters():
            p.add_(0.01)
    stalled.update(model2)
    changed = sum(int((q != s).sum()) for q, s in zip(stalled.module.parameters(), start))
    assert changed < sum(s.numel() for s in start)
    out = ema.module(torch.randn(2, 3))
    assert out.dtype == torch.float32


def test_warmup_copies_then_averages():
    model = _model()
    ema = GeneratorEMA(model, decay=0.5, warmup=2)
    _set_all(model, 2.0)
    ema.update(model)
    ema.update(model)
    for q in ema.module.parameters():
        assert_close(q, torch.full_like(q, 2.0), rtol=0, atol=0)
    _set_all(model, 4.0)
    ema.update(model)
    for q in ema.module.parameters():
        assert_close(q, torch.full_like(q, 3.0), rtol=0, atol=0)


def test_spectral_norm_model_is_supported():
    torch.manual_seed(3)
    g = apply_spectral_norm(nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2)))
    ema = GeneratorEMA(g, decay=0.5)
    g(torch.randn(2, 3))  # updates u
    ema.update(g)
    assert_close(
        ema.module[0].parametrizations.weight[0]._u,
        g[0].parametrizations.weight[0]._u,
        rtol=0,
        atol=0,
    )
    assert_close(ema.module(torch.ones(1, 3)).shape, torch.Size([1, 2]))


def test_bad_inputs():
    model = _model()
    with pytest.raises(ValueError, match="decay"):
        GeneratorEMA(model, decay=1.5)
    with pytest.raises(ValueError, match="buffers"):
        GeneratorEMA(model, buffers="lerp")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="dtype"):
        GeneratorEMA(model, dtype=torch.int32)
    with pytest.raises(ValueError, match="warmup"):
        GeneratorEMA(model, warmup=-1)
    with pytest.raises(ValueError, match="model"):
        GeneratorEMA("not a model")  # type: ignore[arg-type]
    ema = GeneratorEMA(model)
    with pytest.raises(ValueError, match="structure"):
        ema.update(nn.Linear(3, 4))
    other = _model()
    other[0] = nn.Linear(3, 4, bias=True)
    other[3] = nn.Linear(4, 3)
    with pytest.raises(ValueError, match="shape"):
        ema.update(other)
