"""``mixup_loss`` and its Beta sampler (spec §2.15, §3.1 mixup)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from kexue.keras_compat.regularizers import mixup_loss, sample_beta


def _setup():
    torch.manual_seed(0)
    model = nn.Linear(4, 3).double()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(6, 4, generator=g, dtype=torch.float64)
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    return model, x, labels


@pytest.mark.parametrize("onehot", [False, True])
def test_lambda_one_reproduces_plain_loss(onehot: bool) -> None:
    model, x, labels = _setup()
    y = F.one_hot(labels, 3).double() if onehot else labels
    loss = mixup_loss(model, x, y, F.cross_entropy, lam=1.0, generator=torch.Generator())
    torch.testing.assert_close(loss, F.cross_entropy(model(x), y), rtol=1e-15, atol=0)


def test_mixed_targets_sum_to_one_and_match_the_formula() -> None:
    model, x, labels = _setup()
    y = F.one_hot(labels, 3).double()
    seen = {}

    def loss_fn(pred, target):
        seen["pred"], seen["target"] = pred, target
        return F.cross_entropy(pred, target)

    loss = mixup_loss(model, x, y, loss_fn, alpha=0.4, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(seen["target"].sum(1), torch.ones(6, dtype=torch.float64))
    # reconstruct λ and π from the same generator stream
    g = torch.Generator().manual_seed(3)
    lam = sample_beta(0.4, g)
    perm = torch.randperm(6, generator=g)
    torch.testing.assert_close(seen["target"], lam * y + (1 - lam) * y[perm], rtol=0, atol=0)
    torch.testing.assert_close(seen["pred"], model(lam * x + (1 - lam) * x[perm]), rtol=0, atol=0)
    # index targets give the same value as mixed one-hot targets for cross-entropy
    idx_loss = mixup_loss(
        model, x, labels, F.cross_entropy, alpha=0.4, generator=torch.Generator().manual_seed(3)
    )
    torch.testing.assert_close(idx_loss, loss, rtol=1e-12, atol=0)


def test_reproducible_with_seeded_generator_and_gradients_flow() -> None:
    model, x, labels = _setup()

    def run(seed: int) -> torch.Tensor:
        return mixup_loss(
            model, x, labels, F.cross_entropy, 1.0, torch.Generator().manual_seed(seed)
        )

    a, b, c = run(5), run(5), run(6)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.equal(a, c)
    a.backward()
    assert model.weight.grad is not None and model.weight.grad.abs().sum() > 0


def test_sample_beta_matches_numpy_beta_moments() -> None:
    g = torch.Generator().manual_seed(0)
    draws = np.array([sample_beta(0.5, g) for _ in range(4000)])
    assert ((draws >= 0) & (draws <= 1)).all()
    # Beta(α, α): mean 1/2, variance 1 / (4(2α + 1)) = 0.125 for α = 0.5
    assert draws.mean() == pytest.approx(0.5, abs=0.02)
    assert draws.var() == pytest.approx(0.125, abs=0.01)
    g1, g2 = torch.Generator().manual_seed(9), torch.Generator().manual_seed(9)
    assert sample_beta(2.0, g1) == sample_beta(2.0, g2)


def test_bad_input() -> None:
    model, x, labels = _setup()
    with pytest.raises(ValueError, match="alpha"):
        mixup_loss(model, x, labels, F.cross_entropy, alpha=0.0)
    with pytest.raises(ValueError, match="alpha"):
        mixup_loss(model, x, labels, F.cross_entropy, alpha=-1.0, lam=0.5)
    with pytest.raises(ValueError, match="lam"):
        mixup_loss(model, x, labels, F.cross_entropy, lam=1.5)
    with pytest.raises(ValueError, match="batch"):
        mixup_loss(model, x, labels[:5], F.cross_entropy)
    with pytest.raises(ValueError, match="x must be floating"):
        mixup_loss(model, labels[:, None], labels, F.cross_entropy)
