r"""f-GAN: adversarial training of any f-divergence through its variational (Fenchel) bound.

For a convex ``f`` with ``f(1) = 0``,

.. math::
    \mathcal D_f(P\|Q) = \mathbb E_q\, f(p/q)
    \;\ge\; \max_T\; \mathbb E_p[T] - \mathbb E_q[f^*(T)],\qquad
    f^*(t) = \sup_u\; u t - f(u),

with equality at ``T* = f'(p/q)``. The discriminator outputs a raw score ``v`` and an output
activation ``g_f`` maps it into the domain of ``f*``: ``T = g_f(v)``. Table after Nowozin et al.
(arXiv 1606.00709, Tables 1–2); every conjugate was re-derived by hand and is checked numerically
against its ``f`` in the tests (``sup_u ut - f(u)`` on a grid), as is ``D_f`` at the optimal critic:

=================  ============================  ==============  ================  =============
divergence         f(u)                          g_f(v)          f*(t)             f*(g_f(v))
=================  ============================  ==============  ================  =============
kl                 u log u                       v               exp(t - 1)        exp(v - 1)
reverse_kl         -log u                        -exp(-v)        -1 - log(-t)      v - 1
pearson            (u - 1)²                      v               t²/4 + t          v²/4 + v
squared_hellinger  (√u - 1)²                     1 - exp(-v)     t / (1 - t)       exp(v) - 1
js                 u log u - (u+1) log((u+1)/2)  log 2 - sp(-v)  -log(2 - exp(t))  sp(v) - log 2
gan                u log u - (u+1) log(u+1)      -sp(-v)         -log(1 - exp(t))  sp(v)
=================  ============================  ==============  ================  =============

The losses use the last column, a closed form of ``f*(g_f(v))`` without the ``log`` of a
difference, so it never turns into ``-log(0)`` by rounding. The exponentials of the ``kl``,
``reverse_kl`` and ``squared_hellinger`` rows continue linearly above ``c = ½·log(finfo.max)``
(44.4 in fp32, 354.9 in fp64; value and slope continuous), so every loss is finite at every
finite score (``exp(199)`` alone would be inf in fp32); below ``c`` they are exact. Notes: the ``js`` row's ``f`` gives ``D_f = 2·JS(P‖Q)``; the ``gan``
row gives ``2·JS − log 4`` and reproduces the standard GAN (D loss = BCE with logits, standard G
loss = the saturating minimax loss, ``alternative=True`` = the non-saturating one).

The author's view (post 6016): a unifying picture rather than a recipe; all f-GANs share vanishing
or exploding gradients on disjoint supports and oscillate near equilibrium (post 6583).

References:
    Nowozin, Cseke & Tomioka, f-GAN, arXiv 1606.00709.
    https://kexue.fm/archives/6016.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from types import MappingProxyType

import torch
import torch.nn.functional as F
from torch import Tensor

from .._validation import (
    Reduction,
    as_scores,
    reduce,
    reduce_pair,
    signed,
    signed_pair,
)

__all__ = ["F_DIVERGENCES", "FDivergence", "f_gan_discriminator_loss", "f_gan_generator_loss"]

_LOG2 = math.log(2.0)


def _exp_cap(x: Tensor) -> float:
    """``c = ½·log(finfo.max)``: ``exp(c)`` leaves room for a batch sum and the linear tail."""
    return 0.5 * math.log(torch.finfo(x.dtype).max)


def _safe_exp(x: Tensor) -> Tensor:
    """``exp(x)`` for ``x ≤ c``, ``exp(c)·(1 + x − c)`` above (C¹, finite for finite ``x``)."""
    c = _exp_cap(x)
    return torch.where(x > c, math.exp(c) * (1.0 + (x - c)), torch.exp(x.clamp(max=c)))


def _safe_expm1(x: Tensor) -> Tensor:
    """``expm1(x)`` with the linear tail of :func:`_safe_exp` above ``c``."""
    c = _exp_cap(x)
    return torch.where(x > c, math.exp(c) * (1.0 + (x - c)) - 1.0, torch.expm1(x.clamp(max=c)))


@dataclass(frozen=True)
class FDivergence:
    """One f-divergence for f-GAN training.

    Arguments:
        name: a short identifier.
        f: the convex generator ``f(u)``, ``u > 0``; ``f(1) = 0`` except for Nowozin's ``gan``
            row (``f(1) = -log 4``).
        activation: ``g_f``, mapping a raw score ``v ∈ R`` into the domain of ``f*``.
        conjugate: the Fenchel conjugate ``f*(t)`` on its domain.
        conjugate_activation: ``f*(g_f(v))`` in a form that is finite for every real ``v``.
    """

    name: str
    f: Callable[[Tensor], Tensor]
    activation: Callable[[Tensor], Tensor]
    conjugate: Callable[[Tensor], Tensor]
    conjugate_activation: Callable[[Tensor], Tensor]


F_DIVERGENCES: MappingProxyType[str, FDivergence] = MappingProxyType(
    {
        "kl": FDivergence(
            "kl",
            f=lambda u: torch.xlogy(u, u),
            activation=lambda v: v,
            conjugate=lambda t: torch.exp(t - 1),
            conjugate_activation=lambda v: _safe_exp(v - 1),
        ),
        "reverse_kl": FDivergence(
            "reverse_kl",
            f=lambda u: -torch.log(u),
            activation=lambda v: -_safe_exp(-v),
            conjugate=lambda t: -1 - torch.log(-t),
            conjugate_activation=lambda v: v - 1,
        ),
        "pearson": FDivergence(
            "pearson",
            f=lambda u: (u - 1).square(),
            activation=lambda v: v,
            conjugate=lambda t: t.square() / 4 + t,
            conjugate_activation=lambda v: v.square() / 4 + v,
        ),
        "squared_hellinger": FDivergence(
            "squared_hellinger",
            f=lambda u: (u.sqrt() - 1).square(),
            activation=lambda v: -_safe_expm1(-v),
            conjugate=lambda t: t / (1 - t),
            conjugate_activation=_safe_expm1,
        ),
        "js": FDivergence(
            "js",
            f=lambda u: torch.xlogy(u, u) - torch.xlogy(u + 1, (u + 1) / 2),
            activation=lambda v: _LOG2 - F.softplus(-v),
            conjugate=lambda t: -torch.log(2 - torch.exp(t)),
            conjugate_activation=lambda v: F.softplus(v) - _LOG2,
        ),
        "gan": FDivergence(
            "gan",
            f=lambda u: torch.xlogy(u, u) - torch.xlogy(u + 1, u + 1),
            activation=lambda v: -F.softplus(-v),
            conjugate=lambda t: -torch.log(-torch.expm1(t)),
            conjugate_activation=F.softplus,
        ),
    }
)


def _divergence(divergence: str | FDivergence) -> FDivergence:
    if isinstance(divergence, FDivergence):
        return divergence
    if divergence not in F_DIVERGENCES:
        raise ValueError(
            f"divergence must be one of {tuple(F_DIVERGENCES)} or an FDivergence, got {divergence!r}"
        )
    return F_DIVERGENCES[divergence]


def f_gan_discriminator_loss(
    real_scores: Tensor,
    fake_scores: Tensor,
    *,
    divergence: str | FDivergence = "kl",
    energy: bool = False,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""f-GAN discriminator loss, the negated variational bound.

    .. math:: L_D = -\big(\mathbb E_p[g_f(v_r)] - \mathbb E_q[f^*(g_f(v_f))]\big)

    At the optimal critic ``-L_D`` equals ``D_f(P‖Q)`` (module docstring for the table).

    Arguments:
        real_scores: raw D scores ``v`` on real samples, ``(B_r,)`` or ``(B_r, 1)``.
        fake_scores: raw D scores on detached fakes, ``(B_f,)`` or ``(B_f, 1)``.
        divergence: ``"kl"`` | ``"reverse_kl"`` | ``"pearson"`` | ``"squared_hellinger"`` |
            ``"js"`` | ``"gan"``, or an :class:`FDivergence`.
        energy: scores use the energy sign (``v -> -v`` first).
        reduction: ``"mean"`` | ``"sum"`` | ``"none"`` (``f*(g(v_f[i])) - g(v_r[i])``, needs
            equal batch sizes).

    Returns:
        A scalar, or ``(B,)`` for ``reduction="none"``.

    References:
        Nowozin et al., arXiv 1606.00709; https://kexue.fm/archives/6016.
    """
    div = _divergence(divergence)
    v_r, v_f = signed_pair(real_scores, fake_scores, energy)
    return reduce_pair(-div.activation(v_r), div.conjugate_activation(v_f), reduction)


