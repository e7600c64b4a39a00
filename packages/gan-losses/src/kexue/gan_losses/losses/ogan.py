"""O-GAN: the discriminator becomes an encoder (post 6409, arXiv 1903.01931, ``bojone/o-gan``).

The discriminator ``E`` outputs a code ``E(x)`` of shape ``(B, n_z)``. Its **feature mean** is the
GAN score, ``avg E(x) = (1/n_z) Σ_k E(x)_k`` (never the batch mean), and the Pearson correlation
``ρ(z, E(G(z)))`` between the latent and the code of the generated image is maximised by *both*
networks. The correlation is blind to the mean and the scale of the code, so the score and the
code do not compete: the score uses the mean, ρ the centred direction. After training,
``G(0.9 · standardise(E(x)))`` reconstructs ``x``.

Sign. With ``energy=False`` (canonical) the feature mean is a realness score (higher = more real);
with ``energy=True`` it is the author's energy (lower = more real), as in ``o_gan_celeba.py``.
The flag flips the score only: ρ is always computed on the raw encoder output, so a network
trained with one sign keeps ``E(G(z)) ≈ a·z + b`` with ``a > 0``.

Losses of the author's instantiation (GAN-QP with per-sample MSE, canonical sign), with
``s(x) = ±avg E(x)``, ``Δ = s(x_r) − s(x_f)``, ``MSE_i = mean_j (x_r − sg x_f)_ij²``::

    L_E = E[−Δ + 0.25 Δ² / MSE] − λ E[ρ(z, E(sg x_f))]
    L_G = −E[s(x_f)] − λ E[ρ(z, E(x_f))]

References:
    https://kexue.fm/archives/6409; Su, O-GAN: Extremely Concise Approach for Auto-Encoding
    Generative Adversarial Networks, arXiv 1903.01931; code ``bojone/o-gan`` (c7b3d08).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor

from .._validation import (
    Reduction,
    check_batched,
    check_paired,
    check_positive,
    check_reduction,
    check_same_batch,
    check_tensor,
    per_sample_flat,
    reduce,
    signed,
)
from .single_loss import SingleLossMethod, forward_detached_and_attached

__all__ = [
    "OGANSingleLoss",
    "ogan_correlation_loss",
    "ogan_encoder_loss",
    "ogan_generator_loss",
    "ogan_reconstruction_code",
    "ogan_score",
    "ogan_single_loss",
    "pearson_correlation",
]


def _float(x: Tensor) -> Tensor:
    """Upcast half precision to fp32 (centring and normalising lose too much in fp16/bf16)."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def _codes(x: object, name: str) -> Tensor:
    x = check_batched(x, name, min_dim=2)
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    return per_sample_flat(x)


def _normalise_centred(x: Tensor, eps: float) -> Tensor:
    """Centre each row, then divide by ``sqrt(max(Σ x², eps))`` (Keras ``l2_normalize``)."""
    x = x - x.mean(dim=1, keepdim=True)
    return x * x.pow(2).sum(dim=1, keepdim=True).clamp_min(eps).rsqrt()


def pearson_correlation(z: Tensor, z_hat: Tensor, *, eps: float = 1e-12) -> Tensor:
    """Per-sample Pearson correlation between a latent and its code, over the feature axis.

    .. math:: ρ(z, \\hat z) = \\cos(\\mathcal N(z), \\mathcal N(\\hat z)), \\quad
        \\mathcal N(v) = \\frac{v - \\bar v}{\\sqrt{\\max(\\|v - \\bar v\\|^2, ε)}}

    ρ is invariant to adding a constant to ``z_hat`` or scaling it by ``a > 0``, so its gradient
    w.r.t. ``z_hat`` is orthogonal to the ones vector and to ``z_hat − mean(z_hat)``. A code with
    zero variance gives ρ = 0 with a finite gradient (the ``eps`` floor, as in the author's Keras
    ``l2_normalize``), never NaN.

    Arguments:
        z: the latent, ``(B, n_z)`` (extra trailing dims are flattened).
        z_hat: the encoder's code of ``G(z)``, same shape.
        eps: floor on the squared norm of each centred row (default 1e-12, Keras ``l2_normalize``).

    Returns:
        ρ per sample, ``(B,)`` in ``[−1, 1]``; fp32 for half-precision inputs.

    References:
        https://kexue.fm/archives/6409 (``correlation`` in ``o_gan_celeba.py``).
    """
    z = _codes(z, "z")
    z_hat = _codes(z_hat, "z_hat")
    if z.shape != z_hat.shape:
        raise ValueError(
            f"z and z_hat must have the same shape (B, n_z); got z {tuple(z.shape)} and "
            f"z_hat {tuple(z_hat.shape)}"
        )
    check_positive(eps, "eps")
    if z.shape[1] < 2:
        raise ValueError(
            f"z needs at least 2 features for a correlation (the post asks n_z >= 3), got "
            f"shape {tuple(z.shape)}"
        )
    a = _normalise_centred(_float(z), eps)
    b = _normalise_centred(_float(z_hat), eps)
    return (a * b).sum(dim=1)


