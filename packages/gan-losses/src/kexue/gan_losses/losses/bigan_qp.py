"""BiGAN-QP: a bidirectional GAN trained with the GAN-QP divergence (post 6214, ``bojone/gan-qp``).

A joint critic ``T(x, z)`` tells real pairs ``(x_r, E(x_r))`` from fake pairs ``(G(z), z)``. With
``Δ_i = T(x_r, E(x_r))_i − T(G(z), z)_i`` (canonical sign) and the per-sample distance

.. math:: d_i = \\frac1N\\sum_j |x_r - G(z)|_{ij} + \\frac1{n_z}\\sum_k |E(x_r) - z|_{ik}

the losses are [code]::

    L_T    = E[−Δ + Δ² / (2 λ d)]                                    G, E frozen; λ = 10
    L_{G,E} = E[Δ] + β1·mean((z − E(sg G(z)))²) + β2·mean((x_r − G(sg E(x_r)))²)

Δ reaches G through ``G(z)`` and E through ``E(x_r)``. The two reconstruction terms are InfoGAN
style mutual-information bounds; their **stop-gradients are essential** (coupled through both nets
they gave blurry reconstructions [blog]): the latent term trains only E, the pixel term only G.
:func:`bigan_qp_generator_encoder_loss` therefore takes the networks as callables and the
tensors they already produced, and does the detached re-forwards itself.

Defaults [code]: β1 = 2, β2 = 3 at 128 px (z = 128, batch 64); β1 = 4, β2 = 6 at 256 px
(z = 256, batch 32); λ = 10; critic:generator steps 2:1; Adam(2e-4, 0.5). Keep β2 small: it is a
pixel MSE and blurs [blog].

References:
    https://kexue.fm/archives/6214; ``bojone/gan-qp`` ``bigan-qp/bigan_qp_128.py`` and
    ``bigan-qp-256.py`` (f81ec73).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor

from .._validation import (
    Reduction,
    as_scores,
    check_batched,
    check_paired,
    check_positive,
    check_reduction,
    check_same_batch,
    per_sample_flat,
    reduce,
    signed,
)

__all__ = [
    "bigan_qp_critic_loss",
    "bigan_qp_distance",
    "bigan_qp_generator_encoder_loss",
    "bigan_qp_latent_reconstruction",
    "bigan_qp_pixel_reconstruction",
]


def bigan_qp_distance(x_real: Tensor, x_fake: Tensor, e_real: Tensor, z: Tensor) -> Tensor:
    """Per-sample joint L1 distance between ``(x_r, E(x_r))`` and ``(G(z), z)``.

    .. math:: d_i = \\mathrm{mean}_j|x_r - x_f|_{ij} + \\mathrm{mean}_k|E(x_r) - z|_{ik}

    Means (not sums) keep λ valid across resolutions and latent sizes.

    Arguments:
        x_real, x_fake: images ``(B, ...)`` paired by index.
        e_real: ``E(x_r)``, ``(B, n_z)``.
        z: the latent of ``x_fake``, ``(B, n_z)``.

    Returns:
        ``(B,)``, with gradient if the inputs have one (the losses detach it).

    References:
        https://kexue.fm/archives/6214; ``d_norm`` in ``bigan_qp_128.py``.
    """
    x_real, x_fake = check_paired(x_real, x_fake, "x_real", "x_fake")
    e_real, z = check_paired(e_real, z, "e_real", "z")
    check_same_batch(x_real, z, "x_real", "z")
    pixel = per_sample_flat(x_real - x_fake).abs().mean(dim=1)
    latent = per_sample_flat(e_real - z).abs().mean(dim=1)
    return pixel + latent.to(pixel.dtype)


def bigan_qp_critic_loss(
    real_scores: Tensor,
    fake_scores: Tensor,
    x_real: Tensor,
    x_fake: Tensor,
    e_real: Tensor,
    z: Tensor,
    *,
    lam: float = 10.0,
    eps: float = 1e-8,
    energy: bool = False,
    reduction: Reduction = "mean",
) -> Tensor:
    """BiGAN-QP critic loss ``L_T = E[−Δ + Δ²/(2λd + ε)]`` with the joint distance ``d``.

    At its optimum ``Δ* = λd`` and ``L_T = −λd/2`` per sample, as in GAN-QP.

    Arguments:
        real_scores: ``T(x_r, E(x_r))``, ``(B,)`` or ``(B, 1)``, E frozen.
        fake_scores: ``T(G(z), z)``, G frozen (``G(z).detach()``).
        x_real, x_fake, e_real, z: as in :func:`bigan_qp_distance`; detached for ``d``.
        lam: λ = 10 [code].
        eps: added to ``2λd`` (the author adds none; ``d = 0`` would divide by zero).
        energy: scores are energies (lower = more real).
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (``(B,)``).

    Returns:
        The loss to minimise over T.

    References:
        https://kexue.fm/archives/6214.
    """
    check_reduction(reduction)
    check_positive(lam, "lam")
    check_positive(eps, "eps", allow_zero=True)
    r = signed(as_scores(real_scores, "real_scores"), energy)
    f = signed(as_scores(fake_scores, "fake_scores"), energy)
    check_same_batch(r, f, "real_scores", "fake_scores")
    d = bigan_qp_distance(x_real.detach(), x_fake.detach(), e_real.detach(), z.detach())
    check_same_batch(r, d, "real_scores", "x_real")
    delta = r - f
    loss = -delta + delta.pow(2) / (2.0 * lam * d.to(delta.dtype) + eps)
    return reduce(loss, reduction)


def bigan_qp_latent_reconstruction(
    encoder: Callable[[Tensor], Tensor], x_fake: Tensor, z: Tensor
) -> Tensor:
    """Latent reconstruction ``mean_k (z − E(sg G(z)))²`` per sample; trains **E only**.

    ``x_fake`` is detached here, so no gradient can reach G whatever the caller passes.

    Arguments:
        encoder: E, ``(B, ...) -> (B, n_z)``.
        x_fake: ``G(z)``, ``(B, ...)`` (attached or not).
        z: latent ``(B, n_z)``; ``z`` is a constant (sampled noise).

    Returns:
        ``(B,)``.

    References:
        https://kexue.fm/archives/6214.
    """
    check_batched(x_fake, "x_fake", min_dim=1)
    check_batched(z, "z")
    z_rec = check_batched(encoder(x_fake.detach()), "encoder(x_fake)")
    z, z_rec = check_paired(z.detach(), z_rec, "z", "encoder(x_fake)")
    return per_sample_flat(z - z_rec).pow(2).mean(dim=1)


def bigan_qp_pixel_reconstruction(
    generator: Callable[[Tensor], Tensor], e_real: Tensor, x_real: Tensor
) -> Tensor:
    """Pixel reconstruction ``mean_j (x_r − G(sg E(x_r)))²`` per sample; trains **G only**.

    ``e_real`` is detached here, so no gradient can reach E whatever the caller passes.

    Arguments:
        generator: G, ``(B, n_z) -> (B, ...)``.
        e_real: ``E(x_r)``, ``(B, n_z)`` (attached or not).
        x_real: real images ``(B, ...)``.

    Returns:
        ``(B,)``.

    References:
        https://kexue.fm/archives/6214.
    """
    check_batched(e_real, "e_real")
    check_batched(x_real, "x_real")
    x_rec = check_batched(generator(e_real.detach()), "generator(e_real)", min_dim=1)
    x_real, x_rec = check_paired(x_real.detach(), x_rec, "x_real", "generator(e_real)")
    return per_sample_flat(x_real - x_rec).pow(2).mean(dim=1)


def bigan_qp_generator_encoder_loss(
    real_scores: Tensor,
    fake_scores: Tensor,
    *,
    generator: Callable[[Tensor], Tensor],
    encoder: Callable[[Tensor], Tensor],
    x_real: Tensor,
    x_fake: Tensor,
    e_real: Tensor,
    z: Tensor,
    beta_latent: float = 2.0,
    beta_pixel: float = 3.0,
    energy: bool = False,
    reduction: Reduction = "mean",
) -> Tensor:
    """Joint generator/encoder loss of BiGAN-QP (T frozen), with stop-gradient reconstructions.

    .. math:: L_{G,E} = \\mathbb E[Δ] + β_1\\,\\overline{(z - E(\\mathrm{sg}\\,G(z)))^2}
        + β_2\\,\\overline{(x_r - G(\\mathrm{sg}\\,E(x_r)))^2}

    Arguments:
        real_scores: ``T(x_r, E(x_r))`` with E attached (T frozen).
        fake_scores: ``T(G(z), z)`` with G attached (T frozen).
        generator: G; re-run on ``sg E(x_r)`` for the pixel term.
        encoder: E; re-run on ``sg G(z)`` for the latent term.
        x_real: real images ``(B, ...)``.
        x_fake: ``G(z)`` (detached internally for the latent term).
        e_real: ``E(x_r)`` (detached internally for the pixel term).
        z: latent ``(B, n_z)``.
        beta_latent: β1 = 2 at 128 px, 4 at 256 px [code].
        beta_pixel: β2 = 3 at 128 px, 6 at 256 px [code].
        energy: scores are energies (lower = more real).
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (``(B,)``); the overbars of the formula
            are means over elements, so ``mean`` is the author's value.

    Returns:
        The loss to minimise over G and E.

    References:
        https://kexue.fm/archives/6214; ``g_loss`` in ``bigan_qp_128.py``.
    """
    check_reduction(reduction)
    check_positive(beta_latent, "beta_latent", allow_zero=True)
    check_positive(beta_pixel, "beta_pixel", allow_zero=True)
    r = signed(as_scores(real_scores, "real_scores"), energy)
    f = signed(as_scores(fake_scores, "fake_scores"), energy)
    check_same_batch(r, f, "real_scores", "fake_scores")
    check_batched(x_real, "x_real")
    check_batched(z, "z")
    check_same_batch(r, x_real, "real_scores", "x_real")
    check_same_batch(r, z, "real_scores", "z")
    loss = r - f
    if beta_latent:
        loss = loss + beta_latent * bigan_qp_latent_reconstruction(encoder, x_fake, z).to(
            loss.dtype
        )
    if beta_pixel:
        loss = loss + beta_pixel * bigan_qp_pixel_reconstruction(generator, e_real, x_real).to(
            loss.dtype
        )
    return reduce(loss, reduction)
