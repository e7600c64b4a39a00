"""Classic adversarial losses: SGAN (saturating and non-saturating), LSGAN, hinge, WGAN, EBGAN.

Every function takes raw discriminator scores ``(B,)`` or ``(B, 1)`` (squeezed explicitly, never
broadcast), uses the canonical sign (higher = more real) unless ``energy=True`` (the author's sign,
lower = more real, i.e. ``D -> -D``), and returns a value to *minimise*. Sigmoid losses are written
with ``softplus`` (``-log σ(t) = sp(-t)``), never ``log(sigmoid(t) + eps)``.

Reductions. A discriminator loss has a real term and a fake term. ``reduction="mean"`` averages each
term over its own batch and adds them (real and fake batches may differ in size);
``reduction="sum"`` sums each term; ``reduction="none"`` returns the per-pair value
``real_term[i] + fake_term[i]``, shape ``(B,)``, and needs equal batch sizes. With equal batch sizes
``mean == none.mean()`` and ``sum == none.sum()``.

References:
    Goodfellow et al., Generative Adversarial Networks, arXiv 1406.2661.
    Mao et al., Least Squares Generative Adversarial Networks, arXiv 1611.04076.
    Lim & Ye, Geometric GAN, arXiv 1705.02894 (hinge); https://kexue.fm/archives/6316 (energy sign).
    Arjovsky et al., Wasserstein GAN, arXiv 1701.07875.
    Zhao et al., Energy-based Generative Adversarial Network, arXiv 1609.03126.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._validation import (
    Reduction,
    as_scores,
    check_positive,
    reduce,
    reduce_pair,
    signed,
    signed_pair,
)

__all__ = [
    "clip_weights_",
    "ebgan_discriminator_loss",
    "ebgan_generator_loss",
    "hinge_discriminator_loss",
    "hinge_generator_loss",
    "lsgan_discriminator_loss",
    "lsgan_generator_loss",
    "sgan_discriminator_loss",
    "sgan_generator_loss",
    "wgan_discriminator_loss",
    "wgan_generator_loss",
]


# --------------------------------------------------------------------------------------- SGAN


def sgan_discriminator_loss(
    real_scores: Tensor,
    fake_scores: Tensor,
    *,
    real_label: float = 1.0,
    energy: bool = False,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""Standard GAN discriminator loss (binary cross-entropy with logits; real 1, fake 0).

    .. math:: L_D = \mathbb E[\alpha\,\mathrm{sp}(-r) + (1-\alpha)\,\mathrm{sp}(r)]
        + \mathbb E[\mathrm{sp}(f)]

    ``α = real_label``: 1 is the plain loss; α < 1 is one-sided label smoothing (Salimans et al.
    2016, arXiv 1606.03498 §3.4, α = 0.9), whose optimum is D* = α·p_d/(p_d + p_g). Fake labels
    stay 0: smoothing them moves the optimum towards p_g, so they are not exposed.

    Arguments:
        real_scores: raw D scores on real samples, ``(B_r,)`` or ``(B_r, 1)``.
        fake_scores: raw D scores on (detached) fake samples, ``(B_f,)`` or ``(B_f, 1)``.
        real_label: α ∈ (0, 1], default 1; 0.9 for one-sided smoothing.
        energy: scores use the energy sign (lower = more real); ``D -> -D`` is applied first.
        reduction: ``"mean"`` | ``"sum"`` | ``"none"`` (see the module docstring).

    Returns:
        A scalar, or ``(B,)`` for ``reduction="none"``. At ``r = f = 0`` the value is
        ``2 ln 2 = 1.386294``.

    References:
        Goodfellow et al., arXiv 1406.2661. The author's ``dcgan_celeba.py`` (``bojone/gan``) uses
        Adam(2e-4, β1 = 0.5), D:G = 1:2 steps, batch 64, https://kexue.fm/archives/6583.
    """
    if not 0.0 < real_label <= 1.0:
        raise ValueError(f"real_label must be in (0, 1], got {real_label}")
    r, f = signed_pair(real_scores, fake_scores, energy)
    real_term = F.softplus(-r)
    if real_label != 1.0:
        real_term = real_label * real_term + (1.0 - real_label) * F.softplus(r)
    return reduce_pair(real_term, F.softplus(f), reduction)


