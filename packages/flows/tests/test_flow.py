"""Tests for kexue.flows.flow: Flow, Split, Level, MultiScaleFlow (spec §4 rows 11-12).

The multi-scale model here is built from flows-core layers plus a test-only elementwise affine
layer, so these tests do not depend on the coupling / normalisation modules.
"""

from __future__ import annotations

import math

import pytest
import torch
from _flowcheck import check_invertible
from torch import Tensor, nn

from kexue.flows.base import Compose, FlowLayer, logdet_dtype
from kexue.flows.flow import Flow, FlowConfig, Level, MultiScaleFlow, Split
from kexue.flows.layers.permutation import Permutation
from kexue.flows.layers.reshape import Squeeze
from kexue.flows.priors import ConditionalGaussian, LearnedTop, StandardNormal


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


class _Affine(FlowLayer):
    """Elementwise y = exp(s)·x + c over an event shape (test-only, random init)."""

    def __init__(self, shape: tuple[int, ...], seed: int) -> None:
        super().__init__()
        g = _gen(seed)
        self.s = nn.Parameter(0.3 * torch.randn(shape, generator=g))
        self.c = nn.Parameter(0.5 * torch.randn(shape, generator=g))

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return x * torch.exp(self.s) + self.c, self.s.sum().to(logdet_dtype(x)).expand(len(x))

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return (y - self.c) * torch.exp(-self.s), -self.s.sum().to(logdet_dtype(y)).expand(len(y))


def _model(seed: int = 0, prior: str = "conditional") -> MultiScaleFlow:
    # (2, 8, 8) → squeeze (8, 4, 4) → split → (4, 4, 4) → squeeze (16, 2, 2) → split → (8, 2, 2)
    g = _gen(seed)
    levels = [
        Level(
            Compose(
                Squeeze(), _Affine((8, 4, 4), seed + 1), Permutation(8, mode="random", generator=g)
            ),
            Split(8, prior=prior),  # type: ignore[arg-type]
        ),
        Level(
            Compose(
                Squeeze(),
                _Affine((16, 2, 2), seed + 2),
                Permutation(16, mode="random", generator=g),
            ),
            Split(16, prior=prior),  # type: ignore[arg-type]
        ),
        Level(Compose(_Affine((8, 2, 2), seed + 3))),
    ]
    return MultiScaleFlow(levels, LearnedTop((8, 2, 2)))


