"""Tests for kexue.gan_losses.penalties: WGAN-GP, R1/R2, WGAN-div, interpolation, AMP scaling."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor, nn

from kexue.gan_losses.penalties import (
    gradient_penalty,
    interpolate,
    r1_penalty,
    r1_penalty_from_critic,
    r2_penalty,
    wgan_div_penalty,
    wgan_gp_penalty,
)

SHAPE = (3, 2, 3, 4)  # (B, C, H, W)


def _linear_critic(norm: float, shape=SHAPE[1:], seed: int = 0, dtype=torch.float64):
    """D(x) = <w, x> with ‖w‖ = norm; its input gradient is w for every x."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(shape, generator=g, dtype=torch.float64)
    w = (w * norm / w.norm()).to(dtype)

    def critic(x: Tensor) -> Tensor:
        return (x * w).flatten(1).sum(dim=1)

    return critic, w


def _quadratic_critic(x: Tensor) -> Tensor:
    """D(x) = ½‖x‖² per sample; its input gradient is x."""
    return 0.5 * x.flatten(1).square().sum(dim=1)


def _batch(seed: int, shape=SHAPE, dtype=torch.float64) -> Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


class _Scaler:
    """The part of the GradScaler interface the penalties use."""

    def __init__(self, scale: float) -> None:
        self.s = scale

    def get_scale(self) -> float:
        return self.s

    def scale(self, t: Tensor) -> Tensor:
        return t * self.s


# ----------------------------------------------------------------------------- interpolate


