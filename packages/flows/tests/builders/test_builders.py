"""Model builders (spec §2.2–2.6, §4 tests #1, #4, #12 and the preset tests) at tiny sizes."""

from __future__ import annotations

import math

import pytest
import torch
from torch.autograd.functional import jacobian

from kexue.flows.base import Compose
from kexue.flows.builders.glow import glow
from kexue.flows.builders.nice import nice
from kexue.flows.builders.realnvp import realnvp
from kexue.flows.builders.residual import iresnet, residual_flow
from kexue.flows.flow import Flow, FlowConfig, MultiScaleFlow
from kexue.flows.layers.conv1x1 import Invertible1x1Conv
from kexue.flows.layers.coupling import AdditiveCoupling, AffineCoupling
from kexue.flows.layers.normalization import ActNorm, AffineBatchNorm, DiagonalScale
from kexue.flows.layers.permutation import Permutation
from kexue.flows.layers.reshape import Squeeze
from kexue.flows.priors import LearnedTop, Logistic, StandardNormal
from kexue.flows.residual.iresblock import IResBlock


@pytest.fixture(autouse=True)
def _single_thread():
    """Tiny models: intra-op threads only add contention (10-50× slower on a loaded 2-core box)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _round_trip(model, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x_back, logdet, logdet_inv) of inverse(forward(x))."""
    z, ld = model(x)
    x_back, ld_inv = model.inverse(z)
    return x_back, ld, ld_inv


def _assert_invertible(model, x: torch.Tensor, *, atol: float) -> None:
    x_back, ld, ld_inv = _round_trip(model, x)
    torch.testing.assert_close(x_back, x, atol=atol, rtol=0)
    torch.testing.assert_close(ld + ld_inv, torch.zeros_like(ld), atol=atol * 10, rtol=0)


