"""LeCam: closed forms on constant scores, anchor warm-up and EMA, energy sign, state."""

from __future__ import annotations

import pytest
import torch

from kexue.gan_losses import LeCamAnchors, lecam_regularization


def _const(v: float, n: int = 8) -> torch.Tensor:
    return torch.full((n,), v)


@pytest.mark.parametrize(("a", "b"), [(2.0, -1.0), (-0.5, 1.5), (0.3, 0.3)])
def test_constant_scores_with_converged_anchors(a: float, b: float) -> None:
    anchors = LeCamAnchors(decay=0.99, start_step=1)
    for _ in range(3):  # copy at update 0, then EMA of constants = the constants
        reg = lecam_regularization(_const(a), _const(b), anchors)
    assert anchors.real_anchor.item() == pytest.approx(a, abs=1e-6)
    assert anchors.fake_anchor.item() == pytest.approx(b, abs=1e-6)
    assert reg.item() == pytest.approx(2 * max(a - b, 0.0) ** 2, abs=1e-5)
    unclipped = lecam_regularization(_const(a), _const(b), anchors, clip=False)
    assert unclipped.item() == pytest.approx(2 * (a - b) ** 2, abs=1e-5)
    energy = lecam_regularization(_const(a), _const(b), anchors, energy=True)
    assert energy.item() == pytest.approx(2 * max(b - a, 0.0) ** 2, abs=1e-5)


def test_anchors_copy_before_start_then_follow_the_ema_and_r_waits() -> None:
    anchors = LeCamAnchors(decay=0.9, start_step=2)
    g = torch.Generator().manual_seed(0)
    means = []
    for step in range(5):
        r, f = torch.randn(16, generator=g) + 1, torch.randn(16, generator=g) - 1
        reg = lecam_regularization(r, f, anchors, weight=0.3)
        means.append((r.mean().item(), f.mean().item()))
        if step < 2:  # itr < start: copy
            assert anchors.real_anchor.item() == pytest.approx(means[-1][0], abs=1e-6)
        if step < 2:  # copy phase: not yet regularising
            assert reg.item() == 0.0
        else:
            assert reg.item() > 0.0
    expected = means[1][0]
    for m in means[2:]:
        expected = 0.9 * expected + 0.1 * m[0]
    assert anchors.real_anchor.item() == pytest.approx(expected, abs=1e-6)


def test_update_order_and_manual_updates() -> None:
    a1, a2 = LeCamAnchors(decay=0.5, start_step=0), LeCamAnchors(decay=0.5, start_step=0)
    for anchors in (a1, a2):
        anchors.update(_const(1.0), _const(0.0))
        anchors.update(_const(1.0), _const(0.0))
    # "after": R against the anchors before this batch; "before": after folding it in.
    after = lecam_regularization(_const(3.0), _const(-1.0), a1, update="after")
    # The anchors before this batch (EMA from 0 with decay 0.5): real 0.5, then 0.75; fake 0.
    assert a1.real_anchor.item() == pytest.approx(1.875)  # updated after R was formed
    assert after.item() == pytest.approx((3.0 - 0.0) ** 2 + (0.75 + 1.0) ** 2, rel=1e-6)
    before = lecam_regularization(_const(3.0), _const(-1.0), a2, update="before")
    # a2 anchors after folding: real 0.5·0.75 + 0.5·3 = 1.875, fake 0.5·0 + 0.5·(−1) = −0.5
    assert before.item() == pytest.approx((3.0 + 0.5) ** 2 + (1.875 + 1.0) ** 2, rel=1e-6)
    n = a1.num_updates.item()
    lecam_regularization(_const(3.0), _const(-1.0), a1, update="none")
    assert a1.num_updates.item() == n


def test_state_dict_round_trip_and_validation() -> None:
    anchors = LeCamAnchors(decay=0.9, start_step=0)
    anchors.update(_const(2.0), _const(1.0))
    fresh = LeCamAnchors(decay=0.9, start_step=0)
    fresh.load_state_dict(anchors.state_dict())
    assert fresh.real_anchor.item() == anchors.real_anchor.item()
    assert fresh.num_updates.item() == 1
    with pytest.raises(ValueError, match="decay"):
        LeCamAnchors(decay=1.0)
    with pytest.raises(ValueError, match="update"):
        lecam_regularization(_const(1.0), _const(0.0), anchors, update="later")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="real_scores"):
        lecam_regularization(torch.zeros(2, 2), _const(0.0), anchors)
