"""LeCam regularisation (Tseng et al. 2021, arXiv 2104.03310): EMA anchors of D's outputs.

The anchors α_R and α_F are exponential moving averages of the batch means of D(x_real) and
D(G(z)); the regulariser added to the D loss as λ·R is, in the released code's clipped form,

    R = mean(relu(D(x_r) − α_F)²) + mean(relu(α_R − D(G(z)))²),

and the paper's unclipped squared ℓ2 form with ``clip=False``. Constant scores a (real), b (fake)
with converged anchors give R = 2·relu(a − b)² (unclipped 2(a − b)²).

Defaults in the sources (λ is the caller's ``weight``):

====================================  ==========================  ======  =====
source                                λ                           decay   start
====================================  ==========================  ======  =====
lecam-gan BigGAN-CIFAR (code)         0.3                         0.9     1000
lecam-gan StyleGAN2 (TF)              1e-6 CIFAR, 3e-7 FFHQ       0.99    —
StudioGAN configs                     0.3 CIFAR BigGAN, 0.01      0.99    1000
                                      AFHQ BigGAN, 3e-7 StyleGAN2
====================================  ==========================  ======  =====

Here the anchors are buffers (``state_dict``, ``.to()``), updated on device without ``.item()``;
under DDP the batch means are all-reduced (sums and counts), so every rank holds the same anchors.

References:
    Tseng, Jiang, Zhang, Lee, Yang, "Regularizing Generative Adversarial Networks under Limited
    Data", CVPR 2021, arXiv 2104.03310; google/lecam-gan (``ema_losses``, ``lecam_reg``).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from ._validation import as_scores, check_positive, signed

__all__ = ["LeCamAnchors", "lecam_regularization"]


class LeCamAnchors(nn.Module):
    """EMA anchors α_R, α_F of the mean real and fake D scores, as buffers.

    Arguments:
        decay: EMA decay (default 0.99, StudioGAN / the TF StyleGAN2 code; lecam-gan's
            BigGAN-CIFAR code uses 0.9).
        start_step: the first ``start_step`` updates copy the current batch means (lecam-gan:
            ``itr < start_itr``) and the regulariser stays 0; it applies from the first EMA update
            on (lecam-gan starts one iteration later, ``itr > start_itr``); default 1000.

    Buffers: ``real_anchor``, ``fake_anchor`` (fp32 scalars), ``num_updates`` (int64).
    """

    real_anchor: Tensor
    fake_anchor: Tensor
    num_updates: Tensor

    def __init__(self, decay: float = 0.99, start_step: int = 1000) -> None:
        super().__init__()
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must be in [0, 1), got {decay}")
        if start_step < 0:
            raise ValueError(f"start_step must be >= 0, got {start_step}")
        self.decay = float(decay)
        self.start_step = int(start_step)
        self.register_buffer("real_anchor", torch.zeros((), dtype=torch.float32))
        self.register_buffer("fake_anchor", torch.zeros((), dtype=torch.float32))
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.int64))

    @torch.no_grad()
    def update(self, real_scores: Tensor, fake_scores: Tensor) -> None:
        """Fold one batch of raw scores in (means all-reduced under DDP; no host sync)."""
        r = as_scores(real_scores, "real_scores").detach().float()
        f = as_scores(fake_scores, "fake_scores").detach().float()
        sums = torch.stack([r.sum(), f.sum(), r.new_tensor(r.numel()), f.new_tensor(f.numel())])
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(sums)
        means = sums[:2] / sums[2:]
        decay = torch.where(self.num_updates < self.start_step, 0.0, self.decay)
        dev = self.real_anchor.device
        self.real_anchor.copy_(self.real_anchor * decay + means[0].to(dev) * (1 - decay))
        self.fake_anchor.copy_(self.fake_anchor * decay + means[1].to(dev) * (1 - decay))
        self.num_updates.add_(1)

    def active(self) -> Tensor:
        """Whether the regulariser applies: more than ``start_step`` updates made (device bool)."""
        return self.num_updates > self.start_step

    def extra_repr(self) -> str:
        return f"decay={self.decay}, start_step={self.start_step}"


def lecam_regularization(
    real_scores: Tensor,
    fake_scores: Tensor,
    anchors: LeCamAnchors,
    *,
    weight: float = 1.0,
    clip: bool = True,
    update: Literal["before", "after", "none"] = "before",
    energy: bool = False,
) -> Tensor:
    """LeCam regulariser ``weight·R`` for the D loss (zero while the anchors are warming up).

    Arguments:
        real_scores: raw D scores on real samples ``(B,)`` or ``(B, 1)``.
        fake_scores: raw D scores on detached fakes ``(B,)`` or ``(B, 1)``.
        anchors: the :class:`LeCamAnchors` of this D.
        weight: λ (see the module table: 0.3 for BigGAN on CIFAR, 3e-7 for StyleGAN2); default 1.
        clip: the released code's ``relu`` form (default) or the paper's unclipped squares.
        update: ``"before"`` (lecam-gan: the anchors take this batch first, then R), ``"after"``
            (R against the previous anchors), or ``"none"`` (call ``anchors.update`` yourself).
        energy: scores use the energy sign (lower = more real); anchors and scores are flipped
            together, so R is the same regulariser of the canonical scores.

    Returns:
        A scalar in fp32 at least: ``weight·R`` once ``anchors.active()``, else 0 (with the graph).
    """
    check_positive(weight, "weight", allow_zero=True)
    if update not in ("before", "after", "none"):
        raise ValueError(f"update must be 'before', 'after' or 'none', got {update!r}")
    r = as_scores(real_scores, "real_scores")
    f = as_scores(fake_scores, "fake_scores")
    if update == "before":
        anchors.update(r, f)
    alpha_r = signed(anchors.real_anchor.to(r.device, r.dtype), energy)
    alpha_f = signed(anchors.fake_anchor.to(r.device, r.dtype), energy)
    dr, df = signed(r, energy) - alpha_f, alpha_r - signed(f, energy)
    if clip:
        dr, df = F.relu(dr), F.relu(df)
    reg = dr.square().mean() + df.square().mean()
    active = anchors.active().to(reg.device)
    if update == "after":
        anchors.update(r, f)
    return weight * torch.where(active, reg, reg * 0.0)
