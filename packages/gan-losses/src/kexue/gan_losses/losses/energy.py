"""The energy view of GANs (posts 6316, 6331, 6612), MEG and IGEBM losses.

The discriminator is an energy ``U`` (lower = more real; pass ``−D(x)`` for a canonical critic).
Every function here takes energies directly, so there is no ``energy`` flag.

- :func:`contrastive_energy_loss`: IGEBM's ``E U(x+) − E U(sg x−) + α(E U(x+)² + E U(x−)²)``.
  Post 6612 prints ``U²(x_r) − U²(x_f)``; the released code (``openai/ebm_code_release``) adds
  both squares, which is the regulariser that keeps energies bounded: the minus is a typo.
- :func:`score_penalty`: the zero-centred gradient penalty on **reals only**, ``λ‖∇_x U(x_r)‖²``
  per sample over all non-batch dims (post 6316; MEG's ``score_penalty`` takes a per-pixel norm,
  ``norm(2, dim=1)`` on 4-D input, which is not ported).
- :func:`mi_bce_loss` / :func:`meg_mutual_information_loss`: MEG's entropy term, a JSD-style
  mutual-information estimate between ``G(z)`` and ``z`` by a statistics network ``T(x, z)``.
- :func:`encoder_entropy_surrogate`: the author's simplification (post 6331), an InfoGAN bound
  ``λ2‖z − E(G(z))‖²`` with an encoder E (O-GAN later merged E into D and used ρ instead).

The generator of the energy view minimises ``E U(G(z)) − H(G(z))`` with ``H`` replaced by one of
the two mutual-information surrogates above; MEG trains G and T jointly on
``E U(G(z)) + mi_bce`` and U on ``E U(x_r) − E U(x_f) + 10·score_penalty`` (E:G = 5:1,
Adam(1e-4, (0.5, 0.9)), z = 128).

References:
    https://kexue.fm/archives/6316, https://kexue.fm/archives/6331, https://kexue.fm/archives/6612;
    Kumar et al., Maximum Entropy Generators for Energy-Based Models, arXiv 1901.08508
    (``ritheshkumar95/energy_based_generative_models``, b4a8d82);
    Du & Mordatch, Implicit Generation and Generalization in Energy-Based Models,
    arXiv 1903.08689 (``openai/ebm_code_release``, 051850e).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from .._autograd import input_gradients, per_sample_grad_sqnorm
from .._validation import (
    Reduction,
    as_scores,
    check_batched,
    check_positive,
    check_reduction,
    check_same_batch,
    per_sample_flat,
    reduce,
)

__all__ = [
    "contrastive_energy_loss",
    "encoder_entropy_surrogate",
    "meg_mutual_information_loss",
    "mi_bce_loss",
    "random_derangement",
    "score_penalty",
]


def _reduce_two(pos: Tensor, neg: Tensor, reduction: str, pos_name: str, neg_name: str) -> Tensor:
    """``mean``/``sum`` per term then add; ``none`` pairs by index (equal batches)."""
    check_reduction(reduction)
    if reduction == "mean":
        return pos.mean() + neg.mean()
    if reduction == "sum":
        return pos.sum() + neg.sum()
    check_same_batch(pos, neg, pos_name, neg_name)
    return pos + neg


def contrastive_energy_loss(
    real_energy: Tensor,
    fake_energy: Tensor,
    *,
    alpha: float = 1.0,
    reduction: Reduction = "mean",
) -> Tensor:
    """Contrastive-divergence energy loss with IGEBM's energy-magnitude regulariser.

    .. math:: L_U = \\mathbb E\\,U(x^+) - \\mathbb E\\,U(\\mathrm{sg}\\,x^-)
        + α\\big(\\mathbb E\\,U(x^+)^2 + \\mathbb E\\,U(x^-)^2\\big)

    Both squares are **added** (IGEBM ``train.py``, ``l2_coeff``); post 6612 prints a minus on
    ``U²(x_f)``, a typo. ``alpha = 0`` gives the plain loss of post 6316 and MEG.

    Arguments:
        real_energy: ``U(x+)``, ``(B,)`` or ``(B, 1)``.
        fake_energy: ``U(x−)`` of detached negatives, ``(B',)`` or ``(B', 1)`` (e.g. from
            :func:`~kexue.gan_losses.training.mcmc.langevin_sample`).
        alpha: α, 1 [code: ``l2_coeff``].
        reduction: ``"mean"``/``"sum"`` (each term over its own batch, then added) or ``"none"``
            (``(B,)`` per pair; needs ``B == B'``).

    Returns:
        The loss to minimise over U.

    References:
        https://kexue.fm/archives/6612; arXiv 1903.08689, ``openai/ebm_code_release``.
    """
    check_positive(alpha, "alpha", allow_zero=True)
    u_pos = as_scores(real_energy, "real_energy")
    u_neg = as_scores(fake_energy, "fake_energy")
    pos = u_pos + alpha * u_pos.pow(2)
    neg = -u_neg + alpha * u_neg.pow(2)
    return _reduce_two(pos, neg, reduction, "real_energy", "fake_energy")


def score_penalty(
    real_energy: Tensor,
    x_real: Tensor,
    *,
    weight: float = 10.0,
    grad_scaler: Any | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    """Zero-centred score penalty on real samples: ``λ‖∇_x U(x_r)‖²`` per sample.

    The squared norm is taken per sample over **all** non-batch dims (``(B, C, H, W)`` flattened
    to ``(B, N)``), in fp32. Real samples should sit at energy minima, hence zero-centred and on
    reals only (post 6316; = R1 up to the factor ½).

    Arguments:
        real_energy: ``U(x_r)`` computed from ``x_real``, ``(B,)`` or ``(B, 1)``.
        x_real: the real batch U saw, ``(B, ...)``, with ``requires_grad=True``.
        weight: λ, 10 (MEG ``lamda``; the posts give no value).
        grad_scaler: the AMP ``GradScaler`` whose scale multiplies ``real_energy``, if any.
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (``(B,)``).

    Returns:
        The penalty (fp32), differentiable w.r.t. U's parameters.

    References:
        https://kexue.fm/archives/6316; arXiv 1901.08508.
    """
    check_reduction(reduction)
    check_positive(weight, "weight", allow_zero=True)
    check_batched(x_real, "x_real", min_dim=1)
    grads = input_gradients(
        real_energy,
        x_real,
        grad_scaler=grad_scaler,
        outputs_name="real_energy",
        inputs_name="x_real",
    )
    return reduce(weight * per_sample_grad_sqnorm(grads), reduction)


def mi_bce_loss(
    joint_scores: Tensor, marginal_scores: Tensor, *, reduction: Reduction = "mean"
) -> Tensor:
    """MEG's mutual-information estimator loss: BCE with logits, 1 on joint, 0 on marginal pairs.

    .. math:: L_T = \\tfrac12\\big[\\mathrm{sp}(-T(G(z), z)) + \\mathrm{sp}(T(G(z),\\tilde z))\\big]

    per pair, i.e. the mean BCE over the concatenated ``2B`` logits (``nn.BCEWithLogitsLoss`` in
    MEG), so ``T ≡ 0`` gives ``ln 2``. Minimised jointly by T and G, it lower-bounds (up to
    constants) the Jensen–Shannon mutual information between ``G(z)`` and ``z``.

    Arguments:
        joint_scores: ``T(G(z), z)``, ``(B,)`` or ``(B, 1)``.
        marginal_scores: ``T(G(z), z̃)``, ``z̃`` a permutation of ``z`` within the batch.
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (``(B,)``).

    References:
        https://kexue.fm/archives/6331; arXiv 1901.08508.
    """
    t_joint = as_scores(joint_scores, "joint_scores")
    t_marginal = as_scores(marginal_scores, "marginal_scores")
    check_same_batch(t_joint, t_marginal, "joint_scores", "marginal_scores")
    check_reduction(reduction)
    return reduce(0.5 * (F.softplus(-t_joint) + F.softplus(t_marginal)), reduction)


def random_derangement(
    n: int, *, generator: torch.Generator | None = None, device: torch.device | str | None = None
) -> Tensor:
    """A random permutation of ``range(n)`` without fixed points (one random ``n``-cycle).

    ``z[random_derangement(B)]`` pairs every sample with another sample's latent; a plain
    ``randperm`` (MEG) leaves one sample with its own latent on average, a "marginal" pair that
    is in fact a joint one.

    Arguments:
        n: batch size, at least 2.
        generator: seeds the permutation.
        device: device of the returned index tensor (default: CPU).

    Returns:
        ``(n,)`` int64 indices ``p`` with ``p[i] != i``.
    """
    if not isinstance(n, int) or n < 2:
        raise ValueError(f"n must be an int >= 2 (a permutation without fixed points), got {n!r}")
    gen_device = generator.device if generator is not None else torch.device("cpu")
    order = torch.randperm(n, generator=generator, device=gen_device)
    perm = torch.empty_like(order)
    perm[order] = order.roll(1)
    return perm.to(device if device is not None else gen_device)


def meg_mutual_information_loss(
    statistics: Callable[[Tensor, Tensor], Tensor],
    x_fake: Tensor,
    z: Tensor,
    *,
    generator: torch.Generator | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    """MEG's MI term with the statistics network: :func:`mi_bce_loss` on shuffled latents.

    Runs ``T`` once on the concatenation ``([x_f; x_f], [z; z̃])`` (as MEG does, so a BN layer in
    T sees joint and marginal pairs in one batch), ``z̃ = z[random_derangement(B)]``.

    Arguments:
        statistics: ``T(x, z) -> (2B,)`` or ``(2B, 1)`` logits.
        x_fake: ``G(z)`` with G attached, ``(B, ...)``.
        z: latent ``(B, n_z)``.
        generator: seeds the permutation.
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (``(B,)``).

    Returns:
        The loss to minimise jointly over T and G.

    References:
        https://kexue.fm/archives/6331; arXiv 1901.08508 (``train_generator``).
    """
    x_fake = check_batched(x_fake, "x_fake", min_dim=1)
    z = check_batched(z, "z", min_dim=1)
    check_same_batch(x_fake, z, "x_fake", "z")
    b = z.shape[0]
    z_tilde = z[random_derangement(b, generator=generator, device=z.device)]
    scores = as_scores(
        statistics(torch.cat([x_fake, x_fake], dim=0), torch.cat([z, z_tilde], dim=0)),
        "statistics(x, z)",
    )
    if scores.shape[0] != 2 * b:
        raise ValueError(
            f"statistics(x, z) must return one logit per pair, (2B,) = ({2 * b},), got "
            f"{tuple(scores.shape)}"
        )
    return mi_bce_loss(scores[:b], scores[b:], reduction=reduction)


def encoder_entropy_surrogate(
    z: Tensor, z_reconstructed: Tensor, *, weight: float = 1.0, reduction: Reduction = "mean"
) -> Tensor:
    """The author's entropy surrogate: ``λ2‖z − E(G(z))‖²`` per sample (sum over features).

    Minimised over G and E together with ``E U(G(z))`` (post 6331): an InfoGAN-type lower bound
    on ``I(G(z); z)`` with a Gaussian posterior of fixed variance.

    Arguments:
        z: latent ``(B, n_z)``.
        z_reconstructed: ``E(G(z))`` with both networks attached, same shape.
        weight: λ2; the post gives no value, 1 is a neutral default.
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (``(B,)``).

    References:
        https://kexue.fm/archives/6331.
    """
    check_reduction(reduction)
    check_positive(weight, "weight", allow_zero=True)
    z = check_batched(z, "z", min_dim=1)
    z_reconstructed = check_batched(z_reconstructed, "z_reconstructed", min_dim=1)
    if z.shape != z_reconstructed.shape:
        raise ValueError(
            f"z and z_reconstructed must have the same shape, got {tuple(z.shape)} and "
            f"{tuple(z_reconstructed.shape)}"
        )
    return reduce(weight * per_sample_flat(z - z_reconstructed).pow(2).sum(dim=1), reduction)
