"""Reference nearest-code assignment, counts/sums and metrics vs fp64 brute force (spec §4 items
1, 2, 3, 11) and the backend dispatch."""

from __future__ import annotations

import math
import sys
from types import SimpleNamespace

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from kexue.vq.functional import (
    code_counts_and_sums,
    nearest_code,
    nearest_code_reference,
    perplexity,
    usage,
)


def brute_force(x: torch.Tensor, codebook: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """fp64 argmin over the full N×K matrix of direct squared distances (first index on ties)."""
    d = ((x.double()[:, None, :] - codebook.double()[None, :, :]) ** 2).sum(-1)
    return d.argmin(dim=1), d.min(dim=1).values


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("d", [1, 3, 100])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_reference_matches_brute_force_random(d: int, dtype: torch.dtype) -> None:
    g = _gen(d)
    x = torch.randn(257, d, generator=g, dtype=dtype)
    codebook = torch.randn(61, d, generator=g, dtype=dtype)
    idx, dist = nearest_code(x, codebook, backend="torch")
    ref_idx, ref_dist = brute_force(x, codebook)
    assert idx.dtype == torch.int64 and dist.dtype == torch.float32
    torch.testing.assert_close(idx, ref_idx, rtol=0, atol=0)
    torch.testing.assert_close(dist.double(), ref_dist, rtol=1e-6, atol=1e-12)


def test_ties_from_duplicated_codes_go_to_lowest_index() -> None:
    g = _gen(1)
    base = torch.randn(20, 8, generator=g)
    # Codes 3, 10 and 17 are identical; 5 == 12; every row of x sits exactly on a code.
    codebook = base.clone()
    codebook[10] = codebook[3]
    codebook[17] = codebook[3]
    codebook[12] = codebook[5]
    x = codebook[torch.tensor([17, 10, 3, 12, 5, 0, 17])]
    for chunk in (None, 1, 2, 3):
        idx, dist = nearest_code_reference(x, codebook, chunk_size=chunk)
        assert idx.tolist() == [3, 3, 3, 5, 5, 0, 3]
        assert torch.equal(dist, torch.zeros(7))
    # Equidistant codes (x at the midpoint of two codes) also go to the lower index.
    cb = torch.tensor([[2.0, 0.0], [-1.0, 0.0], [1.0, 0.0]])
    idx, dist = nearest_code_reference(torch.zeros(1, 2), cb)
    assert idx.tolist() == [1] and dist.tolist() == [1.0]


def test_many_duplicates_random_rows_match_brute_force() -> None:
    g = _gen(2)
    distinct = torch.randn(5, 4, generator=g)
    codebook = distinct[torch.randint(5, (40,), generator=g)]  # every code duplicated
    x = torch.randn(100, 4, generator=g)
    ref_idx, _ = brute_force(x, codebook)
    for chunk in (None, 7):
        idx, _ = nearest_code_reference(x, codebook, chunk_size=chunk)
        assert torch.equal(idx, ref_idx)


@pytest.mark.parametrize("offset", [1e4, 1e6, -3e7])
def test_huge_common_offset(offset: float) -> None:
    # Points and codes far from the origin with O(1) spread: the naive fp32 expansion
    # ‖e‖² − 2·x·e loses every significant bit (‖e‖² ~ 1e13..1e15 vs gaps ~ 1).
    g = _gen(3)
    codebook = offset + torch.randn(50, 16, generator=g)
    x = offset + torch.randn(200, 16, generator=g)
    ref_idx, ref_dist = brute_force(x, codebook)
    naive = ((codebook * codebook).sum(1) - 2 * x @ codebook.T).argmin(1)
    assert not torch.equal(naive, ref_idx)  # the adversarial case really is adversarial
    idx, dist = nearest_code_reference(x, codebook)
    assert torch.equal(idx, ref_idx)
    torch.testing.assert_close(dist.double(), ref_dist, rtol=1e-6, atol=0)


@pytest.mark.parametrize("scale", [1e-30, 1e18, 1e30])  # the argmin is exact for all three
def test_huge_and_tiny_magnitudes(scale: float) -> None:
    # Squares overflow (1e60) or underflow (1e-60) fp32 without rescaling.
    g = _gen(4)
    codebook = torch.randn(30, 12, generator=g) * scale
    x = torch.randn(90, 12, generator=g) * scale
    ref_idx, ref_dist = brute_force(x, codebook)
    idx, dist = nearest_code_reference(x, codebook)
    assert torch.equal(idx, ref_idx)
    if scale == 1e18:  # the distance itself is representable in fp32 (< 3.4e38)
        torch.testing.assert_close(dist.double(), ref_dist, rtol=1e-6, atol=0)
    elif scale > 1e18:  # ~1e61 overflows fp32: +inf, never NaN
        assert torch.isinf(dist).all()
    else:  # ~1e-59 underflows fp32 to 0
        assert (dist == 0).all()


def test_far_away_queries_use_exact_rerank() -> None:
    # Queries far from a tightly clustered codebook: near-ties are everywhere at fp32 precision.
    g = _gen(5)
    codebook = torch.randn(64, 8, generator=g) * 1e-3
    x = 1e3 + torch.randn(50, 8, generator=g)
    idx, _ = nearest_code_reference(x, codebook)
    assert torch.equal(idx, brute_force(x, codebook)[0])


def test_fp64_inputs_huge_values() -> None:
    g = _gen(6)
    codebook = torch.randn(20, 5, generator=g, dtype=torch.float64) * 1e200
    x = torch.randn(40, 5, generator=g, dtype=torch.float64) * 1e200
    # Brute force on rescaled data (argmin is scale-invariant; 1e400 overflows fp64).
    idx, _ = nearest_code_reference(x, codebook)
    assert torch.equal(idx, brute_force(x * 1e-200, codebook * 1e-200)[0])


def test_low_precision_inputs_are_upcast() -> None:
    g = _gen(7)
    for dtype in (torch.bfloat16, torch.float16):
        x = torch.randn(64, 16, generator=g).to(dtype)
        codebook = torch.randn(32, 16, generator=g).to(dtype)
        idx, dist = nearest_code(x, codebook, backend="torch")
        ref_idx, ref_dist = brute_force(x, codebook)
        assert torch.equal(idx, ref_idx)
        assert dist.dtype == torch.float32
        torch.testing.assert_close(dist.double(), ref_dist, rtol=1e-6, atol=1e-6)


def test_edge_sizes() -> None:
    g = _gen(8)
    codebook = torch.randn(7, 3, generator=g)
    # K = 1: everything maps to code 0.
    x = torch.randn(5, 3, generator=g)
    idx, dist = nearest_code_reference(x, codebook[:1])
    assert idx.tolist() == [0] * 5
    torch.testing.assert_close(dist, ((x - codebook[0]) ** 2).sum(1), rtol=1e-6, atol=1e-7)
    # N = 1.
    idx, _ = nearest_code_reference(x[:1], codebook)
    assert torch.equal(idx, brute_force(x[:1], codebook)[0])
    # N = 0: empty outputs with the right dtypes.
    idx, dist = nearest_code(torch.empty(0, 3), codebook, backend="torch")
    assert idx.shape == (0,) and idx.dtype == torch.int64
    assert dist.shape == (0,) and dist.dtype == torch.float32
    # Zero codebook and zero inputs.
    idx, dist = nearest_code_reference(torch.zeros(3, 3), torch.zeros(4, 3))
    assert idx.tolist() == [0, 0, 0] and dist.tolist() == [0.0, 0.0, 0.0]


def test_non_contiguous_inputs() -> None:
    g = _gen(9)
    big_x = torch.randn(40, 30, generator=g)
    big_c = torch.randn(24, 50, generator=g)
    x = big_x.T[::2]  # (15, 40), strided
    codebook = big_c[::2, 5:45]  # (12, 40), strided rows and offset
    assert not x.is_contiguous() and not codebook.is_contiguous()
    idx, dist = nearest_code(x, codebook, backend="torch")
    idx_c, dist_c = nearest_code(x.contiguous(), codebook.contiguous(), backend="torch")
    assert torch.equal(idx, idx_c) and torch.equal(dist, dist_c)
    assert torch.equal(idx, brute_force(x, codebook)[0])


@pytest.mark.parametrize("chunk", [1, 3, 7, 64, 1000])
def test_chunked_equals_unchunked_exactly(chunk: int) -> None:
    g = _gen(10)
    x = torch.randn(101, 10, generator=g)  # 101 is prime: no chunk size divides it
    codebook = torch.randn(33, 10, generator=g)
    codebook[20] = codebook[4]
    full_idx, full_dist = nearest_code_reference(x, codebook, chunk_size=10_000)
    idx, dist = nearest_code_reference(x, codebook, chunk_size=chunk)
    assert torch.equal(idx, full_idx)
    assert torch.equal(dist, full_dist)
    assert (idx != 20).all()


def test_score_chunks_respect_the_byte_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    # No N×K tensor: with a 4 KiB budget and K = 16 fp32 codes, a chunk holds
    # 4096 // (16·(4 + 1)) = 51 rows, so every score matrix is at most (51, 16).
    import kexue.vq._reference as functional

    shapes: list[tuple[int, ...]] = []
    real_addmm = torch.addmm

    def recording_addmm(*args, **kwargs):
        out = real_addmm(*args, **kwargs)
        shapes.append(tuple(out.shape))
        return out

    g = _gen(15)
    x, codebook = torch.randn(200, 6, generator=g), torch.randn(16, 6, generator=g)
    expected = nearest_code_reference(x, codebook, chunk_size=1000)
    monkeypatch.setattr(functional, "DEFAULT_CHUNK_BYTES", 4096)
    monkeypatch.setattr(functional.torch, "addmm", recording_addmm)
    idx, dist = nearest_code_reference(x, codebook)
    monkeypatch.undo()
    assert shapes == [(51, 16)] * 3 + [(47, 16)]
    assert torch.equal(idx, expected[0]) and torch.equal(dist, expected[1])


def test_cosine_equals_argmax_cosine_similarity() -> None:
    g = _gen(11)
    x = torch.randn(120, 6, generator=g) * torch.rand(120, 1, generator=g) * 10
    codebook = torch.randn(40, 6, generator=g) * 5
    idx, dist = nearest_code(x, codebook, metric="cosine", backend="torch")
    cos = (
        torch.nn.functional.normalize(x.double(), dim=1)
        @ torch.nn.functional.normalize(codebook.double(), dim=1).T
    )
    best_cos, best = cos.max(dim=1)
    assert torch.equal(idx, best)
    torch.testing.assert_close(dist.double(), 2 - 2 * best_cos, rtol=0, atol=1e-6)
    # A zero row has cosine 0 with every code: all tie, the lowest index wins and d = ‖0 − ê‖² = 1.
    idx0, dist0 = nearest_code(torch.zeros(2, 6), codebook, metric="cosine", backend="torch")
    assert idx0.tolist() == [0, 0] and dist0.tolist() == [1.0, 1.0]
    # Scaling a code does not change the cosine assignment.
    idx2, _ = nearest_code(x, codebook * 1e3, metric="cosine", backend="torch")
    assert torch.equal(idx, idx2)


def test_codebook_sqnorm_is_deprecated_ignored_and_still_shape_checked() -> None:
    g = _gen(12)
    x, codebook = torch.randn(9, 4, generator=g), torch.randn(5, 4, generator=g)
    wrong = (codebook**2).sum(1) + 1e4 * torch.arange(5)  # would change the argmin if used
    for lookup in (nearest_code, nearest_code_reference):
        with pytest.warns(DeprecationWarning, match="codebook_sqnorm is deprecated") as rec:
            idx, _ = lookup(x, codebook, codebook_sqnorm=wrong)
        assert rec[0].filename == __file__  # points at the caller
        assert torch.equal(idx, brute_force(x, codebook)[0])
        with (
            pytest.warns(DeprecationWarning, match="codebook_sqnorm"),
            pytest.raises(ValueError, match=r"codebook_sqnorm must have shape \(K,\) = \(5,\)"),
        ):
            lookup(x, codebook, codebook_sqnorm=torch.ones(4))


def test_bad_inputs_name_the_argument() -> None:
    x, codebook = torch.randn(6, 4), torch.randn(5, 4)
    with pytest.raises(ValueError, match=r"x.*\(6, 3\).*codebook.*\(5, 4\)"):
        nearest_code(x[:, :3], codebook, backend="torch")
    with pytest.raises(ValueError, match="x must be 2-D"):
        nearest_code(x[0], codebook, backend="torch")
    with pytest.raises(ValueError, match="codebook must be 2-D"):
        nearest_code(x, codebook[0], backend="torch")
    with pytest.raises(ValueError, match=r"codebook.*K >= 1"):
        nearest_code(x, codebook[:0], backend="torch")
    bad = x.clone()
    bad[2, 1] = float("nan")
    with pytest.raises(ValueError, match="x contains NaN"):
        nearest_code(bad, codebook, backend="torch")
    bad[2, 1] = float("inf")
    with pytest.raises(ValueError, match="x contains NaN or inf"):
        nearest_code_reference(bad, codebook)
    with pytest.raises(ValueError, match="codebook contains"):
        nearest_code(x, codebook * float("nan"), backend="torch")
    with pytest.raises(ValueError, match="metric"):
        nearest_code(x, codebook, metric="l1", backend="torch")
    with pytest.raises(ValueError, match="precision"):
        nearest_code(x, codebook, precision="bf16", backend="torch")
    with pytest.raises(ValueError, match="chunk_size"):
        nearest_code_reference(x, codebook, chunk_size=0)
    with pytest.raises(ValueError, match="backend"):
        nearest_code(x, codebook, backend="cuda")


def test_forced_triton_on_cpu_without_interpreter_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("triton")
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    monkeypatch.delenv("KEXUE_VQ_BACKEND", raising=False)
    x, codebook = torch.randn(4, 3), torch.randn(2, 3)
    with pytest.raises(RuntimeError, match="CUDA"):
        nearest_code(x, codebook, backend="triton")
    with pytest.raises(RuntimeError, match="CUDA"):
        code_counts_and_sums(torch.zeros(4, dtype=torch.long), x, 2, backend="triton")


def test_dispatch_routes_to_the_kernel_modules(monkeypatch: pytest.MonkeyPatch) -> None:
    # Stand-in kernel modules record their calls: "auto" on CPU must not reach them; a forced
    # "triton" (allowed on CPU under TRITON_INTERPRET=1) must, with the documented arguments.
    pytest.importorskip("triton")
    calls: list[tuple[str, dict]] = []

    def fake_assign(x, codebook, **kw):
        calls.append(("assign", kw))
        return torch.zeros(x.shape[0], dtype=torch.int64), torch.zeros(x.shape[0])

    def fake_epilogue(indices, x, num_codes, **kw):
        calls.append(("epilogue", kw))
        return torch.zeros(num_codes), torch.zeros(num_codes, x.shape[1])

    monkeypatch.setitem(
        sys.modules,
        "kexue.vq._kernels.triton_assign",
        SimpleNamespace(nearest_code_triton=fake_assign),
    )
    monkeypatch.setitem(
        sys.modules,
        "kexue.vq._kernels.triton_epilogue",
        SimpleNamespace(code_counts_and_sums_triton=fake_epilogue),
    )
    monkeypatch.delenv("KEXUE_VQ_BACKEND", raising=False)
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    x, codebook = torch.randn(4, 3), torch.randn(2, 3)
    idx = torch.tensor([0, 1, 1, 0])
    ref = nearest_code_reference(x, codebook)
    out = nearest_code(x, codebook)
    code_counts_and_sums(idx, x, 2)
    assert calls == []
    assert torch.equal(out[0], ref[0]) and torch.equal(out[1], ref[1])
    sq = (codebook**2).sum(1)
    with pytest.warns(DeprecationWarning, match="codebook_sqnorm"):
        nearest_code(x, codebook, backend="triton", metric="cosine", codebook_sqnorm=sq)
    code_counts_and_sums(idx, x, 2, backend="triton", deterministic=False)
    assert calls[0][0] == "assign" and calls[1] == ("epilogue", {"deterministic": False})
    assert calls[0][1]["metric"] == "cosine" and calls[0][1]["precision"] == "auto"
    assert "codebook_sqnorm" not in calls[0][1]  # deprecated: not passed on
    monkeypatch.setenv("KEXUE_VQ_BACKEND", "triton")  # the env var overrides "auto"
    nearest_code(x, codebook)
    assert len(calls) == 3
    monkeypatch.setenv("KEXUE_VQ_BACKEND", "bogus")
    with pytest.raises(ValueError, match="KEXUE_VQ_BACKEND"):
        nearest_code(x, codebook)


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(0, 40),
    k=st.integers(1, 20),
    d=st.integers(1, 9),
    chunk=st.one_of(st.none(), st.integers(1, 13)),
    dup=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_property_shapes_and_brute_force(
    n: int, k: int, d: int, chunk: int | None, dup: bool, seed: int
) -> None:
    g = _gen(seed)
    x = torch.randn(n, d, generator=g)
    codebook = torch.randn(k, d, generator=g)
    if dup and k > 1:
        codebook[-1] = codebook[0]
    idx, dist = nearest_code_reference(x, codebook, chunk_size=chunk)
    assert idx.shape == (n,) and dist.shape == (n,)
    assert (dist >= 0).all()
    if n:
        ref_idx, ref_dist = brute_force(x, codebook)
        assert torch.equal(idx, ref_idx)
        torch.testing.assert_close(dist.double(), ref_dist, rtol=1e-6, atol=1e-6)


# --- counts, sums, metrics -------------------------------------------------------------------


def test_counts_and_sums_match_brute_force() -> None:
    g = _gen(13)
    k = 9
    x = torch.randn(200, 5, generator=g)
    idx = torch.randint(k - 2, (200,), generator=g)  # codes 7, 8 unused
    counts, sums = code_counts_and_sums(idx, x, k, backend="torch")
    one_hot = torch.nn.functional.one_hot(idx, k).double()  # brute force, tests only
    assert counts.dtype == torch.float32 and sums.dtype == torch.float32
    torch.testing.assert_close(counts.double(), one_hot.sum(0), rtol=0, atol=0)
    torch.testing.assert_close(sums.double(), one_hot.T @ x.double(), rtol=1e-6, atol=1e-5)
    assert counts[7:].tolist() == [0.0, 0.0] and (sums[7:] == 0).all()
    counts2, sums2 = code_counts_and_sums(idx, x, k, backend="torch")
    assert torch.equal(counts, counts2)
    assert torch.equal(sums, sums2)  # deterministic on CPU
    # Empty input.
    c0, s0 = code_counts_and_sums(idx[:0], x[:0], k, backend="torch")
    assert torch.equal(c0, torch.zeros(k)) and torch.equal(s0, torch.zeros(k, 5))


def test_counts_and_sums_bad_inputs() -> None:
    x = torch.randn(6, 2)
    idx = torch.tensor([0, 1, 2, 0, 1, 2])
    with pytest.raises(ValueError, match=r"indices.*\[0, 3\).*\[0, 5\]"):
        code_counts_and_sums(idx + torch.tensor([0, 0, 0, 0, 0, 3]), x, 3)
    with pytest.raises(ValueError, match=r"indices.*range"):
        code_counts_and_sums(idx - 1, x, 3)
    with pytest.raises(ValueError, match="same N"):
        code_counts_and_sums(idx[:5], x, 3)
    with pytest.raises(ValueError, match="indices must be a 1-D integer"):
        code_counts_and_sums(idx.float(), x, 3)
    with pytest.raises(ValueError, match="x must be a 2-D"):
        code_counts_and_sums(idx, x[:, 0], 3)
    with pytest.raises(ValueError, match="num_codes"):
        code_counts_and_sums(idx, x, 0)


def test_perplexity_closed_forms() -> None:
    k = 16
    torch.testing.assert_close(perplexity(torch.full((k,), 3.0)), torch.tensor(16.0))
    one = torch.zeros(k)
    one[5] = 42.0
    torch.testing.assert_close(perplexity(one), torch.tensor(1.0))
    # Two codes with p = (1/4, 3/4): exp(H) with H = −(¼ ln ¼ + ¾ ln ¾).
    two = torch.tensor([1.0, 3.0, 0.0])
    h = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    torch.testing.assert_close(perplexity(two), torch.tensor(math.exp(h)), rtol=1e-6, atol=0)
    assert perplexity(torch.zeros(k)).item() == 0.0
    batched = perplexity(torch.stack([torch.full((k,), 1.0), one]))
    torch.testing.assert_close(batched, torch.tensor([16.0, 1.0]))
    with pytest.raises(ValueError, match="counts"):
        perplexity(torch.tensor([1.0, -1.0]))


def test_usage_and_dead_counts_vs_brute_force() -> None:
    g = _gen(14)
    counts = torch.randint(0, 3, (50,), generator=g).float()
    used = sum(1 for c in counts.tolist() if c > 0)
    torch.testing.assert_close(usage(counts), torch.tensor(used / 50))
    assert usage(torch.zeros(4)).item() == 0.0
    assert usage(torch.ones(4)).item() == 1.0
    with pytest.raises(ValueError, match="counts"):
        usage(torch.tensor(3.0))


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, 30),
    k=st.integers(1, 25),
    d=st.sampled_from([1, 2, 5, 17]),
    offset=st.sampled_from([0.0, 1e3, 1e5, -1e7]),
    scale=st.sampled_from([1e-3, 1.0, 1e3]),
    seed=st.integers(0, 2**16),
)
def test_property_adversarial_offsets_and_scales(
    n: int, k: int, d: int, offset: float, scale: float, seed: int
) -> None:
    # A common offset up to 1e10× the spread: the fp32 expansion alone would be noise here.
    g = _gen(seed)
    codebook = offset + scale * torch.randn(k, d, generator=g)
    x = offset + scale * torch.randn(n, d, generator=g)
    if k > 2:
        codebook[k // 2] = codebook[1]
    idx, _ = nearest_code_reference(x, codebook, chunk_size=7)
    assert torch.equal(idx, brute_force(x, codebook)[0])


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_code_counts_and_sums_rejects_nan_and_inf(bad: float) -> None:
    x = torch.zeros(4, 3)
    x[2, 1] = bad
    with pytest.raises(ValueError, match=r"x contains NaN or inf \(shape \(4, 3\)\)"):
        code_counts_and_sums(torch.zeros(4, dtype=torch.long), x, 2)
    with pytest.raises(ValueError, match=r"indices must lie in \[0, 2\), got range \[0, 5\]"):
        code_counts_and_sums(torch.tensor([0, 5, 1, 1]), torch.zeros(4, 3), 2)
