"""sample_quality feeds kexue.gan_losses.metrics the classifier's features (spec §4.9 oracles)."""

from __future__ import annotations

import torch

from kexue.vae import DigitsFeatureNet, nearest_train_distance, sample_quality


def _net() -> DigitsFeatureNet:
    torch.manual_seed(0)
    return DigitsFeatureNet((4, 8), 6).eval()


def test_identical_sets_score_perfectly() -> None:
    x = torch.rand(40, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    q = sample_quality(_net(), x, x.clone(), kid_subsets=5, kid_subset_size=20)
    assert abs(q["fd"]) < 1e-8
    assert q["precision"] == q["recall"] == q["coverage"] == 1.0
    assert nearest_train_distance(x[:5], x) == 0.0


def test_far_apart_sets_have_no_coverage_and_a_large_distance() -> None:
    g = torch.Generator().manual_seed(1)
    x = 0.1 * torch.rand(40, 1, 8, 8, generator=g)
    far = 0.9 + 0.1 * torch.rand(40, 1, 8, 8, generator=g)
    q = sample_quality(_net(), x, far, kid_subsets=5, kid_subset_size=20)
    assert q["precision"] == q["recall"] == q["coverage"] == 0.0
    assert q["fd"] > 0.1 and q["kid"] > 0.0
    assert nearest_train_distance(far, x) > 5.0  # ≥ 0.8 per pixel over 64 pixels
