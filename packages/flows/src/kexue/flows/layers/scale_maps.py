"""Scale maps of affine couplings: raw network output ĥ → multiplicative scale and its log.

Every map returns ``(scale, log_scale)`` with ``scale = exp(log_scale)`` (up to rounding) and
``log_scale`` = ln|∂y/∂x| of one transformed element, i.e. the coupling's per-element logdet. All
maps except ``exp`` are bounded and give finite values for |ĥ| ≤ 1e4 (``sigmoid2``'s scale
underflows to 0 for ĥ ≲ −90 in fp32 while its log stays finite). ``exp`` is opt-in only (spec §1.4):
it overflows for ĥ ≳ 88 in fp32.

| name | log-scale s(ĥ) | source |
| --- | --- | --- |
| ``tanh_w`` | w_c·tanh(ĥ) | RealNVP (arXiv:1605.08803), chrischute/real-nvp |
| ``sigmoid2`` | ln σ(ĥ + 2) | Glow (arXiv:1807.03039), openai/glow, rosinality |
| ``sigmoid2_eps`` | ln(σ(ĥ + 2) + 1e-3) | nflows ``AffineCouplingTransform`` |
| ``atan_clamp`` | c·(2/π)·atan(ĥ), c = 2 | FrEIA ``AllInOneBlock`` soft clamp |
| ``soft_clip`` | ĥ/(1 + \\|ĥ/ln(1e-3)\\|) | zuko ``soft_clip`` |
| ``exp`` | ĥ | Su's ``AffineCouple`` (bojone/flow), normflows ``scale_map="exp"`` |

References: https://kexue.fm/archives/5807 (RealNVP与Glow).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "ATAN_CLAMP",
    "SCALE_MAPS",
    "SIGMOID2_EPS",
    "SIGMOID2_OFFSET",
    "SOFT_CLIP_SLOPE",
    "apply_scale_map",
    "atan_clamp",
    "exp",
    "get_scale_map",
    "log_scale_derivative",
    "sigmoid2",
    "sigmoid2_eps",
    "soft_clip",
    "tanh_w",
]

SIGMOID2_OFFSET = 2.0  # openai/glow model.py: sigmoid(h + 2.)
SIGMOID2_EPS = 1e-3  # nflows AffineCouplingTransform: sigmoid(x + 2) + 1e-3
ATAN_CLAMP = 2.0  # FrEIA AllInOneBlock affine_clamping=2.0
SOFT_CLIP_SLOPE = 1e-3  # zuko: bound |log-scale| < -ln(1e-3) ≈ 6.91
_SOFT_CLIP_BOUND = -math.log(SOFT_CLIP_SLOPE)


def tanh_w(h: Tensor, *, weight: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """RealNVP scale: s = w·tanh(ĥ), scale = exp(s).

    Arguments:
        h: raw scale output ĥ, any shape.
        weight: per-channel rescale w broadcastable against ``h`` (RealNVP's weight-normalised
            ``Rescale``); ``None`` means w = 1, so |s| < 1.

    Returns:
        ``(scale, log_scale)``, both shaped like ``h``.

    References:
        RealNVP, Dinh et al. 2016, arXiv:1605.08803 §4.1; chrischute/real-nvp ``Rescale``.
    """
    log_scale = torch.tanh(h) if weight is None else weight * torch.tanh(h)
    return torch.exp(log_scale), log_scale


def sigmoid2(h: Tensor) -> tuple[Tensor, Tensor]:
    """Glow scale: scale = σ(ĥ + 2) ∈ (0, 1), log_scale = ln σ(ĥ + 2) (≈ 0.881 at ĥ = 0).

    Arguments:
        h: raw scale output ĥ, any shape.

    Returns:
        ``(scale, log_scale)``; ``log_scale`` via ``logsigmoid`` so it stays finite.

    References:
        Glow, Kingma & Dhariwal 2018, arXiv:1807.03039; openai/glow ``model.py`` (offset 2.0).
    """
    z = h + SIGMOID2_OFFSET
    return torch.sigmoid(z), F.logsigmoid(z)


def sigmoid2_eps(h: Tensor) -> tuple[Tensor, Tensor]:
    """nflows scale: scale = σ(ĥ + 2) + 1e-3 ∈ (1e-3, 1 + 1e-3).

    Arguments:
        h: raw scale output ĥ, any shape.

    Returns:
        ``(scale, log_scale)``.

    References:
        bayesiains/nflows ``AffineCouplingTransform._scale_and_shift`` (eps 1e-3).
    """
    scale = torch.sigmoid(h + SIGMOID2_OFFSET) + SIGMOID2_EPS
    return scale, torch.log(scale)


def atan_clamp(h: Tensor) -> tuple[Tensor, Tensor]:
    """FrEIA soft clamp: s = c·(2/π)·atan(ĥ) with c = 2, so |s| < 2; scale = exp(s).

    Arguments:
        h: raw scale output ĥ, any shape.

    Returns:
        ``(scale, log_scale)``.

    References:
        vislearn/FrEIA ``AllInOneBlock`` (``affine_clamping=2.0``, ATAN mode).
    """
    log_scale = (ATAN_CLAMP * 2.0 / math.pi) * torch.atan(h)
    return torch.exp(log_scale), log_scale


def soft_clip(h: Tensor) -> tuple[Tensor, Tensor]:
    """zuko soft clip: s = ĥ/(1 + |ĥ/ln(slope)|), slope 1e-3, so |s| < 6.91; scale = exp(s).

    Arguments:
        h: raw scale output ĥ, any shape.

    Returns:
        ``(scale, log_scale)``.

    References:
        probabilists/zuko ``GeneralCouplingTransform`` (``slope=1e-3``).
    """
    log_scale = h / (1.0 + h.abs() / _SOFT_CLIP_BOUND)
    return torch.exp(log_scale), log_scale


def exp(h: Tensor) -> tuple[Tensor, Tensor]:
    """Unbounded scale = exp(ĥ), log_scale = ĥ (opt-in only; overflows for large ĥ).

    Arguments:
        h: raw scale output ĥ, any shape.

    Returns:
        ``(scale, log_scale)``.

    References:
        bojone/flow ``AffineCouple``; normflows ``AffineCoupling(scale_map="exp")``.
    """
    return torch.exp(h), h


SCALE_MAPS: dict[str, Callable[..., tuple[Tensor, Tensor]]] = {
    "tanh_w": tanh_w,
    "sigmoid2": sigmoid2,
    "sigmoid2_eps": sigmoid2_eps,
    "atan_clamp": atan_clamp,
    "soft_clip": soft_clip,
    "exp": exp,
}


def get_scale_map(name: str) -> Callable[..., tuple[Tensor, Tensor]]:
    """Look up a scale map by name.

    Arguments:
        name: one of ``SCALE_MAPS`` (``tanh_w``, ``sigmoid2``, ``sigmoid2_eps``, ``atan_clamp``,
            ``soft_clip``, ``exp``).

    Returns:
        The map, a function ``h -> (scale, log_scale)`` (``tanh_w`` also takes ``weight=``).

    Raises:
        ValueError: naming ``scale_map`` for an unknown name.
    """
    if name not in SCALE_MAPS:
        raise ValueError(f"scale_map must be one of {sorted(SCALE_MAPS)}, got {name!r}")
    return SCALE_MAPS[name]


def apply_scale_map(name: str, h: Tensor, *, weight: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Apply the scale map ``name`` to ĥ.

    Arguments:
        name: scale-map name (see :func:`get_scale_map`).
        h: raw scale output ĥ.
        weight: ``tanh_w``'s per-channel rescale (broadcastable against ``h``); must be ``None``
            for every other map.

    Returns:
        ``(scale, log_scale)`` shaped like ``h``.
    """
    fn = get_scale_map(name)
    if name == "tanh_w":
        return fn(h, weight=weight)
    if weight is not None:
        raise ValueError(f"scale_weight is only used by scale_map='tanh_w', got {name!r}")
    return fn(h)


