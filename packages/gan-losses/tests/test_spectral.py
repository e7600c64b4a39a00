"""Tests for the spectral-norm helpers (spec §2.18, §3.1 "SN")."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.testing import assert_close

from kexue.gan_losses.spectral import (
    BatchNormGammaSpectralNorm,
    apply_spectral_norm,
    remove_spectral_norm,
    spectral_norm_batchnorm_gamma,
    spectral_norm_of,
)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_diag_3_1_normalised_after_a_few_forwards():
    torch.manual_seed(0)  # PyTorch initialises u, v from the global RNG
    lin = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.diag(torch.tensor([3.0, 1.0])))
    apply_spectral_norm(lin)
    x = torch.randn(4, 2, generator=_gen())
    for _ in range(5):
        lin(x)
    assert_close(spectral_norm_of(lin.weight).item(), 1.0, rtol=0, atol=1e-4)
    assert_close(lin.weight, torch.diag(torch.tensor([1.0, 1.0 / 3.0])), rtol=0, atol=1e-4)


@pytest.mark.parametrize(
    "make_layer",
    [
        lambda: nn.Linear(7, 5),
        lambda: nn.Conv1d(3, 4, 3),
        lambda: nn.Conv2d(3, 6, 3),
        lambda: nn.Conv3d(2, 3, 2),
        lambda: nn.ConvTranspose2d(4, 6, 3),
        lambda: nn.ConvTranspose1d(5, 2, 3),
    ],
    ids=["linear", "conv1d", "conv2d", "conv3d", "convT2d", "convT1d"],
)
def test_every_layer_type_is_normalised(make_layer):
    torch.manual_seed(1)  # weights and SN's u, v: built here, not at collection time
    layer = make_layer()
    raw = layer.weight.detach().clone()  # ConvTranspose weight is (in, out, k...)
    apply_spectral_norm(layer, n_power_iterations=3)
    assert parametrize.is_parametrized(layer, "weight")
    for _ in range(40):
        layer.weight  # noqa: B018 - each access in training mode runs the power iteration
    dim = 1 if isinstance(layer, nn.modules.conv._ConvTransposeNd) else 0
    sigma = torch.linalg.matrix_norm(raw.movedim(dim, 0).reshape(raw.shape[dim], -1), ord=2)
    assert_close(spectral_norm_of(layer.weight, dim=dim).item(), 1.0, rtol=0, atol=1e-3)
    assert_close(layer.weight, raw / sigma, rtol=1e-3, atol=1e-5)


def test_spectral_norm_of_agrees_with_matrix_norm():
    w = torch.randn(6, 3, 3, 3, generator=_gen(2), dtype=torch.float64)
    expected = torch.linalg.matrix_norm(w.reshape(6, -1), ord=2)
    assert_close(spectral_norm_of(w), expected, rtol=1e-12, atol=0)
    s = torch.linalg.svdvals(w.reshape(6, -1))[0]
    assert_close(spectral_norm_of(w), s, rtol=1e-12, atol=0)
    # ConvTranspose layout (in, out, k, k) with dim=1
    wt = torch.randn(4, 5, 3, 3, generator=_gen(3))
    expected_t = torch.linalg.matrix_norm(wt.transpose(0, 1).reshape(5, -1), ord=2)
    assert_close(spectral_norm_of(wt, dim=1), expected_t, rtol=1e-5, atol=0)
    # a vector is a 1 × n matrix
    v = torch.tensor([3.0, 4.0])
    assert_close(spectral_norm_of(v), torch.tensor(5.0), rtol=1e-6, atol=0)
    # half precision runs in fp32
    out = spectral_norm_of(torch.diag(torch.tensor([3.0, 1.0])).to(torch.bfloat16))
    assert out.dtype == torch.float32
    assert_close(out, torch.tensor(3.0), rtol=0, atol=1e-6)


def test_spectral_norm_of_bad_inputs():
    with pytest.raises(ValueError, match="weight"):
        spectral_norm_of(torch.tensor(1.0))
    with pytest.raises(ValueError, match="weight"):
        spectral_norm_of(torch.ones(2, 2, dtype=torch.int64))
    with pytest.raises(ValueError, match="dim"):
        spectral_norm_of(torch.ones(2, 2), dim=2)


def test_apply_to_model_with_batchnorm_gamma():
    torch.manual_seed(4)
    d = nn.Sequential(
        nn.Conv2d(3, 8, 3),
        nn.BatchNorm2d(8),
        nn.LeakyReLU(0.2),
        nn.Flatten(),
        nn.Linear(8 * 4 * 4, 1),
    )
    with torch.no_grad():
        d[1].weight.copy_(torch.linspace(-4.0, 2.0, 8))
    apply_spectral_norm(d, include_batchnorm_gamma=True)
    for i in (0, 1, 4):
        assert parametrize.is_parametrized(d[i], "weight")
    assert_close(d[1].weight, torch.linspace(-4.0, 2.0, 8) / 4.0, rtol=1e-6, atol=0)
    assert_close(d[1].weight.abs().max().item(), 1.0, rtol=0, atol=1e-7)
    out = d(torch.randn(2, 3, 6, 6, generator=_gen(5)))
    out.sum().backward()
    assert d[0].parametrizations.weight.original.grad is not None
    assert d[1].parametrizations.weight.original.grad is not None
    # idempotent: a second call adds nothing
    apply_spectral_norm(d, include_batchnorm_gamma=True)
    assert len(d[0].parametrizations.weight) == 1 and len(d[1].parametrizations.weight) == 1


def test_batchnorm_gamma_default_is_off_and_types_filter():
    d = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 1))
    apply_spectral_norm(d, types=(nn.Linear,))
    assert not parametrize.is_parametrized(d[1], "weight")
    d2 = nn.Sequential(nn.Conv2d(1, 2, 1), nn.Linear(2, 2))
    apply_spectral_norm(d2, types=(nn.Conv2d,))
    assert parametrize.is_parametrized(d2[0], "weight")
    assert not parametrize.is_parametrized(d2[1], "weight")


def test_gamma_l2_mode_is_the_authors_vector_norm():
    bn = nn.BatchNorm1d(2)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([3.0, -4.0]))
    spectral_norm_batchnorm_gamma(bn, norm="l2")
    assert_close(bn.weight, torch.tensor([0.6, -0.8]), rtol=1e-6, atol=0)
    p = BatchNormGammaSpectralNorm("max")
    assert_close(p(torch.tensor([3.0, -4.0])), torch.tensor([0.75, -1.0]), rtol=1e-6, atol=0)
    assert_close(p(torch.zeros(3)), torch.zeros(3), rtol=0, atol=0)


def test_gamma_bad_inputs():
    with pytest.raises(ValueError, match="module"):
        spectral_norm_batchnorm_gamma(nn.Linear(2, 2))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="affine"):
        spectral_norm_batchnorm_gamma(nn.BatchNorm1d(2, affine=False))
    with pytest.raises(ValueError, match="norm"):
        BatchNormGammaSpectralNorm("fro")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n_power_iterations"):
        apply_spectral_norm(nn.Linear(2, 2), n_power_iterations=0)
    with pytest.raises(ValueError, match="lazy"):
        apply_spectral_norm(nn.Sequential(nn.LazyLinear(2)))
    with pytest.raises(ValueError, match="types"):
        apply_spectral_norm(nn.Linear(2, 2), types=(int,))  # type: ignore[arg-type]


def test_eval_freezes_sigma():
    torch.manual_seed(6)
    lin = apply_spectral_norm(nn.Linear(5, 4))
    sn = lin.parametrizations.weight[0]
    with torch.no_grad():  # move u away from the converged vector so an iteration changes it
        sn._u.copy_(nn.functional.normalize(torch.randn(4, generator=_gen(6)), dim=0))
    lin.eval()
    u = sn._u.clone()
    w1 = lin.weight.detach().clone()
    w2 = lin.weight.detach().clone()
    assert_close(sn._u, u, rtol=0, atol=0)
    assert_close(w1, w2, rtol=0, atol=0)
    lin.train()
    lin.weight  # noqa: B018 - a training access runs one power iteration
    assert (sn._u - u).abs().max() > 1e-3


def test_remove_keeps_normalised_weight():
    torch.manual_seed(7)
    d = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.ConvTranspose2d(2, 3, 3))
    apply_spectral_norm(d, include_batchnorm_gamma=True)
    before = [d[i].weight.detach().clone() for i in range(3)]
    d.eval()
    before_eval = [d[i].weight.detach().clone() for i in range(3)]
    remove_spectral_norm(d)
    for i in range(3):
        assert not parametrize.is_parametrized(d[i])
        assert isinstance(d[i].weight, nn.Parameter)
        assert_close(d[i].weight.detach(), before_eval[i], rtol=0, atol=0)
    assert_close(before[1], before_eval[1], rtol=0, atol=0)


def test_remove_refuses_foreign_parametrization_stack():
    class Double(nn.Module):
        def forward(self, w):
            return 2 * w

    lin = apply_spectral_norm(nn.Linear(2, 2))
    parametrize.register_parametrization(lin, "weight", Double())
    with pytest.raises(ValueError, match="other parametrizations"):
        remove_spectral_norm(lin)
