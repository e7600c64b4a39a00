"""ADA's adaptive augmentation probability (Karras et al. 2020), as a small controller.

Every ``interval`` = 4 minibatches, r_t = E[sign(D(x_real))] over those minibatches; then

    p ← max(0, p + sign(r_t − target)·(samples in the interval)/(speed_kimg·1000)),

target 0.6, speed_kimg 500 (p can move by 1 in 500k images) [stylegan2-ada-pytorch
``training_loop.py``: ``ada_target``, ``ada_interval``, ``ada_kimg``]. ADA's own augmentation
pipeline is out of scope; ``p`` gates any differentiable augmentation per sample, e.g.
``diff_augment(x, policy, p=controller.p)``.

The sums live on device and are all-reduced under DDP at each adjustment; no host sync.

References:
    Karras, Aittala, Hellsten, Laine, Lehtinen, Aila, "Training Generative Adversarial Networks
    with Limited Data", NeurIPS 2020, arXiv 2006.06676 §3.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor, nn

__all__ = ["ADAController"]


class ADAController(nn.Module):
    """Adaptive augmentation probability from the r_t = E[sign(D(x_real))] overfitting heuristic.

    Arguments:
        target: r_t target, 0.6 [ADA paper, code].
        interval: minibatches between adjustments, 4 [code].
        speed_kimg: thousands of images for p to move by 1, 500 [code].
        p_init: starting probability, 0 [code].

    Buffers: ``p`` (fp32 scalar), ``sign_sum``, ``count`` (the current interval's sums).
    """

    p: Tensor
    sign_sum: Tensor
    count: Tensor

    def __init__(
        self, target: float = 0.6, interval: int = 4, speed_kimg: float = 500.0, p_init: float = 0.0
    ) -> None:
        super().__init__()
        if not isinstance(interval, int) or interval < 1:
            raise ValueError(f"interval must be an int >= 1, got {interval!r}")
        if speed_kimg <= 0:
            raise ValueError(f"speed_kimg must be > 0, got {speed_kimg}")
        if p_init < 0:
            raise ValueError(f"p_init must be >= 0, got {p_init}")
        self.target = float(target)
        self.interval = interval
        self.speed_kimg = float(speed_kimg)
        self._batches = 0
        self.register_buffer("p", torch.tensor(float(p_init)))
        self.register_buffer("sign_sum", torch.zeros((), dtype=torch.float64))
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))

    @torch.no_grad()
    def update(self, real_scores: Tensor) -> Tensor:
        """Accumulate ``sign(D(x_real))`` of one minibatch; adjust ``p`` every ``interval`` calls.

        Returns ``p`` (the buffer, a device scalar).
        """
        if not isinstance(real_scores, Tensor) or real_scores.numel() == 0:
            raise ValueError("real_scores must be a non-empty tensor of D scores on real samples")
        s = real_scores.detach().reshape(-1)
        self.sign_sum.add_(torch.sign(s).sum().to(self.sign_sum))
        self.count.add_(s.numel())
        self._batches += 1
        if self._batches % self.interval == 0:
            sums = torch.stack([self.sign_sum, self.count])
            if dist.is_available() and dist.is_initialized():
                dist.all_reduce(sums)
            r_t = sums[0] / sums[1]
            step = torch.sign(r_t - self.target) * sums[1] / (self.speed_kimg * 1000.0)
            self.p.copy_((self.p + step.to(self.p)).clamp_min(0.0))
            self.sign_sum.zero_()
            self.count.zero_()
        return self.p

    def extra_repr(self) -> str:
        return f"target={self.target}, interval={self.interval}, speed_kimg={self.speed_kimg}"