def _train(model, data: torch.Tensor, steps: int = 20, lr: float = 5e-3) -> list[float]:
    """``steps`` Adam steps on −log p per dim over random minibatches of ``data``."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    g = _gen(99)
    losses = []
    dims = data[0].numel()
    for _ in range(steps):
        idx = torch.randint(0, data.shape[0], (4,), generator=g)
        loss = -model.log_prob(data[idx]).mean() / dims
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


# ------------------------------------------------------------------------------------------ NICE


@pytest.mark.parametrize("mixing", ["parity", "reverse", "random"])
@pytest.mark.parametrize("dim", [10, 11])
def test_nice_round_trip_float64_and_float32(mixing: str, dim: int) -> None:
    model = nice(dim, hidden=16, depth=2, mixing=mixing, generator=_gen(1)).double()
    with torch.no_grad():
        model.transform[-1].s.copy_(0.1 * torch.randn(dim, generator=_gen(2)))
    x = torch.rand(6, dim, generator=_gen(3), dtype=torch.float64)
    _assert_invertible(model, x, atol=1e-10)
    lp = model.log_prob(x)
    assert lp.shape == (6,) and torch.isfinite(lp).all()
    # the only volume change is the diagonal scale
    _, ld = model(x)
    torch.testing.assert_close(ld, model.transform[-1].s.sum().expand(6), atol=1e-12, rtol=0)
    model32 = model.float()
    _assert_invertible(model32, x.float(), atol=1e-4)


def test_nice_paper_preset_layout() -> None:
    model = nice(8, hidden=16, depth=2)
    assert isinstance(model, Flow) and isinstance(model.prior, Logistic)
    kinds = [type(layer) for layer in model.transform]
    assert kinds == [AdditiveCoupling] * 4 + [DiagonalScale]
    assert [layer.parity for layer in model.transform[:4]] == [0, 1, 0, 1]
    assert all(layer.split == "parity" and layer.sign == 1.0 for layer in model.transform[:4])
    assert model.config == FlowConfig("paper")
    assert model.config.noise == "uniform" and model.config.noise_scale == 1 / 256
    torch.testing.assert_close(model.transform[-1].s, torch.zeros(8), atol=0, rtol=0)


def test_nice_su_compat_784() -> None:
    model = nice(784, preset="su_compat", generator=_gen(4))  # Su's full size: 4 × 5 × 1000
    assert isinstance(model.prior, StandardNormal) and model.prior.shape == (784,)
    layers = list(model.transform)
    assert [type(layer) for layer in layers] == [Permutation, AdditiveCoupling] * 4 + [
        DiagonalScale
    ]
    for perm in layers[0:8:2]:
        assert perm.mode == "reverse"
        assert torch.equal(perm.perm, torch.arange(783, -1, -1))
    for cpl in layers[1:8:2]:
        assert cpl.split == "parity" and cpl.parity == 0 and cpl.sign == -1.0
        linears = [m for m in cpl.net.modules() if isinstance(m, torch.nn.Linear)]
        assert [lin.out_features for lin in linears] == [1000] * 5 + [392]
        assert isinstance(list(cpl.net.modules())[-1], torch.nn.ReLU)  # m ≥ 0
    assert layers[-1].s.abs().max() > 0  # Glorot-normal init, not zeros

    x = torch.rand(3, 784, generator=_gen(5))
    z, _ = model(x)
    assert z.shape == (3, 784)
    torch.testing.assert_close(model.inverse(z)[0], x, atol=1e-4, rtol=0)
    # interleaved split after the reverse shuffle: even indices kept, odd ones decrease by m ≥ 0
    v, _ = layers[0](x)
    y, _ = layers[1](v)
    torch.testing.assert_close(y[:, 0::2], v[:, 0::2], atol=0, rtol=0)
    assert (y[:, 1::2] <= v[:, 1::2]).all() and (y[:, 1::2] < v[:, 1::2]).any()

    cfg = model.config
    assert (cfg.preset, cfg.noise, cfg.noise_scale) == ("su_compat", "negative", 0.01)
    assert cfg.sample_temperature == 0.75 and cfg.clip == (0.0, 1.0)
    noisy = cfg.add_noise(x, generator=_gen(6))
    assert ((x - noisy) >= 0).all() and ((x - noisy) <= 0.01).all() and (x - noisy).max() > 5e-3
    # sampling at the preset's std 0.75: z = 0.75·ε, then the inverse
    s = model.sample(2, temperature=cfg.sample_temperature, generator=_gen(7))
    eps = torch.randn(2, 784, generator=_gen(7))
    torch.testing.assert_close(s, model.inverse(0.75 * eps)[0], atol=1e-5, rtol=0)


# --------------------------------------------------------------------------------------- RealNVP


def test_realnvp_layout_and_round_trip() -> None:
    model = realnvp((2, 8, 8), scales=2, couplings=2, hidden=8, blocks=1).double()
    assert isinstance(model, MultiScaleFlow) and len(model.levels) == 2
    first = list(model.levels[0].transform)
    cpls = [layer for layer in first if isinstance(layer, AffineCoupling)]
    assert [c.split for c in cpls] == ["checkerboard"] * 2 + ["channel"] * 2
    assert all(c.order == "realnvp" and c.scale_map == "tanh_w" for c in cpls)
    assert sum(isinstance(layer, AffineBatchNorm) for layer in first) == 4
    assert any(isinstance(layer, Squeeze) for layer in first)
    assert model.levels[0].split.prior_kind == "normal"
    last = [c for c in model.levels[1].transform if isinstance(c, AffineCoupling)]
    assert len(last) == 3 and all(c.split == "checkerboard" for c in last)

    x = torch.rand(4, 2, 8, 8, generator=_gen(9), dtype=torch.float64)
    z_list, _ = model(x)
    assert [tuple(z.shape) for z in z_list] == [(4, 4, 4, 4), (4, 4, 4, 4)]
    model.eval()
    _assert_invertible(model, x, atol=1e-10)
    assert torch.isfinite(model.log_prob(x)).all()


# ------------------------------------------------------------------------------------------ Glow


@pytest.mark.parametrize("permutation", ["lu", "conv", "reverse", "random"])
@pytest.mark.parametrize("coupling", ["affine", "additive"])
def test_glow_variants_round_trip(permutation: str, coupling: str) -> None:
    model = glow(
        (3, 8, 8),
        levels=2,
        steps=2,
        hidden=8,
        permutation=permutation,
        coupling=coupling,
        generator=_gen(10),
    ).double()
    x = torch.rand(4, 3, 8, 8, generator=_gen(11), dtype=torch.float64) - 0.5
    z_list, _ = model(x)  # data-dependent ActNorm init
    assert [tuple(z.shape) for z in z_list] == [(4, 6, 4, 4), (4, 24, 2, 2)]
    _assert_invertible(model, x, atol=1e-10)
    assert torch.isfinite(model.log_prob(x)).all()


def test_glow_paper_layout() -> None:
    model = glow((3, 8, 8), levels=2, steps=2, hidden=8)
    level = list(model.levels[0].transform)
    assert isinstance(level[0], Squeeze) and level[0].order == "default"
    assert [type(layer) for layer in level[1:4]] == [ActNorm, Invertible1x1Conv, AffineCoupling]
    assert level[1].init == "data" and level[1].logscale_factor == 3.0 and level[2].lu
    assert level[3].scale_map == "sigmoid2"
    assert model.levels[0].split.prior_kind == "conditional"
    assert model.levels[1].split is None and isinstance(model.top_prior, LearnedTop)
    assert model.config == FlowConfig("paper")


def test_glow_su_compat_layout_and_round_trip() -> None:
    model = glow((3, 8, 8), levels=2, steps=2, hidden=8, preset="su_compat").double()
    level = list(model.levels[0].transform)
    assert level[0].order == "su"
    assert [type(layer) for layer in level[1:4]] == [ActNorm, Permutation, AdditiveCoupling]
    assert level[1].init == "zero" and level[2].mode == "random"
    assert isinstance(model.top_prior, StandardNormal)
    assert model.levels[0].split.prior_kind == "conditional"
    cfg = model.config
    assert cfg.data_range == (-1.0, 1.0) and cfg.sample_temperature == 0.9
    x = 2 * torch.rand(4, 3, 8, 8, generator=_gen(12), dtype=torch.float64) - 1
    _assert_invertible(model, x, atol=1e-10)


def test_glow_su_compat_loss_differs_from_bpd_by_the_range_constant() -> None:
    """Su's printed loss −log p_Y(y) on [−1, 1] data omits D·ln(n/2): bpd − loss/(D ln 2) = b − 1."""
    model = glow((3, 8, 8), levels=2, steps=1, hidden=8, preset="su_compat").double()
    y = 2 * torch.rand(4, 3, 8, 8, generator=_gen(30), dtype=torch.float64) - 1
    loss = -model.log_prob(y)
    bpd = model.bpd(y, n_bits=8, data_range=model.config.data_range, dequantize=False)
    d = 3 * 8 * 8
    torch.testing.assert_close(
        bpd - loss / (d * math.log(2)),
        torch.full((4,), 7.0, dtype=torch.float64),
        atol=1e-12,
        rtol=0,
    )


