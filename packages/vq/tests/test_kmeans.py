"""k-means initialisation (spec §2.6, §4 item 10): recovery of mixture centres, quantisation error,
empty clusters, few samples, bad input."""

from __future__ import annotations

import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from kexue.vq.functional import nearest_code
from kexue.vq.kmeans import kmeans


def _mixture(seed: int, k: int = 6, d: int = 4, per: int = 60, spread: float = 0.05):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(k, d, generator=g) * 10
    labels = torch.arange(k).repeat_interleave(per)
    x = centres[labels] + spread * torch.randn(k * per, d, generator=g)
    perm = torch.randperm(k * per, generator=g)
    return x[perm], centres, labels[perm]


def _quant_error(x: torch.Tensor, codebook: torch.Tensor) -> float:
    return float(nearest_code(x, codebook, backend="torch")[1].mean())


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_plusplus_recovers_well_separated_mixture(seed: int) -> None:
    x, centres, _ = _mixture(seed)
    g = torch.Generator().manual_seed(100 + seed)
    cent, counts = kmeans(x, 6, iters=10, generator=g, backend="torch")
    assert cent.shape == (6, 4) and cent.dtype == torch.float32
    match = torch.cdist(centres, cent).argmin(dim=1)  # test-only brute force
    assert sorted(match.tolist()) == list(range(6))
    # Each centroid is the mean of 60 points with std 0.05: within 0.03 (> 4 sigma of the mean).
    torch.testing.assert_close(cent[match], centres, rtol=0, atol=0.03)
    assert counts[match].tolist() == [60.0] * 6


def test_random_seeding_picks_distinct_samples() -> None:
    x, _, _ = _mixture(0)
    seeds, counts = kmeans(x, 40, iters=0, plusplus=False, generator=torch.Generator())
    rows = {tuple(r) for r in x.tolist()}
    assert all(tuple(r) in rows for r in seeds.tolist())
    assert len({tuple(r) for r in seeds.tolist()}) == 40  # without replacement
    assert counts.sum().item() == x.shape[0]


def test_centroids_are_means_of_final_assignment() -> None:
    # The returned counts are those of the last Lloyd assignment (to the centroids after
    # iters - 1 steps), whose cluster means are the returned centroids: N_k = counts,
    # m_k = counts·e_k is a consistent EMA initialisation (spec §4 item 8).
    x, _, _ = _mixture(1, spread=4.0)
    prev, _ = kmeans(x, 6, iters=2, generator=torch.Generator().manual_seed(0))
    cent, counts = kmeans(x, 6, iters=3, generator=torch.Generator().manual_seed(0))
    idx, _ = nearest_code(x, prev, backend="torch")
    brute_counts = torch.bincount(idx, minlength=6).double()
    assert counts.tolist() == brute_counts.tolist()
    used = brute_counts > 0
    means = torch.zeros(6, 4, dtype=torch.float64).index_add_(0, idx, x.double())
    means = means[used] / brute_counts[used, None]
    torch.testing.assert_close(cent[used].double(), means, rtol=0, atol=1e-5)
    assert not torch.equal(cent, prev)


def test_lowers_quantisation_error_vs_random_init() -> None:
    g = torch.Generator().manual_seed(2)
    x = torch.cat([torch.randn(300, 8, generator=g) * s + m for s, m in [(1, 0), (0.3, 4)]])
    k = 16
    random_codes = torch.randn(k, 8, generator=torch.Generator().manual_seed(5))
    seeds_only, _ = kmeans(x, k, iters=0, generator=torch.Generator().manual_seed(5))
    cent, _ = kmeans(x, k, iters=10, generator=torch.Generator().manual_seed(5))
    e_random, e_seed, e_km = (_quant_error(x, c) for c in (random_codes, seeds_only, cent))
    assert e_km < 0.5 * e_random
    assert e_km < e_seed  # Lloyd steps improve on the k-means++ seeds
    # Lloyd's objective is monotone: more iterations never hurt (same seeding).
    cent2, _ = kmeans(x, k, iters=20, generator=torch.Generator().manual_seed(5))
    assert _quant_error(x, cent2) <= e_km + 1e-6


def test_empty_clusters_keep_their_old_centroid() -> None:
    # 4 samples, 6 codes (on_few_samples="repeat"): every sample is itself a seed, so the two
    # noisy copies never win a sample and must stay exactly where they were seeded.
    x = torch.tensor([[0.0, 0.0], [0.1, 0.0], [10.0, 0.0], [10.1, 0.0]])
    kwargs = {"on_few_samples": "repeat", "plusplus": False, "backend": "torch"}
    with pytest.warns(UserWarning, match="num_codes=6"):
        cent, counts = kmeans(x, 6, iters=5, generator=torch.Generator().manual_seed(0), **kwargs)
    with pytest.warns(UserWarning, match="num_codes=6"):
        seeds, _ = kmeans(x, 6, iters=0, generator=torch.Generator().manual_seed(0), **kwargs)
    empty = counts == 0
    assert int(empty.sum()) == 2
    assert torch.equal(cent[empty], seeds[empty])
    assert torch.equal(cent[~empty], seeds[~empty])  # singleton clusters: mean = the sample
    assert counts[~empty].tolist() == [1.0] * 4


