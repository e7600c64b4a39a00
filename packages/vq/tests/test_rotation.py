"""The rotation trick (arXiv:2410.06424, spec §2.4): forward bitwise the code, gradient λRᵀg."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from kexue.vq import GroupedVQ, ResidualVQ, VectorQuantizer
from kexue.vq.rotation import rotation_trick


def _closed_form_grad(z: torch.Tensor, e: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """λ(g − 2r(r·g) + 2u(q̂·g)), derived by hand from T(z) = λ(I − 2rrᵀ + 2q̂uᵀ)z."""
    u = z / z.norm(dim=-1, keepdim=True)
    q = e / e.norm(dim=-1, keepdim=True)
    r = F.normalize(u + q, dim=-1)
    lam = e.norm(dim=-1, keepdim=True) / z.norm(dim=-1, keepdim=True)
    rg = (r * g).sum(-1, keepdim=True)
    qg = (q * g).sum(-1, keepdim=True)
    return lam * (g - 2.0 * r * rg + 2.0 * u * qg)


def _explicit_rotation(z: torch.Tensor, e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(λ (N, 1, 1), R (N, D, D)) built as matrices from the detached vectors."""
    z, e = z.detach(), e.detach()
    u = F.normalize(z, dim=-1)
    q = F.normalize(e, dim=-1)
    r = F.normalize(u + q, dim=-1)
    eye = torch.eye(z.shape[-1], dtype=z.dtype).expand(z.shape[0], -1, -1)
    rot = eye - 2.0 * r[:, :, None] * r[:, None, :] + 2.0 * q[:, :, None] * u[:, None, :]
    lam = (e.norm(dim=-1) / z.norm(dim=-1))[:, None, None]
    return lam, rot


def _data(n: int = 32, d: int = 6, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(n, d, generator=g, dtype=torch.float64),
        torch.randn(n, d, generator=g, dtype=torch.float64) * 2.0,
    )


def test_forward_is_the_code_bitwise_and_gradient_is_the_closed_form() -> None:
    z, e = _data()
    z.requires_grad_(True)
    out, fallback = rotation_trick(z, e)
    assert torch.equal(out, e) and not bool(fallback.any())
    g = torch.randn_like(z)
    (out * g).sum().backward()
    torch.testing.assert_close(z.grad, _closed_form_grad(z.detach(), e, g), rtol=0, atol=1e-12)


def test_gradient_equals_autograd_of_the_explicit_rotation_matrix() -> None:
    z, e = _data(seed=1)
    lam, rot = _explicit_rotation(z, e)
    u = F.normalize(z, dim=-1)
    q = F.normalize(e, dim=-1)
    # R is a rotation taking u to q̂
    torch.testing.assert_close(torch.einsum("nij,nj->ni", rot, u), q, rtol=0, atol=1e-14)
    eye = torch.eye(z.shape[1], dtype=z.dtype).expand_as(rot)
    torch.testing.assert_close(rot.transpose(1, 2) @ rot, eye, rtol=0, atol=1e-14)
    torch.testing.assert_close(torch.linalg.det(rot), torch.ones(z.shape[0], dtype=z.dtype))
    # λRz = e, and the gradients agree
    z1 = z.clone().requires_grad_(True)
    z2 = z.clone().requires_grad_(True)
    explicit = lam[:, :, 0] * torch.einsum("nij,nj->ni", rot, z1)
    torch.testing.assert_close(explicit.detach(), e, rtol=0, atol=1e-12)
    g = torch.randn_like(z)
    (explicit * g).sum().backward()
    (rotation_trick(z2, e)[0] * g).sum().backward()
    torch.testing.assert_close(z2.grad, z1.grad, rtol=0, atol=1e-12)


def test_parallel_code_gives_identity_rotation() -> None:
    z, _ = _data(seed=2)
    alpha = torch.rand(z.shape[0], 1, dtype=z.dtype) + 0.5
    e = alpha * z
    z.requires_grad_(True)
    g = torch.randn_like(z)
    (rotation_trick(z, e)[0] * g).sum().backward()
    torch.testing.assert_close(z.grad, alpha * g, rtol=0, atol=1e-12)


def test_zero_and_antipodal_rows_fall_back_to_the_ste() -> None:
    e = torch.tensor([[1.0, 2.0], [2.0, 0.0], [0.0, 0.0], [3.0, 1.0]], dtype=torch.float64)
    z = torch.tensor([[0.0, 0.0], [-1.0, 0.0], [1.0, 1.0], [1.0, 1.0]], dtype=torch.float64)
    z.requires_grad_(True)
    out, fallback = rotation_trick(z, e)
    assert torch.equal(out, e)  # vector-quantize-pytorch returns 0 for the zero row
    assert fallback.tolist() == [True, True, True, False]
    g = torch.randn_like(z)
    (out * g).sum().backward()
    torch.testing.assert_close(z.grad[:3], g[:3], rtol=0, atol=0)


