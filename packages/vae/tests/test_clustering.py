"""Clustering scores on hand-made labelings, brute force and scipy/sklearn (spec §4.6)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from kexue.vae import (
    adjusted_rand_index,
    clusters_used,
    contingency,
    hungarian_accuracy,
    linear_assignment,
    normalized_mutual_info,
    purity,
)


def _all(pred, target) -> tuple[float, float, float, float]:
    return (
        purity(pred, target),
        hungarian_accuracy(pred, target),
        normalized_mutual_info(pred, target),
        adjusted_rand_index(pred, target),
    )


def test_relabelled_partition_scores_one_everywhere() -> None:
    y = [0, 0, 1, 1, 2, 2]
    assert _all([1, 1, 0, 0, 2, 2], y) == pytest.approx((1.0, 1.0, 1.0, 1.0))
    acc, mapping = hungarian_accuracy(torch.tensor([1, 1, 0, 0, 2, 2]), y, return_mapping=True)
    assert acc == 1.0 and mapping == {0: 1, 1: 0, 2: 2}


def test_constant_prediction() -> None:
    p, a, n, r = _all([4] * 6, [0, 0, 1, 1, 2, 2])
    assert p == pytest.approx(1 / 3) and a == pytest.approx(1 / 3)
    assert n == 0.0 and r == pytest.approx(0.0, abs=1e-12)
    assert normalized_mutual_info([1] * 5, [3] * 5) == 1.0


def test_purity_exceeds_accuracy_when_majorities_collide() -> None:
    y, c = [0, 0, 0, 1, 1, 1], [0, 0, 1, 1, 2, 2]
    assert purity(c, y) == pytest.approx(5 / 6)
    assert hungarian_accuracy(c, y) == pytest.approx(4 / 6)
    assert clusters_used(c) == 3
    assert contingency(c, y).tolist() == [[2, 0], [1, 1], [0, 2]]


def test_hungarian_equals_brute_force_on_random_tables() -> None:
    rng = np.random.default_rng(0)
    for _ in range(30):
        w = rng.integers(0, 20, size=(6, 6)).astype(float)
        best = max(sum(w[i, p[i]] for i in range(6)) for p in itertools.permutations(range(6)))
        col = linear_assignment(w)
        assert sorted(col) == list(range(6))
        assert sum(w[i, col[i]] for i in range(6)) == best


def test_hungarian_agrees_with_scipy_and_sklearn_metrics() -> None:
    scipy_opt = pytest.importorskip("scipy.optimize")
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(1)
    for k_pred in (10, 7, 13):
        w = rng.random((k_pred, k_pred))
        col = linear_assignment(w)
        r, c = scipy_opt.linear_sum_assignment(w, maximize=True)
        assert sum(w[i, col[i]] for i in range(k_pred)) == pytest.approx(w[r, c].sum(), rel=1e-12)
        y = rng.integers(0, 10, 500)
        pred = np.where(rng.random(500) < 0.6, y, rng.integers(0, k_pred, 500))
        assert adjusted_rand_index(pred, y) == pytest.approx(
            metrics.adjusted_rand_score(y, pred), abs=1e-12
        )
        for avg in ("arithmetic", "geometric", "max", "min"):
            ref = metrics.normalized_mutual_info_score(y, pred, average_method=avg)
            assert normalized_mutual_info(pred, y, average=avg) == pytest.approx(ref, abs=1e-12)
        table = contingency(pred, y)
        sq = np.zeros((max(table.shape),) * 2)
        sq[: table.shape[0], : table.shape[1]] = table
        r, c = scipy_opt.linear_sum_assignment(sq, maximize=True)
        assert hungarian_accuracy(pred, y) == pytest.approx(sq[r, c].sum() / 500, abs=1e-12)


def test_empty_clusters_and_more_clusters_than_classes_do_not_raise() -> None:
    y = [0, 0, 1, 1]
    c = [7, 7, 3, 9]  # labels 0..6, 8 unused; three clusters for two classes
    assert hungarian_accuracy(c, y) == pytest.approx(3 / 4)
    assert purity(c, y) == 1.0
    with pytest.raises(ValueError, match="same length"):
        purity([0, 1], [0])
    with pytest.raises(ValueError, match="average"):
        normalized_mutual_info(c, y, average="harmonic")