def log_scale_derivative(
    name: str, h: Tensor, *, weight: Tensor | None = None
) -> tuple[Tensor, Tensor | None]:
    """Closed-form derivatives of the log-scale: ∂s/∂ĥ and (``tanh_w`` only) ∂s/∂w.

    sigmoid2: 1 − σ(ĥ+2); sigmoid2_eps: σ(1−σ)/(σ + 1e-3); atan_clamp: c(2/π)/(1+ĥ²);
    soft_clip: 1/(1 + |ĥ|/L)²; exp: 1; tanh_w: w(1 − tanh²ĥ) and tanh ĥ.

    Arguments:
        name: scale-map name.
        h: raw scale output ĥ.
        weight: ``tanh_w``'s rescale or ``None``.

    Returns:
        ``(ds_dh, ds_dw)``; ``ds_dw`` is ``None`` except for ``tanh_w``.
    """
    get_scale_map(name)
    if name == "sigmoid2":
        return 1.0 - torch.sigmoid(h + SIGMOID2_OFFSET), None
    if name == "sigmoid2_eps":
        sig = torch.sigmoid(h + SIGMOID2_OFFSET)
        return sig * (1.0 - sig) / (sig + SIGMOID2_EPS), None
    if name == "atan_clamp":
        return (ATAN_CLAMP * 2.0 / math.pi) / (1.0 + h * h), None
    if name == "soft_clip":
        return (1.0 + h.abs() / _SOFT_CLIP_BOUND).reciprocal().square(), None
    if name == "exp":
        return torch.ones_like(h), None
    th = torch.tanh(h)
    dsdh = 1.0 - th * th
    return (dsdh if weight is None else weight * dsdh), th
