"""Masked autoregressive layers: MAF and IAF with affine or rational-quadratic spline transformers.

``MaskedAutoregressive(direction="maf")`` maps data to latent in one pass,
``u_i = τ(x_i; θ_i(x_<i))`` with θ from a :class:`~kexue.flows.layers.made.MADE`; its inverse
(sampling) takes D sequential passes from zeros, after pass i the first i features in the
ordering are exact (``passes=k`` groups the features into k blocks: k passes; 2 = a coupling). ``direction="iaf"`` is the same layer inverted: the conditioner reads the
latent side, so sampling is one pass and density evaluation D passes. Spline + ``"maf"`` is
NSF-AR (Durkan et al. 2019).

References:
    - Papamakarios, Pavlakou, Murray, Masked Autoregressive Flow, arXiv:1705.07057.
    - Kingma et al., Improved Variational Inference with Inverse Autoregressive Flow,
      arXiv:1606.04934.
    - Durkan et al., Neural Spline Flows, arXiv:1906.04032.
    - zuko ``MaskedAutoregressiveTransform``; nflows ``MaskedAffineAutoregressiveTransform``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import torch
from torch import Tensor, nn

from kexue.flows.base import FlowLayer, logdet_dtype
from kexue.flows.layers.elementwise import (
    apply_transformer,
    check_transformer,
    transformer_params,
)
from kexue.flows.layers.made import MADE

__all__ = ["MaskedAutoregressive"]


class MaskedAutoregressive(FlowLayer):
    """MAF / IAF layer over a MADE conditioner, affine or spline transformer, optional context.

    Arguments:
        features: D (≥ 1).
        transformer: ``"spline"`` (rational-quadratic, linear tails; default) or ``"affine"``
            (x·exp(s) + t, zuko soft-clipped s).
        direction: ``"maf"`` (default; density in one pass, sampling D passes) or ``"iaf"``
            (sampling in one pass, density D passes).
        hidden: MADE hidden widths; default (64, 64) [zuko ``MAF``/``NSF``].
        context_features: size of a context vector fed (unmasked) to the MADE; default 0.
        order: rank of every feature; default ``range(D)`` (alternate with reversed orders
            between layers, as the builders do).
        passes: zuko's ``passes``: the features form this many blocks of consecutive ranks and
            the D-pass loops shrink to ``passes`` passes; ``2`` is a coupling layer (an
            unconditional transform of the first block, the second conditioned on it); default
            None (= D, fully autoregressive).
        bins: spline bins K; default 8 [zuko ``NSF``].
        bound: spline interval [−B, B]; default 5.0 [zuko].
        param: spline parametrisation, ``"nflows"`` (default) or ``"zuko"``.
        random_degrees: random MADE hidden degrees; default False.
        activation: MADE activation; default ``"relu"``.
        generator: RNG of the MADE init.

    The MADE's output layer is zero-initialised, so the layer is the identity at init (both
    transformers give the identity at zero parameters).

    Returns:
        (from ``forward``) ``(u, logdet)`` with logdet (B,) = Σ_i log τ'(x_i).

    References:
        Papamakarios et al. arXiv:1705.07057; Kingma et al. arXiv:1606.04934; Durkan et al.
        arXiv:1906.04032.
    """

    def __init__(
        self,
        features: int,
        transformer: Literal["spline", "affine"] = "spline",
        direction: Literal["maf", "iaf"] = "maf",
        *,
        hidden: int | Sequence[int] = (64, 64),
        context_features: int = 0,
        order: Sequence[int] | Tensor | None = None,
        passes: int | None = None,
        bins: int = 8,
        bound: float = 5.0,
        param: str = "nflows",
        random_degrees: bool = False,
        activation: str | Callable[[], nn.Module] = "relu",
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        check_transformer(transformer, bins, bound)
        if direction not in ("maf", "iaf"):
            raise ValueError(f"direction must be 'maf' or 'iaf', got {direction!r}")
        self.features = features
        self.transformer = transformer
        self.direction = direction
        self.bins = bins
        self.bound = float(bound)
        self.param = param
        self.context_features = context_features
        self.passes = features if passes is None else min(passes, features)
        self.made = MADE(
            features,
            hidden,
            transformer_params(transformer, bins),
            context_features=context_features,
            order=order,
            passes=passes,
            random_degrees=random_degrees,
            activation=activation,
            generator=generator,
        )

    def _check(self, x: Tensor, name: str) -> None:
        if x.dim() != 2 or x.shape[1] != self.features:
            raise ValueError(f"{name} must have shape (B, {self.features}), got {tuple(x.shape)}")

    def _tau(self, x: Tensor, params: Tensor, inverse: bool) -> tuple[Tensor, Tensor]:
        y, ladj = apply_transformer(
            self.transformer,
            x,
            params,
            inverse=inverse,
            bins=self.bins,
            bound=self.bound,
            param=self.param,
        )
        return y, ladj.to(logdet_dtype(x)).sum(dim=1)

    def _one_pass(self, x: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        """u = τ(x; θ(x)): the MAF density direction."""
        return self._tau(x, self.made(x, context), inverse=False)

    def _passes(self, u: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        """x with τ(x; θ(x)) = u, by ``passes`` (D) passes from zeros (exact after the last)."""
        x = torch.zeros_like(u)
        for _ in range(self.passes):
            x, logdet = self._tau(u, self.made(x, context), inverse=True)
        return x, logdet

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Data → latent: one pass (MAF) or D passes (IAF); ``(u, logdet)``."""
        self._check(x, "x")
        if self.direction == "maf":
            return self._one_pass(x, context)
        return self._passes(x, context)

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Latent → data: D passes (MAF) or one pass (IAF); ``(x, logdet_inv)``."""
        self._check(y, "y")
        if self.direction == "maf":
            return self._passes(y, context)
        return self._one_pass(y, context)
