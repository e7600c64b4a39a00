"""LFQ and residual LFQ: indices from bits (brute force), entropies against brute force over all
2^b codes, chunk invariance of the exact codebook entropy and its gradient, lucidrains' log clamp,
masks / lens, projections and heads, argument checks (spec vq-modern.md §2.3)."""

from __future__ import annotations

import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from kexue.vq import LFQ, QuantizerOutput, ResidualLFQ
from kexue.vq.lfq import lfq_entropies


def _all_codes(bits: int, scale: float = 1.0) -> torch.Tensor:
    """(2^bits, bits) fp64: row k = the code whose dim j is +s iff bit j (LSB first) of k is set."""
    rows = [[scale if (k >> j) & 1 else -scale for j in range(bits)] for k in range(2**bits)]
    return torch.tensor(rows, dtype=torch.float64)


def _brute_entropies(
    z: torch.Tensor, beta: float, scale: float, mask: torch.Tensor | None, eps: float | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """H_s and H_b by materialising the (N, C, 2^d) softmax (the N × K path we avoid)."""
    n, _, d = z.shape
    codes = _all_codes(d, scale).to(z.dtype)
    p = torch.softmax(2 * beta * torch.einsum("ncd,kd->nck", z, codes), dim=-1)
    w = torch.ones(n, dtype=z.dtype) if mask is None else mask.to(z.dtype)

    def ent(t: torch.Tensor) -> torch.Tensor:
        return -(t * (t if eps is None else t.clamp_min(eps)).log().nan_to_num(0.0)).sum(-1)

    h_s = (ent(p).mean(-1) * w).sum() / w.sum()
    pbar = (p * w[:, None, None]).sum(0) / w.sum()
    return h_s, ent(pbar).mean()


@pytest.mark.parametrize("bit_order", ["msb", "lsb"])
def test_indices_are_the_bit_strings_brute_force(bit_order: str) -> None:
    bits = 5
    lfq = LFQ(bits, bit_order=bit_order)
    signs = torch.tensor(list(itertools.product([-1.0, 1.0], repeat=bits)))
    z = signs * torch.rand(signs.shape, generator=torch.Generator().manual_seed(0)).add(0.1)
    out = lfq(z)
    for row, idx in zip(signs.tolist(), out.indices.tolist(), strict=True):
        digits = [int(v > 0) for v in row]
        if bit_order == "msb":
            expected = sum(b << (bits - 1 - j) for j, b in enumerate(digits))
        else:
            expected = sum(b << j for j, b in enumerate(digits))
        assert idx == expected
    assert sorted(out.indices.tolist()) == list(range(2**bits))
    assert torch.equal(out.quantized, signs)
    assert torch.equal(lfq.lookup(out.indices), out.quantized)
    assert torch.equal(
        lfq.indices_to_codes(torch.arange(2**bits)),
        lfq.indices_to_codes(out.indices)[out.indices.argsort()],
    )


def test_sign_of_zero_is_minus_and_scale_applies() -> None:
    lfq = LFQ(3, codebook_scale=0.5)
    out = lfq(torch.tensor([[0.0, -0.0, 2.0]]))
    assert out.quantized.tolist() == [[-0.5, -0.5, 0.5]]
    assert out.indices.tolist() == [1]
    assert out.indices.dtype == torch.int64
    assert isinstance(out, QuantizerOutput)


def test_straight_through_gradient_and_exact_forward() -> None:
    lfq = LFQ(4, entropy_weight=0.0, commitment_weight=0.0)
    x = (torch.randn(10, 4, generator=torch.Generator().manual_seed(1)) * 1e4).requires_grad_()
    out = lfq(x)
    assert torch.equal(out.quantized.detach().abs(), torch.ones(10, 4))  # exactly ±1 at 1e4
    g = torch.randn(10, 4)
    (out.quantized * g).sum().backward()
    assert torch.equal(x.grad, g)


@pytest.mark.parametrize("bits", [1, 2, 5, 6])
@pytest.mark.parametrize("codebooks", [1, 3])
def test_entropies_equal_brute_force_over_all_codes(bits: int, codebooks: int) -> None:
    g = torch.Generator().manual_seed(bits)
    z = torch.randn(37, codebooks, bits, generator=g, dtype=torch.float64) * 0.01
    mask = torch.rand(37, generator=g) > 0.3
    for beta, scale, m in [(100.0, 1.0, None), (3.0, 0.5, mask)]:
        h_s, h_b = lfq_entropies(z, inv_temperature=beta, codebook_scale=scale, mask=m)
        ref_s, ref_b = _brute_entropies(z, beta, scale, m, None)
        torch.testing.assert_close(h_s, ref_s, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(h_b, ref_b, rtol=1e-12, atol=1e-12)


def test_log_clamp_reproduces_the_clamped_brute_force_and_its_gradient() -> None:
    g = torch.Generator().manual_seed(3)
    z = (torch.randn(29, 2, 5, generator=g, dtype=torch.float64) * 0.02).requires_grad_()
    h_s, h_b = lfq_entropies(z, log_clamp=1e-5, chunk_elements=50)
    ref_s, ref_b = _brute_entropies(z, 100.0, 1.0, None, 1e-5)
    torch.testing.assert_close(h_s, ref_s, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(h_b, ref_b, rtol=1e-12, atol=1e-12)
    got = torch.autograd.grad(h_s - 0.7 * h_b, z)[0]
    ref = torch.autograd.grad(ref_s - 0.7 * ref_b, z)[0]
    torch.testing.assert_close(got, ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("chunk", [1, 5, 64, 10**9])
def test_chunked_codebook_entropy_and_gradient_equal_unchunked_autograd(chunk: int) -> None:
    g = torch.Generator().manual_seed(4)
    z = (torch.randn(23, 2, 7, generator=g, dtype=torch.float64) * 0.01).requires_grad_()
    mask = torch.rand(23, generator=g) > 0.2
    h_s, h_b = lfq_entropies(z, mask=mask, chunk_elements=chunk)
    got = torch.autograd.grad(h_s - h_b, z)[0]
    ref_s, ref_b = _brute_entropies(z, 100.0, 1.0, mask, None)
    ref = torch.autograd.grad(ref_s - ref_b, z)[0]
    torch.testing.assert_close(h_b, ref_b, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(got, ref, rtol=1e-10, atol=1e-12)
    assert torch.equal(got[~mask], torch.zeros_like(got[~mask]))  # padded rows get no gradient


def test_chunked_equals_unchunked_in_fp32() -> None:
    z = torch.randn(300, 1, 10, generator=torch.Generator().manual_seed(5)) * 0.01
    a = lfq_entropies(z, chunk_elements=7)
    b = lfq_entropies(z, chunk_elements=10**9)
    torch.testing.assert_close(torch.stack(a), torch.stack(b), rtol=1e-6, atol=1e-6)


def test_gradcheck_of_the_streaming_codebook_entropy() -> None:
    z = torch.randn(6, 1, 3, generator=torch.Generator().manual_seed(6), dtype=torch.float64) * 0.01
    z.requires_grad_()
    assert torch.autograd.gradcheck(lambda t: lfq_entropies(t, chunk_elements=4)[1], (z,))


def test_entropy_gradient_is_finite_at_saturation_and_zero() -> None:
    z = torch.tensor([[[0.0, 50.0, -50.0, 1e-30]]] * 4, requires_grad=True)
    h_s, h_b = lfq_entropies(z, log_clamp=None)
    (h_s - h_b).backward()
    assert torch.isfinite(z.grad).all() and torch.isfinite(h_s) and torch.isfinite(h_b)


def test_factorized_is_an_upper_bound_of_the_exact_codebook_entropy() -> None:
    z = torch.randn(400, 1, 6, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    z = z * 0.005 + 0.003 * z[..., :1]  # correlated bits: the bound is strict
    _, exact = lfq_entropies(z)
    _, bound = lfq_entropies(z, entropy="factorized")
    assert float(bound) > float(exact)
    # independent, identically distributed bits: equal up to sampling, never below
    _, exact_u = lfq_entropies(torch.zeros(5, 1, 6, dtype=torch.float64))
    _, bound_u = lfq_entropies(torch.zeros(5, 1, 6, dtype=torch.float64), entropy="factorized")
    torch.testing.assert_close(exact_u, bound_u)  # both 6 ln 2


def test_loss_breakdown_and_total() -> None:
    lfq = LFQ(4, entropy_weight=0.3, diversity_weight=0.5, commitment_weight=2.0)
    x = torch.randn(50, 4, generator=torch.Generator().manual_seed(8), dtype=torch.float64) * 0.02
    out = lfq(x)
    ref_s, ref_b = _brute_entropies(x.unsqueeze(1), 100.0, 1.0, None, None)
    commit = (x - x.sign()).pow(2).mean()
    losses = out.losses
    torch.testing.assert_close(losses["per_sample_entropy"], ref_s)
    torch.testing.assert_close(losses["codebook_entropy"], ref_b)
    torch.testing.assert_close(losses["entropy"], 0.3 * (ref_s - 0.5 * ref_b))
    torch.testing.assert_close(losses["commitment"], 2.0 * commit)
    torch.testing.assert_close(out.loss, losses["entropy"] + losses["commitment"])
    assert out.loss.dtype == torch.float64


def test_mask_and_lens_exclude_padding_from_every_term() -> None:
    g = torch.Generator().manual_seed(9)
    lfq = LFQ(5, dim=12, num_codebooks=2)
    x = torch.randn(3, 7, 12, generator=g)
    lens = torch.tensor([7, 3, 0])
    mask = torch.arange(7) < lens[:, None]
    out = lfq(x, lens=lens)
    out_m = lfq(x, mask=mask)
    ref = lfq(x[mask])  # the unpadded subset
    for key in out.losses:
        torch.testing.assert_close(out.losses[key], ref.losses[key], rtol=1e-6, atol=1e-7)
        assert torch.equal(out.losses[key], out_m.losses[key])
    assert torch.equal(out.indices[mask], ref.indices)
    assert (out.indices[~mask] == -1).all()
    assert torch.equal(out.quantized[~mask], x[~mask])  # padded output: the input unchanged
    torch.testing.assert_close(out.quantized[mask], ref.quantized)
    torch.testing.assert_close(out.stats["usage"], ref.stats["usage"])
    torch.testing.assert_close(out.stats["perplexity"], ref.stats["perplexity"])
    assert torch.equal(lfq.lookup(out.indices)[~mask], torch.zeros(int((~mask).sum()), 12))


def test_padded_positions_get_no_loss_gradient() -> None:
    lfq = LFQ(4)
    x = torch.randn(2, 5, 4, generator=torch.Generator().manual_seed(10)).mul(0.01)
    x.requires_grad_()
    mask = torch.tensor([[True] * 5, [True, True, False, False, False]])
    lfq(x, mask=mask).loss.backward()
    assert torch.equal(x.grad[~mask], torch.zeros(3, 4))
    assert x.grad[mask].abs().sum() > 0


@settings(max_examples=25, deadline=None)
@given(
    shape=st.lists(st.integers(1, 4), min_size=1, max_size=3),
    bits=st.integers(1, 6),
    codebooks=st.integers(1, 3),
    bit_order=st.sampled_from(["msb", "lsb"]),
)
def test_shapes_and_lookup_roundtrip(
    shape: list[int], bits: int, codebooks: int, bit_order: str
) -> None:
    lfq = LFQ(bits, num_codebooks=codebooks, bit_order=bit_order)
    x = torch.randn(*shape, bits * codebooks, generator=torch.Generator().manual_seed(len(shape)))
    out = lfq(x)
    index_shape = tuple(shape) + ((codebooks,) if codebooks > 1 else ())
    assert out.indices.shape == index_shape
    assert out.quantized.shape == x.shape
    assert torch.equal(lfq.lookup(out.indices), out.quantized)
    assert int(out.indices.min()) >= 0 and int(out.indices.max()) < 2**bits
    assert torch.isfinite(out.loss)


def test_projection_and_bf16_input() -> None:
    lfq = LFQ(6, dim=32)
    x = torch.randn(4, 9, 32, generator=torch.Generator().manual_seed(11))
    out = lfq(x)
    assert out.quantized.shape == x.shape and out.indices.shape == (4, 9)
    torch.testing.assert_close(lfq.lookup(out.indices), out.quantized)
    out16 = LFQ(6)(torch.randn(5, 6).to(torch.bfloat16))
    assert out16.quantized.dtype == torch.bfloat16 and out16.loss.dtype == torch.float32


def test_large_bits_default_to_factorized_with_a_warning() -> None:
    with pytest.warns(UserWarning, match="factorized"):
        lfq = LFQ(24)
    assert lfq.entropy == "factorized"
    out = lfq(torch.randn(3, 24))
    assert torch.isfinite(out.loss)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"bits": 0}, "bits"),
        ({"bits": 4, "bit_order": "big"}, "bit_order"),
        ({"bits": 4, "entropy": "subsample"}, "entropy"),
        ({"bits": 4, "inv_temperature": 0.0}, "inv_temperature"),
        ({"bits": 4, "entropy_weight": -1.0}, "entropy_weight"),
        ({"bits": 4, "soft_clamp": 0.5}, "soft_clamp"),
        ({"bits": 4, "log_clamp": 1e-5, "entropy": "factorized"}, "log_clamp"),
    ],
)
def test_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        LFQ(**kwargs)


def test_bad_inputs() -> None:
    lfq = LFQ(4)
    with pytest.raises(ValueError, match=r"shape \(\.\.\., 4\)"):
        lfq(torch.randn(3, 5))
    with pytest.raises(ValueError, match="mask must have shape"):
        lfq(torch.randn(2, 3, 4), mask=torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="either mask= or lens="):
        lfq(
            torch.randn(2, 3, 4), mask=torch.ones(2, 3, dtype=torch.bool), lens=torch.tensor([1, 2])
        )
    with pytest.raises(ValueError, match="lens must have shape"):
        lfq(torch.randn(6, 4), lens=torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="integer"):
        lfq.lookup(torch.tensor([0.5]))


def test_residual_lfq_error_bound_and_lookup() -> None:
    # |y| <= 2 and stage q of scale 2^-q leaves |r_{q+1}| <= 2^-q, so |y − out| <= 2^(1−Q)
    q = 4
    rlfq = ResidualLFQ(3, num_quantizers=q)
    y = (
        torch.rand(2000, 3, generator=torch.Generator().manual_seed(12), dtype=torch.float64) * 4
        - 2
    )
    out = rlfq(y)
    assert float((y - out.quantized).abs().max()) <= 2.0 ** (1 - q)
    assert out.indices.shape == (2000, q)
    torch.testing.assert_close(rlfq.lookup(out.indices).double(), out.quantized)
    assert out.losses["per_sample_entropy"].shape == (q,)


def test_residual_lfq_single_straight_through_and_mask() -> None:
    rlfq = ResidualLFQ(4, num_quantizers=3, dim=8, entropy_weight=0.0, commitment_weight=0.0)
    x = torch.randn(2, 6, 8, generator=torch.Generator().manual_seed(13), requires_grad=True)
    lens = torch.tensor([6, 2])
    out = rlfq(x, lens=lens)
    mask = torch.arange(6) < lens[:, None]
    assert (out.indices[~mask] == -1).all() and torch.equal(out.quantized[~mask], x[~mask])
    # one STE for the stack: d out / d y = I, so the gradient is W_out W_in (not 3×)
    g = torch.randn(8)
    (out.quantized[0, 0] * g).sum().backward()
    w_in, w_out = rlfq.project_in.weight, rlfq.project_out.weight
    torch.testing.assert_close(x.grad[0, 0], w_in.T @ (w_out.T @ g))


@pytest.mark.parametrize(("bits", "codebooks"), [(6, 1), (4, 3)])
def test_parity_with_lucidrains(bits: int, codebooks: int) -> None:
    vqp = pytest.importorskip("vector_quantize_pytorch")
    torch.manual_seed(0)
    theirs = vqp.LFQ(
        codebook_size=2**bits, num_codebooks=codebooks, commitment_loss_weight=0.25
    ).train()
    ours = LFQ(bits, num_codebooks=codebooks, commitment_weight=0.25, log_clamp=1e-5)
    x = torch.randn(4, 64, bits * codebooks) * 0.02
    (q, idx, aux), breakdown = theirs(x, return_loss_breakdown=True)
    out = ours(x)
    assert torch.equal(idx, out.indices) and torch.equal(q, out.quantized)
    torch.testing.assert_close(out.loss, aux, rtol=1e-5, atol=0)
    torch.testing.assert_close(
        out.losses["per_sample_entropy"], breakdown.per_sample_entropy, rtol=1e-5, atol=0
    )
    torch.testing.assert_close(
        out.losses["codebook_entropy"], breakdown.batch_entropy, rtol=1e-5, atol=0
    )


@pytest.mark.parametrize("num_codes", [8, 2**25])  # bincount path and the torch.unique path
def test_index_stats_brute_force(num_codes: int) -> None:
    from kexue.vq._masking import index_stats

    idx = torch.tensor([[0, 5], [0, -1], [3, 5], [-1, -1], [0, 7]])
    stats = index_stats(idx, num_codes)
    # head 0: counts {0: 3, 3: 1}; head 1: {5: 2, 7: 1}
    ppl0 = torch.exp(-(torch.tensor([0.75, 0.25]) * torch.tensor([0.75, 0.25]).log()).sum())
    ppl1 = torch.exp(-(torch.tensor([2 / 3, 1 / 3]) * torch.tensor([2 / 3, 1 / 3]).log()).sum())
    torch.testing.assert_close(stats["perplexity"], (ppl0 + ppl1) / 2)
    torch.testing.assert_close(stats["usage"], torch.tensor(2 / num_codes))
