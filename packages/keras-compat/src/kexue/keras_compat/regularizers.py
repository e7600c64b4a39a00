"""``mixup_loss``: mixup as a regulariser on the model (the SamplePairing/mixup post).

The post reads SamplePairing and mixup as regularisers that ask the model to behave linearly
between training points (output-space smoothness), not as genuine data augmentation. The loss
is ``loss_fn(model(λx + (1−λ)x[π]), λy + (1−λ)y[π])`` with ``λ ~ Beta(α, α)`` and ``π`` a random
permutation of the batch. Image pipelines live in ``torchvision.transforms.v2.MixUp``,
``timm.data.Mixup`` and Keras ``MixUp``.

References:
    "从SamplePairing到mixup" (2018-07-07), https://kexue.fm (series cited in spec §1.2).
    Zhang et al., "mixup: Beyond Empirical Risk Minimization", arXiv:1710.09412.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

__all__ = ["mixup_loss", "sample_beta"]


def sample_beta(alpha: float, generator: torch.Generator | None = None) -> float:
    """Draws ``λ ~ Beta(α, α)`` reproducibly from a ``torch.Generator``.

    ``torch.distributions.Beta`` (like ``torch._standard_gamma``) takes no generator, so a
    64-bit seed is drawn from ``generator`` (the global torch RNG when ``None``) and fed to a
    ``numpy.random.Generator``, which samples the Beta (internally as ``G₁/(G₁+G₂)`` of two
    Gamma(α) draws).

    Arguments:
        alpha: Shape ``α > 0``.
        generator: Source of randomness.

    Returns:
        λ in [0, 1] as a Python float.
    """
    if not alpha > 0:
        raise ValueError(f"alpha must be > 0, got {alpha!r}")
    seed = int(torch.randint(0, 2**62, (), generator=generator))
    return float(np.random.default_rng(seed).beta(alpha, alpha))


def mixup_loss(
    model: nn.Module | Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    alpha: float = 1.0,
    generator: torch.Generator | None = None,
    *,
    lam: float | None = None,
) -> torch.Tensor:
    """Mixup loss: the model's loss on convex combinations of pairs of batch samples.

    ``π`` = random permutation of the batch, ``x̃ = λx + (1−λ)x[π]`` and

    - floating ``y`` (one-hot or soft targets, ``(B, ...)``): ``loss_fn(model(x̃), ỹ)`` with
      ``ỹ = λy + (1−λ)y[π]`` (rows of one-hot targets still sum to 1);
    - integer ``y`` (class indices): ``λ·loss_fn(ŷ, y) + (1−λ)·loss_fn(ŷ, y[π])`` with
      ``ŷ = model(x̃)``, which equals the mixed-target form for losses linear in the target
      (cross-entropy).

    ``λ = 1`` reproduces ``loss_fn(model(x), y)``.

    Arguments:
        model: Maps ``x`` to predictions.
        x: Inputs ``(B, ...)`` (floating).
        y: Targets ``(B, ...)``: floating soft targets or integer class indices.
        loss_fn: ``loss_fn(pred, target) -> scalar`` (e.g. ``F.cross_entropy``, which accepts
            both index and probability targets).
        alpha: Beta shape α > 0; α = 1 makes λ uniform on [0, 1] (the mixup paper uses
            α ∈ [0.1, 0.4] on ImageNet, arXiv:1710.09412 §3.1).
        generator: Draws λ (see :func:`sample_beta`) and the permutation, for reproducibility.
        lam: Use this λ in [0, 1] instead of sampling (the permutation is still drawn).

    Returns:
        The scalar loss (differentiable w.r.t. the model parameters).
    """
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise ValueError("x and y must be torch.Tensor")
    if x.ndim == 0 or y.ndim == 0 or x.shape[0] != y.shape[0]:
        raise ValueError(
            f"x and y must share the batch dimension, got x {tuple(x.shape)}, y {tuple(y.shape)}"
        )
    if not x.is_floating_point():
        raise ValueError(f"x must be floating point to be mixed, got {x.dtype}")
    if lam is None:
        lam = sample_beta(alpha, generator)
    elif not 0.0 <= lam <= 1.0:
        raise ValueError(f"lam must lie in [0, 1], got {lam!r}")
    elif not alpha > 0:
        raise ValueError(f"alpha must be > 0, got {alpha!r}")
    perm = torch.randperm(x.shape[0], generator=generator).to(x.device)
    x_mix = lam * x + (1.0 - lam) * x[perm]
    pred = model(x_mix)
    if y.is_floating_point():
        return loss_fn(pred, lam * y + (1.0 - lam) * y[perm])
    loss = lam * loss_fn(pred, y)
    if lam < 1.0:
        loss = loss + (1.0 - lam) * loss_fn(pred, y[perm.to(y.device)])
    return loss