def _stack(kind: str, dtype: torch.dtype):
    torch.manual_seed(13)
    if kind == "glow":
        model = glow((2, 4, 4), levels=2, steps=2, hidden=8, generator=_gen(14))
        data = torch.rand(16, 2, 4, 4, generator=_gen(15)) - 0.5
    else:
        model = realnvp((2, 4, 4), scales=2, couplings=2, hidden=8, blocks=1)
        data = torch.rand(16, 2, 4, 4, generator=_gen(15))
    return model.to(dtype), data.to(dtype)


@pytest.mark.parametrize("kind", ["glow", "realnvp"])
def test_stack_invertible_at_init_and_after_training_float64(kind: str) -> None:
    """Spec §4 test #4 (rosinality/glow-pytorch#25): invertible at init and after training."""
    model, data = _stack(kind, torch.float64)
    x = data[:6]
    model.eval()
    _assert_invertible(model, x, atol=1e-8)
    model.train()
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    losses = _train(model, data)
    assert all(torch.isfinite(torch.tensor(losses)))
    moved = [
        k
        for k, v in model.state_dict().items()
        if v.is_floating_point() and not torch.equal(v, before[k])
    ]
    assert any("net" in k for k in moved)  # the coupling nets (zero-init outputs) were trained
    model.eval()
    _assert_invertible(model, x, atol=1e-8)
    assert torch.isfinite(model.log_prob(x)).all()


@pytest.mark.parametrize("kind", ["glow", "realnvp"])
def test_stack_invertible_after_training_float32(kind: str) -> None:
    model, data = _stack(kind, torch.float32)
    _train(model, data)
    model.eval()
    x = data[:6]
    x_back, _, _ = _round_trip(model, x)
    torch.testing.assert_close(x_back, x, atol=1e-4 * x.abs().max().item(), rtol=1e-4)


@pytest.mark.parametrize("temperature", [0.0, 0.5, 1.0])
def test_multiscale_sampling_shapes(temperature: float) -> None:
    g_model = glow((3, 8, 8), levels=2, steps=1, hidden=8).double()
    r_model = realnvp((3, 8, 8), scales=2, couplings=1, hidden=8, blocks=1).double().eval()
    for model in (g_model, r_model):
        s = model.sample(5, temperature=temperature, generator=_gen(16))
        assert s.shape == (5, 3, 8, 8) and s.dtype == torch.float64
        assert torch.isfinite(s).all()
    if temperature == 0.0:  # T = 0: the mean path, independent of the noise
        a = g_model.sample(2, temperature=0.0, generator=_gen(17))
        b = g_model.sample(2, temperature=0.0, generator=_gen(18))
        torch.testing.assert_close(a, b, atol=0, rtol=0)


def test_glow_bpd_finite() -> None:
    model = glow((3, 8, 8), levels=2, steps=1, hidden=8)
    x_int = torch.randint(0, 32, (4, 3, 8, 8), generator=_gen(19))
    bpd = model.bpd(x_int, n_bits=5, generator=_gen(20))
    assert bpd.shape == (4,) and torch.isfinite(bpd).all() and (bpd > 0).all()


# ---------------------------------------------------------------------------- i-ResNet / ResFlow


