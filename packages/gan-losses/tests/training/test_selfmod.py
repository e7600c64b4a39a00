"""Tests for SELF-MOD batch normalisation (spec §2.19, §3.1 "SELF-MOD")."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.testing import assert_close

from kexue.gan_losses.training.selfmod import ConditionalLatent, SelfModulatedBatchNorm


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _affine_free_bn(h: torch.Tensor, eps: float) -> torch.Tensor:
    dims = [0, *range(2, h.dim())]
    mean = h.mean(dim=dims, keepdim=True)
    var = h.var(dim=dims, unbiased=False, keepdim=True)
    return (h - mean) / torch.sqrt(var + eps)


@pytest.mark.parametrize("shape", [(6, 4), (6, 4, 5), (6, 4, 3, 5)])
def test_zero_init_equals_affine_free_batchnorm(shape):
    torch.manual_seed(0)
    m = SelfModulatedBatchNorm(4, z_dim=3, zero_init=True)
    h = torch.randn(*shape, generator=_gen(1)) * 3 + 1
    z = torch.randn(shape[0], 3, generator=_gen(2))
    out = m(h, z)
    assert out.shape == h.shape
    assert_close(out, _affine_free_bn(h, m.norm.eps), rtol=1e-5, atol=1e-5)
    ref_bn = nn.BatchNorm1d(4, affine=False) if len(shape) < 4 else nn.BatchNorm2d(4, affine=False)
    assert_close(out, ref_bn(h), rtol=1e-5, atol=1e-5)


def test_formula_and_broadcast_over_hw():
    torch.manual_seed(3)
    m = SelfModulatedBatchNorm(4, z_dim=3, hidden=7)
    h = torch.randn(5, 4, 2, 3, generator=_gen(4))
    z = torch.randn(5, 3, generator=_gen(5))
    gamma = m.gamma[2](torch.relu(m.gamma[0](z)))
    beta = m.beta[2](torch.relu(m.beta[0](z)))
    expected = (
        _affine_free_bn(h, m.norm.eps) * (gamma + 1)[:, :, None, None] + beta[:, :, None, None]
    )
    assert_close(m(h, z), expected, rtol=1e-5, atol=1e-6)
    # each (b, c) plane is one affine map of its normalised values: constant over H, W
    out = m(h, z)
    h_hat = _affine_free_bn(h, m.norm.eps)
    scale = (out - beta[:, :, None, None]) / h_hat
    assert_close(scale, (gamma + 1)[:, :, None, None].expand_as(scale), rtol=1e-4, atol=1e-4)
    assert m.hidden == 7 and m.gamma[0].out_features == 7


def test_hidden_defaults_to_z_dim_and_mlps_are_separate():
    m = SelfModulatedBatchNorm(8, z_dim=5)
    assert m.hidden == 5
    assert m.gamma[0].in_features == 5 and m.gamma[0].out_features == 5
    assert m.gamma[2].out_features == 8 and m.beta[2].out_features == 8
    assert m.gamma[0].weight.data_ptr() != m.beta[0].weight.data_ptr()
    assert not any(n.startswith("norm.weight") for n, _ in m.named_parameters())


def test_gradients_reach_z_and_both_mlps():
    torch.manual_seed(6)
    m = SelfModulatedBatchNorm(3, z_dim=4)
    h = torch.randn(4, 3, 5, 5, generator=_gen(7), requires_grad=True)
    z = torch.randn(4, 4, generator=_gen(8), requires_grad=True)
    (m(h, z) * torch.randn(4, 3, 5, 5, generator=_gen(9))).sum().backward()
    assert z.grad is not None and z.grad.abs().sum() > 0
    assert h.grad is not None and h.grad.abs().sum() > 0
    for p in m.parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0


def test_zero_init_still_passes_gradients_to_last_layers():
    m = SelfModulatedBatchNorm(3, z_dim=4, zero_init=True)
    z = torch.randn(4, 4, generator=_gen(10), requires_grad=True)
    h = torch.randn(4, 3, generator=_gen(11))
    (m(h, z) * torch.randn(4, 3, generator=_gen(12))).sum().backward()
    assert m.gamma[2].weight.grad.abs().sum() > 0 and m.beta[2].bias.grad.abs().sum() > 0


def test_eval_uses_running_statistics():
    m = SelfModulatedBatchNorm(2, z_dim=2, zero_init=True, momentum=None)
    h = torch.randn(8, 2, 3, 3, generator=_gen(13), dtype=torch.float32) * 2 + 5
    m(h, torch.zeros(8, 2))
    assert int(m.norm.num_batches_tracked) == 1
    assert_close(m.norm.running_mean, h.mean(dim=(0, 2, 3)), rtol=1e-5, atol=1e-5)
    m.eval()
    out = m(h[:1], torch.zeros(1, 2))  # batch size 1 is fine in eval
    expected = (h[:1] - m.norm.running_mean[:, None, None]) / torch.sqrt(
        m.norm.running_var[:, None, None] + m.norm.eps
    )
    assert_close(out, expected, rtol=1e-5, atol=1e-5)


def test_float64_and_sync_batchnorm_conversion():
    m = SelfModulatedBatchNorm(3, z_dim=2).double()
    out = m(
        torch.randn(4, 3, dtype=torch.float64, generator=_gen(14)),
        torch.randn(4, 2, dtype=torch.float64, generator=_gen(16)),
    )
    assert out.dtype == torch.float64
    converted = nn.SyncBatchNorm.convert_sync_batchnorm(nn.Sequential(SelfModulatedBatchNorm(3, 2)))
    assert isinstance(converted[0].norm, nn.SyncBatchNorm)


@settings(max_examples=15, deadline=None)
@given(
    b=st.integers(2, 5),
    c=st.integers(1, 4),
    spatial=st.lists(st.integers(1, 3), max_size=3),
    z_dim=st.integers(1, 4),
)
def test_shapes_property(b, c, spatial, z_dim):
    m = SelfModulatedBatchNorm(c, z_dim=z_dim, zero_init=True)
    h = torch.randn(b, c, *spatial, generator=_gen(b + c))
    out = m(h, torch.randn(b, z_dim, generator=_gen(z_dim)))
    assert out.shape == h.shape
    assert_close(out, _affine_free_bn(h, m.norm.eps), rtol=1e-4, atol=1e-4)


def test_bad_inputs():
    m = SelfModulatedBatchNorm(4, z_dim=3)
    with pytest.raises(ValueError, match="h must"):
        m(torch.randn(2, 5, 3), torch.randn(2, 3))
    with pytest.raises(ValueError, match="h must"):
        m(torch.randn(4), torch.randn(4, 3))
    with pytest.raises(ValueError, match="z must"):
        m(torch.randn(2, 4), torch.randn(3, 3))
    with pytest.raises(ValueError, match="z must"):
        m(torch.randn(2, 4), torch.randn(2, 2))
    with pytest.raises(ValueError, match="num_features"):
        SelfModulatedBatchNorm(0, z_dim=3)
    with pytest.raises(ValueError, match="z_dim"):
        SelfModulatedBatchNorm(2, z_dim=0)
    with pytest.raises(ValueError, match="hidden"):
        SelfModulatedBatchNorm(2, z_dim=3, hidden=0)


def test_conditional_latent():
    cl = ConditionalLatent(num_classes=3, z_dim=4)
    z = torch.randn(5, 4, generator=_gen(15))
    c = torch.tensor([0, 1, 2, 1, 0])
    assert_close(cl(z, c), z, rtol=0, atol=0)  # zero init: z' = z
    with torch.no_grad():
        cl.shift.weight.copy_(torch.arange(12.0).reshape(3, 4))
        cl.scale.weight.fill_(0.5)
    expected = z + cl.shift.weight[c] + 0.5 * z
    assert_close(cl(z, c), expected, rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="c must"):
        cl(z, torch.tensor([0, 1, 2, 3, 0]))
    with pytest.raises(ValueError, match="c must"):
        cl(z, torch.zeros(5))
    with pytest.raises(ValueError, match="z must"):
        cl(torch.randn(5, 3), c)