def ogan_score(encoder_output: Tensor) -> Tensor:
    """The O-GAN score: the mean of the encoder output over its **features** (not the batch).

    .. math:: \\mathrm{avg}\\,E(x) = \\frac1{n_z}\\sum_k E(x)_k

    Arguments:
        encoder_output: ``E(x)``, ``(B, n_z)`` (extra trailing dims are flattened). Batch size 1
            is fine: nothing is averaged over the batch.

    Returns:
        Raw scores ``(B,)`` in the encoder's own sign; the losses apply ``energy``.

    References:
        https://kexue.fm/archives/6409.
    """
    return _codes(encoder_output, "encoder_output").mean(dim=1)


def ogan_reconstruction_code(
    encoder_output: Tensor, *, scale: float = 0.9, eps: float = 1e-8
) -> Tensor:
    """The latent that reconstructs ``x`` as ``G(code)``: per-sample standardised ``E(x)``, scaled.

    .. math:: \\mathrm{code} = s\\cdot\\frac{E(x) - \\overline{E(x)}}{\\mathrm{std}(E(x)) + ε}

    mean and (population) std over the features of each sample.

    Arguments:
        encoder_output: ``E(x)``, ``(B, n_z)``.
        scale: ``s``, 0.9 in the SELF-MOD scripts (``o_gan_celeba_sm_4x4.py``); one version of
            ``o_gan_celeba.py`` uses 0.8; the post writes ``G(N(E(x)))`` (scale 1).
        eps: added to the std (the author's numpy code adds none).

    Returns:
        ``(B, n_z)``, same dtype as the input.

    References:
        https://kexue.fm/archives/6409; ``bojone/o-gan`` ``sample_ae``.
    """
    e = check_tensor(encoder_output, "encoder_output")
    if e.dim() != 2 or e.shape[0] == 0:
        raise ValueError(f"encoder_output must have shape (B, n_z), got {tuple(e.shape)}")
    check_positive(scale, "scale")
    check_positive(eps, "eps", allow_zero=True)
    centred = e - e.mean(dim=1, keepdim=True)
    std = centred.pow(2).mean(dim=1, keepdim=True).sqrt()
    return scale * centred / (std + eps)


def ogan_correlation_loss(
    z: Tensor,
    fake_code: Tensor,
    *,
    lam: float = 0.5,
    eps: float = 1e-12,
    reduction: Reduction = "mean",
) -> Tensor:
    """The O-GAN correlation term alone, ``−λ ρ(z, E(G(z)))``, to add to any GAN loss.

    O-GAN is loss-agnostic: pair :func:`ogan_score` with any discriminator / generator loss of
    this package and add this term to both.

    Arguments:
        z: latent ``(B, n_z)``.
        fake_code: ``E(G(z))`` ``(B, n_z)`` (from ``G(z).detach()`` in the encoder step).
        lam: λ, 0.5 at 128 px and 1.0 at 256 px [code].
        eps: see :func:`pearson_correlation`.
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (``(B,)``).

    References:
        https://kexue.fm/archives/6409.
    """
    check_reduction(reduction)
    check_positive(lam, "lam", allow_zero=True)
    return reduce(-lam * pearson_correlation(z, fake_code, eps=eps), reduction)


