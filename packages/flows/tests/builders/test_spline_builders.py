"""Builders maf / nsf and glow(coupling="spline"): identity at init, round trips, conditional
flows (log_prob, sampling with a context, context gradients, a context embedding), training."""

from __future__ import annotations

import pytest
import torch
from _flowcheck import check_invertible, gen
from torch import nn

from kexue.flows.builders.autoregressive import maf, nsf
from kexue.flows.builders.glow import glow
from kexue.flows.builders.nice import nice
from kexue.flows.builders.realnvp import realnvp
from kexue.flows.flow import Flow
from kexue.flows.layers.spline_coupling import SplineCoupling
from kexue.flows.mixture import GaussianMixture

BUILDS = {
    "maf": lambda **kw: maf(3, transforms=2, hidden=(10, 10), **kw),
    "iaf": lambda **kw: maf(3, transforms=2, hidden=(10, 10), direction="iaf", **kw),
    "nsf-ar": lambda **kw: nsf(3, transforms=2, hidden=(10, 10), bins=4, **kw),
    "nsf-coupling": lambda **kw: nsf(3, transforms=2, hidden=(10,), bins=4, kind="coupling", **kw),
}

# conditional vector flows: the above plus NICE (whose MLPs are not zero-initialised)
CONDITIONAL = BUILDS | {
    "nice": lambda **kw: nice(3, n_couplings=2, hidden=10, depth=1, **kw),
}


def _perturb(module: nn.Module, seed: int, scale: float = 0.2) -> None:
    g = gen(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=g, dtype=p.dtype) * scale)


@pytest.mark.parametrize("name", sorted(BUILDS))
def test_identity_at_init_and_round_trip(name: str) -> None:
    torch.manual_seed(0)
    flow = BUILDS[name](generator=gen(0)).double()
    x = torch.randn(5, 3, generator=gen(1), dtype=torch.float64) * 2
    z, logdet = flow(x)
    torch.testing.assert_close(z, x, atol=1e-12, rtol=0)
    torch.testing.assert_close(logdet, torch.zeros(5, dtype=torch.float64), atol=1e-12, rtol=0)
    _perturb(flow, 2)
    check_invertible(flow.transform, x, atol=1e-10)


@pytest.mark.parametrize("name", sorted(CONDITIONAL))
def test_conditional_flow_log_prob_sample_and_context_gradient(name: str) -> None:
    torch.manual_seed(0)
    flow = CONDITIONAL[name](context_dim=2, generator=gen(3)).double()
    _perturb(flow, 4)
    x = torch.randn(4, 3, generator=gen(5), dtype=torch.float64)
    c = torch.randn(4, 2, generator=gen(6), dtype=torch.float64, requires_grad=True)
    lp = flow.log_prob(x, c)
    assert lp.shape == (4,) and torch.isfinite(lp).all()
    lp.sum().backward()
    assert c.grad is not None and c.grad.abs().sum() > 0
    _check_context_gradient(lambda cc: flow.log_prob(x, cc).sum(), c.detach())
    s = flow.sample(4, context=c.detach(), generator=gen(7))
    assert s.shape == (4, 3)
    other = flow.sample(4, context=c.detach() + 1.0, generator=gen(7))  # same noise
    assert not torch.allclose(s, other)  # the context changes the samples
    check_invertible(flow.transform, x, atol=1e-10, context=c.detach())
    with pytest.raises(ValueError, match="context"):
        flow.log_prob(x)


def test_context_embedding_and_conditional_mixture_base() -> None:
    torch.manual_seed(0)
    emb = nn.Sequential(nn.Linear(5, 2), nn.Tanh())
    base = GaussianMixture(2, 3, context_features=2, hidden=8, generator=gen(0))
    inner = nsf(2, transforms=2, hidden=(8,), bins=4, context_dim=2, base=base, generator=gen(1))
    flow = Flow(inner.transform, inner.prior, context_embedding=emb).double()
    _perturb(flow, 2)
    x = torch.randn(6, 2, generator=gen(3), dtype=torch.float64)
    c = torch.randn(6, 5, generator=gen(4), dtype=torch.float64)
    e = emb(c)
    ref = inner.double().log_prob(x, e)  # the same modules, embedding applied by hand
    torch.testing.assert_close(flow.log_prob(x, c), ref, atol=1e-12, rtol=0)
    assert flow.sample(6, context=c, generator=gen(5)).shape == (6, 2)


