"""Residual and grouped VQ: stage-by-stage error reduction, shapes, lookup, gradients."""

from __future__ import annotations

import pytest
import torch

from kexue.vq.residual import GroupedVQ, ResidualVQ


def test_residual_vq_reduces_error_stage_by_stage() -> None:
    pytest.importorskip("kexue.vq.kmeans")
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 4, generator=g)
    rvq = ResidualVQ(4, 16, 4, kmeans_init=True, decay=0.99)
    rvq(x)  # k-means per stage on its residual, then one EMA step
    rvq.eval()
    out = rvq(x)
    assert out.indices.shape == (256, 4)
    errors = []
    partial = torch.zeros_like(x)
    for q, layer in enumerate(rvq.layers):
        partial = partial + layer.lookup(out.indices[:, q])
        errors.append(((x - partial) ** 2).sum(dim=1).mean().item())
    base = (x**2).sum(dim=1).mean().item()
    assert base > errors[0] > errors[1] > errors[2] > errors[3]
    assert errors[3] < 0.5 * errors[0]
    torch.testing.assert_close(out.quantized, partial, atol=0, rtol=0)
    torch.testing.assert_close(rvq.lookup(out.indices), partial, atol=1e-6, rtol=0)
    assert out.stats["perplexity"].shape == (4,)


def test_residual_vq_gradients_and_losses() -> None:
    g = torch.Generator().manual_seed(1)
    rvq = ResidualVQ(3, 8, 5, decay=None).eval()
    x = torch.randn(2, 6, 5, generator=g, requires_grad=True)
    out = rvq(x)
    assert out.quantized.shape == x.shape and out.indices.shape == (2, 6, 3)
    out.quantized.sum().backward(retain_graph=True)
    torch.testing.assert_close(x.grad, torch.ones_like(x), atol=0, rtol=0)  # straight-through
    x.grad = None
    out.losses["commitment"].backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    # by hand: stage q sees r_q = x − Σ_{j<q} e_j; commitment_q = β·mean((r_q − e_q)²)
    residual, commit = x.detach(), 0.0
    for q, layer in enumerate(rvq.layers):
        e = layer.lookup(out.indices[..., q])
        commit = commit + 0.25 * ((residual - e) ** 2).mean()
        residual = residual - e
    torch.testing.assert_close(out.losses["commitment"], commit, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(out.losses["codebook"], 4 * commit, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(out.loss, 5 * commit, atol=1e-6, rtol=1e-6)


def test_residual_vq_autocast_dtype() -> None:
    g = torch.Generator().manual_seed(2)
    rvq = ResidualVQ(2, 8, 4)
    x = torch.randn(10, 4, generator=g).to(torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = rvq(x)
    assert out.quantized.dtype == torch.bfloat16 and torch.isfinite(out.loss)


@pytest.mark.parametrize("layout", ["channels_last", "channels_first"])
def test_grouped_vq_shapes_and_lookup(layout: str) -> None:
    g = torch.Generator().manual_seed(3)
    gvq = GroupedVQ(4, 6, 8, layout=layout).eval()
    assert all(layer.dim == 2 for layer in gvq.layers)
    x = (
        torch.randn(2, 8, 3, 5, generator=g)
        if layout == "channels_first"
        else torch.randn(2, 7, 8, generator=g)
    )
    out = gvq(x)
    index_shape = (2, 3, 5) if layout == "channels_first" else (2, 7)
    assert out.quantized.shape == x.shape
    assert out.indices.shape == (*index_shape, 4)
    assert out.stats["usage"].shape == (4,)
    assert torch.equal(gvq.lookup(out.indices), out.quantized)
    axis = 1 if layout == "channels_first" else -1
    for grp, layer in enumerate(gvq.layers):  # each group is an independent quantiser
        part = layer(x.narrow(axis, 2 * grp, 2))
        assert torch.equal(part.indices, out.indices[..., grp])


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="groups"):
        GroupedVQ(3, 4, 8)
    with pytest.raises(ValueError, match="num_quantizers"):
        ResidualVQ(0, 4, 8)
    with pytest.raises(ValueError, match="x has shape"):
        GroupedVQ(2, 4, 8)(torch.randn(3, 6))
    with pytest.raises(ValueError, match="indices"):
        ResidualVQ(2, 4, 3).lookup(torch.zeros(5, 3, dtype=torch.long))
