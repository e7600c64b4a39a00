"""Power-function EMA and post-hoc reconstruction (spec A1, A2, A7; Karras et al. 2023)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import kexue.keras_compat.posthoc as posthoc_mod
from kexue.keras_compat import (
    EMA,
    PowerEMA,
    gamma_to_sigma_rel,
    posthoc_coefficients,
    reconstruct,
    sigma_rel_to_gamma,
)
from kexue.keras_compat._power import SIGMA_REL_MAX, profile_inner


class _Vec(nn.Module):
    def __init__(self, n: int = 32) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(n, dtype=torch.float64))
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))


def _walk(steps: int, n: int = 32, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(steps, n, generator=g, dtype=torch.float64).cumsum(0)


# ---------------------------------------------------------------- σ_rel <-> γ
def test_sigma_rel_gamma_round_trip_and_table() -> None:
    for s in np.linspace(0.01, 0.28, 28):
        assert gamma_to_sigma_rel(sigma_rel_to_gamma(float(s))) == pytest.approx(s, abs=1e-12)
    for s, g in ((0.05, 16.97), (0.10, 6.94), (0.15, 3.56), (0.28, 0.169)):
        assert sigma_rel_to_gamma(s) == pytest.approx(g, abs=0.005)
    assert SIGMA_REL_MAX == pytest.approx(0.2887, abs=1e-4)
    for bad in (0.2887, 0.3, 0.0, -0.1, float("nan")):
        with pytest.raises(ValueError, match="sigma_rel"):
            sigma_rel_to_gamma(bad)


# ---------------------------------------------------------------- power EMA closed forms
def test_power_ema_of_a_constant_is_exact() -> None:
    net = _Vec()
    with torch.no_grad():
        net.w.copy_(torch.linspace(-3, 3, 32, dtype=torch.float64))
    ema = EMA(net, sigma_rel=0.1)
    for _ in range(50):
        ema.update()
    assert torch.equal(ema.module.w, net.w)


@pytest.mark.parametrize(
    ("sigma_rel", "every", "rel"), [(0.05, 1, 1e-3), (0.10, 1, 1e-3), (0.10, 5, 2e-3)]
)
def test_power_ema_of_a_linear_ramp(sigma_rel: float, every: int, rel: float) -> None:
    """θ(t) = t → θ̂ ≈ (γ + 1)/(γ + 2)·t; with update_every = k the update covers Δt = k steps
    (edm2), not 1 (ema-pytorch KarrasEMA), so the profile is the same."""
    net = _Vec(1)
    ema = EMA(net, sigma_rel=sigma_rel, update_every=every)
    steps = 20_000
    for t in range(1, steps + 1):
        with torch.no_grad():
            net.w.fill_(float(t))
        ema.update()
    g = sigma_rel_to_gamma(sigma_rel)
    assert float(ema.module.w) == pytest.approx((g + 1) / (g + 2) * steps, rel=rel)


def test_beta_equals_edm2_formula() -> None:
    # edm2 power_function_beta(std, t_next, t_delta) = (1 - t_delta / t_next) ** (std_to_exp(std) + 1)
    for sigma_rel, every, t_next in ((0.05, 1, 1), (0.05, 1, 7), (0.10, 4, 40), (0.2, 3, 999)):
        ema = EMA(_Vec(), sigma_rel=sigma_rel, update_every=every)
        expected = (1 - every / t_next) ** (sigma_rel_to_gamma(sigma_rel) + 1)
        assert ema.get_decay(t_next) == pytest.approx(expected, rel=1e-14, abs=1e-300)


# ---------------------------------------------------------------- inner products
def test_profile_inner_products() -> None:
    x, w = np.polynomial.legendre.leggauss(200)
    for ta, ga, tb, gb in (
        (100.0, 6.94, 100.0, 16.97),
        (80.0, 3.0, 200.0, 10.0),
        (7.0, 0.5, 3.0, 2.0),
    ):
        ab = profile_inner(ta, ga, tb, gb)
        assert ab == pytest.approx(profile_inner(tb, gb, ta, ga), rel=1e-14)
        m = min(ta, tb)  # quadrature of p_a·p_b on [0, min(t_a, t_b)]
        tau = (x + 1) * m / 2
        pa = (ga + 1) * tau**ga / ta ** (ga + 1)
        pb = (gb + 1) * tau**gb / tb ** (gb + 1)
        assert ab == pytest.approx(float((w * pa * pb).sum() * m / 2), rel=1e-8)
    for t, g in ((10.0, 6.94), (1234.0, 0.3)):
        assert profile_inner(t, g, t, g) == pytest.approx(
            (g + 1) ** 2 / ((2 * g + 1) * t), rel=1e-14
        )


# ---------------------------------------------------------------- reconstruction
def _tracked(steps: int, every: int, dtype=torch.float64, truth: float | None = None, **kw):
    net = _Vec()
    phema = PowerEMA(net, (0.05, 0.10), snapshot_every=every, snapshot_dtype=dtype, **kw)
    ref = None if truth is None else EMA(net, sigma_rel=truth)
    for theta in _walk(steps):
        with torch.no_grad():
            net.w.copy_(theta)
            net.count.add_(1)
        phema.update()
        if ref is not None:
            ref.update()
    return net, phema, ref


def test_target_equal_to_a_tracked_profile_is_exact() -> None:
    _, phema, _ = _tracked(100, 10)
    g = sigma_rel_to_gamma(0.10)
    ts = [s["t"] for s in phema.snapshots]
    gs = [s["gamma"] for s in phema.snapshots]
    x, residual, _ = posthoc_coefficients(ts, gs, 100.0, g)
    unit = np.zeros(len(ts))
    unit[len(ts) - 1] = 1.0  # the σ_rel 0.10 snapshot at t = 100
    np.testing.assert_allclose(x, unit, atol=1e-10)
    assert residual < 1e-6
    state = reconstruct(phema, sigma_rel=0.10, dtype=torch.float64)
    torch.testing.assert_close(state["w"], phema.emas[1].module.w, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("truth", [0.07, 0.13])
def test_reconstruction_of_an_untracked_profile(truth: float) -> None:
    net, phema, ref = _tracked(400, 16, truth=truth)  # 25 snapshots of each profile
    state, info = reconstruct(phema, sigma_rel=truth, return_info=True, dtype=torch.float64)
    rel = float((state["w"] - ref.module.w).norm() / ref.module.w.norm())
    assert rel < 1e-2, rel
    assert info["residual"] < 0.05 and info["used"] == 50
    assert torch.equal(state["count"], net.count)  # buffers from the latest snapshot


def test_snapshots_after_the_target_time_are_ignored() -> None:
    _, phema, _ = _tracked(200, 20)
    early = [s for s in phema.snapshots if s["t"] <= 100]
    a = reconstruct(phema, sigma_rel=0.08, t=100)
    b = reconstruct(early, sigma_rel=0.08, t=100)
    assert all(torch.equal(a[n], b[n]) for n in a)
    assert float(a["count"]) == 100.0


def test_ill_posed_target_warns() -> None:
    _, phema, _ = _tracked(100, 50)
    with pytest.warns(RuntimeWarning, match="residual"):
        reconstruct(phema, sigma_rel=0.25)


# ---------------------------------------------------------------- snapshots on disk
def _files(d: Path) -> dict[str, dict]:
    return {p.name: torch.load(p, weights_only=True) for p in sorted(d.glob("phema-*.pt"))}


def test_disk_snapshots_resume_bitwise(tmp_path: Path) -> None:
    walk = _walk(30)

    def run(d: Path, thetas, phema=None, net=None):
        net = net or _Vec()
        phema = phema or PowerEMA(net, (0.05, 0.10), snapshot_every=4, store=d)
        for theta in thetas:
            with torch.no_grad():
                net.w.copy_(theta)
            phema.update()
        return net, phema

    run(tmp_path / "a", walk)
    net, half = run(tmp_path / "b", walk[:13])
    ckpt = tmp_path / "ckpt.pt"
    torch.save(half.state_dict(), ckpt)
    resumed = PowerEMA(net, (0.05, 0.10), snapshot_every=4, store=tmp_path / "b")
    resumed.load_state_dict(torch.load(ckpt, weights_only=True))
    run(tmp_path / "b", walk[13:], resumed, net)
    a, b = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert list(a) == list(b) and len(a) == 2 * 7
    for name in a:
        for key in ("params", "buffers"):
            assert all(torch.equal(a[name][key][n], b[name][key][n]) for n in a[name][key])
        assert {k: v for k, v in a[name].items() if k not in ("params", "buffers")} == {
            k: v for k, v in b[name].items() if k not in ("params", "buffers")
        }
    assert a[next(iter(a))]["params"]["w"].dtype == torch.float16
    disk = reconstruct(tmp_path / "a", sigma_rel=0.08)
    assert disk["w"].dtype == torch.float32 and math.isfinite(float(disk["w"].sum()))


def test_only_rank_zero_writes(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(posthoc_mod, "is_rank_zero", lambda: False)
    net = _Vec()
    phema = PowerEMA(net, (0.05,), snapshot_every=1, store=tmp_path / "snaps")
    phema.update()
    assert not (tmp_path / "snaps").exists()


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="snapshot_every"):
        PowerEMA(_Vec(), snapshot_every=0)
    with pytest.raises(ValueError, match="exactly one"):
        reconstruct([], sigma_rel=0.1, gamma=3.0)
    with pytest.raises(ValueError, match="no phema"):
        reconstruct(tmp_path, sigma_rel=0.1)
    with pytest.raises(ValueError, match="give sigma_rel or gamma"):
        EMA(_Vec(), sigma_rel=0.1, gamma=3.0)
    with pytest.raises(ValueError, match="KarrasEMA"):
        EMA(_Vec(), sigma_rel=0.1, update_every=2, decay_per="update")


# ---------------------------------------------------------------- switch EMA (spec A3)
def _mlp() -> nn.Module:
    torch.manual_seed(3)
    return nn.Sequential(nn.Linear(3, 6), nn.BatchNorm1d(6), nn.Tanh(), nn.Linear(6, 1)).double()


def test_switch_every_loads_the_average_into_the_model_and_leaves_the_optimizer() -> None:
    net = _mlp()
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    ema = EMA(net, 0.8, switch_every=3)
    g = torch.Generator().manual_seed(0)
    for step in range(1, 7):
        opt.zero_grad()
        net(torch.randn(8, 3, generator=g, dtype=torch.float64)).pow(2).mean().backward()
        opt.step()
        moments = [v.clone() for st in opt.state.values() for v in st.values()]
        before = [p.detach().clone() for p in net.parameters()]
        ema.update()
        after = list(net.parameters())
        if step % 3 == 0:  # switched: the model holds the EMA, bitwise
            assert all(torch.equal(p, e) for p, e in zip(after, ema.module.parameters()))
            assert torch.equal(net[1].running_mean, ema.module[1].running_mean)  # averaged buffer
        else:
            assert all(torch.equal(p, b) for p, b in zip(after, before))
        now = [v for st in opt.state.values() for v in st.values()]
        assert all(torch.equal(a, b) for a, b in zip(moments, now))


def test_switch_weight_lerps_towards_the_average() -> None:
    net = _mlp()
    ema = EMA(net, 0.5, switch_weight=0.25)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
    ema.update()
    live = [p.detach().clone() for p in net.parameters()]
    ema.switch()
    for p, old, e in zip(net.parameters(), live, ema.module.parameters()):
        torch.testing.assert_close(p, old + 0.25 * (e - old), rtol=1e-15, atol=1e-15)
    with pytest.raises(ValueError, match="switch_every"):
        EMA(net, 0.5, switch_every=2, init="zero")