def test_few_samples_error_by_default() -> None:
    x = torch.randn(5, 3)
    with pytest.raises(ValueError, match=r"x has N=5.*\(5, 3\).*num_codes=8"):
        kmeans(x, 8)


def test_few_samples_repeat_seeds_every_sample_and_warns() -> None:
    g = torch.Generator().manual_seed(4)
    x = torch.randn(5, 3, generator=g)
    with pytest.warns(UserWarning, match="only 5 samples"):
        seeds, counts = kmeans(
            x, 12, iters=0, generator=torch.Generator().manual_seed(1), on_few_samples="repeat"
        )
    # The first 5 seeds are exactly the samples (in a random order), the rest noisy copies.
    assert sorted(map(tuple, seeds[:5].tolist())) == sorted(map(tuple, x.tolist()))
    dist_to_data = torch.cdist(seeds[5:], x).min(dim=1).values
    assert (dist_to_data > 0).all() and (dist_to_data < 0.2).all()
    assert counts.sum().item() == 5
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cent, _ = kmeans(x, 12, generator=torch.Generator().manual_seed(1), on_few_samples="repeat")
    assert torch.isfinite(cent).all()
    assert _quant_error(x, cent) == 0.0  # every sample is its own centroid


def test_seeding_is_reproducible_with_generator() -> None:
    x, _, _ = _mixture(5, spread=1.0)
    a = kmeans(x, 6, generator=torch.Generator().manual_seed(9))
    b = kmeans(x, 6, generator=torch.Generator().manual_seed(9))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_duplicate_samples_plusplus_does_not_fail() -> None:
    # Only 2 distinct points but K = 4: D² weights become all zero after two seeds.
    x = torch.tensor([[0.0, 1.0]] * 5 + [[3.0, 3.0]] * 5)
    cent, counts = kmeans(x, 4, generator=torch.Generator().manual_seed(0))
    assert counts.sum().item() == 10
    assert _quant_error(x, cent) == 0.0


def test_bad_inputs() -> None:
    x = torch.randn(10, 3)
    with pytest.raises(ValueError, match="x must be a 2-D"):
        kmeans(x[0], 2)
    bad = x.clone()
    bad[3, 0] = float("nan")
    with pytest.raises(ValueError, match="x contains NaN"):
        kmeans(bad, 2)
    with pytest.raises(ValueError, match="num_codes"):
        kmeans(x, 0)
    with pytest.raises(ValueError, match="iters"):
        kmeans(x, 2, iters=-1)
    with pytest.raises(ValueError, match="on_few_samples"):
        kmeans(x, 2, on_few_samples="pad")
    with pytest.raises(ValueError, match="sync"):
        kmeans(x, 2, sync="yes")
    with pytest.raises(ValueError, match="x has no samples"):
        kmeans(x[:0], 2, on_few_samples="repeat")


@settings(max_examples=15, deadline=None)
@given(
    n=st.integers(1, 30),
    k=st.integers(1, 8),
    d=st.integers(1, 5),
    iters=st.integers(0, 3),
    seed=st.integers(0, 2**16),
)
def test_property_shapes_and_counts(n: int, k: int, d: int, iters: int, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cent, counts = kmeans(x, k, iters=iters, generator=g, on_few_samples="repeat")
    assert cent.shape == (k, d) and cent.dtype == torch.float64  # fp64 in, fp64 out
    assert counts.shape == (k,) and counts.sum().item() == n
    assert torch.isfinite(cent).all()


# ------------------------------------------------------------------ scale (issue 14, part 8)
@pytest.mark.parametrize("plusplus", [True, False])
def test_huge_fp32_inputs_equal_the_scaled_run(plusplus: bool) -> None:
    x, _, _ = _mixture(0)
    big = x * 1e20  # D² would overflow fp32 without the power-of-two rescale
    cent_big, counts_big = kmeans(
        big, 6, generator=torch.Generator().manual_seed(3), plusplus=plusplus
    )
    cent, counts = kmeans(
        big / 1e20, 6, generator=torch.Generator().manual_seed(3), plusplus=plusplus
    )
    assert torch.isfinite(cent_big).all()
    assert torch.equal(counts_big, counts)
    torch.testing.assert_close(cent_big / 1e20, cent, rtol=1e-5, atol=1e-6)


def test_huge_fp64_inputs_run_and_come_back_in_fp64() -> None:
    x, _, _ = _mixture(0)
    big = x.double() * 1e300
    cent_big, counts_big = kmeans(big, 6, generator=torch.Generator().manual_seed(3))
    cent, counts = kmeans(x.double(), 6, generator=torch.Generator().manual_seed(3))
    assert cent_big.dtype == torch.float64 and torch.isfinite(cent_big).all()
    assert torch.equal(counts_big, counts)
    torch.testing.assert_close(cent_big / 1e300, cent, rtol=1e-5, atol=1e-6)


def test_quantizer_kmeans_init_on_huge_inputs() -> None:
    from kexue.vq.quantizer import VectorQuantizer

    x, _, _ = _mixture(0)
    vq = VectorQuantizer(6, x.shape[1], kmeans_init=True, backend="torch")
    vq.init_codebook_(x * 1e20)
    assert torch.isfinite(vq.embed).all() and torch.isfinite(vq.embed_avg).all()
