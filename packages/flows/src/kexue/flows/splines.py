"""Monotonic rational-quadratic splines (neural spline flows): :func:`rq_spline`, :class:`RQSpline`.

K bins on [−B, B] with knots (x_k, y_k), k = 0..K, (x_0, y_0) = (−B, −B), (x_K, y_K) = (B, B), and
positive derivatives δ_k at the knots. In bin k, with ξ = (x − x_k)/Δx_k and s_k = Δy_k/Δx_k,

    y = y_k + Δy_k·(s_k ξ² + δ_k ξ(1 − ξ)) / (s_k + (δ_k + δ_(k+1) − 2 s_k) ξ(1 − ξ)),

a strictly increasing map whose derivative is δ_k at ξ = 0 and δ_(k+1) at ξ = 1 (C¹ at the knots).
Outside [−B, B] the map is the identity (log-det 0); with ``tails="linear"`` the boundary
derivatives are fixed to 1, so the whole map is C¹ on R.

Two parametrisations of the raw values (θ^w, θ^h: (..., K); θ^d: (..., K − 1) with linear tails,
(..., K + 1) with ``tails=None``), spec flows-splines.md §2.1:

- ``param="nflows"`` (default): widths m + (1 − K·m)·softmax(θ^w) (heights likewise), δ = m +
  softplus_β(θ^d), with m = ``eps`` = 1e-3. ``identity_init=True`` (default) uses β = ln 2/(1 − m), so
  all-zero raw values give exactly the identity (nflows#50 → PR #65); ``identity_init=False`` is
  nflows' β = 1 (bitwise-level parity with nflows 0.14), where zeros give δ = m + ln 2 ≈ 0.694.
- ``param="zuko"``: zuko's soft clip θ^w,h ← θ/(1 + |2θ/ln s|), θ^d ← θ/(1 + |θ/ln s|) with
  s = ``eps`` = 1e-3, widths softmax(θ^w), δ = exp(θ^d) (parity with zuko ``MonotonicRQSTransform``).

Why ``nflows`` is the default: its minimum bin width, height and derivative are explicit
(m = 1e-3, whatever the raw magnitudes) while raw values stay unconstrained and their gradients do
not saturate (zuko's soft clip flattens as 1/θ²), and ``identity_init`` gives zuko's exact identity at
zero. B = 5 by default (zuko; 5σ of standardised data), not NSF's 3: fewer points fall in the
identity tails, where the flow cannot act.

Numerics (spec §2.3–2.4): inputs are clamped into [−B, B] *before* the spline arithmetic and the
result selected with ``where``, so far-out inputs cannot leak NaN/inf gradients (flowjax#239); the
bin index is a count of interior knots ≤ x, clamped to [0, K − 1] (right end closed); the inverse uses
the root ξ = 2c/(−b − √(b² − 4ac)) with the discriminant clamped at 0 (nflows#87), solved from the
nearer end of the bin (the mirrored quadratic in 1 − ξ near y_(k+1): no cancellation); the log-det is
accumulated in fp32 (fp64 for fp64 inputs), bf16/fp16 storage computes in fp32.

References:
    Durkan, Bekasov, Murray, Papamakarios, Neural Spline Flows, arXiv:1906.04032 (eqs. 4–8 and
    appendix A); Gregory & Delbourgo 1982 (rational-quadratic interpolation);
    bayesiains/nflows ``splines/rational_quadratic.py``; probabilists/zuko ``MonotonicRQSTransform``;
    https://kexue.fm/archives/5776 (flows).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kexue.flows._dispatch import resolve_backend
from kexue.flows.base import FlowLayer, check_features_dim, logdet_dtype

__all__ = ["RQSpline", "SplineParam", "SplineTails", "rq_knots", "rq_spline", "spline_raw_sizes"]

SplineParam = Literal["nflows", "zuko"]
SplineTails = Literal["linear"] | None


def spline_raw_sizes(bins: int, tails: SplineTails = "linear") -> tuple[int, int, int]:
    """Numbers of raw values (θ^w, θ^h, θ^d) per element: (K, K, K − 1) linear tails, else K + 1.

    Arguments:
        bins: K ≥ 1.
        tails: ``"linear"`` (default) or ``None``.

    Returns:
        ``(K, K, K - 1)`` or ``(K, K, K + 1)``; a conditioner emits their sum per element.
    """
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    if tails not in ("linear", None):
        raise ValueError(f"tails must be 'linear' or None, got {tails!r}")
    return bins, bins, bins - 1 if tails == "linear" else bins + 1


def _acc_dtype(x: Tensor) -> torch.dtype:
    return logdet_dtype(x)


def _check(
    x: Tensor, w: Tensor, h: Tensor, d: Tensor, *, bound: float, tails: SplineTails,
    param: str, eps: float,
) -> None:  # fmt: skip
    if param not in ("nflows", "zuko"):
        raise ValueError(f"param must be 'nflows' or 'zuko', got {param!r}")
    if not all(t.is_floating_point() for t in (x, w, h, d)):
        raise ValueError(
            f"x, w, h, d must be floating point, got {x.dtype}, {w.dtype}, {h.dtype}, {d.dtype}"
        )
    if not (bound > 0 and math.isfinite(bound)):
        raise ValueError(f"bound must be positive and finite, got {bound}")
    if w.dim() < 1 or h.dim() < 1 or d.dim() < 1:
        raise ValueError(
            f"w, h, d need a last dimension of raw values, got shapes {tuple(w.shape)}, "
            f"{tuple(h.shape)}, {tuple(d.shape)}"
        )
    k = w.shape[-1]
    sizes = spline_raw_sizes(k, tails)
    if (w.shape[-1], h.shape[-1], d.shape[-1]) != sizes:
        raise ValueError(
            f"w, h, d must have last sizes (K, K, K{'-1' if tails == 'linear' else '+1'}) = "
            f"{sizes} for K = w.shape[-1] = {k} and tails={tails!r}, got shapes "
            f"{tuple(w.shape)}, {tuple(h.shape)}, {tuple(d.shape)}"
        )
    for name, t in (("w", w), ("h", h), ("d", d)):
        try:
            out = torch.broadcast_shapes(t.shape[:-1], x.shape)
        except RuntimeError:
            out = None
        if out != x.shape:
            raise ValueError(
                f"{name}.shape[:-1] must broadcast to x.shape {tuple(x.shape)}, got "
                f"{name} of shape {tuple(t.shape)}"
            )
    if param == "nflows" and not (0.0 <= eps < 1.0 and k * eps <= 1.0):
        raise ValueError(
            f"param='nflows' needs 0 <= eps < 1 and bins * eps <= 1, got eps={eps}, K={k}"
        )
    if param == "zuko" and not (0.0 < eps < 1.0):
        raise ValueError(f"param='zuko' needs a slope 0 < eps < 1, got eps={eps}")


def _nflows_knots(raw: Tensor, bound: float, eps: float) -> Tensor:
    k = raw.shape[-1]
    sizes = eps + (1.0 - eps * k) * torch.softmax(raw, dim=-1)
    cum = F.pad(torch.cumsum(sizes, dim=-1), (1, 0), value=0.0)
    knots = 2.0 * bound * cum - bound
    return _pin_ends(knots, bound)


def _zuko_knots(raw: Tensor, bound: float, log_slope: float) -> Tensor:
    raw = raw / (1.0 + (2.0 * raw / log_slope).abs())
    cum = F.pad(torch.cumsum(torch.softmax(raw, dim=-1), dim=-1), (1, 0), value=0.0)
    return _pin_ends(bound * (2.0 * cum - 1.0), bound)


def _pin_ends(knots: Tensor, bound: float) -> Tensor:
    """Overwrite the end knots with exactly ∓B (no in-place op: autograd-safe)."""
    k1 = knots.shape[-1]
    ends = torch.zeros(k1, dtype=knots.dtype, device=knots.device)
    ends[0], ends[-1] = -bound, bound
    inner = torch.ones(k1, dtype=torch.bool, device=knots.device)
    inner[0] = inner[-1] = False
    return torch.where(inner, knots, ends)


def _derivatives(
    d: Tensor, *, tails: SplineTails, param: str, identity_init: bool, eps: float
) -> Tensor:
    if param == "zuko":
        log_s = math.log(eps)
        out = torch.exp(d / (1.0 + (d / log_s).abs()))
    else:
        beta = math.log(2.0) / (1.0 - eps) if identity_init else 1.0
        out = eps + F.softplus(d, beta=beta)
    if tails == "linear":
        out = F.pad(out, (1, 1), value=1.0)
    return out


def rq_knots(
    w: Tensor,
    h: Tensor,
    d: Tensor,
    *,
    bound: float = 5.0,
    tails: SplineTails = "linear",
    param: SplineParam = "nflows",
    identity_init: bool = True,
    eps: float = 1e-3,
) -> tuple[Tensor, Tensor, Tensor]:
    """The spline's knots and knot derivatives from raw values (no validation; see :func:`rq_spline`).

    Arguments:
        w, h, d: raw widths (..., K), heights (..., K), derivatives (..., K ∓ 1).
        bound, tails, param, identity_init, eps: as in :func:`rq_spline`.

    Returns:
        ``(xk, yk, dk)``, each (..., K + 1): increasing x-knots and y-knots from −B to B exactly
        (end knots pinned) and the positive derivatives at the knots (1 at ±B with linear tails),
        in fp32 (fp64 for fp64 ``w``).
    """
    acc = _acc_dtype(w)
    w, h, d = w.to(acc), h.to(acc), d.to(acc)
    if param == "zuko":
        log_s = math.log(eps)
        xk, yk = _zuko_knots(w, bound, log_s), _zuko_knots(h, bound, log_s)
    else:
        xk, yk = _nflows_knots(w, bound, eps), _nflows_knots(h, bound, eps)
    dk = _derivatives(d, tails=tails, param=param, identity_init=identity_init, eps=eps)
    return xk, yk, dk


def _gather_bin(
    knots: Tensor, v: Tensor, tables: tuple[Tensor, ...]
) -> tuple[Tensor, list[Tensor]]:
    """Bin index of v on ``knots`` (count of interior knots ≤ v, in [0, K − 1]) and the values of
    each (..., K + 1) table at k and k + 1 (tables broadcast to v's shape)."""
    k1 = knots.shape[-1]
    idx = (knots[..., 1 : k1 - 1] <= v.unsqueeze(-1)).sum(dim=-1, keepdim=True)
    idx = idx.clamp_(0, k1 - 2)
    pair = torch.cat([idx, idx + 1], dim=-1)
    out = []
    for t in tables:
        t = t.expand(*v.shape, k1)
        g = t.gather(-1, pair)
        out.extend((g[..., 0], g[..., 1]))
    return idx, out


def _clamp_unit(xi: Tensor) -> Tensor:
    """ξ clamped into [0, 1] in value (rounding can put it an ulp outside) with the identity's
    gradient, so an input exactly on a knot or at ±B keeps its true derivative."""
    return xi + (xi.clamp(0.0, 1.0) - xi).detach()


def _clamp_st(v: Tensor, bound: float) -> Tensor:
    """v clamped into [−B, B] in value, identity gradient (see :func:`_clamp_unit`)."""
    return v + (v.clamp(-bound, bound) - v).detach()


def _stable_root(a: Tensor, b: Tensor, c: Tensor) -> Tensor:
    """The root in [0, 1] of aξ² + bξ + c = 0 (c ≤ 0), without cancellation (spec §2.3).

    2c/(−b − √disc) never divides by a (a = 0 in linear bins) and is exact for b ≥ 0; for b < 0
    (then a > 0 and c < 0) the same root is (−b + √disc)/(2a), which avoids −b − √disc cancelling.
    The discriminant is clamped at 0 (nflows#87); each branch's denominator is made safe where it
    is not selected, so ``where`` passes no inf/NaN gradient.
    """
    disc = (b * b - 4.0 * a * c).clamp_min(0.0)
    root = torch.sqrt(disc)
    neg = b < 0
    one = torch.ones((), dtype=a.dtype, device=a.device)
    den = torch.where(neg, -one, -b - root)
    two_a = torch.where(neg, 2.0 * a, one)
    return torch.where(neg, (root - b) / two_a, 2.0 * c / den)


def _log_derivative(xi: Tensor, s: Tensor, d0: Tensor, d1: Tensor) -> Tensor:
    """log dy/dx of the bin's rational quadratic at ξ (spec §2.2)."""
    t = xi * (1.0 - xi)
    den = s + (d0 + d1 - 2.0 * s) * t
    num = d1 * xi * xi + 2.0 * s * t + d0 * (1.0 - xi) * (1.0 - xi)
    return 2.0 * torch.log(s) + torch.log(num) - 2.0 * torch.log(den)


def _rq_core(
    v: Tensor, xk: Tensor, yk: Tensor, dk: Tensor, *, inverse: bool, bound: float
) -> tuple[Tensor, Tensor]:
    """Spline (or its inverse) of v given knots; v in the accumulation dtype; trusts its inputs."""
    inside = (v >= -bound) & (v <= bound)
    vc = v.clamp(-bound, bound)  # clamp before the arithmetic: no inf/NaN in the unselected branch
    search = yk if inverse else xk
    _, (x0, x1, y0, y1, d0, d1) = _gather_bin(search, vc, (xk, yk, dk))
    dx, dy = x1 - x0, y1 - y0
    s = dy / dx
    if not inverse:
        xi = _clamp_unit((vc - x0) / dx)
        t = xi * (1.0 - xi)
        out = y0 + dy * (s * xi * xi + d0 * t) / (s + (d0 + d1 - 2.0 * s) * t)
        out = _clamp_st(out, bound)  # rounding never sends an inside point into the tails
        ladj = _log_derivative(xi, s, d0, d1)
    else:
        # Solve from the nearer end of the bin: the spline mirrored about the bin's centre has
        # ξ' = 1 − ξ, η' = y_(k+1) − y and δ_k ↔ δ_(k+1). From the far end the terms of a and of
        # b² − 4ac cancel (fp32 lost ~1e-3 in ξ, ladj by 10, near y_(k+1) at δ ratios ~1e4).
        near_left = (vc - y0) <= 0.5 * dy
        eta = torch.where(near_left, vc - y0, y1 - vc)
        dn = torch.where(near_left, d0, d1)
        g = d0 + d1 - 2.0 * s
        a = dy * (s - dn) + eta * g
        b = dy * dn - eta * g
        c = -s * eta
        root = _stable_root(a, b, c)
        xi = _clamp_unit(torch.where(near_left, root, 1.0 - root))
        out = _clamp_st(x0 + xi * dx, bound)
        ladj = -_log_derivative(xi, s, d0, d1)
    out = torch.where(inside, out, v)
    ladj = torch.where(inside, ladj, torch.zeros((), dtype=ladj.dtype, device=ladj.device))
    return out, ladj


def rq_spline(
    x: Tensor,
    w: Tensor,
    h: Tensor,
    d: Tensor,
    *,
    inverse: bool = False,
    bound: float = 5.0,
    tails: SplineTails = "linear",
    param: SplineParam = "nflows",
    identity_init: bool = True,
    eps: float = 1e-3,
    backend: str = "auto",
) -> tuple[Tensor, Tensor]:
    """Elementwise monotonic rational-quadratic spline (or its inverse) and its log-derivative.

    The reference (pure PyTorch, autograd through every op) or the fused Triton kernel
    (``_kernels/triton_spline.py``: one pass forward, one pass backward, bin search in registers);
    see the module docstring for the formulas, the two parametrisations and the numerics.

    Arguments:
        x: (...) inputs (data side, or latent side when ``inverse=True``).
        w: (..., K) raw bin widths; ``w.shape[:-1]`` broadcasts to ``x.shape`` (e.g. per-feature
            parameters (D, K) for x (B, D)).
        h: (..., K) raw bin heights.
        d: (..., K − 1) raw interior knot derivatives with ``tails="linear"``; (..., K + 1) with
            ``tails=None`` (boundary derivatives learned too).
        inverse: evaluate x = f⁻¹(y) instead (stable root, spec §2.3); ladj is then −log f'(x).
        bound: B, the spline acts on [−B, B]; default 5.0 (zuko).
        tails: ``"linear"`` (default): identity outside [−B, B], boundary derivatives 1 (C¹);
            ``None``: identity outside too, boundary derivatives learned (C⁰ at ±B).
        param: ``"nflows"`` (default) or ``"zuko"``.
        identity_init: ``param="nflows"`` only: softplus slope ln 2/(1 − eps) so that zero raw
            values give the identity (default True); False is nflows' β = 1.
        eps: minimum bin width / height / derivative m for ``nflows`` (1e-3), minimum slope s for
            ``zuko`` (1e-3).
        backend: ``"auto"`` (Triton on CUDA when importable; env ``KEXUE_FLOWS_BACKEND``),
            ``"triton"`` or ``"torch"``. The kernel path materialises broadcast raw values as
            contiguous (N, K) rows and has no double backward.

    Returns:
        ``(y, ladj)``: y like ``x`` (same dtype); ladj (...) = log|dy/dx| elementwise in fp32
        (fp64 for fp64 ``x``), 0 outside [−B, B].

    Example:
        >>> x = torch.linspace(-6, 6, 5)
        >>> w = h = torch.zeros(5, 8); d = torch.zeros(5, 7)
        >>> y, ladj = rq_spline(x, w, h, d)          # identity at zero raw values
        >>> bool(torch.allclose(y, x)), float(ladj.abs().max())
        (True, 0.0)

    References:
        Durkan et al., Neural Spline Flows, arXiv:1906.04032; nflows
        ``unconstrained_rational_quadratic_spline``; zuko ``MonotonicRQSTransform``.
    """
    _check(x, w, h, d, bound=bound, tails=tails, param=param, eps=eps)
    if resolve_backend(backend, x, w, h, d) == "triton":
        from kexue.flows._kernels.triton_spline import SplineFunction

        cfg = {"inverse": bool(inverse), "bound": float(bound), "tails": tails, "param": param,
               "identity_init": bool(identity_init), "eps": float(eps)}  # fmt: skip
        rows = [
            t.expand(*x.shape, t.shape[-1]).reshape(-1, t.shape[-1]).contiguous() for t in (w, h, d)
        ]
        out, ladj = SplineFunction.apply(x.reshape(-1).contiguous(), *rows, cfg)
        return out.view(x.shape), ladj.view(x.shape)
    xk, yk, dk = rq_knots(
        w, h, d, bound=bound, tails=tails, param=param, identity_init=identity_init, eps=eps
    )
    acc = _acc_dtype(x)
    out, ladj = _rq_core(
        x.to(acc), xk.to(acc), yk.to(acc), dk.to(acc), inverse=inverse, bound=float(bound)
    )
    return out.to(x.dtype), ladj


class RQSpline(FlowLayer):
    """Unconditional elementwise rational-quadratic spline with learned per-feature raw values.

    ``y_i = f_i(x_i)`` for each feature (or channel) i along ``dim``, shared over every other
    dimension; logdet = Σ of the elementwise log-derivatives over all non-batch dimensions, (B,).
    The raw values start at zero: the identity for ``param="zuko"`` and for
    ``param="nflows"`` with ``identity_init=True`` (the defaults).

    Arguments:
        features: size of ``dim`` (D for vectors, C for images).
        bins: K, default 8.
        bound: B, default 5.0; identity outside [−B, B] (standardise the data first).
        tails, param, identity_init, eps: as in :func:`rq_spline`.
        dim: the feature dimension; default 1.

    References:
        Durkan et al., arXiv:1906.04032 (the unconditional spline of nflows'
        ``apply_unconditional_transform``); zuko ``MonotonicRQSTransform``.
    """

    def __init__(
        self,
        features: int,
        *,
        bins: int = 8,
        bound: float = 5.0,
        tails: SplineTails = "linear",
        param: SplineParam = "nflows",
        identity_init: bool = True,
        eps: float = 1e-3,
        dim: int = 1,
    ) -> None:
        super().__init__()
        check_features_dim(features, dim)
        kw, kh, kd = spline_raw_sizes(bins, tails)
        self.widths = nn.Parameter(torch.zeros(features, kw))
        self.heights = nn.Parameter(torch.zeros(features, kh))
        self.derivatives = nn.Parameter(torch.zeros(features, kd))
        self.features, self.bins, self.dim = features, bins, dim
        self.cfg = {
            "bound": float(bound), "tails": tails, "param": param,
            "identity_init": bool(identity_init), "eps": float(eps),
        }  # fmt: skip
        _check(self.widths[:, 0], self.widths, self.heights, self.derivatives,
               bound=bound, tails=tails, param=param, eps=eps)  # fmt: skip

    def _run(self, v: Tensor, name: str, inverse: bool) -> tuple[Tensor, Tensor]:
        if v.dim() <= self.dim or v.shape[self.dim] != self.features:
            raise ValueError(
                f"{name} must have size {self.features} along dim {self.dim}, got shape "
                f"{tuple(v.shape)}"
            )
        view = (self.features,) + (1,) * (v.dim() - 1 - self.dim)
        w, h, d = (
            p.view(*view, p.shape[-1]) for p in (self.widths, self.heights, self.derivatives)
        )
        out, ladj = rq_spline(v, w, h, d, inverse=inverse, **self.cfg)  # type: ignore[arg-type]
        return out, ladj.flatten(1).sum(dim=1)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``y = f(x)`` elementwise; logdet (B,)."""
        return self._run(x, "x", inverse=False)

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``x = f⁻¹(y)`` elementwise (stable root); logdet_inv (B,)."""
        return self._run(y, "y", inverse=True)

    def extra_repr(self) -> str:
        c = self.cfg
        return (
            f"features={self.features}, bins={self.bins}, bound={c['bound']}, tails={c['tails']!r}, "
            f"param={c['param']!r}, dim={self.dim}"
        )