def f_gan_generator_loss(
    fake_scores: Tensor,
    *,
    divergence: str | FDivergence = "kl",
    alternative: bool = False,
    energy: bool = False,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""f-GAN generator loss.

    .. math::
        L_G = -\mathbb E_q[f^*(g_f(v_f))] \quad\text{(standard: } \min_G \text{ of the bound)}
        \qquad L_G^{alt} = -\mathbb E_q[g_f(v_f)]

    The standard form minimises the same objective the critic maximises (the real term does not
    depend on G). The alternative form is Nowozin et al.'s heuristic, the f-GAN analogue of
    the non-saturating GAN loss: with ``divergence="gan"`` the two give the saturating and the
    non-saturating SGAN generator losses.

    Arguments:
        fake_scores: raw D scores on generated samples, ``(B,)`` or ``(B, 1)``; D frozen.
        divergence: a name from :data:`F_DIVERGENCES` or an :class:`FDivergence`.
        alternative: use ``-E_q[g_f(v)]`` instead of the standard loss.
        energy: scores use the energy sign.
        reduction: ``"mean"`` | ``"sum"`` | ``"none"``.

    Returns:
        A scalar, or ``(B,)`` for ``reduction="none"``.

    References:
        Nowozin et al., arXiv 1606.00709; https://kexue.fm/archives/6016.
    """
    div = _divergence(divergence)
    v_f = signed(as_scores(fake_scores, "fake_scores"), energy)
    loss = -div.activation(v_f) if alternative else -div.conjugate_activation(v_f)
    return reduce(loss, reduction)
