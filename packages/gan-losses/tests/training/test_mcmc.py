"""Langevin (principled and decoupled), MALA and the replay buffer, on closed-form targets.

Stationary statistics use many parallel chains (vectorised). They are run in chunks of at most
30 000 elements, under PyTorch's intra-op parallel grain (32 768): single-threaded kernels stay
fast on a busy machine, where two-thread kernels wait on each other.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.testing import assert_close

from kexue.gan_losses.training.mcmc import (
    ReplayBuffer,
    decoupled_langevin_sample,
    langevin_sample,
    mala_sample,
)

CHAINS, DIM = 20_000, 10  # 200 000 coordinates: the sample variance has a relative sd of 0.32 %
CHUNK = 30_000  # elements per sampler call


def _chunks(x0: torch.Tensor) -> tuple[torch.Tensor, ...]:
    return x0.split(max(CHUNK // x0[0].numel(), 1))


def _langevin(energy, x0, seed, sampler=langevin_sample, **kw) -> torch.Tensor:
    parts = _chunks(x0)
    return torch.cat(
        [sampler(energy, p, generator=_gen(seed + i), **kw) for i, p in enumerate(parts)]
    )


def _mala(energy, x0, seed, **kw) -> tuple[torch.Tensor, float]:
    parts = _chunks(x0)
    results = [mala_sample(energy, p, generator=_gen(seed + i), **kw) for i, p in enumerate(parts)]
    rate = sum(r.acceptance_rate.item() * p.shape[0] for r, p in zip(results, parts)) / x0.shape[0]
    return torch.cat([r.samples for r in results]), rate


def _gauss(x: torch.Tensor) -> torch.Tensor:
    """U(x) = ‖x‖²/2 per sample: target N(0, I)."""
    return 0.5 * x.pow(2).flatten(1).sum(1)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_langevin_stationary_variance_small_step():
    # x' = (1 − ε/2)x + √ε ξ  =>  Var∞ = ε / (1 − (1 − ε/2)²) = 1 / (1 − ε/4) = 1.00251 at ε = 0.01.
    # From x0 = 0, Var_t = Var∞·(1 − 0.99^t): 0.24 % short at t = 600. A drift of −ε∇U (no ½)
    # would give 0.50 and a noise of √(2ε) 2.01, both far outside the tolerance.
    x = _langevin(_gauss, torch.zeros(CHAINS, DIM), 0, n_steps=600, epsilon=0.01)
    assert_close(x.var().item(), 1.0 / (1.0 - 0.01 / 4.0), atol=0.02, rtol=0)
    assert_close(x.mean().item(), 0.0, atol=0.01, rtol=0)


def test_langevin_converges_to_the_biased_variance_at_a_large_step():
    # ε = 0.5 from x0 = 0: Var∞ = 1/(1 − 1/8) = 1.14286, reached to 2e-8 after 60 steps
    x = _langevin(_gauss, torch.zeros(CHAINS, DIM), 0, n_steps=60, epsilon=0.5)
    assert_close(x.var().item(), 1.0 / (1.0 - 0.5 / 4.0), atol=0.015, rtol=0)
    assert_close(x.mean().item(), 0.0, atol=0.01, rtol=0)


def test_mala_small_step_accepts_almost_everything_and_keeps_unit_variance():
    # started in the target (convergence is tested at ε = 1 below, where it is fast)
    x0 = torch.randn(CHAINS, DIM, generator=_gen(10))
    x, rate = _mala(_gauss, x0, 1, n_steps=100, epsilon=0.01)
    assert_close(rate, 1.0, atol=0.01, rtol=0)
    assert_close(x.var().item(), 1.0, atol=0.02, rtol=0)
    assert (x - x0).abs().mean() > 0.3  # the chains moved


def test_mala_removes_the_langevin_bias_at_a_large_step():
    # ε = 1: unadjusted Langevin would sit at variance 4/3; MALA is exact
    x, rate = _mala(_gauss, torch.zeros(3 * CHAINS, 1), 2, n_steps=100, epsilon=1.0)
    assert_close(x.var().item(), 1.0, atol=0.03, rtol=0)
    assert 0.6 < rate < 0.99


def test_mala_non_gaussian_target():
    # U(x) = x⁴/4: E[x²] = 2 Γ(3/4) / Γ(1/4) = 0.67598
    x, _ = _mala(
        lambda x: 0.25 * x.pow(4).sum(1), torch.zeros(3 * CHAINS, 1), 3, n_steps=100, epsilon=0.5
    )
    expected = 2.0 * math.gamma(0.75) / math.gamma(0.25)
    assert_close(x.pow(2).mean().item(), expected, atol=0.02, rtol=0)


def test_mala_in_latent_space():
    # G(z) = 2z and U(x) = ‖x‖²/8, so U(G(z)) = ‖z‖²/2: z ~ N(0, I)
    scale = nn.Parameter(torch.tensor(2.0))

    def generator_net(z):
        return scale * z

    x, _ = _mala(lambda z: generator_net(z).pow(2).sum(1) / 8.0, torch.zeros(5000, 4), 4,
                 n_steps=100, epsilon=0.5)  # fmt: skip
    assert_close(x.var().item(), 1.0, atol=0.04, rtol=0)
    assert scale.grad is None  # sampling never touches parameter gradients


def test_decoupled_langevin_is_not_a_sampler_of_exp_minus_u():
    # IGEBM order: x ← (1 − s)(x + σξ)  =>  Var∞ = (1 − s)² σ² / (1 − (1 − s)²) = 0.0012312
    # (the gradient-first order gives σ²/(1 − (1 − s)²) = 0.0012563); from x0 = 0 the variance
    # after t steps is Var∞·(1 − (1 − s)^(2t)), 0.7 % short at t = 250.
    s, sigma, t = 0.01, 0.005, 250
    x = _langevin(
        _gauss, torch.zeros(CHAINS // 4, DIM), 5, sampler=decoupled_langevin_sample, n_steps=t,
        step_size=s, noise_std=sigma, grad_clip=None, clamp=None,
    )  # fmt: skip
    stationary = (1 - s) ** 2 * sigma**2 / (1 - (1 - s) ** 2)
    assert_close(x.var().item(), stationary * (1 - (1 - s) ** (2 * t)), atol=0, rtol=0.025)
    assert_close(x.var().item(), 0.00126, atol=0, rtol=0.05)  # spec §3.1 value, not 1


def test_decoupled_clip_and_clamp():
    # U = 1000·Σx: the gradient 1000 is clipped to 0.01, so each step moves exactly −step·0.01
    def energy(x):
        return 1000.0 * x.sum(1)

    x0 = torch.full((3, 2), 0.5, dtype=torch.float64)
    x = decoupled_langevin_sample(energy, x0, n_steps=3, step_size=10.0, noise_std=0.0)
    assert_close(x, torch.full((3, 2), 0.2, dtype=torch.float64), atol=1e-12, rtol=0)
    x = decoupled_langevin_sample(energy, x0, n_steps=10, step_size=10.0, noise_std=0.0)
    assert_close(x, torch.zeros(3, 2, dtype=torch.float64), atol=0, rtol=0)
    x = decoupled_langevin_sample(energy, x0, n_steps=10, step_size=10.0, noise_std=0.0, clamp=None)
    assert_close(x, torch.full((3, 2), -0.5, dtype=torch.float64), atol=1e-12, rtol=0)


@pytest.mark.parametrize("sampler", ["langevin", "decoupled", "mala"])
def test_samples_are_detached_seeded_and_work_under_no_grad(sampler):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1))
    x0 = torch.rand(16, 3, requires_grad=True)

    def run(seed):
        g = _gen(seed)
        if sampler == "langevin":
            return langevin_sample(net, x0, n_steps=5, epsilon=0.01, generator=g)
        if sampler == "decoupled":
            return decoupled_langevin_sample(net, x0, n_steps=5, generator=g)
        return mala_sample(net, x0, n_steps=5, epsilon=0.01, generator=g).samples

    x = run(0)
    assert not x.requires_grad and x.grad_fn is None  # negatives carry no gradient
    assert all(p.grad is None for p in net.parameters())
    assert torch.equal(x, run(0)) and not torch.equal(x, run(1))
    with torch.no_grad():
        assert torch.equal(run(0), x)
    assert x0.grad is None


def test_sampler_bad_input():
    x = torch.zeros(4, 2)
    with pytest.raises(ValueError, match="energy_fn"):
        langevin_sample(lambda t: t, x, n_steps=1, epsilon=0.1)
    with pytest.raises(ValueError, match="epsilon"):
        mala_sample(_gauss, x, n_steps=1, epsilon=0.0)
    with pytest.raises(ValueError, match="energy_fn"):
        langevin_sample(lambda t: torch.zeros(t.shape[0]), x, n_steps=1, epsilon=0.1)
    with pytest.raises(ValueError, match="n_steps"):
        langevin_sample(_gauss, x, n_steps=-1, epsilon=0.1)
    with pytest.raises(ValueError, match="clamp"):
        decoupled_langevin_sample(_gauss, x, n_steps=1, clamp=(1.0, 0.0))
    with pytest.raises(ValueError, match="x"):
        langevin_sample(_gauss, torch.zeros(4, 2, dtype=torch.int64), n_steps=1, epsilon=0.1)


# --- replay buffer ------------------------------------------------------------------------------


def test_buffer_defaults_and_empty_buffer_uses_init():
    buf = ReplayBuffer()
    assert buf.capacity == 10_000 and buf.reinit_fraction == 0.05 and len(buf) == 0
    out = buf.sample(4, lambda k: torch.ones(k, 2))
    assert torch.equal(out, torch.ones(4, 2))


def test_buffer_reinit_fraction_within_three_sigma():
    n, p = 20_000, 0.05
    buf = ReplayBuffer(1000, generator=_gen(6))
    buf.push(torch.zeros(1000, 3))
    out = buf.sample(n, lambda k: torch.ones(k, 3))
    frac = out[:, 0].mean().item()
    assert (out == out[:, :1]).all()  # whole samples are replaced, not elements
    assert abs(frac - p) <= 3 * math.sqrt(p * (1 - p) / n)


def test_buffer_is_a_fifo_ring():
    buf = ReplayBuffer(5, reinit_fraction=0.0, generator=_gen(7))
    buf.push(torch.arange(4.0)[:, None])
    buf.push(torch.arange(4.0, 8.0)[:, None])
    assert len(buf) == 5
    seen = set(buf.sample(2000, lambda k: torch.full((k, 1), -1.0))[:, 0].tolist())
    assert seen == {3.0, 4.0, 5.0, 6.0, 7.0}
    buf.push(torch.arange(100.0, 112.0)[:, None])  # more than the capacity: the last 5 stay
    seen = set(buf.sample(2000, lambda k: torch.full((k, 1), -1.0))[:, 0].tolist())
    assert seen == {107.0, 108.0, 109.0, 110.0, 111.0}


def test_buffer_device_dtype_and_seed():
    buf = ReplayBuffer(50, dtype=torch.float64, device="cpu", generator=_gen(8))
    buf.push(torch.randn(50, 2, 2))
    out = buf.sample(10, lambda k: torch.zeros(k, 2, 2, dtype=torch.float32))
    assert out.dtype == torch.float64 and out.device.type == "cpu" and out.shape == (10, 2, 2)
    again = ReplayBuffer(50, dtype=torch.float64, generator=_gen(8))
    again.push(buf._storage.clone())
    assert torch.equal(again.sample(10, lambda k: torch.zeros(k, 2, 2)), out)
    # stored states are detached copies
    x = torch.randn(3, 2, 2, requires_grad=True)
    buf.push(x)
    assert not buf.sample(3, lambda k: torch.zeros(k, 2, 2)).requires_grad


def test_buffer_bad_input():
    with pytest.raises(ValueError, match="capacity"):
        ReplayBuffer(0)
    with pytest.raises(ValueError, match="reinit_fraction"):
        ReplayBuffer(10, reinit_fraction=1.5)
    buf = ReplayBuffer(10, reinit_fraction=1.0)
    buf.push(torch.zeros(4, 3))
    with pytest.raises(ValueError, match="x"):
        buf.push(torch.zeros(4, 2))
    with pytest.raises(ValueError, match="init_fn"):
        buf.sample(4, lambda k: torch.zeros(k, 2))
    with pytest.raises(ValueError, match="init_fn"):
        buf.sample(4, lambda k: torch.zeros(k + 1, 3))
    with pytest.raises(ValueError, match="n"):
        buf.sample(0, lambda k: torch.zeros(k, 3))


def test_langevin_raises_on_a_nan_energy_naming_the_step() -> None:
    from kexue.gan_losses import finite_checks

    def energy(x: torch.Tensor) -> torch.Tensor:  # NaN once a chain leaves |x| < 10
        poison = torch.where(x.abs().amax(1) < 10, 0.0, float("nan"))  # no gradient path
        return 0.5 * x.pow(2).sum(1) + poison

    x0 = torch.zeros(4, 2)
    x0[1] = 11.0  # NaN from the first step
    for sampler in (langevin_sample, decoupled_langevin_sample):
        kwargs = {"epsilon": 0.01} if sampler is langevin_sample else {"clamp": None}
        with pytest.raises(ValueError, match="non-finite energy or gradient at step 0"):
            sampler(energy, x0, n_steps=3, **kwargs)
    with finite_checks(False):  # the opt-out: no check, no raise (the gradient here is finite)
        out = langevin_sample(energy, x0, n_steps=3, epsilon=0.01)
    assert out.shape == x0.shape
    assert torch.isfinite(langevin_sample(energy, torch.zeros(4, 2), n_steps=3, epsilon=0.01)).all()
