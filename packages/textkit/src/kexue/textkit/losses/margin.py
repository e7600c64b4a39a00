"""Additive / angular margin softmax losses (AM-Softmax and relatives) on cosine logits.

Every loss takes cosines ``cos: (B, C)`` (e.g. from
:class:`~kexue.textkit.losses.cosine.CosineClassifier`) and a target that is
either sparse class ids ``(B,)`` (int64) or a dense ``(B, C)`` distribution (normally one-hot). The
margin is applied by replacing the target logit s·cos θ_t with s·ψ(θ_t) and taking the ordinary
cross-entropy: L = −log(e^{s·ψ(θ_t)} / (e^{s·ψ(θ_t)} + Σ_{i≠t} e^{s·cos θ_i})). (Post 5743 removes
the unmargined target via log(1 − exp(s·cos_t − logZ)), ill-conditioned when the target dominates;
this form is exact and stable.) With a dense target y the logits are s·(cos + y·(ψ − cos)), which is
the same thing for one-hot rows.

| kind | ψ(θ) | defaults |
| --- | --- | --- |
| ``softmax`` | cos θ (scaled softmax, NormFace) | s = 30 |
| ``am`` | cos θ − m | s = 30, m = 0.35 [paper, AM-Softmax] |
| ``cosface`` | cos θ − m | s = 64, m = 0.35 [paper, CosFace] |
| ``arcface`` | cos(θ + m), falling back to cos θ − m·sin m when θ + m > π | s = 64, m = 0.5 [paper] |
| ``sphereface`` | (−1)^k cos(mθ) − 2k on [kπ/m, (k+1)π/m] | m = 4 [paper], s = 30 [decision] |
| ``simpler_a`` | min(cos mθ, cos θ) (the author's simplified A-softmax) | m = 4, s = 30 [unverified] |

cos(mθ) is evaluated as the Chebyshev polynomial T_m(cos θ) (no acos in the graph, finite
gradients at θ = 0 and π); ArcFace's sin θ is √max(1 − cos², 1e-12), so its gradient is finite
everywhere, including at θ = π.

Inputs are checked once per call (one host sync in all): ``cos`` must be finite and lie in
[−1, 1] up to rounding (1e-6 in float64, 1e-5 in float32, 4 ulps of 1 in float16 / bfloat16;
ArcFace / SphereFace clamp what is left), class ids must lie in [0, C), dense targets must be
distributions; otherwise ``ValueError`` naming the argument. A value such as cos = 1.5 is not a
cosine (unnormalised features or weights) and would otherwise be silently clamped.

References:
    - Su Jianlin, GRU + AM-Softmax sentence similarity: https://kexue.fm/archives/5743
    - Wang et al. 2018, Additive Margin Softmax, arXiv:1801.05599.
    - Wang et al. 2018, CosFace, arXiv:1801.09414.
    - Deng et al. 2019, ArcFace, arXiv:1801.07698.
    - Liu et al. 2017, SphereFace, arXiv:1704.08063.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._common import _check_reduction, _finite_check, _raise_on_flags, _reduce, _shape

__all__ = [
    "MARGIN_LOSS_DEFAULTS",
    "MarginSoftmaxLoss",
    "am_softmax_loss",
    "arcface_loss",
    "cosface_loss",
    "margin_logits",
    "simpler_a_softmax_loss",
    "sphereface_loss",
]

MARGIN_LOSS_DEFAULTS: dict[str, dict[str, float]] = {
    "softmax": {"s": 30.0, "m": 0.0},
    "am": {"s": 30.0, "m": 0.35},  # AM-Softmax paper; post 5743
    "cosface": {"s": 64.0, "m": 0.35},  # CosFace paper
    "arcface": {"s": 64.0, "m": 0.5},  # ArcFace paper
    "sphereface": {"s": 30.0, "m": 4},  # m = 4 SphereFace paper; s: textkit decision
    "simpler_a": {"s": 30.0, "m": 4},  # the post's Keras code (four-fold angle) [unverified]
}
"""Default (s, m) per margin kind, with their sources in the comments."""

_SIN_EPS = 1e-12


def _chebyshev(c: Tensor, m: int) -> Tensor:
    """cos(mθ) = T_m(cos θ) by the three-term recurrence T_{n+1} = 2c·T_n − T_{n−1}."""
    t_prev, t = torch.ones_like(c), c
    for _ in range(m - 1):
        t_prev, t = t, 2 * c * t - t_prev
    return t if m >= 1 else t_prev


def _psi(c: Tensor, kind: str, m: float, easy_margin: bool, lam: float) -> Tensor:
    """The margined target cosine ψ(θ) of ``kind`` at cosines ``c`` (elementwise)."""
    if kind == "softmax":
        return c
    if kind in ("am", "cosface"):
        return c - m
    if kind == "arcface":
        c = c.clamp(-1.0, 1.0)
        sin = (1.0 - c * c).clamp_min(_SIN_EPS).sqrt()
        phi = c * math.cos(m) - sin * math.sin(m)
        if easy_margin:
            return torch.where(c > 0, phi, c)
        # θ + m > π  ⇔  cos θ < cos(π − m): use the linear fallback cos θ − m·sin(m) (insightface).
        return torch.where(c > math.cos(math.pi - m), phi, c - math.sin(math.pi - m) * m)
    mi = int(m)
    c = c.clamp(-1.0, 1.0)
    cos_m = _chebyshev(c, mi)
    if kind == "simpler_a":
        return torch.minimum(cos_m, c)
    # sphereface: k = floor(mθ/π) (piecewise constant, no gradient), ψ decreasing on [0, π]
    with torch.no_grad():
        k = torch.floor(mi * torch.acos(c) / math.pi).clamp_(0, mi - 1)
    sign = 1.0 - 2.0 * torch.remainder(k, 2)
    psi = sign * cos_m - 2.0 * k
    return (lam * c + psi) / (1.0 + lam) if lam else psi


def _check_margin(kind: str, m: float) -> None:
    if kind in ("sphereface", "simpler_a"):
        if int(m) != m or m < 1:
            raise ValueError(f"m must be a positive integer for kind={kind!r}, got {m}")
    elif kind == "arcface":
        if not 0 <= m < math.pi / 2:
            raise ValueError(f"m must lie in [0, pi/2) for kind='arcface', got {m}")
    elif not (math.isfinite(m) and m >= 0):
        raise ValueError(f"m must be finite and >= 0, got {m}")


def _cos_tolerance(dtype: torch.dtype) -> float:
    """How far past ±1 a cosine may lie from rounding: 1e-6 in float64, 1e-5 in float32 (about
    80 ulps; normalised float32 dot products measured ≤ 8e-7 above 1 for D ≤ 4096), 4 ulps of 1 in
    float16 / bfloat16. TF32 matmuls round more coarsely: clamp such cosines before the loss."""
    if dtype == torch.float64:
        return 1e-6
    return max(1e-5, 4 * torch.finfo(dtype).eps)


def _check_cos_target(cos: Tensor, target: Tensor) -> bool:
    """Validate ``cos`` and ``target`` (one host sync in all); return True for a sparse target."""
    if not isinstance(cos, Tensor) or cos.dim() != 2 or not cos.is_floating_point():
        raise ValueError(
            f"cos must be a floating (B, C) tensor of cosines, got "
            f"{getattr(cos, 'dtype', type(cos).__name__)} {_shape(cos)}"
        )
    if not isinstance(target, Tensor):
        raise TypeError(f"target must be a torch.Tensor, got {type(target).__name__}")
    b, c = cos.shape
    tol = _cos_tolerance(cos.dtype)
    checks = [
        _finite_check("cos", cos),
        (
            (cos.abs() <= 1.0 + tol).all(),
            f"cos must hold cosines in [-1, 1] (tolerance {tol:g} for {cos.dtype}), got values "
            f"outside it (shape {_shape(cos)})",
        ),
    ]
    if target.dtype in (torch.int64, torch.int32, torch.int16, torch.uint8, torch.int8):
        if target.shape != (b,):
            raise ValueError(
                f"target must be (B,) class ids or a dense (B, C) distribution matching cos "
                f"{_shape(cos)}, got class ids of shape {_shape(target)}"
            )
        checks.append(
            (
                ((target >= 0) & (target < c)).all(),
                f"target class ids must lie in [0, {c}) (C from cos {_shape(cos)})",
            )
        )
        sparse = True
    elif target.is_floating_point():
        if target.shape != cos.shape:
            raise ValueError(
                f"dense target must have the shape of cos {_shape(cos)}, got {_shape(target)}"
            )
        sums = target.sum(1)
        checks.append(
            (
                (target >= 0).all() & ((sums - 1).abs() <= 1e-4 + 1e-5).all(),
                f"dense target rows must be non-negative and sum to 1 (shape {_shape(target)})",
            )
        )
        sparse = False
    else:
        raise ValueError(
            f"target must be integer class ids or a float distribution, got {target.dtype}"
        )
    _raise_on_flags(checks)  # one host sync for every value check above
    return sparse


def _check_kind_s_m(kind: str, s: float | None, m: float | None) -> tuple[float, float]:
    """Validate the hyper-parameters (host only); return ``(s, m)`` with the defaults filled."""
    if kind not in MARGIN_LOSS_DEFAULTS:
        raise ValueError(f"kind must be one of {tuple(MARGIN_LOSS_DEFAULTS)}, got {kind!r}")
    s = MARGIN_LOSS_DEFAULTS[kind]["s"] if s is None else float(s)
    m = MARGIN_LOSS_DEFAULTS[kind]["m"] if m is None else m
    if not (math.isfinite(s) and s > 0):
        raise ValueError(f"s must be finite and > 0, got {s}")
    _check_margin(kind, m)
    return s, m


def margin_logits(
    cos: Tensor,
    target: Tensor,
    *,
    kind: str = "am",
    s: float | None = None,
    m: float | None = None,
    easy_margin: bool = False,
    lam: float = 0.0,
) -> Tensor:
    """Scaled logits with the margin applied at the target: s·cos, with s·ψ(θ_t) at the target.

    Arguments:
        cos: cosines ``(B, C)``, finite and in [−1, 1] up to rounding (1e-6 in float64, 1e-5 in
            float32, 4 ulps in half precision); otherwise ``ValueError``.
        target: class ids ``(B,)`` or a dense ``(B, C)`` distribution (logits s·(cos + y·(ψ−cos))).
        kind: one of ``MARGIN_LOSS_DEFAULTS`` (see the module table for ψ).
        s: scale (default per kind, see ``MARGIN_LOSS_DEFAULTS``).
        m: margin (default per kind); an integer ≥ 1 for ``sphereface`` / ``simpler_a``.
        easy_margin: ArcFace only: apply the margin only where cos θ > 0 (insightface option).
        lam: SphereFace only: annealed ψ ← (λ·cos θ + ψ)/(1 + λ) (default 0, the final stage).

    Returns:
        Logits ``(B, C)`` for a cross-entropy.

    References:
        https://kexue.fm/archives/5743; arXiv:1801.05599, 1801.09414, 1801.07698, 1704.08063.
    """
    margin = _Margin(kind, *_check_kind_s_m(kind, s, m), easy_margin, lam)
    return margin.logits(cos, target, _check_cos_target(cos, target))


@dataclass(frozen=True)
class _Margin:
    """Checked hyper-parameters of one margin loss (``kind``, scale ``s``, margin ``m``, the
    ArcFace / SphereFace options); its methods are the trusted cores (inputs already validated,
    ``sparse``: ``target`` holds class ids)."""

    kind: str
    s: float
    m: float
    easy_margin: bool = False
    lam: float = 0.0

    def logits(self, cos: Tensor, target: Tensor, sparse: bool) -> Tensor:
        """Trusted core of :func:`margin_logits`."""
        s = self.s
        if sparse:
            idx = target.long().unsqueeze(1)
            return (s * cos).scatter(1, idx, s * self._psi(cos.gather(1, idx)))
        return s * (cos + target.to(cos.dtype) * (self._psi(cos) - cos))

    def loss(self, cos: Tensor, target: Tensor, sparse: bool, reduction: str) -> Tensor:
        """Trusted core: cross-entropy of the margin logits, reduced."""
        logits = self.logits(cos, target, sparse)
        if sparse:
            per = F.cross_entropy(logits, target.long(), reduction="none")
        else:
            per = -(target.to(logits.dtype) * F.log_softmax(logits, dim=1)).sum(1)
        return _reduce(per, reduction)

    def _psi(self, cos: Tensor) -> Tensor:
        return _psi(cos, self.kind, self.m, self.easy_margin, self.lam)


def _margin_ce(
    cos: Tensor,
    target: Tensor,
    kind: str,
    s: float | None,
    m: float | None,
    reduction: str,
    easy_margin: bool = False,
    lam: float = 0.0,
) -> Tensor:
    """Checked entry shared by the public losses: validate once, then the core."""
    _check_reduction(reduction)
    margin = _Margin(kind, *_check_kind_s_m(kind, s, m), easy_margin, lam)
    return margin.loss(cos, target, _check_cos_target(cos, target), reduction)


def am_softmax_loss(
    cos: Tensor, target: Tensor, *, s: float = 30.0, m: float = 0.35, reduction: str = "mean"
) -> Tensor:
    """AM-Softmax: CE of s·cos with s·(cos θ_t − m) at the target.

    L = −log(e^{s(cos θ_t − m)} / (e^{s(cos θ_t − m)} + Σ_{i≠t} e^{s·cos θ_i})).

    Arguments:
        cos: cosines ``(B, C)``.
        target: class ids ``(B,)`` or a dense ``(B, C)`` distribution.
        s: scale (default 30 [paper]).
        m: additive margin (default 0.35 [paper]).
        reduction: ``"mean" | "sum" | "none"`` over B.

    Returns:
        The loss, a scalar or ``(B,)``.

    References:
        Wang et al. 2018, arXiv:1801.05599; https://kexue.fm/archives/5743
    """
    return _margin_ce(cos, target, "am", s, m, reduction)


def cosface_loss(
    cos: Tensor, target: Tensor, *, s: float = 64.0, m: float = 0.35, reduction: str = "mean"
) -> Tensor:
    """CosFace (large margin cosine loss): the AM-Softmax form with s = 64, m = 0.35 [paper].

    Arguments and returns as :func:`am_softmax_loss`.

    References:
        Wang et al. 2018, arXiv:1801.09414.
    """
    return _margin_ce(cos, target, "cosface", s, m, reduction)


def arcface_loss(
    cos: Tensor,
    target: Tensor,
    *,
    s: float = 64.0,
    m: float = 0.5,
    easy_margin: bool = False,
    reduction: str = "mean",
) -> Tensor:
    """ArcFace (additive angular margin): target logit s·cos(θ_t + m).

    Where θ_t + m > π, cos(θ + m) would stop decreasing in θ; the standard (insightface) fallback
    s·(cos θ_t − m·sin m) is used there. ψ is then strictly decreasing on [0, π], with a downward
    step of cos m + m·sin m − 1 (≈ 0.117 at m = 0.5) at θ = π − m. Finite value and gradient for
    every cos ∈ [−1, 1], including θ = π.

    Arguments (``cos``, ``target``, ``reduction`` and the returned loss as :func:`am_softmax_loss`):
        s: scale (default 64 [paper]).
        m: angular margin in radians, in [0, π/2) (default 0.5 [paper]).
        easy_margin: margin only where cos θ_t > 0 (insightface option; default False).

    References:
        Deng et al. 2019, arXiv:1801.07698.
    """
    return _margin_ce(cos, target, "arcface", s, m, reduction, easy_margin=easy_margin)


def sphereface_loss(
    cos: Tensor,
    target: Tensor,
    *,
    s: float = 30.0,
    m: int = 4,
    lam: float = 0.0,
    reduction: str = "mean",
) -> Tensor:
    """SphereFace (A-Softmax) on normalised features: target logit s·ψ(θ_t),
    ψ(θ) = (−1)^k cos(mθ) − 2k for θ ∈ [kπ/m, (k+1)π/m], k = 0..m−1 (monotone decreasing).

    The paper scales by the feature norm ‖x‖; with normalised features (as everywhere in this
    module) a fixed scale s replaces it (default 30, a textkit decision [unverified]).

    Arguments (``cos``, ``target``, ``reduction`` and the returned loss as :func:`am_softmax_loss`):
        s: scale (default 30).
        m: integer angular multiplier (default 4 [paper]).
        lam: annealing weight λ: ψ ← (λ·cos θ + ψ)/(1 + λ) (default 0).

    References:
        Liu et al. 2017, arXiv:1704.08063.
    """
    return _margin_ce(cos, target, "sphereface", s, m, reduction, lam=lam)


def simpler_a_softmax_loss(
    cos: Tensor, target: Tensor, *, s: float = 30.0, m: int = 4, reduction: str = "mean"
) -> Tensor:
    """The author's simplified A-Softmax: target logit s·min(cos mθ_t, cos θ_t).

    cos mθ is the Chebyshev polynomial T_m(cos θ) (for m = 4: 8c⁴ − 8c² + 1, as in the post's
    code). Unlike SphereFace's ψ this is not monotone for θ > π/m; it is the post's definition.

    Arguments (``cos``, ``target``, ``reduction`` and the returned loss as :func:`am_softmax_loss`):
        s: scale (default 30 [unverified, post code]).
        m: integer angular multiplier (default 4 [unverified, post code]).

    References:
        https://kexue.fm/archives/5743
    """
    return _margin_ce(cos, target, "simpler_a", s, m, reduction)


class MarginSoftmaxLoss(nn.Module):
    """Module form of the margin losses: ``MarginSoftmaxLoss(kind)(cos, target)``.

    Arguments:
        kind: ``"softmax" | "am" | "cosface" | "arcface" | "sphereface" | "simpler_a"``.
        s: scale (default per kind, ``MARGIN_LOSS_DEFAULTS``).
        m: margin (default per kind).
        easy_margin: ArcFace option.
        lam: SphereFace annealing weight.
        reduction: ``"mean" | "sum" | "none"``.

    References:
        https://kexue.fm/archives/5743
    """

    def __init__(
        self,
        kind: str = "am",
        *,
        s: float | None = None,
        m: float | None = None,
        easy_margin: bool = False,
        lam: float = 0.0,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        _check_reduction(reduction)
        self.kind = kind
        self.s, self.m = _check_kind_s_m(kind, s, m)
        self.easy_margin = easy_margin
        self.lam = lam
        self.reduction = reduction

    def forward(self, cos: Tensor, target: Tensor) -> Tensor:
        """Loss of cosines ``(B, C)`` against ``target`` ((B,) ids or (B, C) distribution).

        The hyper-parameters were checked once in ``__init__``; each call checks only ``cos`` and
        ``target`` (one host sync) and runs the core.
        """
        _check_cos_target(cos, target)
        return self.forward_unchecked(cos, target)

    def forward_unchecked(self, cos: Tensor, target: Tensor) -> Tensor:
        """The trusted core, for a caller that computed ``cos`` itself and validated ``target``
        (e.g. :class:`~kexue.textkit.tasks.similarity.SentenceSimilarityModel`): no value
        checks and no host sync. Integer ``target`` = class ids ``(B,)``, float = ``(B, C)``
        distribution; anything else is undefined behaviour."""
        margin = _Margin(self.kind, self.s, self.m, self.easy_margin, self.lam)
        return margin.loss(cos, target, not target.is_floating_point(), self.reduction)

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}, s={self.s}, m={self.m}, reduction={self.reduction!r}"
