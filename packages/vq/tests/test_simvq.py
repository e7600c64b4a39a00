"""SimVQ: the implicit codebook, the frozen buffer, which term trains W, exact assignment, masks,
usage on a shifted Gaussian (spec vq-modern.md §2.5)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from kexue.vq import SimVQ


def test_codebook_is_the_projected_frozen_codes() -> None:
    vq = SimVQ(32, 6, frozen_dim=4, projection_bias=True)
    q, w, b = vq.frozen_codebook, vq.project.weight, vq.project.bias
    torch.testing.assert_close(vq.codebook, q @ w.T + b)
    assert vq.codebook.shape == (32, 6)
    assert "frozen_codebook" in vq.state_dict()
    assert [name for name, _ in vq.named_parameters()] == ["project.weight", "project.bias"]
    std = float(SimVQ(4096, 16).frozen_codebook.std())
    assert std == pytest.approx(16**-0.5, rel=0.03)  # N(0, 1/d')


def test_frozen_codes_do_not_move_and_only_the_codebook_term_trains_w() -> None:
    g = torch.Generator().manual_seed(0)
    vq = SimVQ(16, 4, beta=0.25, codebook_weight=0.0)
    frozen = vq.frozen_codebook.clone()
    x = torch.randn(50, 4, generator=g, requires_grad=True)
    out = vq(x)
    (out.quantized.pow(2).sum() + out.loss).backward()  # output (STE) + commitment only
    assert vq.project.weight.grad is None or not vq.project.weight.grad.any()
    vq.codebook_weight = 1.0
    opt = torch.optim.SGD(vq.parameters(), lr=0.1)
    for _ in range(3):
        opt.zero_grad()
        vq(x).loss.backward()
        assert vq.project.weight.grad.abs().sum() > 0
        opt.step()
    assert torch.equal(vq.frozen_codebook, frozen)


def test_loss_terms_closed_form_and_straight_through() -> None:
    g = torch.Generator().manual_seed(1)
    vq = SimVQ(8, 3, beta=0.3, codebook_weight=2.0)
    x = torch.randn(20, 3, generator=g, dtype=torch.float64, requires_grad=True)
    out = vq(x)
    codes = vq.codebook.double()[out.indices]
    sq = (x - codes).pow(2).mean()
    torch.testing.assert_close(out.losses["commitment"], 0.3 * sq)
    torch.testing.assert_close(out.losses["codebook"], 2.0 * sq)
    assert torch.equal(out.quantized, codes.detach())  # forward is the code exactly
    gout = torch.randn(20, 3, dtype=torch.float64)
    (out.quantized * gout).sum().backward()
    assert torch.equal(x.grad, gout)


def test_assignment_equals_fp64_brute_force() -> None:
    g = torch.Generator().manual_seed(2)
    vq = SimVQ(300, 16, frozen_dim=24, generator=g)
    x = torch.randn(4, 50, 16, generator=g) + 3.0
    out = vq(x)
    brute = torch.cdist(x.reshape(-1, 16).double(), vq.codebook.double()).argmin(-1)
    assert torch.equal(out.indices.reshape(-1), brute)
    torch.testing.assert_close(vq.lookup(out.indices), out.quantized)


def test_channels_first_and_eval_cache() -> None:
    vq = SimVQ(10, 5, layout="channels_first")
    x = torch.randn(2, 5, 3, 4, generator=torch.Generator().manual_seed(3))
    out = vq(x)
    assert out.quantized.shape == x.shape and out.indices.shape == (2, 3, 4)
    vq.eval()
    first = vq.codebook
    assert vq.codebook is first  # cached in eval
    with torch.no_grad():
        vq.project.weight.add_(1.0)
    torch.testing.assert_close(vq.codebook, vq.frozen_codebook @ vq.project.weight.T)


def test_mask_excludes_padding() -> None:
    g = torch.Generator().manual_seed(4)
    vq = SimVQ(12, 4)
    x = torch.randn(3, 6, 4, generator=g, requires_grad=True)
    lens = torch.tensor([6, 2, 0])
    mask = torch.arange(6) < lens[:, None]
    out = vq(x, lens=lens)
    ref = vq(x[mask])
    for key in out.losses:
        torch.testing.assert_close(out.losses[key], ref.losses[key])
    for key in out.stats:
        torch.testing.assert_close(out.stats[key], ref.stats[key])
    assert (out.indices[~mask] == -1).all() and torch.equal(out.quantized[~mask], x[~mask])
    out.loss.backward()
    assert torch.equal(x.grad[~mask], torch.zeros(10, 4))
    assert torch.equal(vq.lookup(out.indices)[~mask], torch.zeros(10, 4))


@settings(max_examples=15, deadline=None)
@given(shape=st.lists(st.integers(1, 5), min_size=1, max_size=3), k=st.integers(1, 40))
def test_shapes(shape: list[int], k: int) -> None:
    vq = SimVQ(k, 3, generator=torch.Generator().manual_seed(k))
    x = torch.randn(*shape, 3)
    out = vq(x)
    assert out.indices.shape == tuple(shape) and out.quantized.shape == x.shape
    assert 0 <= int(out.indices.min()) and int(out.indices.max()) < k


@pytest.mark.slow
def test_usage_rises_on_a_shifted_gaussian() -> None:
    torch.manual_seed(5)
    vq = SimVQ(64, 8, projection_bias=True)  # a shift needs the bias (the paper's Linear has one)
    x = torch.randn(1024, 8) * 0.5 + 4.0  # far from the N(0, 1/d) codes: few are used at first
    before = float(vq(x).stats["usage"])
    opt = torch.optim.Adam(vq.parameters(), lr=5e-2)
    for _ in range(200):
        opt.zero_grad()
        vq(x).loss.backward()
        opt.step()
    after = float(vq(x).stats["usage"])
    assert before < 0.1 and after > 3 * before


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="num_codes"):
        SimVQ(0, 4)
    with pytest.raises(ValueError, match="beta"):
        SimVQ(4, 4, beta=-1.0)
    with pytest.raises(ValueError, match="layout"):
        SimVQ(4, 4, layout="nhwc")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="integer"):
        SimVQ(4, 4).lookup(torch.tensor([0.0]))


def test_parity_with_lucidrains() -> None:
    vqp = pytest.importorskip("vector_quantize_pytorch")
    torch.manual_seed(0)
    theirs = vqp.SimVQ(dim=8, codebook_size=64, rotation_trick=False)
    ours = SimVQ(64, 8)
    ours.frozen_codebook.copy_(theirs.frozen_codebook)
    ours.project.weight.data.copy_(theirs.code_transform.weight)
    x = torch.randn(2, 30, 8)
    q, idx, loss = theirs(x)
    out = ours(x)
    assert torch.equal(idx, out.indices)
    torch.testing.assert_close(out.loss, loss, rtol=1e-6, atol=0)
    torch.testing.assert_close(out.quantized, q, rtol=1e-6, atol=1e-6)


def test_rotation_estimator_forward_is_the_code_and_gradient_the_closed_form() -> None:
    g = torch.Generator().manual_seed(6)
    vq = SimVQ(16, 5, estimator="rotation", generator=g).double()
    x = torch.randn(7, 5, generator=g, dtype=torch.float64, requires_grad=True)
    out = vq(x)
    e = vq.codebook[out.indices].detach()
    assert torch.equal(out.quantized, e)
    gout = torch.randn(7, 5, generator=g, dtype=torch.float64)
    (out.quantized * gout).sum().backward()
    z = x.detach()
    u = z / z.norm(dim=-1, keepdim=True)
    q = e / e.norm(dim=-1, keepdim=True)
    r = (u + q) / (u + q).norm(dim=-1, keepdim=True)
    lam = e.norm(dim=-1, keepdim=True) / z.norm(dim=-1, keepdim=True)
    dot = lambda a, b: (a * b).sum(-1, keepdim=True)  # noqa: E731
    expected = lam * (gout - 2 * r * dot(r, gout) + 2 * u * dot(q, gout))
    torch.testing.assert_close(x.grad, expected, rtol=1e-12, atol=1e-12)
    assert float(out.stats["rotation_fallback"]) == 0.0
    with pytest.raises(ValueError, match="estimator"):
        SimVQ(4, 4, estimator="gumbel")  # type: ignore[arg-type]


def test_rotation_parity_with_lucidrains() -> None:
    vqp = pytest.importorskip("vector_quantize_pytorch")
    torch.manual_seed(0)
    theirs = vqp.SimVQ(dim=8, codebook_size=64, rotation_trick=True)
    ours = SimVQ(64, 8, estimator="rotation")
    ours.frozen_codebook.copy_(theirs.frozen_codebook)
    ours.project.weight.data.copy_(theirs.code_transform.weight)
    x = torch.randn(2, 30, 8)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    q, idx, loss = theirs(xa)
    out = ours(xb)
    assert torch.equal(idx, out.indices)
    torch.testing.assert_close(out.loss, loss, rtol=1e-6, atol=0)
    gout = torch.randn(2, 30, 8)
    (q * gout).sum().backward()
    (out.quantized * gout).sum().backward()
    torch.testing.assert_close(xb.grad, xa.grad, rtol=1e-4, atol=1e-5)
