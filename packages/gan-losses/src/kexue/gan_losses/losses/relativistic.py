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

from collections.abc import Callable

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


_RS_DOC = r"""Relativistic standard GAN {side} loss, pairs ``(r_i, f_i)`` by index.

    .. math:: L_{letter} = \mathbb E_i\,\mathrm{{sp}}({arg})

    Arguments:
        real_scores: {real_doc} ``(B,)`` or ``(B, 1)``.
        fake_scores: {fake_doc} ``(B,)`` or ``(B, 1)``; same ``B`` (raises otherwise: the
            pairs are by index).
        energy: scores use the energy sign (lower = more real).
        reduction: ``"mean"`` | ``"sum"`` | ``"none"`` (``(B,)``).

    Returns:
        A scalar, or ``(B,)``; ``ln 2`` at ``r = f``.

    References:
        Jolicoeur-Martineau, arXiv 1807.00734 §4.1; the author's ``rsgan_sn_celeba.py``
        (``bojone/gan``): SN D, Adam(2e-4, 0.5), D:G = 1:2, https://kexue.fm/archives/6110.
    """


def _rs_loss(generator: bool) -> Callable[..., Tensor]:
    """``rsgan_discriminator_loss`` (sp(f − r)) or ``rsgan_generator_loss`` (sp(r − f))."""

    def loss(
        real_scores: Tensor,
        fake_scores: Tensor,
        *,
        energy: bool = False,
        reduction: Reduction = "mean",
    ) -> Tensor:
        r, f = _rs_scores(real_scores, fake_scores, energy)
        return reduce(F.softplus(r - f if generator else f - r), reduction)

    side = "generator" if generator else "discriminator"
    loss.__name__ = loss.__qualname__ = f"rsgan_{side}_loss"
    loss.__doc__ = _RS_DOC.format(
        side=side,
        letter="G" if generator else "D",
        arg="-(f_i - r_i)" if generator else "-(r_i - f_i)",
        real_doc="D scores on a real batch (D frozen)" if generator else "raw D scores on reals",
        fake_doc="D scores on generated samples, attached to G"
        if generator
        else "raw D scores on detached fakes",
    )
    return loss


rsgan_discriminator_loss = _rs_loss(generator=False)
rsgan_generator_loss = _rs_loss(generator=True)


# ------------------------------------------------------------ RaSGAN, RaLSGAN, RaHinge (table)

# variant -> (term on "should look real", term on "should look fake", formulas, value at zero).
# D: ½[E pos(r − f̄) + E neg(f − r̄)]; G swaps the roles: ½[E neg(r − f̄) + E pos(f − r̄)].
_RA_TABLE: dict[str, tuple[Callable[[Tensor], Tensor], Callable[[Tensor], Tensor], str, str]] = {
    "rasgan": (
        lambda x: F.softplus(-x),
        F.softplus,
        r"\mathbb E\,\mathrm{sp}(\mp(r-\bar f)) + \mathbb E\,\mathrm{sp}(\pm(f-\bar r))",
        "``ln 2`` at zero scores",
    ),
    "ralsgan": (
        lambda x: (x - 1).square(),
        lambda x: (x + 1).square(),
        r"\mathbb E(r-\bar f\mp1)^2 + \mathbb E(f-\bar r\pm1)^2",
        "1 at zero scores",
    ),
    "rahinge": (
        lambda x: F.relu(1 - x),
        lambda x: F.relu(1 + x),
        r"\mathbb E\,\mathrm{relu}(1\mp(r-\bar f)) + \mathbb E\,\mathrm{relu}(1\pm(f-\bar r))",
        "1 at zero scores",
    ),
}

_RA_DOC = r"""Relativistic-average {title} {side} loss{extra}.

    .. math:: L_{letter} = \tfrac12\big[{formula}\big]

    Arguments:
        real_scores: {real_doc} ``(B_r,)`` or ``(B_r, 1)``.
        fake_scores: {fake_doc} ``(B_f,)`` or ``(B_f, 1)``.
        energy: scores use the energy sign (lower = more real).
        reduction: ``"mean"`` | ``"sum"`` | ``"none"`` (``½(real_term[i] + fake_term[i])``, needs
            ``B_r == B_f``). The batch means ``r̄``, ``f̄`` are always over the whole batch.
        all_gather: form ``r̄``, ``f̄`` over every ``torch.distributed`` rank (module docstring).

    Returns:
        A scalar, or ``(B,)``; {zero}.

    References:
        Jolicoeur-Martineau, arXiv 1807.00734 §4.2; ``AlexiaJM/RelativisticGAN``
        ``GAN_losses_iter.py`` (defaults there: Adam(1e-4, (0.5, 0.999)), batch 32, 1:1 steps).
    """

_TITLES = {"rasgan": "standard GAN", "ralsgan": "least-squares", "rahinge": "hinge"}


def _ra_loss(variant: str, generator: bool) -> Callable[..., Tensor]:
    """The public loss ``{variant}_{discriminator|generator}_loss`` of the table."""
    pos, neg, formula, zero = _RA_TABLE[variant]
    real_term, fake_term = (neg, pos) if generator else (pos, neg)

    def loss(
        real_scores: Tensor,
        fake_scores: Tensor,
        *,
        energy: bool = False,
        reduction: Reduction = "mean",
        all_gather: bool = False,
    ) -> Tensor:
        r, f, r_bar, f_bar = _ra_scores(real_scores, fake_scores, energy, all_gather)
        return reduce_pair(real_term(r - f_bar), fake_term(f - r_bar), reduction, scale=0.5)

    side = "generator" if generator else "discriminator"
    loss.__name__ = loss.__qualname__ = f"{variant}_{side}_loss"
    loss.__doc__ = _RA_DOC.format(
        title=_TITLES[variant],
        side=side,
        extra=" (with the real-term half)" if generator else "",
        letter="G" if generator else "D",
        formula=formula.replace(r"\mp", "+" if generator else "-").replace(
            r"\pm", "-" if generator else "+"
        ),
        real_doc="D scores on a real batch (D frozen)"
        if generator
        else "raw D scores on real samples",
        fake_doc="D scores on generated samples, attached to G"
        if generator
        else "raw D scores on detached fakes",
        zero=zero,
    )
    return loss


rasgan_discriminator_loss = _ra_loss("rasgan", generator=False)
rasgan_generator_loss = _ra_loss("rasgan", generator=True)
ralsgan_discriminator_loss = _ra_loss("ralsgan", generator=False)
ralsgan_generator_loss = _ra_loss("ralsgan", generator=True)
rahinge_discriminator_loss = _ra_loss("rahinge", generator=False)
rahinge_generator_loss = _ra_loss("rahinge", generator=True)
