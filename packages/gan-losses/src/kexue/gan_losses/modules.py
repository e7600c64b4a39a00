"""Thin ``nn.Module`` wrappers choosing a loss or a penalty by name (for configs and loops).

The functional API (``losses``, ``relativistic``, ``gan_qp``, ``fgan``, ``penalties``) is the
reference; these classes only bind a kind and its options once and check that each call gets the
arguments its kind needs.

Example::

    loss = AdversarialLoss("hinge")
    r1 = GradientPenalty("r1", gamma=10.0)
    x_real.requires_grad_()
    real_scores = D(x_real)
    d_loss = loss.discriminator_loss(real_scores, D(x_fake.detach()))
    d_loss = d_loss + r1(real_scores=real_scores, x_real=x_real)
    g_loss = loss.generator_loss(D(x_fake))
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from ._validation import Reduction, check_reduction
from .losses.classic import (
    hinge_discriminator_loss,
    hinge_generator_loss,
    lsgan_discriminator_loss,
    lsgan_generator_loss,
    sgan_discriminator_loss,
    sgan_generator_loss,
    wgan_discriminator_loss,
    wgan_generator_loss,
)
from .losses.fgan import f_gan_discriminator_loss, f_gan_generator_loss
from .losses.gan_qp import gan_qp_discriminator_loss, gan_qp_generator_loss
from .losses.relativistic import (
    rahinge_discriminator_loss,
    rahinge_generator_loss,
    ralsgan_discriminator_loss,
    ralsgan_generator_loss,
    rasgan_discriminator_loss,
    rasgan_generator_loss,
    rsgan_discriminator_loss,
    rsgan_generator_loss,
)
from .penalties import (
    r1_penalty,
    r1_penalty_from_critic,
    r2_penalty,
    wgan_div_penalty,
    wgan_gp_penalty,
)

__all__ = ["AdversarialLoss", "GradientPenalty"]


@dataclass(frozen=True)
class _Kind:
    d_loss: Callable[..., Tensor]
    g_loss: Callable[..., Tensor]
    d_options: tuple[str, ...] = ()
    g_options: tuple[str, ...] = ()
    fixed: dict[str, Any] = field(default_factory=dict)  # passed to the D loss only
    g_needs_real: bool = False
    d_needs_samples: bool = False


def _relativistic_average(d_loss: Callable[..., Tensor], g_loss: Callable[..., Tensor]) -> _Kind:
    return _Kind(d_loss, g_loss, ("all_gather",), ("all_gather",), g_needs_real=True)


def _gan_qp(norm: str) -> _Kind:
    return _Kind(
        gan_qp_discriminator_loss,
        gan_qp_generator_loss,
        d_options=("lam", "eps"),
        fixed={"norm": norm},
        g_needs_real=True,
        d_needs_samples=True,
    )


_KINDS: dict[str, _Kind] = {
    "sgan": _Kind(sgan_discriminator_loss, sgan_generator_loss, g_options=("saturating",)),
    "ns": _Kind(sgan_discriminator_loss, sgan_generator_loss),
    "lsgan": _Kind(
        lsgan_discriminator_loss,
        lsgan_generator_loss,
        d_options=("labels", "half"),
        g_options=("labels", "half"),
    ),
    "hinge": _Kind(hinge_discriminator_loss, hinge_generator_loss, d_options=("margin",)),
    "wgan": _Kind(wgan_discriminator_loss, wgan_generator_loss),
    "rsgan": _Kind(rsgan_discriminator_loss, rsgan_generator_loss, g_needs_real=True),
    "rasgan": _relativistic_average(rasgan_discriminator_loss, rasgan_generator_loss),
    "ralsgan": _relativistic_average(ralsgan_discriminator_loss, ralsgan_generator_loss),
    "rahinge": _relativistic_average(rahinge_discriminator_loss, rahinge_generator_loss),
    "gan_qp_l1": _gan_qp("l1"),
    "gan_qp_l2": _gan_qp("l2"),
    "fgan": _Kind(
        f_gan_discriminator_loss,
        f_gan_generator_loss,
        d_options=("divergence",),
        g_options=("divergence", "alternative"),
    ),
}


class AdversarialLoss(nn.Module):
    """A discriminator/generator loss pair chosen by name.

    Kinds: ``"sgan"`` (BCE D; non-saturating G unless ``saturating=True``), ``"ns"`` (the same,
    always non-saturating), ``"lsgan"`` (``labels``, ``half``), ``"hinge"`` (``margin``),
    ``"wgan"``, ``"rsgan"``, ``"rasgan"``, ``"ralsgan"``, ``"rahinge"`` (``all_gather``),
    ``"gan_qp_l1"``, ``"gan_qp_l2"`` (``lam``, ``eps``; the D loss needs ``x_real`` and
    ``x_fake``), ``"fgan"`` (``divergence``, ``alternative``). Relativistic and GAN-QP generator
    losses need ``real_scores``.

    Arguments:
        kind: the loss name.
        energy: scores use the energy sign (lower = more real), the author's convention.
        reduction: ``"mean"`` | ``"sum"`` | ``"none"``.
        options: keyword options of the underlying functions (listed above); unknown options raise.
    """

    def __init__(
        self,
        kind: str = "hinge",
        *,
        energy: bool = False,
        reduction: Reduction = "mean",
        **options: Any,
    ) -> None:
        super().__init__()
        if kind not in _KINDS:
            raise ValueError(f"kind must be one of {tuple(_KINDS)}, got {kind!r}")
        check_reduction(reduction)
        spec = _KINDS[kind]
        allowed = set(spec.d_options) | set(spec.g_options)
        unknown = sorted(set(options) - allowed)
        if unknown:
            raise ValueError(
                f"unknown options {unknown} for kind {kind!r}; allowed: {sorted(allowed) or 'none'}"
            )
        self.kind = kind
        self.energy = energy
        self.reduction = reduction
        self.options = dict(options)
        self._spec = spec

    def _opts(self, names: tuple[str, ...]) -> dict[str, Any]:
        return {k: v for k, v in self.options.items() if k in names}

    def discriminator_loss(
        self,
        real_scores: Tensor,
        fake_scores: Tensor,
        x_real: Tensor | None = None,
        x_fake: Tensor | None = None,
    ) -> Tensor:
        """D loss on real scores and scores of detached fakes (``x_*`` only for GAN-QP)."""
        spec = self._spec
        kwargs = {"energy": self.energy, "reduction": self.reduction}
        kwargs.update(spec.fixed)
        kwargs.update(self._opts(spec.d_options))
        if spec.d_needs_samples:
            if x_real is None or x_fake is None:
                raise ValueError(
                    f"AdversarialLoss({self.kind!r}).discriminator_loss needs x_real and x_fake "
                    "(the per-pair distance d(x_real, x_fake))"
                )
            return spec.d_loss(real_scores, fake_scores, x_real, x_fake, **kwargs)
        return spec.d_loss(real_scores, fake_scores, **kwargs)

    def generator_loss(
        self,
        fake_scores: Tensor,
        real_scores: Tensor | None = None,
        x_real: Tensor | None = None,
        x_fake: Tensor | None = None,
    ) -> Tensor:
        """G loss on scores of generated samples (``real_scores`` for relativistic and GAN-QP)."""
        spec = self._spec
        kwargs = {"energy": self.energy, "reduction": self.reduction}
        kwargs.update(self._opts(spec.g_options))
        if self.kind == "ns":
            kwargs["saturating"] = False
        if spec.g_needs_real:
            if real_scores is None:
                raise ValueError(
                    f"AdversarialLoss({self.kind!r}).generator_loss needs real_scores "
                    "(D scores on a real batch, D frozen)"
                )
            return spec.g_loss(real_scores, fake_scores, **kwargs)
        return spec.g_loss(fake_scores, **kwargs)

    def extra_repr(self) -> str:
        opts = "".join(f", {k}={v!r}" for k, v in self.options.items())
        return f"kind={self.kind!r}, energy={self.energy}, reduction={self.reduction!r}{opts}"


_PENALTY_OPTIONS: dict[str, tuple[str, ...]] = {
    "wgan_gp": ("weight", "eps", "create_graph"),
    "r1": ("gamma", "create_graph"),
    "r2": ("gamma", "create_graph"),
    "wgan_div": ("k", "p", "create_graph"),
}


class GradientPenalty(nn.Module):
    """A gradient penalty chosen by name; call it with keyword arguments.

    ============  ========================================================  ===================
    kind          needs                                                     options
    ============  ========================================================  ===================
    ``wgan_gp``   ``critic``, ``x_real``, ``x_fake``                        ``weight``, ``eps``
    ``r1``        ``real_scores`` (or ``critic``), ``x_real``               ``gamma``
    ``r2``        ``fake_scores`` (or ``critic``), ``x_fake``               ``gamma``
    ``wgan_div``  ``real_scores``, ``x_real``, ``fake_scores``, ``x_fake``  ``k``, ``p``
    ============  ========================================================  ===================

    Every kind also takes ``create_graph``. With a ``grad_scaler`` in the call, scores passed in
    must be scaled ones (``scaler.scale(scores)``); a ``critic`` path scales them itself.

    Arguments:
        kind: ``"wgan_gp"`` | ``"r1"`` | ``"r2"`` | ``"wgan_div"``.
        reduction: ``"mean"`` | ``"sum"`` | ``"none"``.
        options: keyword options of the underlying penalty; unknown options raise.
    """

    def __init__(self, kind: str = "wgan_gp", *, reduction: Reduction = "mean", **options: Any):
        super().__init__()
        if kind not in _PENALTY_OPTIONS:
            raise ValueError(f"kind must be one of {tuple(_PENALTY_OPTIONS)}, got {kind!r}")
        check_reduction(reduction)
        unknown = sorted(set(options) - set(_PENALTY_OPTIONS[kind]))
        if unknown:
            raise ValueError(
                f"unknown options {unknown} for kind {kind!r}; "
                f"allowed: {list(_PENALTY_OPTIONS[kind])}"
            )
        self.kind = kind
        self.reduction = reduction
        self.options = dict(options)

    def _missing(self, **given: object) -> None:
        missing = [name for name, value in given.items() if value is None]
        if missing:
            raise ValueError(f"GradientPenalty({self.kind!r}) needs {', '.join(missing)}")

    def forward(
        self,
        *,
        real_scores: Tensor | None = None,
        x_real: Tensor | None = None,
        fake_scores: Tensor | None = None,
        x_fake: Tensor | None = None,
        critic: Callable[[Tensor], Tensor] | None = None,
        grad_scaler: Any | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Compute the penalty from the arguments its kind needs (see the class table)."""
        kw = dict(self.options, reduction=self.reduction, grad_scaler=grad_scaler)
        if self.kind == "wgan_gp":
            self._missing(critic=critic, x_real=x_real, x_fake=x_fake)
            return wgan_gp_penalty(critic, x_real, x_fake, generator=generator, **kw)
        if self.kind in ("r1", "r2"):
            scores, x = (real_scores, x_real) if self.kind == "r1" else (fake_scores, x_fake)
            x_name = "x_real" if self.kind == "r1" else "x_fake"
            if scores is None and critic is not None:
                self._missing(**{x_name: x})
                return r1_penalty_from_critic(critic, x, **kw)
            scores_name = "real_scores" if self.kind == "r1" else "fake_scores"
            self._missing(**{f"{scores_name} (or critic)": scores, x_name: x})
            fn = r1_penalty if self.kind == "r1" else r2_penalty
            return fn(scores, x, **kw)
        self._missing(
            real_scores=real_scores, x_real=x_real, fake_scores=fake_scores, x_fake=x_fake
        )
        return wgan_div_penalty(real_scores, x_real, fake_scores, x_fake, **kw)

    def extra_repr(self) -> str:
        opts = "".join(f", {k}={v!r}" for k, v in self.options.items())
        return f"kind={self.kind!r}, reduction={self.reduction!r}{opts}"
