"""Invertible 1×1 convolution (plain and LU) and the ActNorm+1×1 fold (spec §2.4, §3.3, §4 #5)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.autograd.functional import jacobian

from kexue.flows.layers.conv1x1 import FoldedActNormConv, Invertible1x1Conv, fold_actnorm_conv
from kexue.flows.layers.normalization import ActNorm


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _jacobian_logdet(layer, x1: torch.Tensor) -> torch.Tensor:
    shape = x1.shape
    jac = jacobian(lambda v: layer(v.view(shape))[0].flatten(), x1.flatten())
    return torch.linalg.slogdet(jac).logabsdet


def _well_conditioned(c: int, seed: int) -> torch.Tensor:
    """A random non-orthogonal invertible matrix with a negative determinant half the time."""
    g = _gen(seed)
    return torch.eye(c, dtype=torch.float64) + 0.3 * torch.randn(
        c, c, generator=g, dtype=torch.float64
    )


@pytest.mark.parametrize("lu", [True, False])
@pytest.mark.parametrize("shape", [(3, 4, 3, 2), (5, 6)])
def test_round_trip_and_jacobian_logdet(lu: bool, shape) -> None:
    c = shape[1]
    layer = Invertible1x1Conv(c, lu=lu, weight=_well_conditioned(c, 1)).double()
    x = torch.randn(shape, generator=_gen(2), dtype=torch.float64)
    y, ld = layer(x)
    x_back, ld_inv = layer.inverse(y)
    torch.testing.assert_close(x_back, x, atol=1e-10, rtol=0)
    torch.testing.assert_close(ld + ld_inv, torch.zeros_like(ld), atol=1e-10, rtol=0)
    assert ld.shape == (shape[0],) and ld.dtype == torch.float64
    torch.testing.assert_close(ld[0], _jacobian_logdet(layer, x[:1]), atol=1e-8, rtol=0)


@pytest.mark.parametrize("c", [4, 12, 48])
def test_lu_and_plain_agree_and_logdet_is_slogdet_times_hw(c: int) -> None:
    w = _well_conditioned(c, c)
    plain = Invertible1x1Conv(c, lu=False, weight=w).double()
    lu = Invertible1x1Conv(c, lu=True, weight=w).double()
    torch.testing.assert_close(lu.weight, w, atol=1e-12, rtol=0)
    x = torch.randn(2, c, 3, 5, generator=_gen(c + 1), dtype=torch.float64)
    y_plain, ld_plain = plain(x)
    y_lu, ld_lu = lu(x)
    torch.testing.assert_close(y_lu, y_plain, atol=1e-10, rtol=0)
    expected = torch.linalg.slogdet(w).logabsdet * 15
    torch.testing.assert_close(ld_plain, expected.expand(2), atol=1e-10, rtol=0)
    torch.testing.assert_close(ld_lu, expected.expand(2), atol=1e-10, rtol=0)
    # the reference matmul, independent of the layer's conv2d path
    torch.testing.assert_close(y_plain, torch.einsum("ij,bjhw->bihw", w, x), atol=1e-12, rtol=0)


@pytest.mark.parametrize("c", [4, 12, 48])
def test_float32_round_trip(c: int) -> None:
    for lu in (True, False):
        layer = Invertible1x1Conv(c, lu=lu, generator=_gen(c))
        x = torch.randn(4, c, 4, 4, generator=_gen(7))
        y, ld = layer(x)
        x_back, _ = layer.inverse(y)
        assert ld.dtype == torch.float32
        torch.testing.assert_close(x_back, x, atol=1e-4, rtol=1e-4)


def test_init_is_a_random_rotation() -> None:
    layer = Invertible1x1Conv(12, lu=False, generator=_gen(3)).double()
    w = layer.weight.detach()
    # parameters are stored in the default dtype (float32): orthogonal to float32 rounding
    torch.testing.assert_close(w @ w.T, torch.eye(12, dtype=torch.float64), atol=1e-6, rtol=0)
    lu = Invertible1x1Conv(12, generator=_gen(3)).double()
    torch.testing.assert_close(lu.weight.detach(), w, atol=1e-6, rtol=0)  # same generator draw
    torch.testing.assert_close(
        lu.log_s.sum(), torch.zeros((), dtype=torch.float64), atol=1e-6, rtol=0
    )
    other = Invertible1x1Conv(12, lu=False, generator=_gen(4))
    assert not torch.allclose(other.weight.double(), w)


def test_lu_stays_consistent_after_training_steps() -> None:
    layer = Invertible1x1Conv(6, weight=_well_conditioned(6, 9)).double()
    opt = torch.optim.SGD(layer.parameters(), lr=0.05)
    g = _gen(10)
    for _ in range(5):
        x = torch.randn(4, 6, 3, 3, generator=g, dtype=torch.float64)
        y, ld = layer(x)
        loss = (0.5 * y.pow(2).sum(dim=(1, 2, 3)) - ld).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    # the packed factors keep their structure: W = P·L·U with L unit lower-triangular
    p, lower, upper = layer._factors(torch.float64)
    torch.testing.assert_close(torch.diagonal(lower), torch.ones(6, dtype=torch.float64))
    torch.testing.assert_close(p @ lower @ upper, layer.weight.detach(), atol=1e-12, rtol=0)
    w = layer.weight.detach()
    x = torch.randn(2, 6, 2, 2, generator=g, dtype=torch.float64)
    _, ld = layer(x)
    torch.testing.assert_close(ld[0], 4 * torch.linalg.slogdet(w).logabsdet, atol=1e-10, rtol=0)
    torch.testing.assert_close(layer.inverse(layer(x)[0])[0], x, atol=1e-10, rtol=0)


def test_state_dict_round_trip() -> None:
    a = Invertible1x1Conv(5, generator=_gen(1))
    b = Invertible1x1Conv(5, generator=_gen(2))
    b.load_state_dict(a.state_dict())
    torch.testing.assert_close(b.weight, a.weight, atol=0, rtol=0)


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="x"):
        Invertible1x1Conv(4)(torch.randn(2, 3, 4, 4))
    with pytest.raises(ValueError, match="y"):
        Invertible1x1Conv(4, lu=False).inverse(torch.randn(2, 5))
    with pytest.raises(ValueError, match="weight"):
        Invertible1x1Conv(4, weight=torch.eye(3))
    with pytest.raises(ValueError, match="weight"):
        Invertible1x1Conv(2, weight=torch.ones(2, 2))  # singular
    with pytest.raises(ValueError, match="channels"):
        Invertible1x1Conv(0)


# ---------------------------------------------------------------------------------------- fold


@settings(max_examples=20, deadline=None)
@given(
    c=st.integers(1, 9),
    spatial=st.sampled_from([(), (1,), (2, 3), (4, 1)]),
    lu=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_round_trip_and_logdet_property(c: int, spatial: tuple, lu: bool, seed: int) -> None:
    g = _gen(seed)
    w = torch.eye(c, dtype=torch.float64) + 0.1 * torch.randn(
        c, c, generator=g, dtype=torch.float64
    )
    layer = Invertible1x1Conv(c, lu=lu, weight=w)
    x = torch.randn(3, c, *spatial, generator=g, dtype=torch.float64)
    y, ld = layer(x)
    torch.testing.assert_close(y, torch.einsum("ij,bj...->bi...", w, x), atol=1e-12, rtol=0)
    n = 1
    for s in spatial:
        n *= s
    expected = n * torch.linalg.slogdet(w).logabsdet
    torch.testing.assert_close(ld, expected.expand(3), atol=1e-10, rtol=0)
    x_back, ld_inv = layer.inverse(y)
    torch.testing.assert_close(x_back, x, atol=1e-10, rtol=0)
    torch.testing.assert_close(ld_inv, -ld, atol=1e-12, rtol=0)


@pytest.mark.parametrize("lu", [True, False])
def test_fold_matches_unfolded_pair_values_logdet_and_gradients(lu: bool) -> None:
    c = 6
    x = torch.randn(5, c, 3, 4, generator=_gen(11), dtype=torch.float64) * 2 + 1

    def make() -> tuple[ActNorm, Invertible1x1Conv]:
        an = ActNorm(c, logscale_factor=3.0).double()
        conv = Invertible1x1Conv(c, lu=lu, weight=_well_conditioned(c, 12)).double()
        return an, conv

    an_ref, conv_ref = make()
    an_fold, conv_fold = make()
    folded = FoldedActNormConv(an_fold, conv_fold)
    # first training call: both initialise the ActNorm from the same batch
    h, ld_a = an_ref(x)
    y_ref, ld_c = conv_ref(h)
    y, ld = folded(x)
    torch.testing.assert_close(an_fold.bias, an_ref.bias, atol=0, rtol=0)
    torch.testing.assert_close(y, y_ref, atol=1e-12, rtol=0)
    torch.testing.assert_close(ld, ld_a + ld_c, atol=1e-12, rtol=0)

    x2 = torch.randn(5, c, 3, 4, generator=_gen(13), dtype=torch.float64)
    target = torch.randn(5, c, 3, 4, generator=_gen(14), dtype=torch.float64)

    def loss_of(y_: torch.Tensor, ld_: torch.Tensor) -> torch.Tensor:
        return ((y_ - target).pow(2).sum(dim=(1, 2, 3)) - ld_).mean()

    h, ld_a = an_ref(x2)
    y_ref, ld_c = conv_ref(h)
    loss_of(y_ref, ld_a + ld_c).backward()
    loss_of(*folded(x2)).backward()
    ref_params = dict(an_ref.named_parameters()) | {
        f"conv.{k}": v for k, v in conv_ref.named_parameters()
    }
    fold_params = dict(an_fold.named_parameters()) | {
        f"conv.{k}": v for k, v in conv_fold.named_parameters()
    }
    assert set(ref_params) == set(fold_params) and len(ref_params) >= 2
    for name, p in ref_params.items():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
        torch.testing.assert_close(fold_params[name].grad, p.grad, atol=1e-10, rtol=1e-10)

    y, ld = folded(x2)
    x_back, ld_inv = folded.inverse(y)
    torch.testing.assert_close(x_back, x2, atol=1e-10, rtol=0)
    torch.testing.assert_close(ld + ld_inv, torch.zeros_like(ld), atol=1e-10, rtol=0)


def test_fold_on_vectors() -> None:
    an = ActNorm(5).double()
    conv = Invertible1x1Conv(5, weight=_well_conditioned(5, 16))
    folded = FoldedActNormConv(an, conv)
    x = torch.randn(7, 5, generator=_gen(17), dtype=torch.float64)
    y, ld = folded(x)  # initialises the ActNorm
    h, ld_a = an(x)
    y_ref, ld_c = conv(h)
    torch.testing.assert_close(y, y_ref, atol=1e-12, rtol=0)
    torch.testing.assert_close(ld, ld_a + ld_c, atol=1e-12, rtol=0)
    torch.testing.assert_close(folded.inverse(y)[0], x, atol=1e-10, rtol=0)


def test_fold_function_closed_form() -> None:
    an = ActNorm(4, init="zero").double()
    with torch.no_grad():
        an.bias.copy_(torch.tensor([0.5, -1.0, 2.0, 0.0], dtype=torch.float64))
        an.logs_param.copy_(torch.tensor([0.1, -0.2, 0.3, 0.0], dtype=torch.float64))
    conv = Invertible1x1Conv(4, lu=False, weight=_well_conditioned(4, 15)).double()
    w_fold, b_fold = fold_actnorm_conv(an, conv)
    scale = torch.tensor([0.1, -0.2, 0.3, 0.0], dtype=torch.float64).exp()
    w = conv.weight.detach()
    torch.testing.assert_close(w_fold, w @ torch.diag(scale), atol=1e-12, rtol=0)
    torch.testing.assert_close(b_fold, w @ (scale * an.bias.detach()), atol=1e-12, rtol=0)
    with pytest.raises(ValueError, match="channels"):
        fold_actnorm_conv(ActNorm(3), conv)
    with pytest.raises(ValueError, match="channels"):
        FoldedActNormConv(ActNorm(3), conv)