def _randomise_priors(model: MultiScaleFlow, seed: int = 10) -> None:
    """Make every split prior and the top prior non-trivial (they are N(0, 1) at init)."""
    g = _gen(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "prior" in name:
                p.copy_(0.1 * torch.randn(p.shape, generator=g, dtype=p.dtype))


@pytest.mark.parametrize(("dtype", "atol"), [(torch.float64, 1e-10), (torch.float32, 1e-5)])
def test_multiscale_inverse_reproduces_x(dtype: torch.dtype, atol: float) -> None:
    model = _model().to(dtype)
    _randomise_priors(model)
    x = torch.randn(3, 2, 8, 8, generator=_gen(1), dtype=dtype)
    z_list, logdet = model(x)
    assert [tuple(z.shape) for z in z_list] == [(3, 4, 4, 4), (3, 8, 2, 2), (3, 8, 2, 2)]
    assert all(z.dtype == dtype for z in z_list) and logdet.shape == (3,)
    assert model.num_latents == 3
    x_rec, logdet_inv = model.inverse(z_list)
    assert x_rec.dtype == dtype and x_rec.shape == x.shape
    torch.testing.assert_close(x_rec, x, atol=atol, rtol=atol)
    torch.testing.assert_close(logdet + logdet_inv, torch.zeros_like(logdet), atol=atol, rtol=0)


def test_multiscale_logdet_vs_jacobian_and_log_prob() -> None:
    model = _model().double()
    _randomise_priors(model)
    x = torch.randn(2, 2, 8, 8, generator=_gen(2), dtype=torch.float64)
    z_list, logdet = model(x)
    for i in range(2):

        def f(xi: Tensor) -> Tensor:
            return torch.cat([z.reshape(-1) for z in model(xi.unsqueeze(0))[0]])

        jac = torch.autograd.functional.jacobian(f, x[i])
        ref = torch.linalg.slogdet(jac.reshape(128, 128))[1]
        torch.testing.assert_close(logdet[i], ref, atol=1e-8, rtol=0)
    # log p(x) = log p_top(z_top) + Σ log p(z_i | h_i) + logdet, with h_i recomputed by hand.
    h1 = model.levels[0].transform(x)[0][:, :4]
    h2 = model.levels[1].transform(h1)[0][:, :8]
    split_lp = sum(
        lv.split.prior.log_prob(z, h)  # type: ignore[union-attr]
        for lv, z, h in zip(model.levels[:2], z_list[:2], [h1, h2])
    )
    expected = model.top_prior.log_prob(z_list[2]) + split_lp + logdet
    torch.testing.assert_close(model.log_prob(x), expected, atol=1e-10, rtol=0)
    bpd = model.bpd(x.sigmoid(), n_bits=8, dequantize=False)
    expected_bpd = -model.log_prob(x.sigmoid()) / (128 * math.log(2)) + 8
    torch.testing.assert_close(bpd, expected_bpd, atol=1e-12, rtol=0)


def test_split_prior_at_init_is_standard_normal() -> None:
    split = Split(6)
    h = torch.randn(4, 6, 3, 3, generator=_gen(3))
    h_keep, z, lp = split(h)
    assert torch.equal(h_keep, h[:, :3]) and torch.equal(z, h[:, 3:])
    torch.testing.assert_close(lp, StandardNormal((3, 3, 3)).log_prob(z), atol=1e-5, rtol=0)
    mean, log_scale = split.params(h_keep)
    assert torch.equal(mean, torch.zeros_like(mean)) and torch.equal(log_scale, mean)
    assert isinstance(split.prior, ConditionalGaussian)
    assert torch.equal(split.inverse(h_keep, z), h)
    normal = Split(6, prior="normal")
    assert normal.prior is None and not list(normal.parameters())
    torch.testing.assert_close(normal(h)[2], lp, atol=1e-6, rtol=0)
    assert torch.equal(normal.sample(h_keep, temperature=0.0), torch.zeros_like(h_keep))


def test_sample_temperature_zero_is_mean_path() -> None:
    model = _model().double()
    _randomise_priors(model)
    a = model.sample(3, temperature=0.0, generator=_gen(4))
    b = model.sample(3, temperature=0.0, generator=_gen(5))
    assert a.shape == (3, 2, 8, 8) and a.dtype == torch.float64
    torch.testing.assert_close(a, b, atol=0, rtol=0)
    torch.testing.assert_close(a[0:1].expand_as(a), a, atol=0, rtol=0)
    # Encoding the T = 0 sample gives ε = 0 at every level (z_i = μ_i exactly).
    for eps in model.eps(a):
        torch.testing.assert_close(eps, torch.zeros_like(eps), atol=1e-9, rtol=0)
    # ... and it differs from a T = 1 sample, which varies across the batch.
    s1 = model.sample(3, temperature=1.0, generator=_gen(4)).detach()
    assert float((s1 - a.detach()).abs().max()) > 1e-2 and float((s1[0] - s1[1]).abs().max()) > 1e-2


def test_every_level_scaled_by_temperature() -> None:
    model = _model().double()
    _randomise_priors(model)
    g = _gen(6)
    eps_list = [
        torch.randn(3, 4, 4, 4, generator=g, dtype=torch.float64),
        torch.randn(3, 8, 2, 2, generator=g, dtype=torch.float64),
        torch.randn(3, 8, 2, 2, generator=g, dtype=torch.float64),
    ]
    x = model.from_eps(eps_list, temperature=0.6)
    for got, e in zip(model.eps(x), eps_list):
        torch.testing.assert_close(got, 0.6 * e, atol=1e-9, rtol=0)
    # T = 1: exact round trip x → ε → x
    x0 = torch.randn(3, 2, 8, 8, generator=g, dtype=torch.float64)
    torch.testing.assert_close(model.from_eps(model.eps(x0)), x0, atol=1e-10, rtol=0)
    # sample() draws the same ε sequence as from_eps would scale: shape and finiteness
    s = model.sample(2, temperature=0.7, generator=_gen(7))
    assert s.shape == (2, 2, 8, 8) and torch.isfinite(s).all()


def test_multiscale_float32_sample_dtype_and_grads() -> None:
    model = _model()
    s = model.sample(2, generator=_gen(8))
    assert s.dtype == torch.float32 and s.shape == (2, 2, 8, 8)
    x = torch.randn(4, 2, 8, 8, generator=_gen(9))
    (-model.log_prob(x).mean()).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
    # zero-init convs: gradient flows into the split-prior conv bias
    grad = model.levels[0].split.prior.conv.bias_logs.grad[0]  # type: ignore[union-attr]
    assert grad is not None and float(grad.abs().max()) > 0


def test_multiscale_state_dict_roundtrip() -> None:
    a, b = _model(seed=0), _model(seed=20)
    x = torch.randn(2, 2, 8, 8, generator=_gen(10))
    b.load_state_dict(a.state_dict())
    for za, zb in zip(a(x)[0], b(x)[0]):
        assert torch.equal(za, zb)


def test_normal_split_model_roundtrip() -> None:
    model = _model(prior="normal").double()
    x = torch.randn(2, 2, 8, 8, generator=_gen(11), dtype=torch.float64)
    z_list, _ = model(x)
    torch.testing.assert_close(model.inverse(z_list)[0], x, atol=1e-10, rtol=0)
    lp_splits = sum(StandardNormal(tuple(z.shape[1:])).double().log_prob(z) for z in z_list[:2])
    expected = model.top_prior.log_prob(z_list[2]) + lp_splits + model(x)[1]
    torch.testing.assert_close(model.log_prob(x), expected, atol=1e-10, rtol=0)


def test_flow_model() -> None:
    flow = Flow(Compose(_Affine((3,), 1), Permutation(3)), StandardNormal(3)).double()
    x = torch.randn(5, 3, generator=_gen(12), dtype=torch.float64)
    check_invertible(flow, x, 1e-10)
    z, logdet = flow(x)
    torch.testing.assert_close(
        flow.log_prob(x), StandardNormal(3).double().log_prob(z) + logdet, atol=1e-12, rtol=0
    )
    s0 = flow.sample(4, temperature=0.0)
    torch.testing.assert_close(
        s0, flow.inverse(torch.zeros(4, 3, dtype=torch.float64))[0], atol=0, rtol=0
    )
    s = flow.sample(4, generator=_gen(1))
    assert s.shape == (4, 3) and s.dtype == torch.float64
    torch.testing.assert_close(s, flow.sample(4, generator=_gen(1)), atol=0, rtol=0)


def test_flow_with_conditional_prior_context_checks() -> None:
    flow = Flow(Compose(Squeeze()), ConditionalGaussian(3, 4))
    x = torch.randn(2, 1, 4, 4, generator=_gen(13))
    ctx = torch.randn(2, 3, 2, 2, generator=_gen(14))
    assert flow.log_prob(x, ctx).shape == (2,)
    assert flow.sample(2, context=ctx).shape == (2, 1, 4, 4)
    for bad in (None, torch.zeros(3, 3, 2, 2), torch.zeros(2, 5, 2, 2)):
        with pytest.raises(ValueError, match="context"):
            flow.log_prob(x, bad)


def test_model_bad_input() -> None:
    with pytest.raises(ValueError, match="channels"):
        Split(5)
    with pytest.raises(ValueError, match="prior"):
        Split(4, prior="learned")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="h"):
        Split(4)(torch.zeros(2, 5, 3, 3))
    with pytest.raises(ValueError, match="z"):
        Split(4).inverse(torch.zeros(2, 2, 3, 3), torch.zeros(2, 2, 3, 4))
    with pytest.raises(ValueError, match="transform"):
        Level(nn.Linear(2, 2))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="levels"):
        MultiScaleFlow([], StandardNormal(2))
    with pytest.raises(ValueError, match="prior"):
        Flow(Compose(), nn.Identity())  # type: ignore[arg-type]
    model = _model()
    z_list, _ = model(torch.randn(1, 2, 8, 8, generator=_gen(15)))
    with pytest.raises(ValueError, match="z_list"):
        model.inverse(z_list[:2])
    with pytest.raises(ValueError, match="x"):
        model(torch.randn(1, 2, 7, 8))
    with pytest.raises(ValueError, match="temperature"):
        model.sample(2, temperature=-0.5)