def sgan_generator_loss(
    fake_scores: Tensor,
    *,
    saturating: bool = False,
    energy: bool = False,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""Standard GAN generator loss, non-saturating (default) or saturating (minimax).

    .. math::
        L_G^{NS} = \mathbb E[\mathrm{sp}(-f)] \qquad
        L_G^{sat} = \mathbb E[\log(1-\sigma(f))] = -\mathbb E[\mathrm{sp}(f)]

    The saturating form has slope ``-σ(f)`` and vanishes when D confidently rejects fakes
    (``f ≪ 0``: slope ``-4.54e-5`` at ``f = -10`` against ``-0.99995`` for NS).

    Arguments:
        fake_scores: raw D scores on generated samples ``(B,)`` or ``(B, 1)``; D frozen.
        saturating: use the original minimax loss instead of the non-saturating one.
        energy: scores use the energy sign (lower = more real).
        reduction: ``"mean"`` | ``"sum"`` | ``"none"``.

    Returns:
        A scalar, or ``(B,)`` for ``reduction="none"``; at ``f = 0``: NS ``ln 2``, saturating
        ``-ln 2``.

    References:
        Goodfellow et al., arXiv 1406.2661 §3. The author uses the NS form (``bojone/gan``
        ``dcgan_celeba.py``).
    """
    f = signed(as_scores(fake_scores, "fake_scores"), energy)
    loss = -F.softplus(f) if saturating else F.softplus(-f)
    return reduce(loss, reduction)


# -------------------------------------------------------------------------------------- LSGAN


def _check_labels(labels: tuple[float, float, float]) -> tuple[float, float, float]:
    try:
        a, b, c = (float(v) for v in labels)
    except (TypeError, ValueError):
        raise ValueError(
            f"labels must be three numbers (a, b, c) = (fake, real, generator target), got {labels!r}"
        ) from None
    return a, b, c


def lsgan_discriminator_loss(
    real_scores: Tensor,
    fake_scores: Tensor,
    *,
    labels: tuple[float, float, float] = (0.0, 1.0, 1.0),
    half: bool = True,
    energy: bool = False,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""Least-squares GAN discriminator loss.

    .. math:: L_D = \tfrac12\mathbb E[(r-b)^2] + \tfrac12\mathbb E[(f-a)^2]

    Arguments:
        real_scores: raw D scores on real samples, ``(B_r,)`` or ``(B_r, 1)``.
        fake_scores: raw D scores on detached fakes, ``(B_f,)`` or ``(B_f, 1)``.
        labels: ``(a, b, c)`` = (fake target, real target, generator target). ``(0, 1, 1)``
            (default; StudioGAN, torchgan, mmgen) or ``(-1, 1, 0)`` (Mao et al. §3.2.3).
        half: multiply by ½ (Mao et al.); ``half=False`` matches AlexiaJM's code.
        energy: scores use the energy sign; the targets then apply to ``-D``.
        reduction: ``"mean"`` | ``"sum"`` | ``"none"``.

    Returns:
        A scalar, or ``(B,)`` for ``reduction="none"``.

    References:
        Mao et al., arXiv 1611.04076.
    """
    a, b, _ = _check_labels(labels)
    r, f = signed_pair(real_scores, fake_scores, energy)
    return reduce_pair((r - b).square(), (f - a).square(), reduction, scale=0.5 if half else 1.0)


def lsgan_generator_loss(
    fake_scores: Tensor,
    *,
    labels: tuple[float, float, float] = (0.0, 1.0, 1.0),
    half: bool = True,
    energy: bool = False,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""Least-squares GAN generator loss.

    .. math:: L_G = \tfrac12\mathbb E[(f-c)^2]

    Arguments:
        fake_scores: raw D scores on generated samples ``(B,)`` or ``(B, 1)``; D frozen.
        labels: ``(a, b, c)``; only ``c`` is used here. Default ``(0, 1, 1)``.
        half: multiply by ½.
        energy: scores use the energy sign.
        reduction: ``"mean"`` | ``"sum"`` | ``"none"``.

    Returns:
        A scalar, or ``(B,)`` for ``reduction="none"``.

    References:
        Mao et al., arXiv 1611.04076.
    """
    _, _, c = _check_labels(labels)
    f = signed(as_scores(fake_scores, "fake_scores"), energy)
    loss = (f - c).square()
    if half:
        loss = 0.5 * loss
    return reduce(loss, reduction)


# -------------------------------------------------------------------------------------- hinge


def hinge_discriminator_loss(
    real_scores: Tensor,
    fake_scores: Tensor,
    *,
    margin: float = 1.0,
    energy: bool = False,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""Hinge discriminator loss.

    .. math::
        \text{canonical: } L_D = \mathbb E[\mathrm{relu}(m-r)] + \mathbb E[\mathrm{relu}(m+f)]
        \qquad
        \text{energy: } L_D = \mathbb E[\mathrm{relu}(m+r)] + \mathbb E[\mathrm{relu}(m-f)]

    The energy form is the author's (posts 6316, 6387; ``gan_one_step_with_hinge_loss.py``): the
    thresholds stop real energies from sinking to -∞ and fake energies from rising to +∞.

    Arguments:
        real_scores: raw D scores on real samples, ``(B_r,)`` or ``(B_r, 1)``.
        fake_scores: raw D scores on detached fakes, ``(B_f,)`` or ``(B_f, 1)``.
        margin: the hinge threshold ``m > 0`` (1 everywhere in the literature).
        energy: scores use the energy sign (lower = more real), as the author writes it.
        reduction: ``"mean"`` | ``"sum"`` | ``"none"``.

    Returns:
        A scalar, or ``(B,)`` for ``reduction="none"``; 2 at ``r = f = 0`` (``m = 1``).

    References:
        Lim & Ye, Geometric GAN, arXiv 1705.02894; https://kexue.fm/archives/6316 and
        https://kexue.fm/archives/6387.
    """
    check_positive(margin, "margin")
    r, f = signed_pair(real_scores, fake_scores, energy)
    return reduce_pair(F.relu(margin - r), F.relu(margin + f), reduction)


def hinge_generator_loss(
    fake_scores: Tensor,
    *,
    energy: bool = False,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""Hinge generator loss: :math:`L_G = -\mathbb E[f]` (energy sign: :math:`+\mathbb E[f]`).

    Arguments:
        fake_scores: raw D scores on generated samples ``(B,)`` or ``(B, 1)``; D frozen.
        energy: scores use the energy sign.
        reduction: ``"mean"`` | ``"sum"`` | ``"none"``.

    Returns:
        A scalar, or ``(B,)`` for ``reduction="none"``.

    References:
        Lim & Ye, arXiv 1705.02894; https://kexue.fm/archives/6387.
    """
    f = signed(as_scores(fake_scores, "fake_scores"), energy)
    return reduce(-f, reduction)


# --------------------------------------------------------------------------------------- WGAN


def wgan_discriminator_loss(
    real_scores: Tensor,
    fake_scores: Tensor,
    *,
    energy: bool = False,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""Wasserstein critic loss :math:`L_D = \mathbb E[f] - \mathbb E[r]` (energy: ``E[r] - E[f]``).

    Needs a Lipschitz constraint: weight clipping (:func:`clip_weights_`), a gradient penalty
    (``penalties``) or spectral normalisation.

    Arguments:
        real_scores: critic scores on real samples, ``(B_r,)`` or ``(B_r, 1)``.
        fake_scores: critic scores on detached fakes, ``(B_f,)`` or ``(B_f, 1)``.
        energy: scores use the energy sign (the author's WGAN-div code).
        reduction: ``"mean"`` | ``"sum"`` | ``"none"`` (``f[i] - r[i]``).

    Returns:
        A scalar, or ``(B,)`` for ``reduction="none"``; 0 when ``r = f``.

    References:
        Arjovsky et al., arXiv 1701.07875; https://kexue.fm/archives/6139.
    """
    r, f = signed_pair(real_scores, fake_scores, energy)
    return reduce_pair(-r, f, reduction)


def wgan_generator_loss(
    fake_scores: Tensor,
    *,
    energy: bool = False,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""Wasserstein generator loss :math:`L_G = -\mathbb E[f]` (energy sign: :math:`+\mathbb E[f]`).

    Arguments:
        fake_scores: critic scores on generated samples ``(B,)`` or ``(B, 1)``; critic frozen.
        energy: scores use the energy sign.
        reduction: ``"mean"`` | ``"sum"`` | ``"none"``.

    Returns:
        A scalar, or ``(B,)`` for ``reduction="none"``.

    References:
        Arjovsky et al., arXiv 1701.07875.
    """
    f = signed(as_scores(fake_scores, "fake_scores"), energy)
    return reduce(-f, reduction)


@torch.no_grad()
def clip_weights_(module: nn.Module, clip: float = 0.01) -> None:
    """Clamp every parameter of ``module`` in place to ``[-clip, clip]`` (WGAN weight clipping).

    Call it right after ``optimizer.step()`` of the critic. Only parameters are clipped: buffers
    such as BatchNorm running statistics are left untouched (StudioGAN clips every ``p.data`` of
    the state, which is not the WGAN recipe). The author calls clipping an after-the-fact
    projection that is "basically abandoned" (posts 6139, 6051); prefer a gradient penalty.

    Arguments:
        module: the critic.
        clip: the bound ``c > 0``; 0.01 [WGAN paper, Algorithm 1; unverified in the spec].

    References:
        Arjovsky et al., arXiv 1701.07875, Algorithm 1.
    """
    if not isinstance(module, nn.Module):
        raise ValueError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    check_positive(clip, "clip")
    for p in module.parameters():
        p.clamp_(-clip, clip)


# -------------------------------------------------------------------------------------- EBGAN


def ebgan_discriminator_loss(
    real_energy: Tensor,
    fake_energy: Tensor,
    *,
    margin: float,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""EBGAN margin loss for a non-negative energy ``U`` (lower = more real).

    .. math:: L_D = \mathbb E[U(x_r)] + \mathbb E[\mathrm{relu}(m - U(x_f))]

    ``U`` is typically an auto-encoder reconstruction error. Energies are in the energy sign by
    definition, so there is no ``energy`` flag.

    Arguments:
        real_energy: energies of real samples, ``(B_r,)`` or ``(B_r, 1)``.
        fake_energy: energies of detached fakes, ``(B_f,)`` or ``(B_f, 1)``.
        margin: ``m > 0``; no universal default (EBGAN tunes it per data set).
        reduction: ``"mean"`` | ``"sum"`` | ``"none"``.

    Returns:
        A scalar, or ``(B,)`` for ``reduction="none"``.

    References:
        Zhao et al., arXiv 1609.03126 §2.2; https://kexue.fm/archives/6316 (energy reading).
    """
    check_positive(margin, "margin")
    u_r = as_scores(real_energy, "real_energy")
    u_f = as_scores(fake_energy, "fake_energy")
    return reduce_pair(
        u_r, F.relu(margin - u_f), reduction, real_name="real_energy", fake_name="fake_energy"
    )


def ebgan_generator_loss(fake_energy: Tensor, *, reduction: Reduction = "mean") -> Tensor:
    r"""EBGAN generator loss :math:`L_G = \mathbb E[U(G(z))]` (D frozen).

    Arguments:
        fake_energy: energies of generated samples, ``(B,)`` or ``(B, 1)``.
        reduction: ``"mean"`` | ``"sum"`` | ``"none"``.

    Returns:
        A scalar, or ``(B,)`` for ``reduction="none"``.

    References:
        Zhao et al., arXiv 1609.03126 §2.2.
    """
    return reduce(as_scores(fake_energy, "fake_energy"), reduction)
