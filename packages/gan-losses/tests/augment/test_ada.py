"""ADA controller: the exact step size, the clamp at 0, the interval and the state dict."""

from __future__ import annotations

import pytest
import torch

from kexue.gan_losses.augment import ADAController


def test_step_is_batch_times_interval_over_kimg() -> None:
    ada = ADAController(target=0.6, interval=4, speed_kimg=500)
    scores = torch.tensor([1.0] * 7 + [-1.0])  # r_t = 0.75 > 0.6
    for _ in range(3):
        ada.update(scores)
        assert ada.p.item() == 0.0  # not yet an adjustment step
    ada.update(scores)
    assert ada.p.item() == pytest.approx(8 * 4 / 500_000, rel=1e-6)
    for _ in range(4):
        ada.update(-scores)  # r_t = −0.75 < 0.6: back down, then clamped at 0
    assert ada.p.item() == 0.0
    for _ in range(8):
        ada.update(-scores)
    assert ada.p.item() == 0.0


def test_state_dict_and_validation() -> None:
    ada = ADAController(interval=1, p_init=0.2)
    ada.update(torch.ones(10))
    fresh = ADAController(interval=1)
    fresh.load_state_dict(ada.state_dict())
    assert fresh.p.item() == pytest.approx(0.2 + 10 / 500_000)
    with pytest.raises(ValueError, match="interval"):
        ADAController(interval=0)
    with pytest.raises(ValueError, match="real_scores"):
        ada.update(torch.zeros(0))