def test_iresnet_vector_round_trip_and_exact_logdet() -> None:
    model = iresnet(
        4, blocks=2, hidden=8, logdet_mode="exact", inverse_tol=1e-12, generator=_gen(21)
    ).double()
    x = torch.randn(5, 4, generator=_gen(22), dtype=torch.float64)
    model(x)  # ActNorm init (training)
    model.eval()
    _assert_invertible(model, x, atol=1e-10)
    # the builder's total logdet (ActNorm + exact block logdets) vs slogdet of the whole map
    _, ld = model(x)
    jac = jacobian(lambda v: model(v.view(1, 4))[0].flatten(), x[0])
    torch.testing.assert_close(ld[0], torch.linalg.slogdet(jac).logabsdet, atol=1e-8, rtol=0)
    assert all(b.logdet_mode == "exact" for b in model.transform if isinstance(b, IResBlock))


def test_iresnet_image_series_round_trip_to_tolerance() -> None:
    model = iresnet(
        (2, 4, 4), blocks=2, scales=2, hidden=8, coeff=0.5, inverse_tol=1e-11, generator=_gen(23)
    ).double()
    x = torch.randn(3, 2, 4, 4, generator=_gen(24), dtype=torch.float64)
    model(x)
    model.eval()
    z, _ = model(x)
    assert z.shape == (3, 8, 2, 2) and isinstance(model.prior, StandardNormal)
    x_back, _ = model.inverse(z)
    torch.testing.assert_close(x_back, x, atol=1e-9, rtol=0)
    blocks = [b for b in model.transform if isinstance(b, IResBlock)]
    assert len(blocks) == 4 and all(b.last_inverse_info.converged for b in blocks)
    lp = model.log_prob(x)
    assert lp.shape == (3,) and torch.isfinite(lp).all()
    s = model.sample(2, temperature=0.7, generator=_gen(25))
    assert s.shape == (2, 2, 4, 4)


def test_residual_flow_roulette_blocks_round_trip() -> None:
    model = residual_flow(
        (2, 4, 4),
        blocks=2,
        hidden=8,
        coeff=0.5,
        logit_alpha=0.05,
        inverse_tol=1e-11,
        generator=_gen(26),
    ).double()
    blocks = [b for b in model.transform if isinstance(b, IResBlock)]
    assert all(b.estimator == "roulette" and b.coeff == 0.5 for b in blocks)
    assert residual_flow(3, blocks=1, hidden=4).transform[1].coeff == 0.98  # the default
    x = torch.rand(3, 2, 4, 4, generator=_gen(27), dtype=torch.float64) * 0.9 + 0.05
    model(x)
    model.eval()
    z, _ = model(x)
    torch.testing.assert_close(model.inverse(z)[0], x, atol=1e-9, rtol=0)
    model.train()
    lp = model.log_prob(x)
    assert torch.isfinite(lp).all()
    (-lp.mean()).backward()
    assert all(p.grad is not None for p in blocks[0].parameters() if p.requires_grad)
    vec = residual_flow(3, blocks=1, hidden=8, generator=_gen(28))
    assert isinstance(vec.transform, Compose) and vec.prior.shape == (3,)


# ------------------------------------------------------------------------------------ bad input


def test_builder_bad_arguments() -> None:
    with pytest.raises(ValueError, match="preset"):
        nice(8, preset="keras")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="mixing"):
        nice(8, mixing="shuffle")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="prior"):
        nice(8, prior="cauchy")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="dim"):
        nice(1)
    with pytest.raises(ValueError, match="shape"):
        glow((3, 12, 12), levels=3, steps=1, hidden=4)  # 12 not divisible by 8
    with pytest.raises(ValueError, match="shape"):
        realnvp((3, 8), scales=2)
    with pytest.raises(ValueError, match="permutation"):
        glow((3, 8, 8), levels=1, steps=1, permutation="shuffle")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="coupling"):
        glow((3, 8, 8), levels=1, steps=1, coupling="cubic")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="steps"):
        glow((3, 8, 8), levels=1, steps=0)
    with pytest.raises(ValueError, match="preset"):
        realnvp((3, 8, 8), preset="su_compat")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="scales"):
        iresnet(4, scales=2)
    with pytest.raises(ValueError, match="shape"):
        iresnet((2, 4), blocks=1)


@pytest.mark.parametrize("padding", ["zeros", "edge_channel", "pad_one"])
def test_glow_net_actnorm_and_padding_options_round_trip(padding: str) -> None:
    model = glow((1, 8, 8), levels=2, steps=2, hidden=8, net_actnorm=True, padding=padding)
    model = model.double()
    x = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    z, logdet = model(x)  # the first call runs every data-dependent ActNorm init
    x_rec, logdet_inv = model.inverse(z)
    torch.testing.assert_close(x_rec, x, atol=1e-10, rtol=0.0)
    torch.testing.assert_close(logdet + logdet_inv, torch.zeros_like(logdet), atol=1e-9, rtol=0.0)
