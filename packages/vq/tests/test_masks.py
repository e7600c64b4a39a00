"""``mask=`` / ``lens=`` (spec §2.6): padded rows are invisible — the masked call equals the call on
the valid rows only, for losses, EMA buffers, k-means, stats (float64, 1e-12), including vqp's
broken configurations (commitment with a projection, cosine)."""

from __future__ import annotations

import copy

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from kexue.vq import FSQ, GroupedVQ, ResidualFSQ, ResidualVQ, VectorQuantizer

LENS = torch.tensor([5, 2, 3])


def _batch(d: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(3, 5, d, generator=g, dtype=torch.float64)
    mask = torch.arange(5)[None, :] < LENS[:, None]
    x[~mask] = 1e3 * torch.randn(int((~mask).sum()), d, generator=g, dtype=torch.float64)
    return x, mask


CONFIGS = {
    "plain": {"decay": None},
    "projected": {"decay": None, "codebook_dim": 3},  # vqp: size-mismatch error
    "projected_ema": {"decay": 0.9, "codebook_dim": 3, "projection_norm": True},
    "cosine": {"decay": None, "metric": "cosine"},  # vqp: 115.2 instead of 0.085
    "cosine_ema": {"decay": 0.8, "metric": "cosine"},
    "ema_kmeans": {"decay": 0.9, "kmeans_init": True},
}


def _assert_state_equal(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        torch.testing.assert_close(sa[key], sb[key], rtol=0, atol=1e-12, msg=key)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_masked_call_equals_the_valid_subset(name) -> None:
    torch.manual_seed(0)
    vq = VectorQuantizer(6, 4, **CONFIGS[name]).double()
    sub = copy.deepcopy(vq)
    x, mask = _batch()
    for step in range(2):  # two training steps (k-means on the first)
        torch.manual_seed(step)
        out = vq(x, lens=LENS)
        torch.manual_seed(step)
        ref = sub(x[mask])
        for key in ("total", "commitment", "codebook"):
            torch.testing.assert_close(out.losses[key], ref.losses[key], rtol=0, atol=1e-12)
        assert torch.equal(out.indices[mask], ref.indices)
        assert bool((out.indices[~mask] == -1).all())
        assert torch.equal(out.quantized[~mask], x[~mask])  # padded: the input, bit for bit
        torch.testing.assert_close(out.quantized[mask], ref.quantized, rtol=0, atol=1e-12)
        for key in ("perplexity", "usage", "dead_codes"):
            torch.testing.assert_close(out.stats[key], ref.stats[key], rtol=0, atol=1e-12)
        _assert_state_equal(vq, sub)
    vq.eval()
    sub.eval()
    out, ref = vq(x, mask=mask), sub(x[mask])
    torch.testing.assert_close(out.stats["perplexity"], ref.stats["perplexity"])


@pytest.mark.parametrize("name", ["projected", "cosine"])
def test_all_true_mask_equals_no_mask(name) -> None:
    # the two vqp bugs of spec §2.6: an all-true mask must change nothing
    torch.manual_seed(1)
    vq = VectorQuantizer(6, 4, **CONFIGS[name]).double()
    x, _ = _batch(seed=1)
    a = vq(x, mask=torch.ones(3, 5, dtype=torch.bool))
    b = vq(x)
    assert torch.equal(a.loss, b.loss) and torch.equal(a.quantized, b.quantized)


def test_padded_rows_get_no_loss_gradient_and_identity_output_gradient() -> None:
    torch.manual_seed(2)
    vq = VectorQuantizer(6, 4, decay=None, codebook_dim=3).double()
    x, mask = _batch(seed=2)
    x.requires_grad_(True)
    out = vq(x, mask=mask)
    (grad,) = torch.autograd.grad(out.loss, x, retain_graph=True)
    assert bool((grad[~mask] == 0).all()) and bool((grad[mask] != 0).any())
    (grad,) = torch.autograd.grad(out.quantized.sum(), x)
    assert bool((grad[~mask] == 1).all())


def test_sum_per_sample_reduction_and_fully_masked_batch() -> None:
    torch.manual_seed(3)
    vq = VectorQuantizer(6, 4, decay=None, reduction="sum_per_sample").double()
    x, mask = _batch(seed=3)
    out = vq(x, mask=mask)
    sq = (x[mask] - vq.codebook[out.indices[mask]]).pow(2).sum()
    torch.testing.assert_close(out.losses["commitment"], 0.25 * sq / 3, rtol=0, atol=1e-12)
    ema = VectorQuantizer(6, 4, decay=0.9).double()
    before = ema.embed.clone()
    empty = ema(x, mask=torch.zeros(3, 5, dtype=torch.bool))
    assert empty.loss.item() == 0.0 and bool((empty.indices == -1).all())
    assert torch.equal(empty.quantized, x)
    # no statistics: N and m only decay (the Laplace-smoothed code moves by O(ε) at most)
    torch.testing.assert_close(ema.embed, before, rtol=0, atol=1e-6)
    torch.testing.assert_close(ema.cluster_size, torch.full((6,), 0.9, dtype=torch.float64))
    assert empty.stats["usage"].item() == 0.0


def test_channels_first_mask() -> None:
    torch.manual_seed(4)
    vq = VectorQuantizer(6, 4, decay=0.9, layout="channels_first").double()
    sub = VectorQuantizer(6, 4, decay=0.9).double()
    sub.load_state_dict(vq.state_dict())
    x, mask = _batch(seed=4)
    out = vq(x.transpose(1, 2), mask=mask)  # (B, D, T)
    ref = sub(x[mask])
    assert torch.equal(out.indices[mask], ref.indices)
    assert torch.equal(out.quantized.transpose(1, 2)[~mask], x[~mask])
    _assert_state_equal(vq, sub)


def test_restart_draws_only_valid_rows() -> None:
    torch.manual_seed(5)
    vq = VectorQuantizer(6, 4, decay=0.5, dead_code_threshold=5.0).double()
    x, mask = _batch(seed=5)  # padded rows are ~1e3, valid rows ~1
    vq(x, mask=mask)
    assert vq.embed.abs().max().item() < 50.0
    # every code was dead (threshold 5 > counts): each is now one of the valid rows (fp32 copy)
    dist = torch.cdist(vq.embed, x[mask]).min(dim=1).values
    assert bool((dist < 1e-6).all())


def test_mask_errors() -> None:
    vq = VectorQuantizer(6, 4)
    x = torch.randn(3, 5, 4)
    with pytest.raises(ValueError, match="either mask= or lens="):
        vq(x, mask=torch.ones(3, 5, dtype=torch.bool), lens=LENS)
    with pytest.raises(ValueError, match="mask must have shape"):
        vq(x, mask=torch.ones(3, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="mask must be a bool"):
        vq(x, mask=torch.ones(3, 5))
    with pytest.raises(ValueError, match="lens must have shape"):
        vq(x, lens=torch.tensor([1, 2]))


@pytest.mark.parametrize("kind", ["residual", "grouped", "residual_shared"])
def test_residual_and_grouped_masks_equal_the_valid_subset(kind) -> None:
    torch.manual_seed(6)
    if kind == "grouped":
        q = GroupedVQ(2, 6, 4, decay=0.9).double()
    else:
        q = ResidualVQ(3, 6, 4, decay=0.9, shared_codebook=kind == "residual_shared").double()
    sub = copy.deepcopy(q)
    x, mask = _batch(seed=6)
    for _ in range(2):
        out = q(x, lens=LENS)
        ref = sub(x[mask])
        torch.testing.assert_close(out.loss, ref.loss, rtol=0, atol=1e-12)
        assert torch.equal(out.indices[mask], ref.indices)
        assert bool((out.indices[~mask] == -1).all())
        assert torch.equal(out.quantized[~mask], x[~mask])
        _assert_state_equal(q, sub)


@pytest.mark.parametrize("cls", [FSQ, ResidualFSQ])
def test_fsq_lens_equals_mask(cls) -> None:
    q = cls([5, 5, 5], num_quantizers=2) if cls is ResidualFSQ else cls([5, 5, 5])
    x = torch.randn(3, 5, 3)
    mask = torch.arange(5)[None, :] < LENS[:, None]
    a, b = q(x, lens=LENS), q(x, mask=mask)
    assert torch.equal(a.indices, b.indices) and torch.equal(a.quantized, b.quantized)
    assert bool((a.indices[~mask] == -1).all()) and torch.equal(a.quantized[~mask], x[~mask])


@settings(max_examples=12, deadline=None)
@given(
    b=st.integers(1, 4),
    t=st.integers(1, 6),
    d=st.integers(1, 5),
    name=st.sampled_from(["plain", "cosine_ema", "residual"]),
    seed=st.integers(0, 2**16),
)
def test_property_masked_equals_subset(b, t, d, name, seed) -> None:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, t, d, generator=g, dtype=torch.float64)
    lens = torch.randint(1, t + 1, (b,), generator=g)
    mask = torch.arange(t)[None, :] < lens[:, None]
    torch.manual_seed(seed)
    if name == "residual":
        q = ResidualVQ(2, 5, d, decay=0.9).double()
    else:
        opts = {"decay": None} if name == "plain" else {"decay": 0.9, "metric": "cosine"}
        q = VectorQuantizer(5, d, **opts).double()
    sub = copy.deepcopy(q)
    out, ref = q(x, lens=lens), sub(x[mask])
    torch.testing.assert_close(out.loss, ref.loss, rtol=0, atol=1e-12)
    assert torch.equal(out.indices[mask], ref.indices)
    assert torch.equal(out.quantized[~mask], x[~mask])
    _assert_state_equal(q, sub)
