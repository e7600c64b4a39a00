"""PRDC: brute-force loops, identical sets, coverage of identical distributions, offsets."""

from __future__ import annotations

import pytest
import torch

from kexue.gan_losses.metrics import prdc
from kexue.gan_losses.metrics.prdc import exact_sq_distances

F64 = torch.float64


def _brute_force(real: torch.Tensor, fake: torch.Tensor, k: int, closed: bool) -> dict[str, float]:
    def dist(a, b):
        return sum((float(a[t]) - float(b[t])) ** 2 for t in range(a.shape[0])) ** 0.5

    def radii(x):
        out = []
        for i in range(len(x)):
            ds = sorted(dist(x[i], x[j]) for j in range(len(x)))
            out.append(ds[k])  # k-th nearest other point (index 0 is the point itself)
        return out

    inside = (lambda d, r: d <= r) if closed else (lambda d, r: d < r)
    rr, rf = radii(real), radii(fake)
    n, m = len(real), len(fake)
    dm = [[dist(real[i], fake[j]) for j in range(m)] for i in range(n)]
    precision = sum(any(inside(dm[i][j], rr[i]) for i in range(n)) for j in range(m)) / m
    recall = sum(any(inside(dm[i][j], rf[j]) for j in range(m)) for i in range(n)) / n
    density = sum(inside(dm[i][j], rr[i]) for i in range(n) for j in range(m)) / (k * m)
    coverage = sum(any(inside(dm[i][j], rr[i]) for j in range(m)) for i in range(n)) / n
    return {"precision": precision, "recall": recall, "density": density, "coverage": coverage}


def _reference(real: torch.Tensor, fake: torch.Tensor, k: int, closed: bool) -> dict[str, float]:
    """PRDC with every distance from the reference formula (all pairs, no screening)."""

    def full(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        pairs_a = a[:, None, :].expand(len(a), len(b), -1).reshape(-1, a.shape[1])
        pairs_b = b[None, :, :].expand(len(a), len(b), -1).reshape(-1, a.shape[1])
        return exact_sq_distances(pairs_a, pairs_b).view(len(a), len(b))

    r_real = full(real, real).kthvalue(k + 1, dim=1).values
    r_fake = full(fake, fake).kthvalue(k + 1, dim=1).values
    d = full(real, fake)
    inside = torch.le if closed else torch.lt
    in_real, in_fake = inside(d, r_real[:, None]), inside(d, r_fake[None, :])
    return {
        "precision": float(in_real.any(0).double().mean()),
        "recall": float(in_fake.any(1).double().mean()),
        "density": float(in_real.sum().item() / (k * len(fake))),
        "coverage": float(in_real.any(1).double().mean()),
    }


def _adversarial(case: str) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(11)
    x = torch.randn(160, 6, generator=g, dtype=F64)
    y = torch.randn(140, 6, generator=g, dtype=F64) * 1.2 + 0.1
    if case == "offset":  # a common offset of 1e6 on a spread of 1e-3
        return x * 1e-3 + 1e6, y * 1e-3 + 1e6
    if case == "ties":  # integer lattice: many exactly equal distances and radii
        return (
            torch.randint(0, 3, (160, 4), generator=g).to(F64),
            torch.randint(0, 3, (150, 4), generator=g).to(F64),
        )
    if case == "duplicates":  # every real point four times, fakes partly copies of reals
        return torch.cat([x[:40]] * 4), torch.cat([x[:30], y[:90]])
    return x * 1e-9 + 3.0, y * 1e-9 + 3.0  # "tiny": spread at the float32 resolution of 3


@pytest.mark.parametrize("case", ["offset", "ties", "duplicates", "tiny"])
@pytest.mark.parametrize("boundary", ["strict", "closed"])
def test_float32_screening_equals_the_float64_reference(case: str, boundary: str) -> None:
    real, fake = _adversarial(case)
    expected = _reference(real, fake, 5, boundary == "closed")
    for chunk in (256, 37):
        assert prdc(real, fake, boundary=boundary, chunk_size=chunk) == expected


def test_exact_sq_distances_is_batch_independent() -> None:
    g = torch.Generator().manual_seed(12)
    a, b = torch.randn(500, 7, generator=g, dtype=F64), torch.randn(500, 7, generator=g, dtype=F64)
    whole = exact_sq_distances(a, b)
    assert torch.equal(whole[123:130], exact_sq_distances(a[123:130], b[123:130]))
    assert torch.allclose(whole, ((a - b) ** 2).sum(1), rtol=1e-15, atol=0.0)


@pytest.mark.parametrize("boundary", ["strict", "closed"])
def test_matches_brute_force_loops(boundary: str) -> None:
    g = torch.Generator().manual_seed(0)
    real = torch.randn(50, 3, generator=g, dtype=F64)
    fake = torch.randn(50, 3, generator=g, dtype=F64) * 1.3 + 0.4
    ours = prdc(real, fake, k=5, boundary=boundary, chunk_size=7)
    assert ours == _brute_force(real, fake, 5, boundary == "closed")


def test_identical_sets() -> None:
    x = torch.randn(200, 4, generator=torch.Generator().manual_seed(1))
    out = prdc(x, x.clone())
    assert out["precision"] == out["recall"] == out["coverage"] == 1.0
    assert out["density"] >= 1.0  # every fake sits in its own ball and in its neighbours'


def test_coverage_of_identical_distributions_is_one_minus_half_to_the_k() -> None:
    # Naeem et al. 2020, §4: E[coverage] -> 1 - 2^-k for equal distributions and N = M.
    g = torch.Generator().manual_seed(2)
    for k in (3, 5):
        out = prdc(torch.randn(3000, 2, generator=g), torch.randn(3000, 2, generator=g), k=k)
        assert abs(out["coverage"] - (1 - 2.0**-k)) < 0.012
        assert out["precision"] > 0.95 and out["recall"] > 0.95


def test_a_common_offset_changes_nothing_and_chunks_do_not_matter() -> None:
    g = torch.Generator().manual_seed(3)
    real = torch.randn(120, 5, generator=g, dtype=F64) * 0.01
    fake = torch.randn(90, 5, generator=g, dtype=F64) * 0.012 + 0.002
    base = prdc(real, fake, chunk_size=1024)
    assert prdc(real + 1e5, fake + 1e5, chunk_size=17) == base


def test_mode_dropping_lowers_recall_and_coverage_not_precision() -> None:
    g = torch.Generator().manual_seed(4)
    real = torch.cat([torch.randn(300, 2, generator=g) - 4, torch.randn(300, 2, generator=g) + 4])
    fake = torch.randn(600, 2, generator=g) + 4  # one of the two modes
    out = prdc(real, fake)
    assert out["precision"] > 0.9
    assert 0.4 < out["recall"] < 0.6 and 0.4 < out["coverage"] < 0.6


def test_validation() -> None:
    x = torch.randn(10, 3)
    with pytest.raises(ValueError, match="fake_feats needs at least 6 rows"):
        prdc(x, x[:5])
    with pytest.raises(ValueError, match="boundary"):
        prdc(x, x, boundary="open")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="k must be >= 1"):
        prdc(x, x, k=0)