def _qp_term(delta: Tensor, x_real: Tensor, x_fake: Tensor, qp_weight: float, eps: float) -> Tensor:
    mse = _float(per_sample_flat(x_real.detach() - x_fake.detach())).pow(2).mean(dim=1)
    return qp_weight * delta.pow(2) / (mse.to(delta.dtype) + eps)


def _check_images(x_real: Tensor, x_fake: Tensor, batch: int) -> None:
    check_paired(x_real, x_fake, "x_real", "x_fake")
    if x_real.shape[0] != batch:
        raise ValueError(f"x_real batch {x_real.shape[0]} does not match the codes' batch {batch}")


def ogan_encoder_loss(
    real_code: Tensor,
    fake_code: Tensor,
    z: Tensor,
    x_real: Tensor,
    x_fake: Tensor,
    *,
    lam: float = 0.5,
    qp_weight: float = 0.25,
    eps: float = 1e-8,
    energy: bool = False,
    reduction: Reduction = "mean",
) -> Tensor:
    """O-GAN encoder (discriminator) loss, the author's GAN-QP instantiation.

    .. math:: L_E = \\mathbb E\\Big[-Δ + \\frac{w\\,Δ^2}{\\mathrm{MSE}(x_r, \\mathrm{sg}\\,x_f)+ε}
        \\Big] - λ\\,\\mathbb E[ρ(z, E(\\mathrm{sg}\\,x_f))],\\quad Δ = s(x_r) - s(x_f)

    with ``s = avg E`` (``energy=False``) or ``−avg E`` (``energy=True``) and the MSE per sample
    over all pixels (not RMS). ``w = 0.25 = 1/(2λ'd)`` with λ' = 2 [code]; the post writes
    ``λ1·Δ²/‖x − G(z)‖²``.

    Arguments:
        real_code: ``E(x_r)``, ``(B, n_z)``.
        fake_code: ``E(x_f.detach())``, ``(B, n_z)``: the fake must be detached in this step.
        z: the latent of ``x_f``, ``(B, n_z)``.
        x_real, x_fake: images ``(B, ...)`` paired by index; both detached internally for the MSE.
        lam: λ of ρ, 0.5 at 128 px, 1.0 at 256 px [code].
        qp_weight: ``w``, 0.25 [code].
        eps: added to the MSE (``x_r = x_f`` would divide by zero; the author adds none).
        energy: the author's sign (lower avg E = more real).
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (``(B,)``).

    Returns:
        The loss to minimise over E.

    References:
        https://kexue.fm/archives/6409; ``o_gan_celeba.py``.
    """
    check_reduction(reduction)
    check_positive(lam, "lam", allow_zero=True)
    check_positive(qp_weight, "qp_weight", allow_zero=True)
    check_positive(eps, "eps", allow_zero=True)
    r = signed(ogan_score(real_code), energy)
    f = signed(ogan_score(fake_code), energy)
    check_same_batch(r, f, "real_code", "fake_code")
    _check_images(x_real, x_fake, r.shape[0])
    rho = pearson_correlation(z, fake_code)
    delta = _float(r) - _float(f)
    loss = -delta + _qp_term(delta, x_real, x_fake, qp_weight, eps) - lam * rho
    return reduce(loss, reduction)


def ogan_generator_loss(
    fake_code: Tensor,
    z: Tensor,
    *,
    lam: float = 0.5,
    energy: bool = False,
    reduction: Reduction = "mean",
) -> Tensor:
    """O-GAN generator loss: ``L_G = −E[s(G(z))] − λ E[ρ(z, E(G(z)))]`` (E frozen).

    The GAN-QP generator loss ``E[s(x_r) − s(x_f)]`` has the same G-gradient as ``−E[s(x_f)]``;
    the real term is dropped. The quadratic term never enters ``L_G`` (it would minimise a pixel
    distance).

    Arguments:
        fake_code: ``E(G(z))`` with G attached, ``(B, n_z)``.
        z: latent ``(B, n_z)``.
        lam: λ of ρ, 0.5 at 128 px, 1.0 at 256 px [code].
        energy: the author's sign (lower avg E = more real).
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (``(B,)``).

    References:
        https://kexue.fm/archives/6409.
    """
    check_reduction(reduction)
    check_positive(lam, "lam", allow_zero=True)
    f = _float(signed(ogan_score(fake_code), energy))
    rho = pearson_correlation(z, fake_code)
    return reduce(-f - lam * rho, reduction)


