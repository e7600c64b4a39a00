"""Tests for kexue.flows.base: FlowLayer contract, Compose, Inverse."""

from __future__ import annotations

import pytest
import torch
from _flowcheck import check_invertible, check_logdet_vs_jacobian
from torch import Tensor, nn

from kexue.flows.base import Compose, FlowLayer, Inverse, logdet_dtype, zero_logdet
from kexue.flows.layers.permutation import Permutation


class _Affine(FlowLayer):
    """Elementwise y = a·x + c with a per-feature a > 0 (test-only layer)."""

    def __init__(self, shape: tuple[int, ...], *, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.log_a = nn.Parameter(0.5 * torch.randn(shape, generator=g))
        self.c = nn.Parameter(torch.randn(shape, generator=g))

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        ld = self.log_a.sum().to(logdet_dtype(x)).expand(x.shape[0])
        return x * torch.exp(self.log_a) + self.c, ld

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        ld = -self.log_a.sum().to(logdet_dtype(y)).expand(y.shape[0])
        return (y - self.c) * torch.exp(-self.log_a), ld


def test_flowlayer_is_abstract() -> None:
    with pytest.raises(TypeError):
        FlowLayer()  # type: ignore[abstract]


def test_logdet_dtype_and_zero() -> None:
    assert logdet_dtype(torch.zeros(2, dtype=torch.float64)) == torch.float64
    assert logdet_dtype(torch.zeros(2, dtype=torch.bfloat16)) == torch.float32
    z = zero_logdet(torch.ones(5, 3, dtype=torch.float16))
    assert z.shape == (5,) and z.dtype == torch.float32 and bool((z == 0).all())
    with pytest.raises(ValueError, match="x"):
        zero_logdet(torch.tensor(1.0))


@pytest.mark.parametrize(("dtype", "atol"), [(torch.float64, 1e-10), (torch.float32, 1e-5)])
def test_compose_invertible_and_logdet(dtype: torch.dtype, atol: float) -> None:
    g = torch.Generator().manual_seed(1)
    flow = Compose(
        _Affine((6,), seed=1), Permutation(6, mode="random", generator=g), _Affine((6,), seed=2)
    ).to(dtype)
    x = torch.randn(5, 6, generator=g, dtype=dtype)
    check_invertible(flow, x, atol)
    check_logdet_vs_jacobian(flow, x, atol if dtype == torch.float64 else 1e-4)
    # The composed logdet is the sum of the two affine layers' logdets.
    _, ld = flow(x)
    expected = (flow[0].log_a.sum() + flow[2].log_a.sum()).to(dtype)
    torch.testing.assert_close(ld, expected.expand(5), atol=atol, rtol=0)


def test_compose_accepts_list_and_orders_layers() -> None:
    a, b = _Affine((3,), seed=3), _Affine((3,), seed=4)
    flow = Compose([a, b])
    assert len(flow) == 2 and flow[0] is a and flow[1] is b
    x = torch.randn(4, 3, generator=torch.Generator().manual_seed(0))
    y, _ = flow(x)
    torch.testing.assert_close(y, b(a(x)[0])[0], atol=0, rtol=0)
    x_rec, _ = flow.inverse(y)
    torch.testing.assert_close(x_rec, x, atol=1e-5, rtol=1e-5)


def test_compose_rejects_non_layers() -> None:
    with pytest.raises(ValueError, match=r"layers\[1\]"):
        Compose(_Affine((3,)), nn.Linear(3, 3))  # type: ignore[arg-type]


def test_inverse_swaps_directions() -> None:
    layer = _Affine((4,), seed=5).double()
    inv = Inverse(layer)
    x = torch.randn(3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    y, ld = inv(x)
    y_ref, ld_ref = layer.inverse(x)
    torch.testing.assert_close(y, y_ref, atol=0, rtol=0)
    torch.testing.assert_close(ld, ld_ref, atol=0, rtol=0)
    check_invertible(inv, x, 1e-10)
    check_logdet_vs_jacobian(inv, x, 1e-10)
    # Parameters are shared, not copied.
    assert next(iter(inv.parameters())) is layer.log_a
    with pytest.raises(ValueError, match="layer"):
        Inverse(nn.Identity())  # type: ignore[arg-type]
