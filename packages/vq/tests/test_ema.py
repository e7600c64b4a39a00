"""EMA codebook (spec §2.4; §4 items 6–8): closed-form recursion, init consistency, k-means init."""

from __future__ import annotations

import pytest
import torch

from kexue.vq.ema import ema_codebook, ema_update_, laplace_smoothed
from kexue.vq.quantizer import VectorQuantizer


def _closed_form(n0, m0, counts_seq, sums_seq, gamma):
    """N_T = γ^T·N_0 + (1−γ)·Σ_t γ^(T−1−t)·n_t, likewise for m (not the loop of the code)."""
    steps = len(counts_seq)
    weights = torch.tensor(
        [(1 - gamma) * gamma ** (steps - 1 - t) for t in range(steps)], dtype=torch.float64
    )
    n = gamma**steps * n0 + torch.einsum("t,tk->k", weights, torch.stack(counts_seq))
    m = gamma**steps * m0 + torch.einsum("t,tkd->kd", weights, torch.stack(sums_seq))
    return n, m


def test_ema_T_steps_equal_closed_form_with_laplace() -> None:
    g = torch.Generator().manual_seed(1)
    num_codes, dim, steps, gamma, eps = 7, 3, 9, 0.93, 1e-3
    n0 = torch.rand(num_codes, generator=g, dtype=torch.float64) + 0.5
    m0 = torch.randn(num_codes, dim, generator=g, dtype=torch.float64)
    counts_seq, sums_seq = [], []
    for _ in range(steps):
        idx = torch.randint(num_codes, (20,), generator=g)
        x = torch.randn(20, dim, generator=g, dtype=torch.float64)
        counts_seq.append(torch.bincount(idx, minlength=num_codes).to(torch.float64))
        sums_seq.append(torch.zeros(num_codes, dim, dtype=torch.float64).index_add_(0, idx, x))
    n, m = n0.clone(), m0.clone()
    for c, s in zip(counts_seq, sums_seq, strict=True):
        ema_update_(n, m, c, s, decay=gamma)
    n_ref, m_ref = _closed_form(n0, m0, counts_seq, sums_seq, gamma)
    torch.testing.assert_close(n, n_ref, atol=1e-12, rtol=0)
    torch.testing.assert_close(m, m_ref, atol=1e-12, rtol=0)
    total = n_ref.sum()
    smoothed = torch.stack([(n_ref[k] + eps) / (total + num_codes * eps) * total for k in range(7)])
    torch.testing.assert_close(laplace_smoothed(n, eps=eps), smoothed, atol=1e-12, rtol=0)
    torch.testing.assert_close(laplace_smoothed(n, eps=eps).sum(), total, atol=1e-12, rtol=0)
    codebook = torch.stack([m_ref[k] / smoothed[k] for k in range(num_codes)])
    torch.testing.assert_close(ema_codebook(n, m, eps=eps), codebook, atol=1e-12, rtol=0)


def _one_step_unused_ratio(n_init: torch.Tensor, m_scale: float) -> tuple[float, float]:
    """K = 64, D = 8, one batch using codes 0..31: norm ratio of an unused and a used code."""
    g = torch.Generator().manual_seed(3)
    num_codes, dim = 64, 8
    e = torch.randn(num_codes, dim, generator=g, dtype=torch.float64)
    n = n_init.clone()
    m = e * m_scale
    idx = torch.arange(32).repeat(4)
    x = e[idx] + 0.1 * torch.randn(idx.shape[0], dim, generator=g, dtype=torch.float64)
    counts = torch.bincount(idx, minlength=num_codes).to(torch.float64)
    sums = torch.zeros(num_codes, dim, dtype=torch.float64).index_add_(0, idx, x)
    ema_update_(n, m, counts, sums, decay=0.99)
    new = ema_codebook(n, m, eps=1e-5)
    unused = (new[40] - e[40]).norm() / e[40].norm()
    ratio = new[40].norm() / e[40].norm()
    return float(unused), float(ratio)