class OGANSingleLoss(NamedTuple):
    """Result of :func:`ogan_single_loss`: ``loss`` is the sum of the four graph-attached terms."""

    loss: Tensor
    critic: Tensor
    generator: Tensor
    correlation: Tensor
    quadratic: Tensor


def ogan_single_loss(
    encoder: Callable[[Tensor], Tensor],
    x_real: Tensor,
    x_fake: Tensor,
    z: Tensor,
    *,
    lam: float = 0.5,
    qp_weight: float = 0.25,
    eps: float = 1e-8,
    energy: bool = False,
    method: SingleLossMethod = "replay",
    reduction: Reduction = "mean",
) -> OGANSingleLoss:
    """The author's O-GAN objective as **one** loss for one optimiser over E ∪ G (post 6387 trick).

    With ``s`` the signed score and ``x_f = G(z)`` attached (``energy=True`` gives exactly the
    author's ``t1 + t2 − 0.5ρ + qp`` of ``o_gan_celeba.py``)::

        critic      = −Δ,  Δ = s(x_r) − s(sg x_f)           trains E only
        generator   = −s(x_f) + s(sg x_f)                    value 0, trains G only
        correlation = −λ ρ(z, E(x_f))                        trains E and G
        quadratic   = w Δ² / (MSE(x_r, sg x_f) + eps)        trains E only

    ``E(sg x_f)`` and ``E(x_f)`` come from
    :func:`~kexue.gan_losses.losses.single_loss.forward_detached_and_attached`, so the stop-gradients
    cannot be misplaced; ``E(x_r)`` is a separate forward (BN statistics per call, as in the
    author's Keras model).

    Arguments:
        encoder: the discriminator/encoder ``E``, ``(B, ...) -> (B, n_z)``.
        x_real: real images ``(B, ...)``.
        x_fake: ``G(z)`` with the generator's graph attached, ``(B, ...)``.
        z: latent ``(B, n_z)``.
        lam: λ of ρ, 0.5 at 128 px, 1.0 at 256 px [code].
        qp_weight: 0.25 [code].
        eps: added to the MSE.
        energy: the author's sign (lower avg E = more real).
        method: how the two fake forwards are run, see ``forward_detached_and_attached``.
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (every term ``(B,)``).

    Returns:
        :class:`OGANSingleLoss`; call ``.loss.backward()`` then step one optimiser.

    References:
        https://kexue.fm/archives/6409, https://kexue.fm/archives/6387; ``o_gan_celeba.py``.
    """
    check_reduction(reduction)
    check_positive(lam, "lam", allow_zero=True)
    check_positive(qp_weight, "qp_weight", allow_zero=True)
    check_positive(eps, "eps", allow_zero=True)
    check_tensor(x_fake, "x_fake")
    real_code = encoder(x_real)
    fake_code_sg, fake_code = forward_detached_and_attached(encoder, x_fake, method=method)
    r = _float(signed(ogan_score(real_code), energy))
    f_sg = _float(signed(ogan_score(fake_code_sg), energy))
    f = _float(signed(ogan_score(fake_code), energy))
    check_same_batch(r, f, "encoder(x_real)", "encoder(x_fake)")
    _check_images(x_real, x_fake, r.shape[0])
    delta = r - f_sg
    critic = reduce(-delta, reduction)
    generator = reduce(f_sg - f, reduction)
    correlation = reduce(-lam * pearson_correlation(z, fake_code), reduction)
    quadratic = reduce(_qp_term(delta, x_real, x_fake, qp_weight, eps), reduction)
    return OGANSingleLoss(
        loss=critic + generator + correlation + quadratic,
        critic=critic,
        generator=generator,
        correlation=correlation,
        quadratic=quadratic,
    )
