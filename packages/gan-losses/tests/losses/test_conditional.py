"""Projection scores and the AC-GAN class loss against manual forms."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from kexue.gan_losses.losses.conditional import acgan_class_loss, projection_scores


def test_projection_is_psi_plus_inner_product() -> None:
    g = torch.Generator().manual_seed(0)
    feats, psi = torch.randn(5, 4, generator=g), torch.randn(5, 1, generator=g)
    emb = nn.Embedding(3, 4)
    labels = torch.tensor([0, 2, 1, 1, 0])
    out = projection_scores(feats, psi, emb, labels)
    manual = psi.squeeze(1) + torch.stack([emb.weight[y] @ f for f, y in zip(feats, labels)])
    torch.testing.assert_close(out, manual)
    torch.testing.assert_close(projection_scores(feats, psi, emb.weight, labels), out)
    out.sum().backward()
    assert emb.weight.grad is not None and emb.weight.grad[0].abs().sum() > 0
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        projection_scores(feats, psi, emb, torch.tensor([0, 1, 2, 3, 0]))
    with pytest.raises(ValueError, match="features must be"):
        projection_scores(torch.randn(5, 6), psi, emb, labels)


def test_acgan_both_modes_equal_manual_cross_entropy() -> None:
    g = torch.Generator().manual_seed(1)
    lr, lf = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g)
    yr, yf = torch.tensor([0, 1, 2, 3, 0, 1]), torch.tensor([3, 3, 2, 1, 0, 0])
    studio = acgan_class_loss(lr, yr)
    assert studio.item() == pytest.approx(F.cross_entropy(lr, yr).item(), rel=1e-6)
    paper = acgan_class_loss(lr, yr, lf, yf, weight=0.5)
    manual = 0.5 * (F.cross_entropy(lr, yr) + F.cross_entropy(lf, yf))
    assert paper.item() == pytest.approx(manual.item(), rel=1e-6)
    per = acgan_class_loss(lr, yr, lf, yf, reduction="none")
    torch.testing.assert_close(
        per, F.cross_entropy(lr, yr, reduction="none") + F.cross_entropy(lf, yf, reduction="none")
    )
    half = acgan_class_loss(lr.half(), yr)
    assert half.dtype == torch.float32
    with pytest.raises(ValueError, match="both logits_fake and y_fake"):
        acgan_class_loss(lr, yr, lf)