def test_consistent_init_keeps_unused_code_within_one_minus_gamma() -> None:
    rel_move, _ = _one_step_unused_ratio(torch.ones(64, dtype=torch.float64), 1.0)
    assert rel_move <= 1 - 0.99  # O(1 − γ) bound
    assert rel_move < 1e-6  # and in fact ≈ ε-small (spec §2.4)


def test_rosinality_init_flings_unused_code_away() -> None:
    """Regression: N = 0, m = e (rosinality port) multiplies an unused code by ≈ γ/ε ≈ 10⁵."""
    _, ratio = _one_step_unused_ratio(torch.zeros(64, dtype=torch.float64), 1.0)
    assert ratio > 1e3
    assert ratio == pytest.approx(0.99 / 1e-5, rel=0.05)


def test_ema_update_validates_shapes() -> None:
    n, m = torch.ones(4), torch.zeros(4, 2)
    with pytest.raises(ValueError, match="counts"):
        ema_update_(n, m, torch.ones(5), torch.zeros(4, 2), decay=0.9)
    with pytest.raises(ValueError, match="sums"):
        ema_update_(n, m, torch.ones(4), torch.zeros(4, 3), decay=0.9)
    with pytest.raises(ValueError, match="decay"):
        ema_update_(n, m, torch.ones(4), torch.zeros(4, 2), decay=1.5)
    with pytest.raises(ValueError, match="embed_avg"):
        ema_codebook(n, torch.zeros(3, 2))


def _blobs(g: torch.Generator, num_centres: int = 4, per: int = 25, dim: int = 2) -> torch.Tensor:
    centres = torch.tensor([[10.0 * i, -7.0 * i] for i in range(num_centres)])[:, :dim]
    x = centres.repeat_interleave(per, 0) + 0.3 * torch.randn(num_centres * per, dim, generator=g)
    return x[torch.randperm(x.shape[0], generator=g)]


def test_kmeans_init_sets_consistent_ema_and_one_step_keeps_cluster_means() -> None:
    """lucidrains#66: after k-means N = bins, m = e·bins; one EMA step on the same batch = no-op."""
    pytest.importorskip("kexue.vq.kmeans")
    g = torch.Generator().manual_seed(5)
    x = _blobs(g)
    vq = VectorQuantizer(4, 2, kmeans_init=True, decay=0.99, backend="torch")
    vq.train()
    out = vq(x)
    assert bool(vq.initted)
    # the codes are the cluster means of the batch's assignment (well-separated blobs)
    idx = out.indices
    bins = torch.bincount(idx, minlength=4).to(torch.float32)
    assert torch.all(bins == 25)
    means = torch.zeros(4, 2).index_add_(0, idx, x) / bins.unsqueeze(-1)
    torch.testing.assert_close(vq.codebook, means, atol=1e-4, rtol=1e-4)
    # the forward above ran k-means, then exactly one EMA step: the state is still consistent
    torch.testing.assert_close(vq.cluster_size, bins, atol=1e-5, rtol=0)
    torch.testing.assert_close(vq.embed_avg, means * bins.unsqueeze(-1), atol=1e-3, rtol=1e-5)


def test_kmeans_state_then_ema_step_by_hand() -> None:
    """The same statement without k-means: N = bins, m = e·bins at the cluster means is a fixed
    point of one EMA step with that batch (up to the ε of the Laplace smoothing)."""
    g = torch.Generator().manual_seed(6)
    x = _blobs(g).to(torch.float64)
    idx = torch.div(torch.arange(100), 25, rounding_mode="floor")
    order = torch.argsort(x[:, 0])  # blobs are ordered by their first coordinate
    x = x[order]
    bins = torch.full((4,), 25.0, dtype=torch.float64)
    means = torch.zeros(4, 2, dtype=torch.float64).index_add_(0, idx, x) / 25
    n, m = bins.clone(), means * bins.unsqueeze(-1)
    sums = torch.zeros(4, 2, dtype=torch.float64).index_add_(0, idx, x)
    ema_update_(n, m, bins, sums, decay=0.99)
    torch.testing.assert_close(ema_codebook(n, m, eps=1e-5), means, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ema_codebook(n, m, eps=0.0), means, atol=1e-12, rtol=0)


