"""A bias-free linear classifier with unit-norm class vectors, whose outputs are cosines.

Its outputs are the ``cos`` input of the margin losses in :mod:`.margin` (also importable from
there).

References:
    - Su Jianlin, GRU + AM-Softmax sentence similarity: https://kexue.fm/archives/5743
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrize

from ._common import _shape

__all__ = ["CosineClassifier"]


class _UnitRows(nn.Module):
    """Parametrisation: every row of the weight is L2-normalised."""

    def forward(self, w: Tensor) -> Tensor:
        return F.normalize(w, dim=1, eps=1e-12)

    def right_inverse(self, w: Tensor) -> Tensor:
        return F.normalize(w, dim=1, eps=1e-12)


class CosineClassifier(nn.Module):
    """Bias-free linear classifier with unit-norm class weights: outputs cosines.

    cos_{b,c} = ⟨x_b/‖x_b‖, w_c/‖w_c‖⟩. ``weight`` is a parametrisation (``torch.nn.utils.
    parametrize``) that always returns row-normalised weights, so the class vectors are unit-norm
    after every optimizer step; the raw parameter is ``parametrizations.weight.original``.

    Arguments:
        in_features: D.
        num_classes: C.
        normalize_input: L2-normalise the inputs (default True; a zero input gives cosines 0).
        generator: optional ``torch.Generator`` for the N(0, 1) initialisation.

    Returns:
        Module mapping ``(..., D)`` to cosines ``(..., C)``.

    References:
        https://kexue.fm/archives/5743 (Dense without bias, unit-norm columns).
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        *,
        normalize_input: bool = True,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if in_features < 1 or num_classes < 1:
            raise ValueError(
                f"in_features and num_classes must be >= 1, got {in_features}, {num_classes}"
            )
        self.in_features = in_features
        self.num_classes = num_classes
        self.normalize_input = normalize_input
        w = torch.randn(num_classes, in_features, generator=generator)
        self.weight = nn.Parameter(w)
        parametrize.register_parametrization(self, "weight", _UnitRows())

    def forward(self, x: Tensor) -> Tensor:
        """Cosines of ``x`` ``(..., D)`` with every class vector: ``(..., C)``."""
        if x.shape[-1] != self.in_features:
            raise ValueError(
                f"x must have last dim in_features={self.in_features}, got shape {_shape(x)}"
            )
        if self.normalize_input:
            x = F.normalize(x, dim=-1, eps=1e-12)
        return x @ self.weight.T

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, num_classes={self.num_classes}"
