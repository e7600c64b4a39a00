"""Elementwise monotone transformers τ(x; θ) shared by spline couplings and autoregressive layers.

A conditioner (a coupling net or a MADE) emits ``P`` raw values per transformed element, laid
out last: ``params`` has shape ``x.shape + (P,)``.

- ``"affine"`` (P = 2): ``θ = (t, ŝ)``, ``y = x·exp(s) + t`` with the zuko soft clip
  ``s = ŝ/(1 + |ŝ/ln 1e-3|)`` (|s| < 6.91, bounded by default, spec flows §1.4); the zuko
  ``MonotonicAffineTransform`` parametrisation, so zero parameters give the identity.
- ``"spline"`` (P = 3K − 1): ``θ = (θʷ, θʰ, θᵈ)`` into the rational-quadratic spline
  :func:`kexue.flows.splines.rq_spline` with linear tails (identity outside [−B, B]).

References:
    - Durkan, Bekasov, Murray, Papamakarios, Neural Spline Flows, arXiv:1906.04032.
    - Papamakarios et al., MAF, arXiv:1705.07057; zuko ``MonotonicAffineTransform``.
"""

from __future__ import annotations

from typing import Literal

from torch import Tensor

from kexue.flows.layers.scale_maps import soft_clip
from kexue.flows.splines import rq_spline

__all__ = ["Transformer", "apply_transformer", "check_transformer", "transformer_params"]

Transformer = Literal["affine", "spline"]


def transformer_params(kind: str, bins: int) -> int:
    """Raw values per element: 2 for ``"affine"``, 3K − 1 for ``"spline"`` (linear tails)."""
    return 2 if kind == "affine" else 3 * bins - 1


def check_transformer(kind: str, bins: int, bound: float) -> None:
    """Validate the transformer arguments once, at a layer's constructor."""
    if kind not in ("affine", "spline"):
        raise ValueError(f"transformer must be 'affine' or 'spline', got {kind!r}")
    if kind == "spline":
        if not isinstance(bins, int) or bins < 1:
            raise ValueError(f"bins must be a positive int, got {bins!r}")
        if not bound > 0:
            raise ValueError(f"bound must be > 0, got {bound!r}")


def apply_transformer(
    kind: str,
    x: Tensor,
    params: Tensor,
    *,
    inverse: bool,
    bins: int = 8,
    bound: float = 5.0,
    param: str = "nflows",
) -> tuple[Tensor, Tensor]:
    """``(τ(x; θ), log τ'(x; θ))`` elementwise (or the inverse and its ladj when ``inverse``).

    Arguments:
        kind: ``"affine"`` or ``"spline"``.
        x: any shape S.
        params: ``S + (P,)`` raw values.
        inverse: apply τ⁻¹ (its ladj is −ladj of τ at the matching point).
        bins: K for the spline.
        bound: B of the spline's interval [−B, B].
        param: spline parametrisation (``"nflows"`` or ``"zuko"``).

    Returns:
        ``(y, ladj)``, both of shape S (ladj in the dtype the transform computes it in).
    """
    if kind == "affine":
        shift = params[..., 0]
        scale, log_scale = soft_clip(params[..., 1])
        if inverse:
            return (x - shift) / scale, -log_scale
        return x * scale + shift, log_scale
    w = params[..., :bins]
    h = params[..., bins : 2 * bins]
    d = params[..., 2 * bins :]
    return rq_spline(x, w, h, d, inverse=inverse, bound=bound, param=param)
