r"""GAN-QP: the quadratic-potential GAN of Su Jianlin (arXiv 1811.07296; post 6163).

The divergence is

.. math::
    \mathcal L[p,q] = \max_T \mathbb E_{x_r\sim p,\,x_f\sim q}
    \Big[\Delta T - \frac{\Delta T^2}{2\lambda\,d(x_r,x_f)}\Big],\qquad \Delta T = T(x_r) - T(x_f)

with the univariate critic ``T(x_r, x_f) ≡ T(x_r)`` of the released code, so ``Δ_i = r_i - f_i``
for the pair ``(x_r[i], x_f[i])`` (pairs by index). At the optimum ``Δ* ∈ [-λd, λd]``: the Lipschitz
constraint holds by itself, with no penalty and no clipping.

Broadcast pitfall. The quadratic term divides a per-pair ``Δ`` by a per-pair ``d``. Scores of shape
``(B, 1)`` against distances of shape ``(B,)`` broadcast silently to a ``(B, B)`` matrix whose mean
is a different loss; the author fixed exactly this in ``bojone/gan-qp`` commit f109699
(2018-12-03), and PyTorch broadcasts the same way. Here scores are squeezed to ``(B,)``
explicitly, the distance is ``(B,)`` and every batch size is checked, so nothing is broadcast.

References:
    Su, GAN-QP: A Novel GAN Framework without Gradient Vanishing and Lipschitz Constraint,
    arXiv 1811.07296; https://kexue.fm/archives/6163; code ``bojone/gan-qp`` (f81ec73).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from .._validation import (
    Reduction,
    check_paired,
    check_positive,
    check_same_batch,
    check_tensor,
    per_sample_flat,
    reduce,
    signed_pair,
)

__all__ = ["gan_qp_discriminator_loss", "gan_qp_distance", "gan_qp_generator_loss"]

_NORMS = ("l1", "l2")


def gan_qp_distance(x_real: Tensor, x_fake: Tensor, *, norm: Literal["l1", "l2"] = "l1") -> Tensor:
    r"""Per-pair distance ``d_i`` between ``x_real[i]`` and ``x_fake[i]``, shape ``(B,)``.

    .. math::
        d^{L1}_i = \frac1N\sum_j |x_{r,i,j}-x_{f,i,j}| \qquad
        d^{L2}_i = \sqrt{\frac1N\sum_j (x_{r,i,j}-x_{f,i,j})^2}

    over all ``N`` non-batch elements. L2 is the root mean square, not its square [code; confirmed
    by the author in the comments on post 6163]. Using a mean rather than a sum only rescales λ
    and keeps λ = 10 valid across resolutions. Compute it on the training pixel scale (the
    author's images are in [-1, 1]).

    Arguments:
        x_real: real samples ``(B, ...)``.
        x_fake: fake samples, the same shape as ``x_real`` (no broadcasting).
        norm: ``"l1"`` (mean absolute difference) or ``"l2"`` (RMS difference).

    Returns:
        ``(B,)`` in at least fp32.

    References:
        arXiv 1811.07296 §3; https://kexue.fm/archives/6163; ``bojone/gan-qp``.
    """
    if norm not in _NORMS:
        raise ValueError(f"norm must be one of {_NORMS}, got {norm!r}")
    x_real, x_fake = check_paired(x_real, x_fake, "x_real", "x_fake", names_in_shapes=True)
    acc = torch.promote_types(x_real.dtype, torch.float32)
    diff = per_sample_flat(x_real.to(acc) - x_fake.to(acc))
    if norm == "l1":
        return diff.abs().mean(dim=1)
    return diff.square().mean(dim=1).sqrt()


def gan_qp_discriminator_loss(
    real_scores: Tensor,
    fake_scores: Tensor,
    x_real: Tensor,
    x_fake: Tensor,
    *,
    norm: Literal["l1", "l2"] = "l1",
    lam: float = 10.0,
    eps: float = 1e-8,
    energy: bool = False,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""GAN-QP discriminator (critic) loss.

    .. math:: L_D = \mathbb E_i\Big[-\Delta_i + \frac{\Delta_i^2}{2\lambda\,\max(d_i, \epsilon)}\Big],
        \qquad \Delta_i = r_i - f_i

    Minimal at ``Δ_i = λ d_i`` with value ``-λ d_i / 2`` per pair. The distance is treated as a
    constant (computed on detached samples): the D step must not move G.

    Arguments:
        real_scores: critic scores on real samples ``(B,)`` or ``(B, 1)``.
        fake_scores: critic scores on detached fakes ``(B,)`` or ``(B, 1)``; paired by index.
        x_real: the real samples the critic saw, ``(B, ...)``.
        x_fake: the fake samples the critic saw, same shape as ``x_real``.
        norm: the per-pair distance, ``"l1"`` or ``"l2"`` (:func:`gan_qp_distance`).
        lam: λ > 0, a scale only [blog]; 10 in the author's code.
        eps: lower bound on ``d_i`` so identical pairs (``d_i = 0``) stay finite (the author has
            none); the quadratic term then pins ``Δ_i`` to 0. ``eps >= 0``.
        energy: scores use the energy sign (lower = more real); ``Δ_i = f_i - r_i`` in raw scores.
        reduction: ``"mean"`` | ``"sum"`` | ``"none"`` (``(B,)``).

    Returns:
        A scalar, or ``(B,)`` for ``reduction="none"``; in at least fp32.

    References:
        arXiv 1811.07296; https://kexue.fm/archives/6163; ``bojone/gan-qp`` defaults:
        λ = 10, D:G = 2:1, Adam(2e-4, 0.5), batch 64, BN critic without SN or GP.
    """
    check_positive(lam, "lam")
    check_positive(eps, "eps", allow_zero=True)
    r, f = signed_pair(real_scores, fake_scores, energy)
    check_same_batch(r, f, "real_scores", "fake_scores")
    x_real = check_tensor(x_real, "x_real")
    x_fake = check_tensor(x_fake, "x_fake")
    d = gan_qp_distance(x_real.detach(), x_fake.detach(), norm=norm)
    check_same_batch(r, d, "real_scores", "x_real")
    if eps > 0:
        d = d.clamp_min(eps)
    delta = r - f
    return reduce(-delta + delta.square() / (2.0 * lam * d), reduction)


def gan_qp_generator_loss(
    real_scores: Tensor,
    fake_scores: Tensor,
    *,
    energy: bool = False,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""GAN-QP generator loss :math:`L_G = \mathbb E_i[r_i - f_i]` (D frozen).

    Equal in gradient to ``-E[f]``; ``r`` only makes the value comparable with the D loss. The
    quadratic term is never part of the G loss: it would make G minimise the pixel distance
    ``d(x_r, x_f)`` [blog, post 6163].

    Arguments:
        real_scores: critic scores on a real batch ``(B,)`` or ``(B, 1)``.
        fake_scores: critic scores on generated samples ``(B,)`` or ``(B, 1)``; paired by index.
        energy: scores use the energy sign.
        reduction: ``"mean"`` | ``"sum"`` | ``"none"`` (``(B,)``).

    Returns:
        A scalar, or ``(B,)`` for ``reduction="none"``.

    References:
        arXiv 1811.07296; https://kexue.fm/archives/6163; ``bojone/gan-qp``.
    """
    r, f = signed_pair(real_scores, fake_scores, energy)
    check_same_batch(r, f, "real_scores", "fake_scores")
    return reduce(r - f, reduction)
