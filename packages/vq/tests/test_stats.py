"""CodebookStats: accumulation, EMA, metrics vs brute force, state_dict (spec §2.10, §4 item 11)."""

from __future__ import annotations

import math

import pytest
import torch

from kexue.vq.stats import CodebookStats


def test_sum_mode_accumulates_indices_and_counts() -> None:
    stats = CodebookStats(6)
    stats.update(torch.tensor([[0, 1], [1, 5]]))  # any shape of indices
    stats.update(torch.tensor([0.0, 0.0, 2.0, 0.0, 0.0, 0.5]))  # per-code counts
    assert stats.counts.dtype == torch.float32
    assert stats.counts.tolist() == [1.0, 2.0, 2.0, 0.0, 0.0, 1.5]
    torch.testing.assert_close(stats.usage(), torch.tensor(4 / 6))
    assert stats.dead().item() == 2  # default threshold 1.0: codes 3 and 4
    assert stats.dead(1.5).item() == 3  # strictly below: code 0 (1.0) joins
    assert stats.dead(0.0).item() == 0
    p = torch.tensor([1.0, 2.0, 2.0, 1.5]) / 6.5
    expected = math.exp(-float((p * p.log()).sum()))
    torch.testing.assert_close(stats.perplexity(), torch.tensor(expected), rtol=1e-6, atol=0)


def test_uniform_and_single_code_perplexity() -> None:
    stats = CodebookStats(8)
    stats.update(torch.arange(8).repeat(5))
    torch.testing.assert_close(stats.perplexity(), torch.tensor(8.0))
    assert stats.usage().item() == 1.0 and stats.dead().item() == 0
    stats.reset()
    assert stats.perplexity().item() == 0.0 and stats.usage().item() == 0.0
    stats.update(torch.full((13,), 3))
    torch.testing.assert_close(stats.perplexity(), torch.tensor(1.0))
    assert stats.dead().item() == 7


def test_dead_and_usage_vs_brute_force() -> None:
    g = torch.Generator().manual_seed(0)
    k = 40
    stats = CodebookStats(k)
    all_idx = []
    for _ in range(5):
        idx = torch.randint(0, k, (30,), generator=g) // 2  # upper half never used
        stats.update(idx)
        all_idx.append(idx)
    flat = torch.cat(all_idx).tolist()
    brute = [flat.count(j) for j in range(k)]
    assert stats.counts.tolist() == [float(c) for c in brute]
    for thr in (1.0, 3.0, 5.5):
        assert stats.dead(thr).item() == sum(1 for c in brute if c < thr)
    assert stats.usage().item() == pytest.approx(sum(1 for c in brute if c > 0) / k, abs=1e-7)


def test_ema_mode_recursion() -> None:
    gamma = 0.9
    stats = CodebookStats(3, decay=gamma)
    batches = [torch.tensor([0, 0, 1]), torch.tensor([2]), torch.tensor([1, 1])]
    expected = torch.zeros(3, dtype=torch.float64)
    for b in batches:
        stats.update(b)
        expected = gamma * expected + (1 - gamma) * torch.bincount(b, minlength=3).double()
    torch.testing.assert_close(stats.counts.double(), expected, rtol=1e-6, atol=0)
    stats.sync()  # single process: a no-op on the counts
    torch.testing.assert_close(stats.counts.double(), expected, rtol=1e-6, atol=0)


def test_state_dict_round_trip_and_buffers() -> None:
    stats = CodebookStats(4, decay=0.5)
    stats.update(torch.tensor([0, 3, 3]))
    assert [n for n, _ in stats.named_parameters()] == []
    fresh = CodebookStats(4, decay=0.5)
    fresh.load_state_dict(stats.state_dict())
    assert torch.equal(fresh.counts, stats.counts)


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="num_codes"):
        CodebookStats(0)
    with pytest.raises(ValueError, match="decay"):
        CodebookStats(3, decay=1.0)
    stats = CodebookStats(3)
    with pytest.raises(ValueError, match=r"indices_or_counts.*\[0, 3\)"):
        stats.update(torch.tensor([0, 3]))
    with pytest.raises(ValueError, match=r"indices_or_counts.*\(3,\)"):
        stats.update(torch.ones(4))
    with pytest.raises(ValueError, match="indices_or_counts"):
        stats.update(torch.tensor([1.0, float("nan"), 0.0]))
