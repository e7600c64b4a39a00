"""ResidualVQ extras (spec §2.7): quantizer dropout, shared codebook, stage codes, stack gradient,
Gumbel sampling, grouped residual VQ."""

from __future__ import annotations

import copy

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from kexue.vq import (
    GroupedResidualVQ,
    QuantizerDropout,
    ResidualVQ,
    VectorQuantizer,
    gumbel_nearest,
    nearest_code,
)


def _x(b: int = 6, t: int = 4, d: int = 3, seed: int = 0) -> torch.Tensor:
    return torch.randn(b, t, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# ---------------------------------------------------------------- quantizer dropout


def test_dropout_marks_dropped_stages_and_lookup_matches() -> None:
    torch.manual_seed(0)
    rvq = ResidualVQ(4, 8, 3, decay=None, dropout=QuantizerDropout(1.0, seed=3)).double()
    x = _x()
    out = rvq(x)
    idx = out.indices  # (B, T, Q)
    kept = (idx >= 0).sum(-1)  # per position
    assert bool((kept == kept[:, :1]).all())  # one n_q per sample
    assert bool((idx[..., 0] >= 0).all())  # min_stages = 1
    dropped_after = (idx < 0).int().diff(dim=-1)
    assert bool((dropped_after >= 0).all())  # a prefix of stages is kept
    assert len(set(kept[:, 0].tolist())) > 1  # per-sample draws differ
    torch.testing.assert_close(out.quantized, rvq.lookup(idx), rtol=0, atol=1e-12)
    rvq.eval()
    assert bool((rvq(x).indices >= 0).all())  # no dropout in eval


def test_dropout_seed_rounding_and_per_batch() -> None:
    a = QuantizerDropout(1.0, seed=7, multiple_of=2)
    b = QuantizerDropout(1.0, seed=7, multiple_of=2)
    draws = [a.draw(50, 5) for _ in range(3)]
    assert all(torch.equal(d, b.draw(50, 5)) for d in draws)  # same seed, same steps
    assert int(a.step) == 3
    flat = torch.cat(draws)
    assert set(flat.tolist()) <= {2, 4, 5} and 2 in flat and 4 in flat  # rounded up, capped at Q
    batch = QuantizerDropout(1.0, per_sample=False, seed=1).draw(9, 4)
    assert bool((batch == batch[0]).all())
    assert bool((QuantizerDropout(0.0).draw(20, 4) == 4).all())
    with pytest.raises(ValueError, match="min_stages"):
        QuantizerDropout(min_stages=5).draw(2, 4)


def test_dropout_p0_equals_no_dropout_and_stage_ema_excludes_dropped() -> None:
    torch.manual_seed(1)
    base = ResidualVQ(2, 8, 3, decay=0.5).double()
    off = copy.deepcopy(base)
    off.dropout = QuantizerDropout(0.0)
    x = _x(seed=1)
    a, b = base(x), off(x)
    assert torch.equal(a.indices, b.indices) and torch.equal(a.quantized, b.quantized)
    # closed form of stage 1's EMA counts: γ·K·n₀ + (1 − γ)·#(kept rows)
    torch.manual_seed(1)
    rvq = ResidualVQ(2, 8, 3, decay=0.5, dropout=QuantizerDropout(1.0, seed=2)).double()
    out = rvq(x)
    rows_kept = int((out.indices[..., 1] >= 0).sum())
    assert 0 < rows_kept < x.shape[0] * x.shape[1]
    total = rvq.layers[1].cluster_size.sum().item()
    assert total == pytest.approx(0.5 * 8 * 1.0 + 0.5 * rows_kept, abs=1e-9)
    assert rvq.layers[0].cluster_size.sum().item() == pytest.approx(4.0 + 0.5 * 24, abs=1e-9)


# ---------------------------------------------------------------- shared codebook


def test_shared_codebook_applies_one_pooled_ema_step() -> None:
    torch.manual_seed(2)
    gamma, k, n = 0.5, 32, 100
    rvq = ResidualVQ(2, k, 3, decay=gamma, shared_codebook=True).double()
    ref = copy.deepcopy(rvq.layers[0])
    x = torch.randn(n, 3, dtype=torch.float64)
    codebook = rvq.layers[0].embed.clone()
    out = rvq(x)
    # spec §2.7: γK + (1 − γ)·Q·N = 116 (vqp decays per stage: 83)
    assert rvq.layers[0].cluster_size.sum().item() == pytest.approx(116.0, abs=1e-9)
    r0 = x
    r1 = x - codebook[out.indices[:, 0]]
    ref._update_(torch.cat([r0, r1]), out.indices.T.reshape(-1), None, False)
    ref.initted.fill_(True)
    for key, value in ref.state_dict().items():
        torch.testing.assert_close(rvq.layers[0].state_dict()[key], value, rtol=0, atol=1e-12)


# ---------------------------------------------------------------- stage codes, gradient


def test_stage_codes_and_return_stage_codes() -> None:
    torch.manual_seed(3)
    rvq = ResidualVQ(3, 8, 3, decay=None).double()
    x = _x(seed=3)
    out, codes = rvq(x, return_stage_codes=True)
    assert codes.shape == (3, 6, 4, 3)
    torch.testing.assert_close(codes.sum(0), out.quantized, rtol=0, atol=1e-12)
    idx = out.indices.clone()
    idx[0, 0, 2] = -1
    assert bool((rvq.stage_codes(idx)[2, 0, 0] == 0).all())


@pytest.mark.parametrize(("grad", "factor"), [("stack", 1.0), ("per_stage", 4.0)])
def test_encoder_gradient_is_not_scaled_by_the_number_of_stages(grad, factor) -> None:
    torch.manual_seed(4)
    rvq = ResidualVQ(4, 8, 3, decay=None, grad=grad).double()
    x = _x(seed=4).requires_grad_(True)
    out = rvq(x)
    (g,) = torch.autograd.grad(out.quantized.sum(), x)
    torch.testing.assert_close(g, torch.full_like(x, factor), rtol=0, atol=0)


def test_grouped_residual_vq() -> None:
    torch.manual_seed(5)
    q = GroupedResidualVQ(2, 3, 8, 4, decay=0.9, dropout=QuantizerDropout(1.0, seed=4)).double()
    x = torch.randn(5, 7, 4, dtype=torch.float64)
    out = q(x)
    assert out.indices.shape == (5, 7, 2, 3) and out.stats["usage"].shape == (2, 3)
    # both groups drop the same stages (same seed)
    assert torch.equal(out.indices[..., 0, :] < 0, out.indices[..., 1, :] < 0)
    q.eval()
    out = q(x)
    torch.testing.assert_close(q.lookup(out.indices), out.quantized, rtol=0, atol=1e-12)


# ---------------------------------------------------------------- Gumbel sampling


def test_gumbel_draws_follow_softmax_chi_square() -> None:
    g = torch.Generator().manual_seed(0)
    codebook = torch.randn(8, 3, generator=g)
    x = torch.randn(1, 3, generator=g)
    tau = 0.7
    n = 100_000
    idx = gumbel_nearest(x.expand(n, 3), codebook, temperature=tau, generator=g)
    d = (x.double() - codebook.double()).pow(2).sum(-1)
    p = torch.softmax(-d / tau, dim=0)
    observed = torch.bincount(idx, minlength=8).double()
    chi2 = ((observed - n * p) ** 2 / (n * p)).sum().item()
    assert chi2 < 29.9  # 7 degrees of freedom, p ≈ 1e-4


def test_gumbel_chunk_invariance_and_low_temperature_is_argmax(monkeypatch) -> None:
    import kexue.vq.sampling as sampling

    g = torch.Generator().manual_seed(1)
    x = torch.randn(50, 4, generator=g) + 1e3
    c = torch.randn(16, 4, generator=g) + 1e3
    monkeypatch.setattr(sampling, "_NOISE_BLOCK", 64)  # 4-row noise blocks: many per chunk
    draws = [
        gumbel_nearest(
            x, c, temperature=50.0, generator=torch.Generator().manual_seed(9), chunk_size=s
        )
        for s in (None, 4, 12, 7)
    ]
    assert all(torch.equal(draws[0], d) for d in draws[1:])
    other = gumbel_nearest(x, c, temperature=50.0, generator=torch.Generator().manual_seed(8))
    assert not torch.equal(draws[0], other)  # the key really comes from the generator
    cold = gumbel_nearest(x, c, temperature=1e-9, generator=g)
    assert torch.equal(cold, nearest_code(x, c)[0])
    with pytest.raises(ValueError, match="temperature"):
        gumbel_nearest(x, c, temperature=0.0)


def test_quantizer_gumbel_training_only_and_reproducible() -> None:
    torch.manual_seed(6)
    vq = VectorQuantizer(8, 3, decay=None, sample="gumbel", temperature=5.0).double()
    x = _x(seed=6)
    a = vq(x, generator=torch.Generator().manual_seed(0))
    b = vq(x, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a.indices, b.indices)
    assert torch.equal(a.quantized, vq.lookup(a.indices))
    vq.eval()
    assert torch.equal(vq(x).indices, nearest_code(x.reshape(-1, 3), vq.codebook)[0].view(6, 4))
    assert not torch.equal(a.indices, vq(x).indices)  # τ = 5 really samples


@settings(max_examples=10, deadline=None)
@given(q=st.integers(1, 4), p=st.floats(0.0, 1.0), seed=st.integers(0, 1000))
def test_property_dropout_prefix(q, p, seed) -> None:
    torch.manual_seed(seed)
    rvq = ResidualVQ(q, 4, 2, decay=None, dropout=QuantizerDropout(p, seed=seed)).double()
    out = rvq(torch.randn(5, 3, 2, dtype=torch.float64))
    kept = out.indices >= 0
    assert bool(kept[..., 0].all())
    assert bool((kept.int().diff(dim=-1) <= 0).all())
