"""Reusable checks for FlowLayer tests (spec §4 rows 1-3), imported by every flows test file.

- ``check_invertible(layer, x, atol, *, context=None, rtol=0.0)``: inverse(forward(x)) ≈ x and
  logdet_fwd + logdet_inv ≈ 0; shapes ``(B,)`` and dtypes checked. Returns ``(y, logdet)``.
- ``check_exact_roundtrip(layer, x)``: a volume-preserving layer's inverse(forward(x)) equals x
  exactly, both logdets exactly 0. Returns ``y``. ``gen(seed)``: a seeded CPU generator.
- ``check_logdet_vs_jacobian(layer, x, atol, *, context=None, rtol=0.0)``: the layer's
  per-sample logdet equals ``slogdet`` of the autograd Jacobian of the single-sample map, for
  every sample of the batch. Returns the reference ``(B,)`` log|det J|.
- ``TinyNet(c_in, c_out, image, ctx=0, *, width, seed=None)``: a small random conditioner
  (vectors: Linear-Tanh-Linear; images: 3×3 convs) with an optional additive context term.

Use small inputs (D ≤ 64). Layers with batch statistics must be initialised / in eval mode
first, since the Jacobian is taken per sample with batch size 1.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def _logdet_dtype(x: Tensor) -> torch.dtype:
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def check_exact_roundtrip(layer: torch.nn.Module, x: Tensor) -> Tensor:
    """Assert inverse(forward(x)) == x exactly and both logdets are exactly zero; return y."""
    y, ld = layer(x)
    x_rec, ld_inv = layer.inverse(y)
    assert torch.equal(x_rec, x)
    assert torch.equal(ld, torch.zeros(x.shape[0])) and torch.equal(ld_inv, ld)
    return y


def check_invertible(
    layer: torch.nn.Module,
    x: Tensor,
    atol: float,
    *,
    context: Tensor | None = None,
    rtol: float = 0.0,
) -> tuple[Tensor, Tensor]:
    """Assert inverse(forward(x)) ≈ x and logdet_fwd + logdet_inv ≈ 0 (both within atol/rtol)."""
    with torch.no_grad():
        y, ld = layer(x, context)
        x_rec, ld_inv = layer.inverse(y, context)
    assert y.dtype == x.dtype, (y.dtype, x.dtype)
    assert x_rec.shape == x.shape, (x_rec.shape, x.shape)
    assert ld.shape == (x.shape[0],), ld.shape
    assert ld_inv.shape == (x.shape[0],), ld_inv.shape
    assert ld.dtype == _logdet_dtype(x), (ld.dtype, x.dtype)
    assert torch.isfinite(y).all() and torch.isfinite(ld).all()
    torch.testing.assert_close(x_rec, x, atol=atol, rtol=rtol)
    torch.testing.assert_close(ld + ld_inv, torch.zeros_like(ld), atol=atol, rtol=0.0)
    return y, ld


def check_logdet_vs_jacobian(
    layer: torch.nn.Module,
    x: Tensor,
    atol: float,
    *,
    context: Tensor | None = None,
    rtol: float = 0.0,
) -> Tensor:
    """Assert the per-sample logdet equals slogdet of the autograd Jacobian (inverse checked too)."""
    with torch.no_grad():
        y, ld = layer(x, context)
        _, ld_inv = layer.inverse(y, context)
    ref = []
    ref_inv = []
    for i in range(x.shape[0]):
        ctx = None if context is None else context[i : i + 1]

        def f(xi: Tensor, ctx: Tensor | None = ctx) -> Tensor:
            return layer(xi.unsqueeze(0), ctx)[0].reshape(-1)

        def g(yi: Tensor, ctx: Tensor | None = ctx) -> Tensor:
            return layer.inverse(yi.unsqueeze(0), ctx)[0].reshape(-1)

        jac = torch.autograd.functional.jacobian(f, x[i])
        d = x[i].numel()
        sign, logabs = torch.linalg.slogdet(jac.reshape(d, d).to(torch.float64))
        assert sign != 0, "singular Jacobian"
        ref.append(logabs)
        jac_inv = torch.autograd.functional.jacobian(g, y[i])
        ref_inv.append(torch.linalg.slogdet(jac_inv.reshape(d, d).to(torch.float64))[1])
    ref_t = torch.stack(ref).to(ld.dtype)
    torch.testing.assert_close(ld, ref_t, atol=atol, rtol=rtol)
    torch.testing.assert_close(ld_inv, torch.stack(ref_inv).to(ld.dtype), atol=atol, rtol=rtol)
    return ref_t


class TinyNet(nn.Module):
    """Small random conditioner: vectors Linear → Tanh → Linear, images 3×3 convs; a context
    (B, ctx) adds a linear term (broadcast over the positions). ``seed``: redraw every
    parameter as N(0, 0.6²) from that seed (else torch's default init, global RNG)."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        image: bool,
        ctx: int = 0,
        *,
        width: int,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        if image:
            self.body: nn.Module = nn.Sequential(
                nn.Conv2d(c_in, width, 3, padding=1),
                nn.Tanh(),
                nn.Conv2d(width, c_out, 3, padding=1),
            )
        else:
            self.body = nn.Sequential(nn.Linear(c_in, width), nn.Tanh(), nn.Linear(width, c_out))
        self.ctx = nn.Linear(ctx, c_out) if ctx else None
        self.image = image
        if seed is not None:
            g = gen(seed)
            with torch.no_grad():
                for p in self.parameters():
                    p.copy_(torch.randn(p.shape, generator=g) * 0.6)

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        out = self.body(x)
        if context is not None:
            assert self.ctx is not None
            c = self.ctx(context)
            out = out + (c[:, :, None, None] if self.image else c)
        return out
