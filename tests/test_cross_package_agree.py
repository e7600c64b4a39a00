"""Where two packages keep their own copy of one idea (runtime independence), the copies agree.

- The fixed-step ODE integrators: ``kexue.keras_compat`` (``rk4_step``/``euler_step`` on tensors)
  and the Dirac-GAN simulator of ``kexue.gan_losses`` (a pure-Python RK4/Euler on 4 floats, fast
  for its tiny state).
- The weight EMA: ``kexue.gan_losses.GeneratorEMA`` (a small fixed-decay EMA so that gan-losses
  needs no keras-compat) and ``kexue.keras_compat.EMA(buffers="copy")``.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from kexue.gan_losses import GeneratorEMA, dirac_gan_vector_field, integrate_dirac_gan
from kexue.keras_compat import EMA, euler_step, rk4_step


@pytest.mark.parametrize("method", ["rk4", "euler"])
@pytest.mark.parametrize(
    ("kind", "opts"), [("wgan_gp", {"lam": 0.1, "center": 0.0}), ("gan_qp", {})]
)
def test_dirac_integrator_equals_the_generic_steppers(method: str, kind: str, opts: dict) -> None:
    h, steps = 0.01, 300
    traj = integrate_dirac_gan(kind, T=h * steps, h=h, method=method, **opts)

    def field(t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        dphi, dtheta = dirac_gan_vector_field(kind, y[:2], y[2:], **opts)
        return torch.cat([dphi, dtheta]).to(torch.float64)

    step = rk4_step if method == "rk4" else euler_step
    y = torch.tensor([0.1, 0.2, 0.2, 0.1], dtype=torch.float64)
    t = torch.zeros((), dtype=torch.float64)
    for _ in range(steps):
        y = step(field, t, y, h)
        t = t + h
    expected = torch.cat([traj.phi[-1], traj.theta[-1]])
    torch.testing.assert_close(y, expected, rtol=1e-10, atol=1e-12)
    assert not torch.equal(y, torch.tensor([0.1, 0.2, 0.2, 0.1], dtype=torch.float64))


def test_generator_ema_equals_keras_compat_ema_with_copied_buffers() -> None:
    gen = torch.Generator().manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 2)).double()
    ours = GeneratorEMA(model, decay=0.9)
    theirs = EMA(model, 0.9, buffers="copy")
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(20):
        x = torch.randn(16, 4, generator=gen, dtype=torch.float64)
        loss = model(x).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        ours.update(model)
        theirs.update(model)
    a, b = ours.module.state_dict(), theirs.module.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-15, msg=k)
    # the averages really moved away from the live weights
    live = model.state_dict()
    assert not torch.allclose(a["0.weight"], live["0.weight"])