def test_quantizer_default_init_unused_codes_barely_move() -> None:
    """The same statement through the module: default N = n₀ = 1, m = e (spec §2.4)."""
    g = torch.Generator().manual_seed(7)
    vq = VectorQuantizer(64, 8, decay=0.99, backend="torch")
    codebook = vq.codebook.clone()
    idx = torch.arange(32).repeat(4)
    vq(codebook[idx] + 0.01 * torch.randn(128, 8, generator=g))
    unused = torch.arange(32, 64)
    rel = (vq.codebook[unused] - codebook[unused]).norm(dim=1) / codebook[unused].norm(dim=1)
    assert float(rel.max()) <= 1 - 0.99
    assert float(rel.max()) < 1e-6


# ------------------------------------------------------------------ edge cases (issue 14, part 8)
def test_ema_update_rejects_nan_and_inf_naming_the_argument() -> None:
    n, m = torch.ones(3), torch.zeros(3, 2)
    with pytest.raises(ValueError, match=r"counts contains NaN or inf \(shape \(3,\)\)"):
        ema_update_(n, m, torch.tensor([1.0, float("nan"), 0.0]), torch.zeros(3, 2), decay=0.9)
    with pytest.raises(ValueError, match=r"sums contains NaN or inf \(shape \(3, 2\)\)"):
        ema_update_(n, m, torch.ones(3), torch.full((3, 2), float("inf")), decay=0.9)
    assert torch.equal(n, torch.ones(3)) and torch.equal(m, torch.zeros(3, 2))  # untouched


def test_ema_codebook_zero_counts_raise_or_keep_previous() -> None:
    with pytest.raises(ValueError, match=r"codes \[0, 1, 2\] have smoothed count 0.*previous="):
        ema_codebook(torch.zeros(3), torch.zeros(3, 2))
    assert torch.equal(laplace_smoothed(torch.zeros(3)), torch.zeros(3))
    assert torch.equal(laplace_smoothed(torch.zeros(3), eps=0.0), torch.zeros(3))
    prev = torch.arange(6.0).reshape(3, 2)
    assert torch.equal(ema_codebook(torch.zeros(3), torch.zeros(3, 2), previous=prev), prev)
    # eps = 0: only the empty code keeps its previous row; the others are m / N
    n, m = torch.tensor([2.0, 0.0, 4.0]), torch.tensor([[2.0, 4.0], [0.0, 0.0], [4.0, 8.0]])
    out = ema_codebook(n, m, eps=0.0, previous=prev)
    assert torch.equal(out, torch.tensor([[1.0, 2.0], [2.0, 3.0], [1.0, 2.0]]))


@pytest.mark.parametrize(("decay", "eps"), [(0.0, 0.0), (0.0, 1e-5), (0.5, 0.0)])
def test_unused_codes_stay_finite(decay: float, eps: float) -> None:
    torch.manual_seed(0)
    vq = VectorQuantizer(4, 2, decay=decay, eps=eps)
    vq.load_codebook(torch.tensor([[0.0, 0.0], [10.0, 10.0], [-10.0, 10.0], [10.0, -10.0]]))
    x = torch.randn(16, 2) * 0.1  # every row picks code 0
    for _ in range(3):
        vq(x)
        assert torch.isfinite(vq.embed).all()
    if eps == 0.0:  # smoothed count 0: the unused codes keep their vectors
        assert torch.equal(vq.embed[1:], torch.tensor([[10.0, 10.0], [-10.0, 10.0], [10.0, -10.0]]))
