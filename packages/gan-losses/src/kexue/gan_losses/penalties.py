"""Gradient penalties: WGAN-GP (one-centred), R1/R2 (zero-centred), WGAN-div, and a generic form.

Every penalty is built on :func:`~kexue.gan_losses._autograd.input_gradients` (``autograd.grad``
with ``create_graph=True``; add the penalty to the loss and call an ordinary ``backward()``, never
``backward(create_graph=True)``, which DDP does not support) and on per-sample norms over *all*
non-batch dimensions: ``(B, C, H, W) -> (B, C·H·W) -> (B,)``. A per-pixel norm over ``dim=1`` or one
norm over the whole batch are the classic bugs (spec §1.5); the tests catch both.

Precision. Gradients are cast to fp32 and the norms, powers and ``sqrt`` run in fp32 with autocast
disabled, so ``(Σg²)^3`` (WGAN-div) cannot overflow fp16.

AMP. Two forms take a ``grad_scaler``:

* the ``(outputs, inputs)`` form (:func:`gradient_penalty`, :func:`r1_penalty`,
  :func:`r2_penalty`, :func:`wgan_div_penalty`): pass *scaled* scores, ``scaler.scale(scores)``,
  together with ``grad_scaler=scaler``; the input gradients are divided by ``scaler.get_scale()``
  before the penalty is formed, and the penalty then joins the loss you scale for ``backward``;
* the callable-critic form (:func:`wgan_gp_penalty`, :func:`r1_penalty_from_critic`): pass the
  scaler only; the scores are scaled and the gradients unscaled inside.

Per-sample gradients equal the gradient of ``scores.sum()`` only when samples do not interact
inside D: BatchNorm in training mode couples them (forbidden by the WGAN-GP paper, used by the
author in WGAN-div and GAN-QP critics as an empirical choice, comment on post 6139).

References:
    Gulrajani et al., Improved Training of Wasserstein GANs, arXiv 1704.00028.
    Mescheder et al., Which Training Methods for GANs do actually Converge?, arXiv 1801.04406.
    Wu et al., Wasserstein Divergence for GANs, arXiv 1712.01026; https://kexue.fm/archives/6139.
    https://kexue.fm/archives/6583 (zero-centred penalties, the "third stage").
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

import torch
from torch import Tensor

from ._autograd import input_gradients, per_sample_grad_sqnorm
from ._validation import (
    Reduction,
    check_batched,
    check_paired,
    check_positive,
    reduce,
    reduce_pair,
)

__all__ = [
    "gradient_penalty",
    "interpolate",
    "r1_penalty",
    "r1_penalty_from_critic",
    "r2_penalty",
    "wgan_div_penalty",
    "wgan_gp_penalty",
]


@contextmanager
def _fp32(t: Tensor) -> Iterator[None]:
    """Disable autocast on ``t``'s device (gradients are already fp32)."""
    device_type = t.device.type
    if torch.amp.is_autocast_available(device_type):
        with torch.autocast(device_type=device_type, enabled=False):
            yield
    else:  # pragma: no cover - devices without autocast
        with nullcontext():
            yield


def _sqnorms(
    outputs: Tensor,
    inputs: Tensor,
    *,
    create_graph: bool,
    grad_scaler: Any | None,
    outputs_name: str,
    inputs_name: str,
) -> Tensor:
    grads = input_gradients(
        outputs,
        inputs,
        create_graph=create_graph,
        grad_scaler=grad_scaler,
        outputs_name=outputs_name,
        inputs_name=inputs_name,
    )
    with _fp32(grads):
        return per_sample_grad_sqnorm(grads)


def _scaled(scores: Tensor, grad_scaler: Any | None) -> Tensor:
    return scores if grad_scaler is None else grad_scaler.scale(scores)