def test_interpolate_one_u_per_sample() -> None:
    x_r = torch.ones(5, 2, 3, 3)
    x_f = torch.zeros(5, 2, 3, 3)
    x_hat = interpolate(x_r, x_f, generator=torch.Generator().manual_seed(0))
    assert x_hat.requires_grad and x_hat.is_leaf and x_hat.shape == x_r.shape
    u = x_hat.flatten(1)
    torch.testing.assert_close(u, u[:, :1].expand_as(u), rtol=0, atol=0)  # shared within a sample
    assert ((u >= 0) & (u <= 1)).all()
    assert len(set(u[:, 0].tolist())) == 5  # distinct across samples
    again = interpolate(x_r, x_f, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(again, x_hat, rtol=0, atol=0)
    # x_hat = u x_r + (1 - u) x_f on general inputs, with the same u.
    a, b = _batch(1, (5, 2, 3, 3), torch.float32), _batch(2, (5, 2, 3, 3), torch.float32)
    x = interpolate(a, b, generator=torch.Generator().manual_seed(0))
    u_col = u[:, :1].view(5, 1, 1, 1)
    torch.testing.assert_close(x.detach(), u_col * a + (1 - u_col) * b, rtol=1e-6, atol=1e-6)


def test_interpolate_validation_and_dtype() -> None:
    x = torch.zeros(2, 3, dtype=torch.float16)
    assert interpolate(x, x).dtype == torch.float16
    with pytest.raises(ValueError, match="x_fake"):
        interpolate(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="dtype"):
        interpolate(torch.zeros(2, 3), torch.zeros(2, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="x_real"):
        interpolate(torch.zeros(2), torch.zeros(2))


# ----------------------------------------------------------------------------- WGAN-GP


@pytest.mark.parametrize("batch", [1, 3, 8])
def test_wgan_gp_linear_critic(batch: int) -> None:
    # ‖w‖ = 2, λ = 10: (‖w‖ - 1)² λ = 10 for any batch and any u.
    critic, _ = _linear_critic(2.0)
    shape = (batch, *SHAPE[1:])
    for seed in range(3):
        gen = torch.Generator().manual_seed(seed)
        pen = wgan_gp_penalty(critic, _batch(seed, shape), _batch(seed + 10, shape), generator=gen)
        assert pen.shape == () and pen.dtype == torch.float64  # fp64 in, fp64 out
        torch.testing.assert_close(pen, torch.tensor(10.0, dtype=torch.float64), rtol=1e-8, atol=0)
    none = wgan_gp_penalty(critic, _batch(0, shape), _batch(1, shape), reduction="none")
    torch.testing.assert_close(
        none, torch.full((batch,), 10.0, dtype=torch.float64), rtol=1e-8, atol=0
    )


def test_gradient_penalty_outputs_inputs_form_and_weights() -> None:
    critic, _ = _linear_critic(3.0)
    x = interpolate(_batch(0), _batch(1))
    out = critic(x)
    torch.testing.assert_close(
        gradient_penalty(out, x), torch.tensor(40.0, dtype=torch.float64), rtol=1e-6, atol=0
    )
    torch.testing.assert_close(
        gradient_penalty(out, x, weight=1.0, center=2.0),
        torch.tensor(1.0, dtype=torch.float64),
        rtol=1e-6,
        atol=0,
    )
    # Zero-centred: w·E‖∇‖² exactly.
    torch.testing.assert_close(
        gradient_penalty(out, x, center=0.0, weight=0.5),
        torch.tensor(4.5, dtype=torch.float64),
        rtol=1e-6,
        atol=0,
    )
    torch.testing.assert_close(
        gradient_penalty(out, x, reduction="sum"),
        torch.tensor(120.0, dtype=torch.float64),
        rtol=1e-6,
        atol=0,
    )


def test_per_sample_norm_not_per_pixel() -> None:
    # 4-D critic whose per-pixel channel norms vary: a dim=1 norm would give another value.
    critic, w = _linear_critic(2.0, shape=(2, 3, 3), seed=5)
    x = _batch(3, (4, 2, 3, 3)).requires_grad_()
    pen = gradient_penalty(critic(x), x, eps=0.0)
    torch.testing.assert_close(pen, torch.tensor(10.0, dtype=torch.float64), rtol=1e-6, atol=0)
    per_pixel = 10.0 * ((w.norm(dim=0) - 1) ** 2).mean()  # the mmgen 'pixel' / caogang bug
    assert abs(per_pixel.item() - 10.0) > 1.0


def test_two_sample_batch_detects_whole_batch_norm() -> None:
    # D = ½‖x‖², gradient x: per-sample norms 1 and 3 -> λ·mean(0, 4) = 20.
    x = torch.zeros(2, 1, 2, 2, dtype=torch.float64)
    x[0, 0, 0, 0] = 1.0
    x[1, 0, 1, 1] = 3.0
    x.requires_grad_()
    pen = gradient_penalty(_quadratic_critic(x), x, eps=0.0)
    torch.testing.assert_close(pen, torch.tensor(20.0, dtype=torch.float64), rtol=1e-6, atol=0)
    whole_batch = 10.0 * (math.sqrt(10.0) - 1) ** 2  # torchgan's gradients.norm(2)
    assert abs(whole_batch - 20.0) > 1.0


def test_per_sample_equals_loop_with_conv_critic() -> None:
    torch.manual_seed(0)
    critic = nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1), nn.Tanh(), nn.Flatten(), nn.Linear(4 * 3 * 4, 1)
    ).double()
    x = interpolate(_batch(0), _batch(1), generator=torch.Generator().manual_seed(2))
    none = gradient_penalty(critic(x), x, reduction="none")
    assert none.shape == (3,)
    for i in range(3):
        xi = x[i : i + 1].detach().requires_grad_()
        torch.testing.assert_close(none[i], gradient_penalty(critic(xi), xi), rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(gradient_penalty(critic(x), x), none.mean(), rtol=1e-6, atol=0)


def test_column_vs_flat_outputs_and_bad_shapes() -> None:
    critic, _ = _linear_critic(2.0)
    x = interpolate(_batch(0), _batch(1))
    flat = gradient_penalty(critic(x), x)
    torch.testing.assert_close(gradient_penalty(critic(x)[:, None], x), flat, rtol=0, atol=0)
    with pytest.raises(ValueError, match="outputs"):
        gradient_penalty(torch.stack([critic(x), critic(x)], dim=1), x)
    with pytest.raises(ValueError, match="inputs"):
        gradient_penalty(critic(x), x.detach())
    with pytest.raises(ValueError, match="weight"):
        gradient_penalty(critic(x), x, weight=-1.0)
    with pytest.raises(ValueError, match="reduction"):
        gradient_penalty(critic(x), x, reduction="avg")
    with pytest.raises(ValueError, match="critic"):
        wgan_gp_penalty(None, _batch(0), _batch(1))  # type: ignore[arg-type]


def test_eps_keeps_zero_gradient_finite() -> None:
    w = nn.Parameter(torch.zeros(SHAPE[1:], dtype=torch.float64))
    x = _batch(0).requires_grad_()
    pen = gradient_penalty((x * w).flatten(1).sum(1), x)
    pen.backward()
    expected = 10.0 * (math.sqrt(1e-9) - 1) ** 2  # eps inside the sqrt, as the author writes it
    torch.testing.assert_close(
        pen.detach(), torch.tensor(expected, dtype=torch.float64), rtol=1e-6, atol=0
    )
    assert torch.isfinite(w.grad).all()
    # Without eps the sqrt has an infinite slope at 0 and the critic gradient is NaN.
    w.grad = None
    gradient_penalty((x * w).flatten(1).sum(1), x, eps=0.0).backward()
    assert torch.isnan(w.grad).any()


@pytest.mark.parametrize("create_graph", [True, False])
def test_create_graph_routes_gradient_to_critic(create_graph: bool) -> None:
    # R1 on a linear critic: γ/2‖w‖², whose gradient w.r.t. w is γ w.
    w = nn.Parameter(
        torch.randn(SHAPE[1:], generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    )
    x = _batch(0).requires_grad_()
    pen = r1_penalty((x * w).flatten(1).sum(1), x, gamma=10.0, create_graph=create_graph)
    assert pen.requires_grad == create_graph
    if create_graph:
        pen.backward()
        torch.testing.assert_close(w.grad, 10.0 * w.detach(), rtol=1e-6, atol=1e-6)


# ----------------------------------------------------------------------------- R1 / R2


@pytest.mark.parametrize("penalty", [r1_penalty, r2_penalty])
def test_r1_r2_linear_and_quadratic(penalty) -> None:
    critic, w = _linear_critic(1.5)
    x = _batch(0).requires_grad_()
    torch.testing.assert_close(
        penalty(critic(x), x),
        torch.tensor(10.0 / 2 * 1.5**2, dtype=torch.float64),
        rtol=1e-10,
        atol=0,
    )
    x = _batch(1).requires_grad_()
    expected = 10.0 / 2 * x.detach().flatten(1).square().sum(1)
    torch.testing.assert_close(
        penalty(_quadratic_critic(x), x, reduction="none"), expected, rtol=1e-10, atol=0
    )
    torch.testing.assert_close(
        penalty(_quadratic_critic(x), x, gamma=4.0),
        (expected.mean() * 0.4),
        rtol=1e-6,
        atol=0,
    )
    del w


def test_r1_names_its_arguments() -> None:
    x = _batch(0)
    with pytest.raises(ValueError, match="x_real"):
        r1_penalty(_quadratic_critic(x), x)
    with pytest.raises(ValueError, match="x_fake"):
        r2_penalty(torch.zeros(3, requires_grad=True), x)
    with pytest.raises(ValueError, match="real_scores"):
        r1_penalty(torch.zeros(3, 2), x.requires_grad_())
    with pytest.raises(ValueError, match="gamma"):
        r1_penalty(_quadratic_critic(x), x, gamma=-1.0)


def test_r1_from_critic_equals_outputs_form() -> None:
    x = _batch(2)
    direct = r1_penalty(_quadratic_critic(x.requires_grad_()), x, reduction="none")
    torch.testing.assert_close(
        r1_penalty_from_critic(_quadratic_critic, x.detach(), reduction="none"),
        direct,
        rtol=0,
        atol=0,
    )


# ----------------------------------------------------------------------------- WGAN-div


@pytest.mark.parametrize(("norm", "expected"), [(1.0, 2.0), (2.0, 128.0)])
def test_wgan_div_linear_critic(norm: float, expected: float) -> None:
    critic, _ = _linear_critic(norm)
    x_r, x_f = _batch(0).requires_grad_(), _batch(1).requires_grad_()
    pen = wgan_div_penalty(critic(x_r), x_r, critic(x_f), x_f)
    assert pen.dtype == torch.float64
    torch.testing.assert_close(pen, torch.tensor(expected, dtype=torch.float64), rtol=1e-10, atol=0)
    none = wgan_div_penalty(critic(x_r), x_r, critic(x_f), x_f, reduction="none")
    torch.testing.assert_close(
        none, torch.full((3,), expected, dtype=torch.float64), rtol=1e-10, atol=0
    )


def test_wgan_div_p2_is_half_mean_sqnorm_over_union() -> None:
    x_r, x_f = _batch(0).requires_grad_(), _batch(1, (5, *SHAPE[1:])).requires_grad_()
    pen = wgan_div_penalty(_quadratic_critic(x_r), x_r, _quadratic_critic(x_f), x_f, k=0.5, p=2.0)
    sq_r = x_r.detach().flatten(1).square().sum(1)
    sq_f = x_f.detach().flatten(1).square().sum(1)
    # k/2 (E_r + E_f) with k = ½ and p = 2.
    torch.testing.assert_close(pen, (0.25 * (sq_r.mean() + sq_f.mean())), rtol=1e-10, atol=0)
    # Equal batch sizes: ½ E over real ∪ fake (the Evans PDE form).
    x_f3 = x_f[:3].detach().requires_grad_()
    pen3 = wgan_div_penalty(
        _quadratic_critic(x_r), x_r, _quadratic_critic(x_f3), x_f3, k=0.5, p=2.0
    )
    torch.testing.assert_close(pen3, (0.5 * torch.cat([sq_r, sq_f[:3]]).mean()), rtol=1e-10, atol=0)


def test_wgan_div_per_sample_quadratic_p6() -> None:
    x_r, x_f = _batch(2).requires_grad_(), _batch(3).requires_grad_()
    none = wgan_div_penalty(
        _quadratic_critic(x_r), x_r, _quadratic_critic(x_f), x_f, reduction="none"
    )
    s_r = x_r.detach().flatten(1).square().sum(1) ** 3
    s_f = x_f.detach().flatten(1).square().sum(1) ** 3
    torch.testing.assert_close(none, (s_r + s_f), rtol=1e-10, atol=0)  # k/2 = 1
    with pytest.raises(ValueError, match="reduction='none'"):
        x4 = _batch(4, (4, *SHAPE[1:])).requires_grad_()
        wgan_div_penalty(_quadratic_critic(x_r), x_r, _quadratic_critic(x4), x4, reduction="none")
    with pytest.raises(ValueError, match="x_fake"):
        wgan_div_penalty(_quadratic_critic(x_r), x_r, _quadratic_critic(x_f), x_f.detach())
    with pytest.raises(ValueError, match=r"^k must"):
        wgan_div_penalty(_quadratic_critic(x_r), x_r, _quadratic_critic(x_f), x_f, k=0.0)


def test_wgan_div_fp16_input_gives_finite_fp32() -> None:
    # ‖w‖ = 40: (Σg²)^3 = 4.1e9 overflows fp16 (max 65504) but not fp32.
    for norm in (2.0, 40.0):
        critic, w = _linear_critic(norm, dtype=torch.float16)
        x_r = _batch(0, dtype=torch.float16).requires_grad_()
        x_f = _batch(1, dtype=torch.float16).requires_grad_()
        pen = wgan_div_penalty(critic(x_r), x_r, critic(x_f), x_f)
        assert pen.dtype == torch.float32 and torch.isfinite(pen)
        # k‖w‖^6 with the fp16-rounded w, evaluated in fp64.
        torch.testing.assert_close(pen.double(), 2.0 * w.double().norm() ** 6, rtol=1e-5, atol=0)
        assert abs(pen.item() - 2.0 * norm**6) < 1e-2 * 2.0 * norm**6


# ----------------------------------------------------------------------------- AMP scaling


def test_grad_scaler_unscales() -> None:
    critic, _ = _linear_critic(2.0)
    x_r, x_f = _batch(0), _batch(1)
    scaler = _Scaler(1024.0)
    plain = wgan_gp_penalty(critic, x_r, x_f, generator=torch.Generator().manual_seed(0))
    scaled = wgan_gp_penalty(
        critic, x_r, x_f, generator=torch.Generator().manual_seed(0), grad_scaler=scaler
    )
    torch.testing.assert_close(scaled, plain, rtol=1e-6, atol=0)
    x = _batch(2).requires_grad_()
    out = _quadratic_critic(x)
    torch.testing.assert_close(
        r1_penalty(scaler.scale(out), x, grad_scaler=scaler), r1_penalty(out, x), rtol=1e-6, atol=0
    )
    torch.testing.assert_close(
        r1_penalty_from_critic(_quadratic_critic, x, grad_scaler=scaler),
        r1_penalty(out, x),
        rtol=1e-6,
        atol=0,
    )
    y = _batch(3).requires_grad_()
    torch.testing.assert_close(
        wgan_div_penalty(
            scaler.scale(out), x, scaler.scale(_quadratic_critic(y)), y, grad_scaler=scaler
        ),
        wgan_div_penalty(out, x, _quadratic_critic(y), y),
        rtol=1e-5,
        atol=0,
    )


def test_torch_grad_scaler_cpu() -> None:
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**12)
    x = _batch(0).requires_grad_()
    out = _quadratic_critic(x)
    torch.testing.assert_close(
        r1_penalty(scaler.scale(out), x, grad_scaler=scaler), r1_penalty(out, x), rtol=1e-6, atol=0
    )


@settings(max_examples=15, deadline=None)
@given(
    shape=st.lists(st.integers(1, 3), min_size=1, max_size=3),
    batch=st.integers(1, 4),
    seed=st.integers(0, 2**16),
)
def test_penalties_per_sample_equal_loop(shape: list[int], batch: int, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(shape, generator=g, dtype=torch.float64)

    def critic(x: Tensor) -> Tensor:
        return torch.tanh(x * w).flatten(1).sum(1) + 0.1 * x.flatten(1).square().sum(1)

    x = torch.randn(batch, *shape, generator=g, dtype=torch.float64).requires_grad_()
    y = torch.randn(batch, *shape, generator=g, dtype=torch.float64).requires_grad_()
    gp = gradient_penalty(critic(x), x, reduction="none")
    r1 = r1_penalty(critic(x), x, reduction="none")
    div = wgan_div_penalty(critic(x), x, critic(y), y, reduction="none")
    assert gp.shape == r1.shape == div.shape == (batch,)
    for i in range(batch):
        xi = x[i : i + 1].detach().requires_grad_()
        yi = y[i : i + 1].detach().requires_grad_()
        torch.testing.assert_close(gp[i], gradient_penalty(critic(xi), xi), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(r1[i], r1_penalty(critic(xi), xi), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(
            div[i], wgan_div_penalty(critic(xi), xi, critic(yi), yi), rtol=1e-5, atol=1e-6
        )


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_autocast_penalties_match_fp32() -> None:
    torch.manual_seed(0)
    critic = nn.Sequential(
        nn.Flatten(), nn.Linear(24, 16), nn.LeakyReLU(0.2), nn.Linear(16, 1)
    ).cuda()
    x_r = torch.randn(8, 2, 3, 4, device="cuda")
    x_f = torch.randn(8, 2, 3, 4, device="cuda")
    scaler = torch.amp.GradScaler("cuda", init_scale=2.0**14)
    ref_gp = wgan_gp_penalty(critic, x_r, x_f, generator=torch.Generator("cuda").manual_seed(0))
    xr = x_r.clone().requires_grad_()
    xf = x_f.clone().requires_grad_()
    ref_r1 = r1_penalty(critic(xr), xr)
    ref_div = wgan_div_penalty(critic(xr), xr, critic(xf), xf)
    with torch.autocast("cuda", dtype=torch.float16):
        gp = wgan_gp_penalty(
            critic, x_r, x_f, generator=torch.Generator("cuda").manual_seed(0), grad_scaler=scaler
        )
        s_r, s_f = critic(xr), critic(xf)
        assert s_r.dtype == torch.float16
        r1 = r1_penalty(scaler.scale(s_r), xr, grad_scaler=scaler)
        div = wgan_div_penalty(scaler.scale(s_r), xr, scaler.scale(s_f), xf, grad_scaler=scaler)
    for got, ref in ((gp, ref_gp), (r1, ref_r1), (div, ref_div)):
        assert got.dtype == torch.float32 and torch.isfinite(got)
        torch.testing.assert_close(got, ref, rtol=2e-2, atol=1e-3)
    (gp + r1 + div).backward()
    assert all(torch.isfinite(p.grad).all() for p in critic.parameters())
