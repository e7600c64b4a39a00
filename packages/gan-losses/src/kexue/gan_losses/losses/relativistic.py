"""Relativistic GAN losses: RSGAN (paired) and the relativistic-average RaSGAN, RaLSGAN, RaHinge.

Forms as in ``AlexiaJM/RelativisticGAN`` ``code/GAN_losses_iter.py``; ``r̄`` and ``f̄`` are batch
means, ``sp`` = softplus:

=======  ============================================  ============================================
variant  L_D                                           L_G
=======  ============================================  ============================================
RSGAN    E_i sp(-(r_i - f_i))                          E_i sp(-(f_i - r_i))
RaSGAN   ½[E sp(-(r - f̄)) + E sp(f - r̄)]               ½[E sp(r - f̄) + E sp(-(f - r̄))]
RaLSGAN  ½[E (r - f̄ - 1)² + E (f - r̄ + 1)²]            ½[E (r - f̄ + 1)² + E (f - r̄ - 1)²]
RaHinge  ½[E relu(1 - (r - f̄)) + E relu(1 + (f - r̄))]  ½[E relu(1 + (r - f̄)) + E relu(1 - (f - r̄))]
=======  ============================================  ============================================

The generator losses keep the real-term half: it carries gradient to G through ``f̄`` (ports that
drop it, e.g. several ESRGAN ports, train a different objective; PyTorch-GAN PR #93). In the G step
recompute ``r`` on a fresh real batch with D frozen; in the D step pass detached fakes.

Batch means under ``torch.distributed``: by default ``r̄`` and ``f̄`` are per-process means, so the
loss depends on the per-device batch size. ``all_gather=True`` forms the means over the scores of
every rank (one ``all_reduce`` of the local sums and counts per call, so ranks may hold different
batch sizes). The gradient flows through the local scores only: the other ranks' contributions to the
means are constants, as in the usual all-gather-with-local-gradient pattern. With equal per-rank
batch sizes the average of the per-rank losses equals the single-process loss on the concatenated
batch; the cross-rank gradient path through the means is dropped.
Every rank must call the loss (it is a collective). It is a no-op when ``torch.distributed`` is not
initialised or has one process.

References:
    Jolicoeur-Martineau, The relativistic discriminator, arXiv 1807.00734.
    https://kexue.fm/archives/6110 (RSGAN, the "Turing test" reading).
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor

from .._validation import (
    Reduction,
    as_scores,
    check_same_batch,
    reduce,
    reduce_pair,
    signed_pair,
)

__all__ = [
    "batch_mean",
    "rahinge_discriminator_loss",
    "rahinge_generator_loss",
    "ralsgan_discriminator_loss",
    "ralsgan_generator_loss",
    "rasgan_discriminator_loss",
    "rasgan_generator_loss",
    "rsgan_discriminator_loss",
    "rsgan_generator_loss",
]


def _distributed_world() -> int:
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


def batch_mean(scores: Tensor, *, all_gather: bool = False) -> Tensor:
    """Batch mean of scores ``(B,)``, optionally over every ``torch.distributed`` rank.

    With ``all_gather=True`` and an initialised process group of more than one process, returns
    ``(sum of local scores + sum of the other ranks' scores) / total count``; the other ranks' sum
    is a constant, so the gradient reaches the local scores only (``1 / total count`` each).
    Otherwise returns ``scores.mean()``. The cross-rank sum is accumulated in at least fp32.

    Arguments:
        scores: ``(B,)`` or ``(B, 1)`` scores of this rank.
        all_gather: gather over ranks (a collective: every rank must call it).

    Returns:
        A scalar in the dtype of ``scores``.
    """
    return _batch_means(as_scores(scores, "scores"), all_gather=all_gather)[0]


def _batch_means(*scores: Tensor, all_gather: bool) -> list[Tensor]:
    """Means of several score tensors, over all ranks with one ``all_reduce`` when asked."""
    if not all_gather or _distributed_world() == 1:
        return [s.mean() for s in scores]
    acc = torch.promote_types(scores[0].dtype, torch.float32)
    local_sums = [s.sum(dtype=acc) for s in scores]
    stats = torch.stack(
        [v for s, ls in zip(scores, local_sums) for v in (ls.detach(), ls.new_tensor(s.shape[0]))]
    )
    dist.all_reduce(stats, op=dist.ReduceOp.SUM)
    means = []
    for i, (s, ls) in enumerate(zip(scores, local_sums)):
        other_sum = stats[2 * i] - ls.detach()
        means.append(((ls + other_sum) / stats[2 * i + 1]).to(s.dtype))
    return means


def _ra_scores(
    real_scores: Tensor, fake_scores: Tensor, energy: bool, all_gather: bool
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    r, f = signed_pair(real_scores, fake_scores, energy)
    r_bar, f_bar = _batch_means(r, f, all_gather=all_gather)
    return r, f, r_bar, f_bar


# -------------------------------------------------------------------------------------- RSGAN


def _rs_scores(real_scores: Tensor, fake_scores: Tensor, energy: bool) -> tuple[Tensor, Tensor]:
    r, f = signed_pair(real_scores, fake_scores, energy)
    check_same_batch(r, f, "real_scores", "fake_scores")
    return r, f


def rsgan_discriminator_loss(
    real_scores: Tensor,
    fake_scores: Tensor,
    *,
    energy: bool = False,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""Relativistic standard GAN discriminator loss, pairs ``(r_i, f_i)`` by index.

    .. math:: L_D = \mathbb E_i\,\mathrm{sp}(-(r_i - f_i))

    Arguments:
        real_scores: raw D scores on real samples ``(B,)`` or ``(B, 1)``.
        fake_scores: raw D scores on detached fakes ``(B,)`` or ``(B, 1)``; same ``B`` (raises
            otherwise: the pairs are by index).
        energy: scores use the energy sign (lower = more real).
        reduction: ``"mean"`` | ``"sum"`` | ``"none"`` (``(B,)``).

    Returns:
        A scalar, or ``(B,)``; ``ln 2`` at ``r = f``.

    References:
        Jolicoeur-Martineau, arXiv 1807.00734 §4.1; the author's ``rsgan_sn_celeba.py``
        (``bojone/gan``): SN D, Adam(2e-4, 0.5), D:G = 1:2, https://kexue.fm/archives/6110.
    """
    r, f = _rs_scores(real_scores, fake_scores, energy)
    return reduce(F.softplus(f - r), reduction)


def rsgan_generator_loss(
    real_scores: Tensor,
    fake_scores: Tensor,
    *,
    energy: bool = False,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""Relativistic standard GAN generator loss, pairs by index.

    .. math:: L_G = \mathbb E_i\,\mathrm{sp}(-(f_i - r_i))

    Arguments:
        real_scores: D scores on a real batch ``(B,)`` or ``(B, 1)`` (D frozen).
        fake_scores: D scores on generated samples ``(B,)`` or ``(B, 1)``, attached to G.
        energy: scores use the energy sign.
        reduction: ``"mean"`` | ``"sum"`` | ``"none"``.

    Returns:
        A scalar, or ``(B,)``; ``ln 2`` at ``r = f``.

    References:
        Jolicoeur-Martineau, arXiv 1807.00734 §4.1.
    """
    r, f = _rs_scores(real_scores, fake_scores, energy)
    return reduce(F.softplus(r - f), reduction)


# ------------------------------------------------------------------------------------- RaSGAN


def rasgan_discriminator_loss(
    real_scores: Tensor,
    fake_scores: Tensor,
    *,
    energy: bool = False,
    reduction: Reduction = "mean",
    all_gather: bool = False,
) -> Tensor:
    r"""Relativistic-average standard GAN discriminator loss.

    .. math::
        L_D = \tfrac12\big[\mathbb E\,\mathrm{sp}(-(r-\bar f)) + \mathbb E\,\mathrm{sp}(f-\bar r)\big]

    Arguments:
        real_scores: raw D scores on real samples ``(B_r,)`` or ``(B_r, 1)``.
        fake_scores: raw D scores on detached fakes ``(B_f,)`` or ``(B_f, 1)``.
        energy: scores use the energy sign.
        reduction: ``"mean"`` | ``"sum"`` | ``"none"`` (``½(real_term[i] + fake_term[i])``, needs
            ``B_r == B_f``). The batch means ``r̄``, ``f̄`` are always over the whole batch.
        all_gather: form ``r̄``, ``f̄`` over every ``torch.distributed`` rank (module docstring).

    Returns:
        A scalar, or ``(B,)``; ``ln 2`` at zero scores.

    References:
        Jolicoeur-Martineau, arXiv 1807.00734 §4.2; AlexiaJM defaults: Adam(1e-4, (0.5, 0.999)),
        batch 32, 1:1 steps.
    """
    r, f, r_bar, f_bar = _ra_scores(real_scores, fake_scores, energy, all_gather)
    return reduce_pair(F.softplus(f_bar - r), F.softplus(f - r_bar), reduction, scale=0.5)


def rasgan_generator_loss(
    real_scores: Tensor,
    fake_scores: Tensor,
    *,
    energy: bool = False,
    reduction: Reduction = "mean",
    all_gather: bool = False,
) -> Tensor:
    r"""Relativistic-average standard GAN generator loss (with the real-term half).

    .. math::
        L_G = \tfrac12\big[\mathbb E\,\mathrm{sp}(r-\bar f) + \mathbb E\,\mathrm{sp}(-(f-\bar r))\big]

    Arguments:
        real_scores: D scores on a real batch ``(B_r,)`` or ``(B_r, 1)`` (D frozen).
        fake_scores: D scores on generated samples ``(B_f,)`` or ``(B_f, 1)``, attached to G.
        energy: scores use the energy sign.
        reduction: ``"mean"`` | ``"sum"`` | ``"none"`` (needs ``B_r == B_f``).
        all_gather: form the means over every ``torch.distributed`` rank.

    Returns:
        A scalar, or ``(B,)``; ``ln 2`` at zero scores.

    References:
        Jolicoeur-Martineau, arXiv 1807.00734 §4.2.
    """
    r, f, r_bar, f_bar = _ra_scores(real_scores, fake_scores, energy, all_gather)
    return reduce_pair(F.softplus(r - f_bar), F.softplus(r_bar - f), reduction, scale=0.5)


# ------------------------------------------------------------------------------------ RaLSGAN


def ralsgan_discriminator_loss(
    real_scores: Tensor,
    fake_scores: Tensor,
    *,
    energy: bool = False,
    reduction: Reduction = "mean",
    all_gather: bool = False,
) -> Tensor:
    r"""Relativistic-average least-squares discriminator loss.

    .. math:: L_D = \tfrac12\big[\mathbb E(r-\bar f-1)^2 + \mathbb E(f-\bar r+1)^2\big]

    Arguments:
        real_scores: raw D scores on real samples ``(B_r,)`` or ``(B_r, 1)``.
        fake_scores: raw D scores on detached fakes ``(B_f,)`` or ``(B_f, 1)``.
        energy: scores use the energy sign.
        reduction: ``"mean"`` | ``"sum"`` | ``"none"`` (needs ``B_r == B_f``).
        all_gather: form the means over every ``torch.distributed`` rank.

    Returns:
        A scalar, or ``(B,)``; 1 at zero scores.

    References:
        Jolicoeur-Martineau, arXiv 1807.00734 §4.2 and ``GAN_losses_iter.py``.
    """
    r, f, r_bar, f_bar = _ra_scores(real_scores, fake_scores, energy, all_gather)
    return reduce_pair((r - f_bar - 1).square(), (f - r_bar + 1).square(), reduction, scale=0.5)


def ralsgan_generator_loss(
    real_scores: Tensor,
    fake_scores: Tensor,
    *,
    energy: bool = False,
    reduction: Reduction = "mean",
    all_gather: bool = False,
) -> Tensor:
    r"""Relativistic-average least-squares generator loss (with the real-term half).

    .. math:: L_G = \tfrac12\big[\mathbb E(r-\bar f+1)^2 + \mathbb E(f-\bar r-1)^2\big]

    Arguments:
        real_scores: D scores on a real batch ``(B_r,)`` or ``(B_r, 1)`` (D frozen).
        fake_scores: D scores on generated samples ``(B_f,)`` or ``(B_f, 1)``, attached to G.
        energy: scores use the energy sign.
        reduction: ``"mean"`` | ``"sum"`` | ``"none"`` (needs ``B_r == B_f``).
        all_gather: form the means over every ``torch.distributed`` rank.

    Returns:
        A scalar, or ``(B,)``; 1 at zero scores.

    References:
        Jolicoeur-Martineau, arXiv 1807.00734 §4.2.
    """
    r, f, r_bar, f_bar = _ra_scores(real_scores, fake_scores, energy, all_gather)
    return reduce_pair((r - f_bar + 1).square(), (f - r_bar - 1).square(), reduction, scale=0.5)


# ------------------------------------------------------------------------------------ RaHinge


def rahinge_discriminator_loss(
    real_scores: Tensor,
    fake_scores: Tensor,
    *,
    energy: bool = False,
    reduction: Reduction = "mean",
    all_gather: bool = False,
) -> Tensor:
    r"""Relativistic-average hinge discriminator loss.

    .. math::
        L_D = \tfrac12\big[\mathbb E\,\mathrm{relu}(1-(r-\bar f))
        + \mathbb E\,\mathrm{relu}(1+(f-\bar r))\big]

    Arguments:
        real_scores: raw D scores on real samples ``(B_r,)`` or ``(B_r, 1)``.
        fake_scores: raw D scores on detached fakes ``(B_f,)`` or ``(B_f, 1)``.
        energy: scores use the energy sign.
        reduction: ``"mean"`` | ``"sum"`` | ``"none"`` (needs ``B_r == B_f``).
        all_gather: form the means over every ``torch.distributed`` rank.

    Returns:
        A scalar, or ``(B,)``; 1 at zero scores.

    References:
        Jolicoeur-Martineau, arXiv 1807.00734 and ``GAN_losses_iter.py``.
    """
    r, f, r_bar, f_bar = _ra_scores(real_scores, fake_scores, energy, all_gather)
    return reduce_pair(F.relu(1 - (r - f_bar)), F.relu(1 + (f - r_bar)), reduction, scale=0.5)


def rahinge_generator_loss(
    real_scores: Tensor,
    fake_scores: Tensor,
    *,
    energy: bool = False,
    reduction: Reduction = "mean",
    all_gather: bool = False,
) -> Tensor:
    r"""Relativistic-average hinge generator loss (with the real-term half).

    .. math::
        L_G = \tfrac12\big[\mathbb E\,\mathrm{relu}(1+(r-\bar f))
        + \mathbb E\,\mathrm{relu}(1-(f-\bar r))\big]

    Arguments:
        real_scores: D scores on a real batch ``(B_r,)`` or ``(B_r, 1)`` (D frozen).
        fake_scores: D scores on generated samples ``(B_f,)`` or ``(B_f, 1)``, attached to G.
        energy: scores use the energy sign.
        reduction: ``"mean"`` | ``"sum"`` | ``"none"`` (needs ``B_r == B_f``).
        all_gather: form the means over every ``torch.distributed`` rank.

    Returns:
        A scalar, or ``(B,)``; 1 at zero scores.

    References:
        Jolicoeur-Martineau, arXiv 1807.00734.
    """
    r, f, r_bar, f_bar = _ra_scores(real_scores, fake_scores, energy, all_gather)
    return reduce_pair(F.relu(1 + (r - f_bar)), F.relu(1 - (f - r_bar)), reduction, scale=0.5)
