"""Tests for the TTUR recipe (spec §2.15, §3.1 "TTUR")."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from torch import nn
from torch.testing import assert_close

from kexue.gan_losses.training.ttur import TTURConfig, make_optimizers, make_param_groups

PRESETS = [
    TTURConfig.author_default,
    TTURConfig.author_gan_qp,
    TTURConfig.author_wgan_gp,
    TTURConfig.author_dcgan,
    TTURConfig.wgan_gp_paper,
    TTURConfig.sagan,
    TTURConfig.biggan,
]


def _nets(seed: int = 0) -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(seed)
    return nn.Linear(4, 1), nn.Linear(2, 4)


@pytest.mark.parametrize("preset", PRESETS)
def test_round_trip(preset):
    cfg = preset()
    d = cfg.to_dict()
    assert isinstance(d["betas"], list)
    back = TTURConfig.from_dict(json.loads(json.dumps(d)))
    assert back == cfg
    assert isinstance(back.betas, tuple)
    assert hash(back) == hash(cfg)


def test_preset_values():
    a = TTURConfig.author_default()
    assert (a.lr_d, a.lr_g, a.betas, a.n_dis, a.n_gen) == (2e-4, 2e-4, (0.5, 0.999), 1, 1)
    s = TTURConfig.sagan()
    assert (s.lr_d, s.lr_g, s.betas) == (4e-4, 1e-4, (0.0, 0.9))
    b = TTURConfig.biggan()
    assert (b.lr_d, b.lr_g, b.n_dis) == (2e-4, 5e-5, 2)
    assert TTURConfig.author_wgan_gp().d_steps_per_g_step == 5.0
    assert TTURConfig.author_gan_qp().d_steps_per_g_step == 2.0
    assert TTURConfig.author_dcgan().d_steps_per_g_step == 0.5
    assert TTURConfig() == a


def test_frozen():
    cfg = TTURConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.lr_d = 1.0  # type: ignore[misc]


def test_sgd_step_moves_d_by_lr_d_g_and_g_by_lr_g_g():
    d, g = _nets()
    cfg = TTURConfig(lr_d=0.3, lr_g=0.05)
    opt_d, opt_g = make_optimizers(d, g, cfg, optimizer_cls=torch.optim.SGD)
    d0 = [p.detach().clone() for p in d.parameters()]
    g0 = [p.detach().clone() for p in g.parameters()]
    z = torch.randn(5, 2, generator=torch.Generator().manual_seed(1))
    d(g(z)).pow(2).sum().backward()
    grads_d = [p.grad.clone() for p in d.parameters()]
    grads_g = [p.grad.clone() for p in g.parameters()]
    opt_d.step()
    opt_g.step()
    for p, p0, gr in zip(d.parameters(), d0, grads_d):
        assert_close(p.detach(), p0 - 0.3 * gr, rtol=1e-6, atol=1e-7)
    for p, p0, gr in zip(g.parameters(), g0, grads_g):
        assert_close(p.detach(), p0 - 0.05 * gr, rtol=1e-6, atol=1e-7)
    assert "betas" not in opt_d.defaults  # SGD takes no betas


def test_adam_gets_betas_and_lrs():
    d, g = _nets()
    opt_d, opt_g = make_optimizers(d, g, TTURConfig.sagan())
    assert isinstance(opt_d, torch.optim.Adam)
    assert opt_d.defaults["lr"] == 4e-4 and opt_g.defaults["lr"] == 1e-4
    assert opt_d.defaults["betas"] == (0.0, 0.9) == opt_g.defaults["betas"]
    assert {id(p) for p in opt_d.param_groups[0]["params"]} == {id(p) for p in d.parameters()}
    opt_d, _ = make_optimizers(d, g)  # default config
    assert opt_d.defaults["betas"] == (0.5, 0.999)
    opt_d, opt_g = make_optimizers(d, g, TTURConfig(), torch.optim.RMSprop, alpha=0.99)
    assert opt_d.defaults["alpha"] == 0.99 and "betas" not in opt_d.defaults


def test_weight_decay_goes_to_d_only():
    d, g = _nets()
    cfg = TTURConfig(lr_d=0.1, lr_g=0.1, weight_decay_d=0.5)
    opt_d, opt_g = make_optimizers(d, g, cfg, torch.optim.SGD)
    assert opt_d.defaults["weight_decay"] == 0.5 and opt_g.defaults["weight_decay"] == 0
    w0 = d.weight.detach().clone()
    d.weight.grad = torch.zeros_like(w0)
    d.bias.grad = torch.zeros_like(d.bias)
    opt_d.step()
    assert_close(d.weight.detach(), w0 * (1 - 0.1 * 0.5), rtol=1e-6, atol=1e-8)


def test_param_groups_for_single_optimizer():
    d, g = _nets()
    groups = make_param_groups(d, g, TTURConfig(lr_d=0.2, lr_g=0.1, weight_decay_d=0.01))
    opt = torch.optim.SGD(groups, lr=1.0)
    assert [grp["lr"] for grp in opt.param_groups] == [0.2, 0.1]
    assert opt.param_groups[0]["weight_decay"] == 0.01 and opt.param_groups[1]["weight_decay"] == 0


def test_bad_inputs():
    d, g = _nets()
    with pytest.raises(ValueError, match="lr_d"):
        TTURConfig(lr_d=0.0)
    with pytest.raises(ValueError, match="lr_g"):
        TTURConfig(lr_g=float("inf"))
    with pytest.raises(ValueError, match="betas"):
        TTURConfig(betas=(0.5, 1.0))
    with pytest.raises(ValueError, match="n_dis"):
        TTURConfig(n_dis=0)
    with pytest.raises(ValueError, match="n_gen"):
        TTURConfig(n_gen=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="weight_decay_d"):
        TTURConfig(weight_decay_d=-0.1)
    with pytest.raises(ValueError, match="unknown"):
        TTURConfig.from_dict({"lr_d": 1e-4, "lr": 1e-3})
    with pytest.raises(ValueError, match="share"):
        make_optimizers(d, d)
    with pytest.raises(ValueError, match="generator"):
        make_optimizers(d, [])
    with pytest.raises(ValueError, match="config"):
        make_optimizers(d, g, {"lr_d": 1e-4})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="optimizer_cls"):
        make_optimizers(d, g, optimizer_cls=nn.Linear)  # type: ignore[arg-type]