def test_nsf_trains_on_a_toy_density() -> None:
    torch.manual_seed(0)
    flow = nsf(2, transforms=1, hidden=(8,), bins=4, generator=gen(0))
    g = gen(1)
    opt = torch.optim.Adam(flow.parameters(), lr=2e-2)
    data = torch.randn(128, 2, generator=g) * torch.tensor([0.3, 1.5]) + torch.tensor([1.0, 0.0])
    losses = []
    for _ in range(20):
        loss = -flow.log_prob(data).mean()
        losses.append(float(loss.detach()))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert losses[-1] < losses[0] - 0.3  # the N(0, I) start is ≈ 0.9 nats worse than the law


def test_glow_with_spline_couplings() -> None:
    g = gen(0)
    model = glow((1, 4, 4), levels=2, steps=1, hidden=8, coupling="spline", bins=4, generator=g)
    couplings = [m for m in model.modules() if isinstance(m, SplineCoupling)]
    assert len(couplings) == 2 and couplings[0].bins == 4
    x = torch.rand(8, 1, 4, 4, generator=g)
    z_list, logdet = model(x)  # first call: ActNorm data init
    model.eval()
    _perturb(model, 1, 0.05)
    with torch.no_grad():
        z_list, logdet = model(x)
        x_rec, ld_inv = model.inverse(z_list)
    torch.testing.assert_close(x_rec, x, atol=1e-5, rtol=0)
    torch.testing.assert_close(ld_inv, -logdet, atol=1e-4, rtol=0)
    assert torch.isfinite(model.bpd((x * 17).long().clamp(max=16), n_levels=17, generator=g)).all()


def _check_context_gradient(f, c: torch.Tensor) -> None:  # type: ignore[no-untyped-def]
    """Autograd ∂f/∂context equals central differences (fp64) in every context coordinate."""
    c = c.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(f(c), c)
    step = 1e-6
    for i in range(c.shape[1]):
        e = torch.zeros_like(c)
        e[:, i] = step
        with torch.no_grad():
            fd = (f(c + e) - f(c - e)) / (2 * step)
        torch.testing.assert_close(grad[:, i].sum(), fd, atol=1e-6, rtol=1e-6)


MULTISCALE = {
    "glow-affine": lambda g: glow((1, 4, 4), levels=2, steps=1, hidden=8, context_dim=3,
                                  generator=g),
    "glow-spline": lambda g: glow((1, 4, 4), levels=2, steps=1, hidden=8, coupling="spline",
                                  bins=4, context_dim=3, generator=g),
    "realnvp": lambda g: realnvp((1, 4, 4), scales=2, couplings=1, hidden=8, blocks=1,
                                 context_dim=3),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(MULTISCALE))
def test_conditional_multiscale(name: str) -> None:
    g = gen(0)
    torch.manual_seed(0)
    model = MULTISCALE[name](g).double()
    x = torch.rand(6, 1, 4, 4, generator=g, dtype=torch.float64)
    c = torch.randn(6, 3, generator=g, dtype=torch.float64)
    model(x, c)  # ActNorm data init / batch-norm statistics
    _perturb(model, 1, 0.05)
    model.eval()  # RealNVP's batch norm inverts exactly with its running statistics
    c.requires_grad_(True)
    lp = model.log_prob(x, c)
    lp.sum().backward()
    assert c.grad is not None and c.grad.abs().sum() > 0
    _check_context_gradient(lambda cc: model.log_prob(x, cc).sum(), c.detach())
    with torch.no_grad():
        z_list, _ = model(x, c)
        x_rec, _ = model.inverse(z_list, c)
        eps = model.eps(x, c)
        x_eps = model.from_eps(eps, context=c)
    torch.testing.assert_close(x_rec, x, atol=1e-10, rtol=0)
    torch.testing.assert_close(x_eps, x, atol=1e-10, rtol=0)
    assert model.sample(6, context=c.detach(), generator=g).shape == (6, 1, 4, 4)
    with pytest.raises(ValueError, match="context"):
        model.log_prob(x)


def test_builder_errors() -> None:
    with pytest.raises(ValueError, match="kind"):
        nsf(2, kind="residual")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="features >= 2"):
        nsf(1, kind="coupling")
    with pytest.raises(ValueError, match="context_dim"):
        maf(2, context_dim=-1)
    with pytest.raises(ValueError, match="hidden"):
        maf(2, hidden=(0,))
    with pytest.raises(ValueError, match="coupling"):
        glow((1, 4, 4), levels=1, steps=1, coupling="cubic")  # type: ignore[arg-type]