def interpolate(
    x_real: Tensor, x_fake: Tensor, *, generator: torch.Generator | None = None
) -> Tensor:
    r"""Random points on the segments between paired real and fake samples (WGAN-GP).

    .. math:: \hat x_i = u_i\,x_{r,i} + (1-u_i)\,x_{f,i},\qquad u_i\sim U(0,1)

    One ``u`` per sample, shared by all of its elements (shape ``(B, 1, ..., 1)``); a per-element
    ``u`` (``rand_like(x)``, as in MEG) samples a different distribution.

    Arguments:
        x_real: real samples ``(B, ...)``.
        x_fake: fake samples, same shape; detached here.
        generator: optional ``torch.Generator`` for ``u`` (its device is used to draw ``u``).

    Returns:
        ``x_hat`` of the shape and dtype of ``x_real``: a new leaf with ``requires_grad=True``.

    References:
        Gulrajani et al., arXiv 1704.00028, Algorithm 1.
    """
    x_real, x_fake = check_paired(
        x_real, x_fake, "x_real", "x_fake", pairing="interpolated", names_in_shapes=True
    )
    if not x_real.is_floating_point() or x_real.dtype != x_fake.dtype:
        raise ValueError(
            "x_real and x_fake must be floating point with the same dtype; got "
            f"{x_real.dtype} and {x_fake.dtype}"
        )
    shape = (x_real.shape[0],) + (1,) * (x_real.dim() - 1)
    device = generator.device if generator is not None else x_real.device
    u = torch.rand(shape, generator=generator, device=device, dtype=torch.float32)
    u = u.to(device=x_real.device, dtype=x_real.dtype)
    with torch.no_grad():
        x_hat = torch.lerp(x_fake, x_real, u)
    return x_hat.requires_grad_(True)


