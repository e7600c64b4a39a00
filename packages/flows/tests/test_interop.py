"""torch.distributions adapter (spec flows-splines §3.6, §5 row 13): the Transform protocol checked
with torch's own TransformedDistribution / _InverseTransform, the Distribution's shapes, log_prob
and rsample, and (when zuko is installed) zuko's Flow built from the lazy adapter."""

from __future__ import annotations

import pytest
import torch
from _flowcheck import gen
from torch.distributions import Independent, Normal, TransformedDistribution, constraints

from kexue.flows.base import Compose
from kexue.flows.builders.autoregressive import nsf
from kexue.flows.flow import Flow
from kexue.flows.interop import as_torch_distribution, as_transform, as_zuko, from_zuko
from kexue.flows.layers.autoregressive import MaskedAutoregressive
from kexue.flows.mixture import GaussianMixture
from kexue.flows.priors import StandardNormal


def _flow(context: int = 0, seed: int = 0) -> Flow:
    layers = Compose(
        MaskedAutoregressive(3, "spline", hidden=8, bins=4, context_features=context,
                             generator=gen(seed)),
        MaskedAutoregressive(3, "affine", hidden=8, context_features=context,
                             order=[2, 1, 0], generator=gen(seed + 1)),
    ).double()  # fmt: skip
    g = gen(seed + 2)
    with torch.no_grad():
        for p in layers.parameters():
            p.add_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.3)
    return Flow(layers, StandardNormal(3)).double()


def test_transform_protocol_with_torch_utilities() -> None:
    flow = _flow(context=2)
    c = torch.randn(2, 2, generator=gen(1), dtype=torch.float64)
    t = as_transform(flow.transform, c)
    assert t.bijective and t.event_dim == 1 and t.domain.event_dim == 1
    assert isinstance(t.codomain, constraints.independent)
    x = torch.randn(5, 2, 3, generator=gen(2), dtype=torch.float64)  # sample (5,), batch (2,)
    y = t(x)
    torch.testing.assert_close(t.inv(y), x, atol=1e-10, rtol=0)
    y2, ladj = t.call_and_ladj(x)
    assert torch.equal(y2, y) and ladj.shape == (5, 2)
    torch.testing.assert_close(t.log_abs_det_jacobian(x, y), ladj, atol=0, rtol=0)
    # torch's _InverseTransform calls the forward ladj with swapped arguments
    torch.testing.assert_close(t.inv.log_abs_det_jacobian(y, x), -ladj, atol=1e-10, rtol=0)
    # ladj = slogdet of the autograd Jacobian at one point
    t0 = as_transform(flow.transform, c[0])  # batch shape (): one vector, one context row
    jac = torch.autograd.functional.jacobian(t0, x[0, 0])
    torch.testing.assert_close(ladj[0, 0], torch.linalg.slogdet(jac)[1], atol=1e-10, rtol=0)
    # TransformedDistribution(base, [T⁻¹]).log_prob equals kexue's Flow.log_prob
    base = Independent(Normal(torch.zeros(2, 3, dtype=torch.float64), 1.0), 1)
    td = TransformedDistribution(base, [t.inv])
    ref = flow.log_prob(x.reshape(10, 3), c.repeat(5, 1)).reshape(5, 2)
    torch.testing.assert_close(td.log_prob(x), ref, atol=1e-10, rtol=0)


def test_distribution_shapes_log_prob_and_rsample() -> None:
    flow = _flow(context=2, seed=3)
    c = torch.randn(4, 2, generator=gen(4), dtype=torch.float64)
    d = as_torch_distribution(flow, c)
    assert d.batch_shape == (4,) and d.event_shape == (3,) and d.has_rsample
    torch.manual_seed(0)
    x = d.rsample((6,))
    assert x.shape == (6, 4, 3) and x.requires_grad
    lp = d.log_prob(x)
    assert lp.shape == (6, 4)
    torch.testing.assert_close(lp, flow.log_prob(x.reshape(24, 3), c.repeat(6, 1)).view(6, 4))
    assert not d.sample((2,)).requires_grad and d.sample().shape == (4, 3)
    xs, lps = d.rsample_and_log_prob((5,))
    torch.testing.assert_close(lps, d.log_prob(xs), atol=1e-10, rtol=0)
    unconditional = as_torch_distribution(_flow())
    assert unconditional.batch_shape == () and unconditional.sample((7,)).shape == (7, 3)
    assert unconditional.support.event_dim == 1


def test_mixture_base_is_not_reparametrised() -> None:
    flow = nsf(2, transforms=1, hidden=(8,), base=GaussianMixture(2, 3))
    d = as_torch_distribution(flow)
    assert not d.has_rsample
    with pytest.raises(NotImplementedError, match="not reparametrisable"):
        d.rsample((2,))
    assert d.sample((3,)).shape == (3, 2)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="FlowLayer"):
        as_transform(torch.nn.Linear(2, 2))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="kexue Flow"):
        as_torch_distribution(torch.nn.Linear(2, 2))  # type: ignore[arg-type]
    d = as_torch_distribution(_flow(context=2), torch.zeros(3, 2, dtype=torch.float64))
    with pytest.raises(ValueError, match="does not broadcast"):
        d.log_prob(torch.zeros(4, 3, dtype=torch.float64))


def test_zuko_flow_from_the_lazy_adapter() -> None:
    zuko = pytest.importorskip("zuko")
    flow = _flow(context=2, seed=5)
    zflow = zuko.lazy.Flow(
        transform=[as_zuko(flow.transform)],
        base=zuko.lazy.UnconditionalDistribution(
            zuko.distributions.DiagNormal,
            torch.zeros(3, dtype=torch.float64),
            torch.ones(3, dtype=torch.float64),
            buffer=True,
        ),
    )
    c = torch.randn(4, 2, generator=gen(6), dtype=torch.float64)
    x = torch.randn(4, 3, generator=gen(7), dtype=torch.float64)
    torch.testing.assert_close(zflow(c).log_prob(x), flow.log_prob(x, c), atol=1e-10, rtol=0)
    torch.manual_seed(1)
    s = zflow(c).rsample((2,))
    assert s.shape == (2, 4, 3)


def test_zuko_transform_as_a_kexue_layer() -> None:
    zuko = pytest.importorskip("zuko")
    torch.manual_seed(0)
    zflow = zuko.flows.NSF(3, context=2, transforms=2, hidden_features=(16, 16)).double()
    with torch.no_grad():
        for p in zflow.parameters():
            p.add_(torch.randn(p.shape, generator=gen(1), dtype=p.dtype) * 0.2)
    flow = Flow(Compose(*(from_zuko(t) for t in zflow.transform.transforms)), StandardNormal(3))
    c = torch.randn(5, 2, generator=gen(2), dtype=torch.float64)
    x = torch.randn(5, 3, generator=gen(3), dtype=torch.float64)
    torch.testing.assert_close(flow.log_prob(x, c), zflow(c).log_prob(x), atol=1e-10, rtol=0)
    y, ld = flow.transform(x, c)
    x_rec, ld_inv = flow.transform.inverse(y, c)
    torch.testing.assert_close(x_rec, x, atol=1e-8, rtol=0)
    torch.testing.assert_close(ld_inv, -ld, atol=1e-8, rtol=0)