@pytest.mark.parametrize("decay", [None, 0.9])
@pytest.mark.parametrize("codebook_dim", [None, 3])
def test_quantizer_rotation_forward_equals_lookup_bitwise(decay, codebook_dim) -> None:
    torch.manual_seed(0)
    vq = VectorQuantizer(16, 5, codebook_dim=codebook_dim, decay=decay, estimator="rotation")
    x = torch.randn(40, 5)
    x[0] = 0.0
    out = vq(x)
    assert torch.equal(out.quantized, vq.lookup(out.indices)) or decay is not None
    vq.eval()
    out = vq(x)
    assert torch.equal(out.quantized, vq.lookup(out.indices))
    ste = VectorQuantizer(16, 5, codebook_dim=codebook_dim, decay=decay).eval()
    ste.load_state_dict(vq.state_dict())
    assert torch.equal(ste(x).quantized, out.quantized)  # same value as the STE output
    assert out.stats["rotation_fallback"].item() >= 0


def test_quantizer_rotation_gradient_and_fallback_count() -> None:
    torch.manual_seed(1)
    vq = VectorQuantizer(4, 2, decay=None, estimator="rotation").double()
    vq.embed.data.copy_(torch.tensor([[2.0, 0.0], [5.0, 0.0], [0.0, 3.0], [2.0, 2.0]]))
    x = torch.tensor([[0.0, 0.0], [-1.0, 0.0], [0.2, 2.5], [0.9, 1.2]], dtype=torch.float64)
    x.requires_grad_(True)
    out = vq(x)
    assert out.indices.tolist() == [0, 0, 2, 3]
    assert out.stats["rotation_fallback"].item() == 2.0  # the zero row and the antipodal row
    g = torch.randn_like(x)
    grad = torch.autograd.grad((out.quantized * g).sum(), x)[0]
    e = vq.codebook[out.indices].detach()
    torch.testing.assert_close(grad[:2], g[:2], rtol=0, atol=0)
    torch.testing.assert_close(grad[2:], _closed_form_grad(x[2:].detach(), e[2:], g[2:]))


def test_residual_and_grouped_accept_the_rotation_estimator() -> None:
    torch.manual_seed(2)
    x = torch.randn(24, 8, requires_grad=True)
    rvq = ResidualVQ(3, 16, 8, estimator="rotation", decay=None)
    out = rvq(x)
    assert torch.equal(out.quantized, rvq.lookup(out.indices))
    # stack estimator: the rotation of x onto the whole reconstruction
    g = torch.randn_like(x)
    grad = torch.autograd.grad((out.quantized * g).sum(), x)[0]
    expected = _closed_form_grad(x.detach().double(), out.quantized.detach().double(), g.double())
    torch.testing.assert_close(grad.double(), expected, rtol=1e-5, atol=1e-5)
    gvq = GroupedVQ(2, 16, 8, estimator="rotation", decay=None)
    gout = gvq(x)
    assert torch.equal(gout.quantized, gvq.lookup(gout.indices))
    assert gout.stats["rotation_fallback"].shape == (2,)


def test_lucidrains_preset_selects_rotation() -> None:
    assert VectorQuantizer(4, 3, preset="lucidrains_compat").estimator == "rotation"
    assert VectorQuantizer(4, 3).estimator == "ste"
    with pytest.raises(ValueError, match="estimator"):
        VectorQuantizer(4, 3, estimator="gumbel")


@settings(max_examples=20, deadline=None)
@given(n=st.integers(1, 20), d=st.integers(2, 12), seed=st.integers(0, 2**16))
def test_property_closed_form(n, d, seed) -> None:
    z, e = _data(n, d, seed)
    z.requires_grad_(True)
    g = torch.randn_like(z)
    out, fallback = rotation_trick(z, e)
    assert torch.equal(out, e)
    (out * g).sum().backward()
    ok = ~fallback
    expected = _closed_form_grad(z.detach(), e, g)
    torch.testing.assert_close(z.grad[ok], expected[ok], rtol=0, atol=1e-10)


def test_parity_with_lucidrains_rotate_to() -> None:
    vqp = pytest.importorskip("vector_quantize_pytorch.vector_quantize_pytorch")
    z, e = _data(64, 8, seed=5)
    z1 = z.clone().requires_grad_(True)
    z2 = z.clone().requires_grad_(True)
    theirs = vqp.rotate_to(z1, e)
    ours, _ = rotation_trick(z2, e)
    torch.testing.assert_close(theirs.detach(), e, rtol=1e-5, atol=0)  # theirs is not e exactly
    g = torch.randn_like(z)
    (theirs * g).sum().backward()
    (ours * g).sum().backward()
    torch.testing.assert_close(z2.grad, z1.grad, rtol=0, atol=1e-10)