def gradient_penalty(
    outputs: Tensor,
    inputs: Tensor,
    *,
    center: float = 1.0,
    weight: float = 10.0,
    eps: float = 1e-9,
    create_graph: bool = True,
    grad_scaler: Any | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""Generic centred gradient penalty on per-sample input-gradient norms.

    .. math::
        P = w\,\mathbb E_i\big[(\sqrt{\textstyle\sum_j g_{ij}^2 + \epsilon} - c)^2\big],
        \qquad g = \nabla_x D(x)

    ``c = 1`` is WGAN-GP (with ``inputs`` from :func:`interpolate`); ``c = 0`` is zero-centred
    and computed as ``w·E[Σg²]`` exactly (no ``sqrt``, ``eps`` unused). ``eps`` sits inside the
    ``sqrt`` as in the author's ``wgan_gp_celeba.py`` (``+1e-9``): ``sqrt`` has an infinite slope
    at 0 and a sample with a zero gradient would otherwise give NaN gradients.

    Arguments:
        outputs: critic scores ``(B,)`` or ``(B, 1)`` computed from ``inputs`` (scaled by the
            grad scaler when one is passed).
        inputs: the tensor the critic saw, ``(B, ...)``, with ``requires_grad=True``.
        center: ``c >= 0``.
        weight: ``w = λ >= 0``; λ = 10 [WGAN-GP paper; author's code].
        eps: ``ε >= 0`` inside the square root; 1e-9 [author's code].
        create_graph: keep the graph so the penalty trains D (False only for monitoring).
        grad_scaler: the ``GradScaler`` whose scale is in ``outputs``; gradients are unscaled.
        reduction: ``"mean"`` | ``"sum"`` | ``"none"`` (``(B,)``, weight included).

    Returns:
        A scalar, or ``(B,)`` for ``reduction="none"``; fp32.

    References:
        Gulrajani et al., arXiv 1704.00028 eq. (3); ``bojone/gan`` ``wgan_gp_celeba.py``.
    """
    check_positive(center, "center", allow_zero=True)
    check_positive(weight, "weight", allow_zero=True)
    check_positive(eps, "eps", allow_zero=True)
    sq = _sqnorms(
        outputs,
        inputs,
        create_graph=create_graph,
        grad_scaler=grad_scaler,
        outputs_name="outputs",
        inputs_name="inputs",
    )
    with _fp32(sq):
        penalty = sq if center == 0 else (torch.sqrt(sq + eps) - center).square()
        return reduce(weight * penalty, reduction)


def wgan_gp_penalty(
    critic: Callable[[Tensor], Tensor],
    x_real: Tensor,
    x_fake: Tensor,
    *,
    weight: float = 10.0,
    eps: float = 1e-9,
    generator: torch.Generator | None = None,
    create_graph: bool = True,
    grad_scaler: Any | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""WGAN-GP penalty with a callable critic: interpolate, score, penalise.

    .. math:: P = \lambda\,\mathbb E_{\hat x}\big[(\|\nabla_{\hat x}D(\hat x)\|_2-1)^2\big]

    Arguments:
        critic: maps ``(B, ...)`` to scores ``(B,)`` or ``(B, 1)``.
        x_real: real samples ``(B, ...)``.
        x_fake: fake samples, same shape (detached here).
        weight: λ = 10 [Gulrajani et al.; the author's ``wgan_gp_celeba.py``].
        eps: inside the square root, 1e-9 [author's code].
        generator: ``torch.Generator`` for the interpolation coefficients.
        create_graph: keep the graph so the penalty trains D.
        grad_scaler: a ``GradScaler``; the scores are scaled before differentiation and the
            gradients unscaled (PyTorch AMP gradient-penalty recipe).
        reduction: ``"mean"`` | ``"sum"`` | ``"none"``.

    Returns:
        A scalar, or ``(B,)`` for ``reduction="none"``; fp32.

    References:
        Gulrajani et al., arXiv 1704.00028, Algorithm 1 (λ = 10, n_critic = 5, Adam(1e-4,
        (0, 0.9))); author: Adam(2e-4, 0.5), D:G = 5:1, batch 64.
    """
    if not callable(critic):
        raise ValueError(f"critic must be callable, got {type(critic).__name__}")
    x_hat = interpolate(x_real, x_fake, generator=generator)
    scores = _scaled(critic(x_hat), grad_scaler)
    return gradient_penalty(
        scores,
        x_hat,
        center=1.0,
        weight=weight,
        eps=eps,
        create_graph=create_graph,
        grad_scaler=grad_scaler,
        reduction=reduction,
    )


def _zero_centred(
    scores: Tensor,
    x: Tensor,
    gamma: float,
    create_graph: bool,
    grad_scaler: Any | None,
    reduction: str,
    names: tuple[str, str],
) -> Tensor:
    check_positive(gamma, "gamma", allow_zero=True)
    sq = _sqnorms(
        scores,
        x,
        create_graph=create_graph,
        grad_scaler=grad_scaler,
        outputs_name=names[0],
        inputs_name=names[1],
    )
    with _fp32(sq):
        return reduce(0.5 * gamma * sq, reduction)


def r1_penalty(
    real_scores: Tensor,
    x_real: Tensor,
    *,
    gamma: float = 10.0,
    create_graph: bool = True,
    grad_scaler: Any | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""R1: zero-centred gradient penalty on real samples.

    .. math:: R_1 = \frac\gamma2\,\mathbb E_{x\sim p_{data}}\|\nabla_x D(x)\|^2

    Convention: ``penalty = γ/2 · E‖∇‖²`` as in the paper's formula, StudioGAN's ``cal_r1_reg``
    and StyleGAN. ``GAN_stability`` writes ``reg_param · mean(Σg²)`` with reg_param = 10, i.e.
    γ = 20 here; which γ the paper's "γ = 10" denotes is not settled (spec §2.9, open question 1).
    Zero-centred penalties are the only ones that converge locally in the Dirac GAN (post 6583);
    the energy view (post 6316) puts real samples at energy minima, hence R1.

    Arguments:
        real_scores: D scores on ``x_real``, ``(B,)`` or ``(B, 1)`` (scaled when ``grad_scaler``
            is passed); the same forward can serve the D loss.
        x_real: the real batch D saw, ``(B, ...)``; call ``x_real.requires_grad_()`` before D.
        gamma: γ >= 0; 10 by default.
        create_graph: keep the graph so the penalty trains D.
        grad_scaler: the ``GradScaler`` whose scale is in ``real_scores``.
        reduction: ``"mean"`` | ``"sum"`` | ``"none"`` (``(B,)``).

    Returns:
        A scalar, or ``(B,)`` for ``reduction="none"``; fp32.

    References:
        Mescheder et al., arXiv 1801.04406 §4.1; https://kexue.fm/archives/6583.
    """
    return _zero_centred(
        real_scores, x_real, gamma, create_graph, grad_scaler, reduction, ("real_scores", "x_real")
    )


def r2_penalty(
    fake_scores: Tensor,
    x_fake: Tensor,
    *,
    gamma: float = 10.0,
    create_graph: bool = True,
    grad_scaler: Any | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""R2: zero-centred gradient penalty on generated samples.

    .. math:: R_2 = \frac\gamma2\,\mathbb E_{x\sim p_G}\|\nabla_x D(x)\|^2

    Same ``γ/2`` convention as :func:`r1_penalty`.

    Arguments:
        fake_scores: D scores on ``x_fake``, ``(B,)`` or ``(B, 1)``.
        x_fake: the fake batch D saw, a detached leaf with ``requires_grad=True``.
        gamma: γ >= 0; 10 by default.
        create_graph: keep the graph so the penalty trains D.
        grad_scaler: the ``GradScaler`` whose scale is in ``fake_scores``.
        reduction: ``"mean"`` | ``"sum"`` | ``"none"``.

    Returns:
        A scalar, or ``(B,)`` for ``reduction="none"``; fp32.

    References:
        Mescheder et al., arXiv 1801.04406 §4.1.
    """
    return _zero_centred(
        fake_scores, x_fake, gamma, create_graph, grad_scaler, reduction, ("fake_scores", "x_fake")
    )


def r1_penalty_from_critic(
    critic: Callable[[Tensor], Tensor],
    x_real: Tensor,
    *,
    gamma: float = 10.0,
    create_graph: bool = True,
    grad_scaler: Any | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    """R1 with a callable critic: runs ``critic`` on a detached copy of ``x_real`` that requires grad.

    Costs one extra D forward; prefer :func:`r1_penalty` on the scores of the loss forward.

    Arguments:
        critic: maps ``(B, ...)`` to scores ``(B,)`` or ``(B, 1)``.
        x_real: the real batch ``(B, ...)``.
        gamma: γ >= 0 (``γ/2 · E‖∇‖²``).
        create_graph: keep the graph so the penalty trains D.
        grad_scaler: a ``GradScaler``; scores are scaled and gradients unscaled inside.
        reduction: ``"mean"`` | ``"sum"`` | ``"none"``.

    Returns:
        A scalar, or ``(B,)`` for ``reduction="none"``; fp32.

    References:
        Mescheder et al., arXiv 1801.04406 §4.1.
    """
    if not callable(critic):
        raise ValueError(f"critic must be callable, got {type(critic).__name__}")
    x = check_batched(x_real, "x_real", min_dim=2).detach().requires_grad_(True)
    scores = _scaled(critic(x), grad_scaler)
    return r1_penalty(
        scores,
        x,
        gamma=gamma,
        create_graph=create_graph,
        grad_scaler=grad_scaler,
        reduction=reduction,
    )


def wgan_div_penalty(
    real_scores: Tensor,
    x_real: Tensor,
    fake_scores: Tensor,
    x_fake: Tensor,
    *,
    k: float = 2.0,
    p: float = 6.0,
    create_graph: bool = True,
    grad_scaler: Any | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""WGAN-div penalty on the real and fake samples themselves (no interpolation).

    .. math::
        P = \frac k2\Big(\mathbb E_i\|\nabla D(x_{r,i})\|^p + \mathbb E_i\|\nabla D(x_{f,i})\|^p\Big),
        \qquad \|g\|^p = \big(\textstyle\sum_j g_j^2\big)^{p/2}

    i.e. ``k`` times the mean over real ∪ fake for equal batch sizes. Computed in fp32. With
    ``p = 2, k = ½`` it is ``½ E‖∇D‖²`` over real ∪ fake. The gradient norm is taken for any sign
    of D, so the energy sign of the author's code needs no flag here.

    Arguments:
        real_scores: D scores on ``x_real``, ``(B_r,)`` or ``(B_r, 1)`` (scaled under AMP).
        x_real: the real batch D saw, with ``requires_grad=True``.
        fake_scores: D scores on ``x_fake``, ``(B_f,)`` or ``(B_f, 1)`` (scaled under AMP).
        x_fake: the fake batch D saw, a detached leaf with ``requires_grad=True``.
        k: ``k > 0``; 2 [author's code and post 6139; the paper's FID search].
        p: ``p > 0`` (the divergence theory needs ``p > 1``; ``p < 2`` has an infinite slope
            at a zero gradient); 6 [same sources].
        create_graph: keep the graph so the penalty trains D.
        grad_scaler: the ``GradScaler`` whose scale is in both score tensors.
        reduction: ``"mean"`` | ``"sum"`` | ``"none"`` (``k/2·(s_r[i] + s_f[i])``, needs
            ``B_r == B_f``).

    Returns:
        A scalar, or ``(B,)`` for ``reduction="none"``; fp32.

    References:
        Wu et al., arXiv 1712.01026; https://kexue.fm/archives/6139; the author's WGAN-div
        script in ``bojone/gan``: D:G = 1:1, Adam(2e-4, 0.5), batch 64, 128 px.
    """
    check_positive(k, "k")
    check_positive(p, "p")
    sq_r = _sqnorms(
        real_scores,
        x_real,
        create_graph=create_graph,
        grad_scaler=grad_scaler,
        outputs_name="real_scores",
        inputs_name="x_real",
    )
    sq_f = _sqnorms(
        fake_scores,
        x_fake,
        create_graph=create_graph,
        grad_scaler=grad_scaler,
        outputs_name="fake_scores",
        inputs_name="x_fake",
    )
    with _fp32(sq_r):
        half_p = 0.5 * p
        return reduce_pair(sq_r.pow(half_p), sq_f.pow(half_p), reduction, scale=0.5 * k)
