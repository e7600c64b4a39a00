"""EMA (spec §2.10, §3.1): closed forms, AveragedModel parity, warm-up laws, swap, buffers, checkpoints."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from kexue.keras_compat.ema import EMA, EMAWarmup, ExponentialMovingAverage, unwrap_model


def _net(dtype: torch.dtype = torch.float64) -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 2)).to(dtype)


def _bn_net() -> nn.Module:
    torch.manual_seed(2)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 1)).double()


def _train(net: nn.Module, steps: int, ema: EMA | None = None, seed: int = 5) -> list[dict]:
    """SGD steps on random data; returns the parameter snapshots after each step."""
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    snaps = []
    dtype = next(net.parameters()).dtype
    for _ in range(steps):
        x = torch.randn(6, 3, generator=g, dtype=dtype)
        opt.zero_grad()
        net(x).pow(2).mean().backward()
        opt.step()
        if ema is not None:
            ema.update()
        snaps.append({k: v.detach().clone() for k, v in net.named_parameters()})
    return snaps


def _shadow(ema: EMA) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in ema.module.named_parameters()}


# ---------------------------------------------------------------- closed forms
def test_zero_init_closed_form_and_bias_correction() -> None:
    m, t = 0.9, 6
    net = _net()
    ema = EMA(net, m, init="zero")
    snaps = _train(net, t, ema)
    shadow = _shadow(ema)
    for name in shadow:
        expected = sum((1 - m) * m ** (t - i) * snaps[i - 1][name] for i in range(1, t + 1))
        torch.testing.assert_close(shadow[name], expected, rtol=1e-12, atol=1e-14)
    assert ema.bias_correction_factor == pytest.approx(1 - m**t, rel=1e-14)
    with ema.swapped(net):  # bias_correction defaults to True for init="zero"
        for name, p in net.named_parameters():
            torch.testing.assert_close(p, shadow[name] / (1 - m**t), rtol=1e-12, atol=1e-14)
    ema.apply_ema_weights(bias_correction=False)
    for name, p in net.named_parameters():
        torch.testing.assert_close(p, shadow[name], rtol=0, atol=0)
    ema.reset_old_weights()


@pytest.mark.parametrize("warmup", [None, EMAWarmup(gamma=2.0), "torch_ema"])
def test_zero_init_debiased_average_of_constant_is_exact(warmup) -> None:
    # Σ (1 − m_i) Π_{j>i} m_j = 1 − Π m_i for any schedule: the debiased average of a constant
    # is the constant, with or without warm-up.
    net = _net()
    ema = EMA(net, 0.99, init="zero", warmup=warmup)
    for _ in range(4):
        ema.update()
    expected = 1.0
    for t in range(1, 5):
        expected *= ema.get_decay(t)
    assert ema.bias_correction_factor == pytest.approx(1 - expected, rel=1e-14)
    live = {k: v.detach().clone() for k, v in net.named_parameters()}
    with ema.swapped():
        for name, p in net.named_parameters():
            torch.testing.assert_close(p, live[name], rtol=1e-12, atol=1e-14)


def test_copy_init_equals_averaged_model() -> None:
    net = _bn_net()
    ema = EMA(net, 0.8, buffers="average")
    ref = AveragedModel(net, multi_avg_fn=get_ema_multi_avg_fn(0.8), use_buffers=True)
    ref.update_parameters(net)  # AveragedModel's first update is the copy = our construction
    g = torch.Generator().manual_seed(3)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    for _ in range(5):
        opt.zero_grad()
        net(torch.randn(8, 3, generator=g, dtype=torch.float64)).pow(2).mean().backward()
        opt.step()
        ema.update()
        ref.update_parameters(net)
    for (name, a), (_, b) in zip(
        ema.module.state_dict().items(), ref.module.state_dict().items(), strict=True
    ):
        if a.is_floating_point():
            torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)
    # AveragedModel lerps integer buffers too (truncating the count); ours copies them
    assert ema.module[1].num_batches_tracked.item() == net[1].num_batches_tracked.item() == 5


def test_constant_target_from_p0() -> None:
    m, n = 0.95, 7
    net = _net()
    p0 = {k: v.detach().clone() for k, v in net.named_parameters()}
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(-2.0).add_(0.5)
    p = {k: v.detach().clone() for k, v in net.named_parameters()}
    ema = EMA(net, m)
    ema.load_state_dict({"module": {k: v.clone() for k, v in p0.items()}, "num_updates": 0})
    for _ in range(n):
        ema.update()
    for name, s in _shadow(ema).items():
        torch.testing.assert_close(s, p[name] + (p0[name] - p[name]) * m**n, rtol=1e-12, atol=1e-14)


# ---------------------------------------------------------------- warm-up
@pytest.mark.parametrize(
    ("warmup", "law"),
    [
        (EMAWarmup(), lambda t: 1 - (1 + t) ** (-2 / 3)),
        (EMAWarmup(gamma=9.0, power=1.0), lambda t: 1 - 9 / (9 + t)),
        (
            EMAWarmup(gamma=2.0, power=0.75, min_decay=0.5),
            lambda t: max(0.5, 1 - (1 + t / 2) ** -0.75),
        ),
        ("torch_ema", lambda t: (1 + t) / (10 + t)),
    ],
)
def test_warmup_values(warmup, law) -> None:
    ema = EMA(_net(), 0.99, warmup=warmup)
    for t in [1, 2, 5, 10, 100, 10_000]:
        assert ema.get_decay(t) == pytest.approx(min(0.99, law(t)), rel=1e-14)
    assert ema.get_decay() == pytest.approx(min(0.99, law(1)), rel=1e-14)  # t = 1 first
    assert EMAWarmup().value(1, 0.999) == pytest.approx(1 - 2 ** (-2 / 3))  # 0.37004...
    # torch-ema's preset is the inverse-gamma law with γ = 9, p = 1 one step later
    assert EMA(_net(), 0.99, warmup="torch_ema").get_decay(4) == pytest.approx(
        EMAWarmup(gamma=9.0, power=1.0).value(5, 0.99)
    )


def test_warmup_trajectory_closed_form() -> None:
    net = _net()
    ema = EMA(net, 0.9, warmup="torch_ema")
    shadow = {k: v.detach().clone() for k, v in net.named_parameters()}
    snaps = _train(net, 5, ema)
    for t, snap in enumerate(snaps, start=1):
        d = min(0.9, (1 + t) / (10 + t))
        shadow = {k: d * shadow[k] + (1 - d) * snap[k] for k in shadow}
    for name, s in _shadow(ema).items():
        torch.testing.assert_close(s, shadow[name], rtol=1e-12, atol=1e-14)


def test_matches_ema_pytorch_trajectory(train_alongside) -> None:
    ema_pytorch = pytest.importorskip("ema_pytorch")
    net = _net(torch.float32)
    ours = EMA(net, 0.99, warmup=EMAWarmup(gamma=1.0, power=2 / 3))
    ref = ema_pytorch.EMA(
        net, beta=0.99, update_after_step=0, update_every=1, include_online_model=False
    )
    ref.update()  # ema-pytorch's first call only initialises the copy (our construction)
    train_alongside(net, ours, ref.update)
    for (name, a), (_, b) in zip(
        ours.module.named_parameters(), ref.ema_model.named_parameters(), strict=True
    ):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7, msg=name)


def test_matches_torch_ema_trajectory(train_alongside) -> None:
    torch_ema = pytest.importorskip("torch_ema")
    net = _net(torch.float32)
    ours = EMA(net, 0.99, warmup="torch_ema")
    ref = torch_ema.ExponentialMovingAverage(net.parameters(), decay=0.99, use_num_updates=True)
    train_alongside(net, ours, ref.update)
    for a, b in zip(ours.module.parameters(), ref.shadow_params, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


# ---------------------------------------------------------------- swap
def test_swap_restores_bitwise_and_leaves_optimizer_alone() -> None:
    net = _bn_net()
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    ema = EMA(net, 0.9)
    ema.attach(opt)
    g = torch.Generator().manual_seed(0)
    for _ in range(3):
        opt.zero_grad()
        net(torch.randn(4, 3, generator=g, dtype=torch.float64)).sum().backward()
        opt.step()
    before = copy.deepcopy(net.state_dict())
    opt_before = copy.deepcopy(opt.state_dict())
    params = list(net.parameters())
    with ema.swapped(net) as swapped:
        assert swapped is net
        for (name, a), b in zip(net.state_dict().items(), ema.module.state_dict().values()):
            torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)
        assert not torch.equal(net[0].weight, before["0.weight"])
    for name, v in net.state_dict().items():
        assert torch.equal(v, before[name]), name
    with pytest.raises(KeyError, match="boom"), ema.swapped(net):
        raise KeyError("boom")
    for name, v in net.state_dict().items():
        assert torch.equal(v, before[name]), name
    assert all(a is b for a, b in zip(net.parameters(), params))
    opt_after = opt.state_dict()
    assert opt_after["param_groups"] == opt_before["param_groups"]
    for k, st in opt_before["state"].items():
        for key, v in st.items():
            assert torch.equal(opt_after["state"][k][key], v), key


def test_blog_shim_apply_then_reset_restores_bitwise() -> None:
    net = _net()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    ema = ExponentialMovingAverage(net)
    assert ema.decay == 0.9999 and ema.init == "copy" and ema.buffers == "average"
    ema.inject(opt)
    ema.inject(opt)  # re-injecting replaces the hook: one update per step
    _train(net, 2)  # its own optimizer, no hook
    net(torch.ones(1, 3, dtype=torch.float64)).sum().backward()
    opt.step()
    assert ema.num_updates == 1
    before = copy.deepcopy(net.state_dict())
    ema.apply_ema_weights()
    with pytest.raises(RuntimeError, match="already applied"):
        ema.apply_ema_weights()
    ema.reset_old_weights()
    for name, v in net.state_dict().items():
        assert torch.equal(v, before[name]), name
    ema.initialize()
    assert ema.num_updates == 0
    for name, s in _shadow(ema).items():
        assert torch.equal(s, dict(net.named_parameters())[name])


def test_attach_handle_removes_hook() -> None:
    net = _net()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    ema = EMA(net, 0.5)
    handle = ema.attach(opt)
    net(torch.ones(1, 3, dtype=torch.float64)).sum().backward()
    opt.step()
    handle.remove()
    opt.step()
    assert ema.num_updates == 1


# ---------------------------------------------------------------- buffers
@pytest.mark.parametrize("policy", ["average", "copy", "ignore"])
def test_buffer_policies(policy: str) -> None:
    net = _bn_net()
    ema = EMA(net, 0.5, buffers=policy)
    bn0 = copy.deepcopy(ema.module[1].state_dict())
    net.train()
    net(torch.randn(8, 3, dtype=torch.float64))  # moves running stats, counts 1 batch
    net(torch.randn(8, 3, dtype=torch.float64) + 1)
    ema.update()
    live, shadow = net[1], ema.module[1]
    assert shadow.num_batches_tracked.item() == 2  # integer buffers always copied
    assert shadow.num_batches_tracked.dtype == torch.int64
    expected = {
        "average": 0.5 * bn0["running_mean"] + 0.5 * live.running_mean,
        "copy": live.running_mean,
        "ignore": bn0["running_mean"],
    }[policy]
    torch.testing.assert_close(shadow.running_mean, expected, rtol=0, atol=1e-15)


# ---------------------------------------------------------------- checkpoints / wrappers
def test_state_dict_round_trip_and_module_prefix() -> None:
    net = _bn_net()
    ema = EMA(net, 0.9, init="zero", warmup=EMAWarmup())
    net.train()
    net(torch.randn(4, 3, dtype=torch.float64))
    _train(net, 3, ema)
    sd = copy.deepcopy(ema.state_dict())
    other = EMA(_bn_net(), 0.9, init="zero", warmup=EMAWarmup())
    other.load_state_dict(sd)
    assert other.num_updates == 3
    assert other.bias_correction_factor == ema.bias_correction_factor
    for (k, a), b in zip(other.module.state_dict().items(), ema.module.state_dict().values()):
        assert torch.equal(a, b), k
    # a checkpoint written from a DDP-wrapped tree: every key prefixed with "module."
    prefixed = {"module": {f"module.{k}": v for k, v in sd["module"].items()}, "num_updates": 3}
    third = EMA(_bn_net(), 0.9, init="zero", warmup=EMAWarmup())
    third.load_state_dict(prefixed)
    for (k, a), b in zip(third.module.state_dict().items(), ema.module.state_dict().values()):
        assert torch.equal(a, b), k
    torch.testing.assert_close(
        third.bias_correction_factor, ema.bias_correction_factor, rtol=1e-14, atol=0
    )
    # an AveragedModel state dict ("module." prefixes + n_averaged)
    ref = AveragedModel(net, multi_avg_fn=get_ema_multi_avg_fn(0.9), use_buffers=True)
    ref.update_parameters(net)
    ref.update_parameters(net)
    fourth = EMA(_bn_net(), 0.9)
    fourth.load_state_dict(ref.state_dict())
    assert fourth.num_updates == 1
    for (k, a), b in zip(fourth.module.state_dict().items(), ref.module.state_dict().values()):
        assert torch.equal(a, b), k
    # the shadow's own state_dict loads into a plain, unwrapped model
    plain = _bn_net()
    plain.load_state_dict(sd["module"])


def test_holds_unwrapped_module() -> None:
    net = _net()
    for wrapped in (nn.DataParallel(net), torch.compile(net)):
        ema = EMA(wrapped, 0.9)
        assert unwrap_model(wrapped) is net
        assert type(ema.module) is nn.Sequential
        assert all(not k.startswith(("module.", "_orig_mod.")) for k in ema.module.state_dict())
        assert all(not p.requires_grad for p in ema.module.parameters())
        assert not ema.module.training
        ema.update(wrapped)  # wrappers stripped at update time too
        assert ema.num_updates == 1


def test_shadow_inside_model_is_a_clear_error() -> None:
    net = _net()
    ema = EMA(net, 0.9)
    net.ema = ema.module  # the Lightning #17847 mistake
    with pytest.raises(ValueError, match="shadow module"):
        ema.update()


def test_bf16_model_fp32_shadow() -> None:
    net = _net(torch.bfloat16)
    ema = EMA(net, 0.999, dtype=torch.float32)
    assert all(p.dtype == torch.float32 for p in ema.module.parameters())
    p0 = {k: v.detach().float() for k, v in net.named_parameters()}
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
    p1 = {k: v.detach().float() for k, v in net.named_parameters()}
    for _ in range(3):
        ema.update()
    for name, s in _shadow(ema).items():
        expected = p1[name] + (p0[name] - p1[name]) * 0.999**3
        torch.testing.assert_close(s, expected, rtol=1e-6, atol=1e-6)
        assert not torch.equal(s, p0[name])  # a bf16 shadow would not have moved at all
    with ema.swapped(net):
        assert net[0].weight.dtype == torch.bfloat16


def test_cpu_shadow_device() -> None:
    ema = EMA(_net(), 0.9, device="cpu")
    assert all(p.device.type == "cpu" for p in ema.module.parameters())
    ema.update()


@pytest.mark.gpu
def test_cpu_shadow_for_cuda_model() -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    net = _net(torch.float32).cuda()
    ema = EMA(net, 0.5, device="cpu")
    p0 = {k: v.detach().cpu() for k, v in net.named_parameters()}
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
    ema.update()
    for name, s in _shadow(ema).items():
        assert s.device.type == "cpu"
        torch.testing.assert_close(s, p0[name] + 0.5, rtol=1e-6, atol=1e-6)
    with ema.swapped(net):
        torch.testing.assert_close(net[0].weight.cpu(), ema.module[0].weight)


def test_update_bn_recomputes_statistics() -> None:
    net = _bn_net()
    ema = EMA(net, 0.9, buffers="ignore")
    g = torch.Generator().manual_seed(9)
    data = [torch.randn(16, 3, generator=g, dtype=torch.float64) for _ in range(2)]
    ema.update_bn(data)
    with torch.no_grad():
        h = torch.cat([ema.module[0](x) for x in data])
    torch.testing.assert_close(ema.module[1].running_mean, h.mean(0), rtol=1e-10, atol=1e-12)
    assert not ema.module.training


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"decay": 1.5}, "decay"),
        ({"decay": -0.1}, "decay"),
        ({"decay": float("nan")}, "decay"),
        ({"buffers": "mean"}, "buffers"),
        ({"init": "ones"}, "init"),
        ({"warmup": "timm"}, "warmup"),
        ({"dtype": torch.int32}, "dtype"),
    ],
)
def test_bad_input(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        EMA(_net(), **kwargs)


def test_bad_warmup_and_usage() -> None:
    with pytest.raises(ValueError, match="gamma"):
        EMAWarmup(gamma=0.0)
    with pytest.raises(ValueError, match="min_decay"):
        EMAWarmup(min_decay=2.0)
    with pytest.raises(ValueError, match="model"):
        EMA("net")  # type: ignore[arg-type]
    ema = EMA(_net(), 0.9)
    with pytest.raises(ValueError, match="init='zero'"):
        ema.apply_ema_weights(bias_correction=True)
    with pytest.raises(RuntimeError, match="call apply_ema_weights"):
        ema.reset_old_weights()
    with pytest.raises(ValueError, match="structure"):
        ema.update(nn.Linear(3, 5))
    with pytest.raises(RuntimeError, match="first update"):
        EMA(_net(), 0.9, init="zero").apply_ema_weights()
