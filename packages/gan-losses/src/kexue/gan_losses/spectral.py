"""Spectral normalisation helpers built on ``torch.nn.utils.parametrizations.spectral_norm``.

``W_SN = W / σ(W)`` with σ estimated by power iteration inside the forward (Miyato et al.,
arXiv 1802.05957): one iteration per training forward with a persistent ``u``; in eval mode ``u``
is frozen, so σ is too. The weight is reshaped to ``(out, −1)``; PyTorch picks ``dim = 1`` for
``ConvTranspose`` (whose weight is ``(in, out, ...)``) by itself. Normalisation belongs in the
forward: the author's first version applied it as a post-step ``kernel_constraint``, which gives
gradients of the un-normalised weight and worse samples (post 6051).

The author also normalises every BN γ of D (``dcgan_sn_celeba.py``). BN's affine scale is the
diagonal map ``diag(γ)``, whose spectral norm is ``max_c |γ_c|``: :class:`BatchNormGammaSpectralNorm`
divides by it (``norm="max"``, default). His Keras helper instead reshapes γ ``(C,)`` to a
``1 × C`` matrix, whose spectral norm is the L2 norm ‖γ‖₂ (``norm="l2"`` reproduces it; it forces
``Σγ² = 1`` and shrinks a BN layer's output by about √C). Neither bounds BN's own ``1/σ_batch``.

Pitfalls (spec §2.18): ``u`` updates on every training forward (two D forwards in one step see
different σ, §2.14); under DDP, ``u`` is a buffer and is broadcast from rank 0.

References:
    https://kexue.fm/archives/6051; Miyato et al., arXiv 1802.05957.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm as _torch_spectral_norm

from ._validation import check_positive, check_tensor

__all__ = [
    "DEFAULT_SPECTRAL_NORM_TYPES",
    "BatchNormGammaSpectralNorm",
    "apply_spectral_norm",
    "remove_spectral_norm",
    "spectral_norm_batchnorm_gamma",
    "spectral_norm_of",
]

DEFAULT_SPECTRAL_NORM_TYPES: tuple[type[nn.Module], ...] = (
    nn.Linear,
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
)
"""Layer types :func:`apply_spectral_norm` normalises by default (their ``weight``)."""

# PyTorch's parametrization class (private name, stable since 1.9); used to detect layers that
# are already normalised. Looked up by name so importing this module has no side effects.
_TORCH_SN_TYPE: type[nn.Module] = torch.nn.utils.parametrizations._SpectralNorm


class BatchNormGammaSpectralNorm(nn.Module):
    """Parametrization ``γ ↦ γ / max(‖γ‖, eps)`` for a BN scale vector ``γ (C,)``.

    ``norm="max"`` (default): ``‖γ‖ = max_c |γ_c|``, the spectral norm of the diagonal map
    ``diag(γ)`` that BN's scale applies, computed exactly (no power iteration). ``norm="l2"``:
    ``‖γ‖₂``, what the author's Keras ``spectral_norm`` computes for a vector (a ``1 × C``
    matrix). Gradients flow through the norm, as in spectral normalisation.

    Arguments:
        norm: ``"max"`` or ``"l2"``.
        eps: floor of the norm.

    References:
        ``bojone/gan`` ``keras/dcgan_sn_celeba.py`` (``gamma_constraint``); post 6051.
    """

    def __init__(self, norm: Literal["max", "l2"] = "max", eps: float = 1e-12) -> None:
        super().__init__()
        if norm not in ("max", "l2"):
            raise ValueError(f"norm must be 'max' or 'l2', got {norm!r}")
        check_positive(eps, "eps")
        self.norm = norm
        self.eps = eps

    def forward(self, gamma: Tensor) -> Tensor:
        scale = gamma.abs().amax() if self.norm == "max" else gamma.norm()
        return gamma / scale.clamp_min(self.eps)

    def extra_repr(self) -> str:
        return f"norm={self.norm!r}, eps={self.eps}"


def spectral_norm_batchnorm_gamma(
    module: nn.modules.batchnorm._BatchNorm,
    *,
    norm: Literal["max", "l2"] = "max",
    eps: float = 1e-12,
) -> nn.modules.batchnorm._BatchNorm:
    """Register :class:`BatchNormGammaSpectralNorm` on a BatchNorm's ``weight`` (γ); returns it.

    Arguments:
        module: an affine ``BatchNorm1d/2d/3d`` (or ``SyncBatchNorm``).
        norm: ``"max"`` (spectral norm of ``diag(γ)``, default) or ``"l2"`` (the author's code).
        eps: floor of the norm.

    Returns:
        ``module``, with ``module.weight`` now normalised on every access.

    References:
        ``bojone/gan`` ``keras/dcgan_sn_celeba.py``; https://kexue.fm/archives/6051.
    """
    if not isinstance(module, nn.modules.batchnorm._BatchNorm):
        raise ValueError(f"module must be a BatchNorm layer, got {type(module).__name__}")
    if not module.affine or module.weight is None:
        raise ValueError("module has no affine weight (gamma); it was built with affine=False")
    parametrize.register_parametrization(
        module, "weight", BatchNormGammaSpectralNorm(norm=norm, eps=eps)
    )
    return module


def _is_parametrized_by(module: nn.Module, kinds: tuple[type[nn.Module], ...]) -> bool:
    if not parametrize.is_parametrized(module, "weight"):
        return False
    return any(isinstance(p, kinds) for p in module.parametrizations.weight)


def apply_spectral_norm(
    module: nn.Module,
    *,
    n_power_iterations: int = 1,
    eps: float = 1e-12,
    include_batchnorm_gamma: bool = False,
    gamma_norm: Literal["max", "l2"] = "max",
    types: Sequence[type[nn.Module]] = DEFAULT_SPECTRAL_NORM_TYPES,
) -> nn.Module:
    """Spectrally normalise every matching layer of ``module`` (itself included), in place.

    Each layer of one of ``types`` gets ``torch.nn.utils.parametrizations.spectral_norm`` on its
    ``weight`` (``dim`` chosen by PyTorch: 1 for ``ConvTranspose``, else 0). Layers already
    spectrally normalised are skipped, so calling twice is harmless.

    Arguments:
        module: usually the discriminator.
        n_power_iterations: power iterations per training forward; default 1 [Miyato] (the
            author: 5 from a ones vector on every call [code]).
        eps: numerical floor of the power iteration.
        include_batchnorm_gamma: also normalise every affine BN γ (the author does, in D) with
            :class:`BatchNormGammaSpectralNorm`; default False.
        gamma_norm: ``"max"`` (spectral norm of ``diag(γ)``) or ``"l2"`` (the author's code).
        types: the layer classes to normalise; default :data:`DEFAULT_SPECTRAL_NORM_TYPES`.

    Returns:
        ``module`` (modified in place).

    Example:
        >>> d = apply_spectral_norm(nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8)),
        ...                         include_batchnorm_gamma=True)
        >>> torch.nn.utils.parametrize.is_parametrized(d[1], "weight")
        True

    References:
        Miyato et al., arXiv 1802.05957; https://kexue.fm/archives/6051.
    """
    if not isinstance(module, nn.Module):
        raise ValueError(f"module must be an nn.Module, got {type(module).__name__}")
    if not isinstance(n_power_iterations, int) or n_power_iterations < 1:
        raise ValueError(f"n_power_iterations must be an int >= 1, got {n_power_iterations!r}")
    types = tuple(types)
    if not all(isinstance(t, type) and issubclass(t, nn.Module) for t in types):
        raise ValueError(f"types must be nn.Module subclasses, got {types!r}")
    for name, sub in module.named_modules():
        if isinstance(sub, nn.modules.lazy.LazyModuleMixin) and sub.has_uninitialized_params():
            raise ValueError(
                f"submodule {name or type(sub).__name__!r} is a lazy module with uninitialised "
                "parameters; run one forward before apply_spectral_norm"
            )
        if isinstance(sub, types) and not _is_parametrized_by(sub, (_TORCH_SN_TYPE,)):
            _torch_spectral_norm(sub, "weight", n_power_iterations=n_power_iterations, eps=eps)
        elif (
            include_batchnorm_gamma
            and isinstance(sub, nn.modules.batchnorm._BatchNorm)
            and sub.affine
            and not _is_parametrized_by(sub, (BatchNormGammaSpectralNorm,))
        ):
            spectral_norm_batchnorm_gamma(sub, norm=gamma_norm)
    return module


def remove_spectral_norm(module: nn.Module) -> nn.Module:
    """Remove every spectral-norm parametrization under ``module``, keeping ``W / σ(W)``.

    Both PyTorch's spectral norm and :class:`BatchNormGammaSpectralNorm` are removed with
    ``leave_parametrized=True``: each weight becomes a plain parameter holding its current
    normalised value (as the old ``torch.nn.utils.remove_spectral_norm`` did). A weight that
    also carries other parametrizations raises, since removing one of a stack is ambiguous.

    Arguments:
        module: a module normalised by :func:`apply_spectral_norm` or by hand.

    Returns:
        ``module`` (modified in place).
    """
    if not isinstance(module, nn.Module):
        raise ValueError(f"module must be an nn.Module, got {type(module).__name__}")
    sn_types = (_TORCH_SN_TYPE, BatchNormGammaSpectralNorm)
    for name, sub in list(module.named_modules()):
        if not _is_parametrized_by(sub, sn_types):
            continue
        stack = list(sub.parametrizations.weight)
        if not all(isinstance(p, sn_types) for p in stack):
            others = [type(p).__name__ for p in stack if not isinstance(p, sn_types)]
            raise ValueError(
                f"submodule {name!r} has other parametrizations on weight ({others}); remove "
                "them first with torch.nn.utils.parametrize.remove_parametrizations"
            )
        parametrize.remove_parametrizations(sub, "weight", leave_parametrized=True)
    return module


def spectral_norm_of(weight: Tensor, *, dim: int = 0) -> Tensor:
    """Exact largest singular value of a weight reshaped to ``(out, −1)``.

    ``torch.linalg.matrix_norm(ord=2)`` (an SVD), computed in at least fp32; use it to check or
    log what the power iteration estimates.

    Arguments:
        weight: ``(out, ...)``, at least 1 dim (a vector counts as ``1 × n``, norm ‖w‖₂).
        dim: the output dim moved to the front before reshaping; 1 for ``ConvTranspose`` weights
            ``(in, out, ...)`` (PyTorch's convention). The singular values do not depend on it
            for 2-D weights.

    Returns:
        A scalar tensor in ``weight``'s dtype (fp32 for half-precision input).

    Example:
        >>> spectral_norm_of(torch.diag(torch.tensor([3.0, 1.0])))
        tensor(3.)
    """
    weight = check_tensor(weight, "weight")
    if weight.dim() == 0:
        raise ValueError("weight must have at least 1 dim, got a scalar")
    if not weight.is_floating_point():
        raise ValueError(f"weight must be a floating-point tensor, got dtype {weight.dtype}")
    if not -weight.dim() <= dim < weight.dim():
        raise ValueError(f"dim={dim} is out of range for weight of shape {tuple(weight.shape)}")
    w = weight.movedim(dim, 0) if weight.dim() > 1 else weight.unsqueeze(0)
    w = w.reshape(w.shape[0], -1)
    if w.dtype in (torch.float16, torch.bfloat16):
        w = w.float()
    return torch.linalg.matrix_norm(w, ord=2)