# ------------------------------------------------------------------------------------ FlowConfig


def test_flow_config_noise() -> None:
    x = torch.full((4, 5), 0.5, dtype=torch.float64)
    up = FlowConfig("paper").add_noise(x, generator=_gen(8))
    assert ((up - x) >= 0).all() and ((up - x) <= 1 / 256).all()
    assert torch.equal(FlowConfig("paper", noise="none").add_noise(x), x)


# ------------------------------------------------------------------- issue 18 probes: entry points


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_flow_rejects_non_finite_input_at_every_entry_point(bad: float) -> None:
    flow = Flow(Compose(_Affine((3,), 1), Permutation(3)), StandardNormal(3))
    x = torch.randn(2, 3, generator=_gen(20))
    x[1, 2] = bad
    for call in (flow.log_prob, flow, flow.inverse):
        with pytest.raises(ValueError, match=r"contains NaN or inf \(shape \(2, 3\)\)"):
            call(x)
    model = _model()
    xi = torch.randn(2, 2, 8, 8, generator=_gen(21))
    xi[0, 1, 3, 3] = bad
    for call in (model.log_prob, model, model.eps):
        with pytest.raises(ValueError, match="x contains NaN or inf"):
            call(xi)
    z_list, _ = model(torch.randn(2, 2, 8, 8, generator=_gen(22)))
    z_list[1] = z_list[1].clone()
    z_list[1][0, 0, 0, 0] = bad
    with pytest.raises(ValueError, match=r"z_list\[1\] contains NaN or inf"):
        model.inverse(z_list)


def test_flow_empty_batch_end_to_end() -> None:
    flow = Flow(Compose(_Affine((3,), 1), Permutation(3)), StandardNormal(3))
    assert flow.log_prob(torch.zeros(0, 3)).shape == (0,)
    assert flow.sample(0).shape == (0, 3)
    assert flow.bpd(torch.zeros(0, 3), n_bits=5, dequantize=False).shape == (0,)
    model = _model()
    lp = model.log_prob(torch.zeros(0, 2, 8, 8))
    assert lp.shape == (0,) and lp.dtype == torch.float32
    assert model.bpd(torch.zeros(0, 2, 8, 8, dtype=torch.long), n_bits=5).shape == (0,)
    assert model.sample(0).shape == (0, 2, 8, 8)
    z_list, logdet = model(torch.zeros(0, 2, 8, 8))
    assert logdet.shape == (0,) and model.inverse(z_list)[0].shape == (0, 2, 8, 8)
    # an empty batch contributes nothing to a mean-free sum of the loss and its gradient
    loss = -model.log_prob(torch.zeros(0, 2, 8, 8)).sum()
    loss.backward()
    assert all(p.grad is None or (p.grad == 0).all() for p in model.parameters())
