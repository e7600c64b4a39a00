"""The logit pre-processing layer: z = logit(α + (1−2α)·y), logdet Σ ln(1−2α) − ln(s(1−s)) (spec §2.1).

References:
    Dinh et al., RealNVP arXiv:1605.08803 §4.1 (logit, α = 0.05); Chen et al., Residual Flows
    arXiv:1906.02735; https://kexue.fm/archives/5807
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from kexue.flows.base import FlowLayer, logdet_dtype

__all__ = ["LogitTransform"]


class LogitTransform(FlowLayer):
    """Logit pre-processing: ``s = α + (1 − 2α)·y01``, ``z = logit(s)``.

    ``y01 = (y − lo)/(hi − lo)`` maps the data range to [0, 1] first. Per-dimension logdet
    ``ln(1 − 2α) − ln s − ln(1 − s) − ln(hi − lo)``; it is counted in log p_Y (Residual Flows).
    Inverse: ``y = lo + (hi − lo)·(σ(z) − α)/(1 − 2α)``.

    Arguments:
        alpha: α ∈ [0, 0.5); default 0.05 [RealNVP §4.1, Residual Flows CIFAR]; 1e-6 for MNIST
            [Residual Flows]. α = 0 is the plain logit, defined on the open range (lo, hi) only:
            inputs exactly at lo or hi (logit ±∞) are rejected.
        data_range: (lo, hi) of the input data; default (0, 1).

    Raises:
        ValueError: inputs outside the data range (or NaN); with α = 0 also inputs at its ends.

    References:
        Dinh et al., RealNVP arXiv:1605.08803; Chen et al., Residual Flows arXiv:1906.02735
        (``LogitTransform``).
    """

    def __init__(self, alpha: float = 0.05, *, data_range: tuple[float, float] = (0.0, 1.0)):
        super().__init__()
        if not 0.0 <= alpha < 0.5:
            raise ValueError(f"alpha must be in [0, 0.5), got {alpha}")
        lo, hi = (float(v) for v in data_range)
        if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
            raise ValueError(f"data_range must be finite (lo, hi) with hi > lo, got {data_range!r}")
        self.alpha = float(alpha)
        self.lo, self.hi = lo, hi

    def _check_range(self, x: Tensor) -> None:
        if self.alpha > 0:
            ok = (x >= self.lo) & (x <= self.hi)
            where = f"data_range [{self.lo}, {self.hi}]"
        else:  # the plain logit maps lo and hi to ∓inf
            ok = (x > self.lo) & (x < self.hi)
            where = (
                f"the open range ({self.lo}, {self.hi}) with alpha=0 (logit(0), logit(1) are "
                "∓inf; use alpha > 0, e.g. 1e-6, for data that reach the ends)"
            )
        if not bool(ok.all()):
            raise ValueError(
                f"x must lie in {where} (and not be NaN), got min {x.min().item()}, "
                f"max {x.max().item()}"
            )

    def _logdet_elem(self, s: Tensor) -> Tensor:
        const = math.log1p(-2 * self.alpha) - math.log(self.hi - self.lo)
        return const - torch.log(s) - torch.log1p(-s)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``z = logit(α + (1 − 2α)·(x − lo)/(hi − lo))``."""
        if x.dim() < 2:
            raise ValueError(f"x must have shape (B, ...), got {tuple(x.shape)}")
        if x.numel():
            self._check_range(x)
        acc = logdet_dtype(x)
        s = self.alpha + (1 - 2 * self.alpha) * (x - self.lo) / (self.hi - self.lo)
        z = torch.log(s) - torch.log1p(-s)
        ld = self._logdet_elem(s.to(acc)).flatten(1).sum(dim=1)
        return z, ld

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``x = lo + (hi − lo)·(σ(y) − α)/(1 − 2α)``."""
        if y.dim() < 2:
            raise ValueError(f"y must have shape (B, ...), got {tuple(y.shape)}")
        acc = logdet_dtype(y)
        s = torch.sigmoid(y)
        x = self.lo + (self.hi - self.lo) * (s - self.alpha) / (1 - 2 * self.alpha)
        # ln s + ln(1 − s) = −softplus(−y) − softplus(y): stable for large |y|.
        log_s1s = -torch.nn.functional.softplus(-y.to(acc)) - torch.nn.functional.softplus(
            y.to(acc)
        )
        const = math.log1p(-2 * self.alpha) - math.log(self.hi - self.lo)
        ld = -(const - log_s1s).flatten(1).sum(dim=1)
        return x, ld

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, data_range=({self.lo}, {self.hi})"
