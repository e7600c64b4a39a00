"""The invertible-layer protocol: :class:`FlowLayer`, :class:`Compose` and :class:`Inverse`.

Every kexue flow layer maps ``x -> (y, logdet)`` in :meth:`FlowLayer.forward` and
``y -> (x, logdet_inv)`` in :meth:`FlowLayer.inverse`. ``logdet`` is the per-sample
``+log|det ∂y/∂x|`` summed over every non-batch dimension, shape ``(B,)``; ``logdet_inv`` is its
negative at the matching point. Log-determinants are accumulated in float32, or float64 for
float64 inputs (:func:`logdet_dtype`), whatever the storage dtype of the activations.

References:
    - NICE, Dinh et al. 2014, arXiv:1410.8516; https://kexue.fm/archives/5776
    - nflows ``Transform`` / normflows ``Flow`` API (tuple return plus ``.inverse``).
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor, nn

__all__ = [
    "Compose",
    "FlowLayer",
    "Inverse",
    "check_features_dim",
    "logdet_dtype",
    "pack_legacy_keys",
    "zero_logdet",
]


def logdet_dtype(x: Tensor) -> torch.dtype:
    """The dtype log-determinants of ``x`` are accumulated in: float64 for float64, else float32.

    Arguments:
        x: any tensor.

    Returns:
        ``torch.float64`` if ``x`` is float64, else ``torch.float32`` (spec §1.1: fp32 under
        autocast / low-precision storage).
    """
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def zero_logdet(x: Tensor) -> Tensor:
    """A zero per-sample log-determinant for the batch ``x``: shape ``(B,)``.

    Arguments:
        x: a batch ``(B, ...)`` with at least one dimension.

    Returns:
        ``zeros(B)`` on ``x.device`` in :func:`logdet_dtype` of ``x``.
    """
    if x.dim() < 1:
        raise ValueError(f"x must have a batch dimension, got shape {tuple(x.shape)}")
    return torch.zeros(x.shape[0], dtype=logdet_dtype(x), device=x.device)


def check_features_dim(features: int, dim: int) -> None:
    """Validate an elementwise layer's ``features`` (≥ 1) and feature ``dim`` (≥ 1, not the batch)."""
    if features < 1:
        raise ValueError(f"features must be >= 1, got {features}")
    if dim < 1:
        raise ValueError(f"dim must be >= 1 (dim 0 is the batch), got {dim}")


def pack_legacy_keys(
    state_dict: dict[str, Any],
    prefix: str,
    new: str,
    old: tuple[str, ...],
    pack: Callable[..., Tensor],
) -> None:
    """Rewrite an old checkpoint's separate tensors ``old`` into one packed tensor ``new``.

    Called from a module's ``_load_from_state_dict`` (in place, before the keys are matched):
    when ``prefix + new`` is absent and every ``prefix + old[i]`` is present, the old entries
    are popped and ``pack(*old_tensors)`` is stored under ``prefix + new``. kexue-flows 0.2.1
    packed ActNorm's (bias, log-scale), Conv2dZeros' (bias, log-scale) and the LU 1×1 conv's
    (L, U, log|s|) into one parameter each (fewer tensors for the optimiser, same values).

    Arguments:
        state_dict: the dict being loaded (modified in place).
        prefix: the module's key prefix.
        new: the packed parameter's name.
        old: the old names, in the order ``pack`` takes them.
        pack: builds the packed tensor from the old ones.
    """
    keys = [prefix + k for k in old]
    if prefix + new not in state_dict and all(k in state_dict for k in keys):
        state_dict[prefix + new] = pack(*(state_dict.pop(k) for k in keys))


class FlowLayer(nn.Module, abc.ABC):
    """Abstract invertible layer with a tractable log-determinant.

    Contract (spec §1.1):

    - ``forward(x, context=None) -> (y, logdet)`` with ``logdet = log|det ∂y/∂x|`` per sample,
      shape ``(B,)``, summed over all non-batch dimensions (sign: **+logdet**, as nflows,
      normflows and FrEIA; Su's Keras code and openai/glow use the opposite bookkeeping).
    - ``inverse(y, context=None) -> (x, logdet_inv)`` with ``logdet_inv = -logdet`` at the
      matching point, so ``inverse(forward(x)[0])[0] ≈ x``.
    - ``context`` is an optional conditioning tensor with the same batch size; layers that do
      not use it ignore it, layers that do validate its shape and raise ``ValueError``.
    - Log-determinants are float32 (float64 for float64 inputs); see :func:`logdet_dtype`.
    - Bad shapes raise ``ValueError`` naming the argument and the shapes.

    References:
        - Dinh et al., NICE, arXiv:1410.8516; Kingma & Dhariwal, Glow, arXiv:1807.03039.
        - https://kexue.fm/archives/5776 (NICE), https://kexue.fm/archives/5807 (RealNVP/Glow).
    """

    @abc.abstractmethod
    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Map ``x`` to ``(y, logdet)``, ``logdet`` of shape ``(B,)``."""

    @abc.abstractmethod
    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Map ``y`` to ``(x, logdet_inv)``, ``logdet_inv = -logdet`` at the matching point."""


class Compose(FlowLayer):
    """Sequential container: applies layers in order and sums their log-determinants.

    ``forward`` runs ``layers[0], layers[1], ...``; ``inverse`` runs the inverses in reverse
    order. The same ``context`` is passed to every layer.

    Arguments:
        *layers: the :class:`FlowLayer` instances, or a single list/tuple of them.

    Returns:
        (from ``forward``) ``(y, logdet)`` with ``logdet = Σ_layers logdet_l``, shape ``(B,)``.

    References:
        nflows ``CompositeTransform``; normflows ``NormalizingFlow``.
    """

    def __init__(self, *layers: FlowLayer | Iterable[FlowLayer]) -> None:
        super().__init__()
        if len(layers) == 1 and not isinstance(layers[0], nn.Module):
            layers = tuple(layers[0])  # type: ignore[arg-type]
        for i, layer in enumerate(layers):
            if not isinstance(layer, FlowLayer):
                raise ValueError(f"layers[{i}] must be a FlowLayer, got {type(layer).__name__}")
        self.layers = nn.ModuleList(layers)  # type: ignore[arg-type]

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, index: int) -> FlowLayer:
        return self.layers[index]  # type: ignore[return-value]

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Apply every layer in order; return ``(y, Σ logdet)``."""
        logdet = zero_logdet(x)
        for layer in self.layers:
            x, ld = layer(x, context)
            logdet = logdet + ld
        return x, logdet

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Apply every layer's inverse in reverse order; return ``(x, Σ logdet_inv)``."""
        logdet = zero_logdet(y)
        for layer in reversed(self.layers):
            y, ld = layer.inverse(y, context)
            logdet = logdet + ld
        return y, logdet


class Inverse(FlowLayer):
    """Swap the directions of a layer: ``Inverse(f).forward = f.inverse`` and vice versa.

    Arguments:
        layer: the :class:`FlowLayer` to invert (its parameters are shared, not copied).

    References:
        nflows ``InverseTransform``.
    """

    def __init__(self, layer: FlowLayer) -> None:
        super().__init__()
        if not isinstance(layer, FlowLayer):
            raise ValueError(f"layer must be a FlowLayer, got {type(layer).__name__}")
        self.layer = layer

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Run the wrapped layer's ``inverse``."""
        return self.layer.inverse(x, context)

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Run the wrapped layer's ``forward``."""
        return self.layer(y, context)
