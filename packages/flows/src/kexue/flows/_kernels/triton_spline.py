"""Triton kernels of the rational-quadratic spline (flows-splines spec §4): forward, inverse, backward.

Elementwise over N elements; element n reads its input v_n and its own raw values w_n (K), h_n (K),
d_n (K − 1 with linear tails, K + 1 without), each as a contiguous row. One program per tile of
BLOCK elements; in registers, per element:

1. softmax over the K raw widths (heights) — after zuko's soft clip for ``ZUKO`` — the minimum
   bin size (nflows) and the cumulative sum give the right knot of every bin (the last pinned to B);
2. the bin search is a branch-free count of interior knots ≤ v (x-knots forward, y-knots inverse),
   clamped to [0, K − 1]; the bin's knots are picked from the tile, its two derivatives loaded;
3. forward: the rational quadratic and log f'; inverse: the cancellation-free root (discriminant
   clamped at 0) and −log f'; outside [−B, B] the identity with ladj 0 (input clamped first).

The backward recomputes 1–3 and writes dv and the 3K ∓ 1 raw gradients per element (no atomics):
bin scalars by hand-derived partials (the inverse through implicit differentiation of
f(ξ) = v), then the knots' reverse cumulative sum in closed form, the softmax VJP
(g·p − p·Σg·p), the soft clip's 1/(1 + a|θ|)² and the softplus / exp derivative. Arithmetic is fp32
(fp64 for fp64 inputs) whatever the storage dtype; y is stored in v's dtype, ladj in fp32 (fp64).

Import only through :mod:`kexue.flows.splines` (lazily): this module imports triton.
"""

from __future__ import annotations

import math
import os
from typing import Any

import torch
import triton
import triton.language as tl
from torch import Tensor

__all__ = ["SplineFunction", "spline_bwd", "spline_fwd"]


def _block(k: int) -> int:
    if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
        return 16  # tiny tiles: exercise masking and several programs
    return 128 if k <= 16 else 64


@triton.jit
def _softplus(z):
    return tl.maximum(z, 0.0) + tl.log(1.0 + tl.exp(-tl.abs(z)))


@triton.jit
def _sigmoid(z):
    e = tl.exp(-tl.abs(z))
    return tl.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


@triton.jit
def _probs(ptr, rows, rmask, kk, K: tl.constexpr, ZUKO: tl.constexpr, CLIP_A, IS64: tl.constexpr):
    """Softmax p over the K raw values of each row, and the soft clip's derivative 1/q²."""
    cmask = rmask[:, None] & (kk[None, :] < K)
    raw = tl.load(ptr + rows[:, None] * K + kk[None, :], mask=cmask, other=0.0)
    raw = raw.to(tl.float64) if IS64 else raw.to(tl.float32)
    if ZUKO:
        q = 1.0 + tl.abs(raw) * CLIP_A
        z = raw / q
        dz = 1.0 / (q * q)
    else:
        z = raw
        dz = raw * 0.0 + 1.0
    z = tl.where(cmask, z, -float("inf"))
    m = tl.max(z, axis=1)
    m = tl.where(rmask, m, 0.0)
    e = tl.where(cmask, tl.exp(z - m[:, None]), 0.0)
    s = tl.sum(e, axis=1)
    s = tl.where(rmask, s, 1.0)
    return e / s[:, None], dz, cmask


@triton.jit
def _right_knots(p, cmask, kk, K: tl.constexpr, BOUND, EPS, ZUKO: tl.constexpr):
    """Right knot of every bin (column c = knot c + 1), the last exactly B."""
    if ZUKO:
        width = p
    else:
        width = EPS + (1.0 - K * EPS) * p
    width = tl.where(cmask, width, 0.0)
    cum = tl.cumsum(width, axis=1)
    if ZUKO:
        right = BOUND * (2.0 * cum - 1.0)
    else:
        right = 2.0 * BOUND * cum - BOUND
    return tl.where(kk[None, :] == K - 1, BOUND, right)


@triton.jit
def _pick(right, idx, kk, BOUND):
    """(left, right) knots of bin idx from the right-knot tile (left of bin 0 is −B)."""
    hi = tl.sum(tl.where(kk[None, :] == idx[:, None], right, 0.0), axis=1)
    lo = tl.sum(tl.where(kk[None, :] == idx[:, None] - 1, right, 0.0), axis=1)
    return tl.where(idx == 0, -BOUND, lo), hi


@triton.jit
def _deriv(theta, ZUKO: tl.constexpr, EPS, BETA, LOG_A):
    """Knot derivative δ(θ) and dδ/dθ: zuko exp(soft clip), nflows eps + softplus_β."""
    if ZUKO:
        q = 1.0 + tl.abs(theta) * LOG_A
        dlt = tl.exp(theta / q)
        return dlt, dlt / (q * q)
    return EPS + _softplus(BETA * theta) / BETA, _sigmoid(BETA * theta)


@triton.jit
def _bin(
    v_ptr, w_ptr, h_ptr, d_ptr, pid, K: tl.constexpr, KP: tl.constexpr, N, BOUND, EPS, BETA,
    CLIP_A, LOG_A, ZUKO: tl.constexpr, LINEAR: tl.constexpr, INVERSE: tl.constexpr,
    IS64: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    """Everything both passes need for a tile: the input, the bin and its knots and derivatives."""
    rows = pid * BLOCK + tl.arange(0, BLOCK).to(tl.int64)
    rmask = rows < N
    kk = tl.arange(0, KP)
    v = tl.load(v_ptr + rows, mask=rmask, other=0.0)
    v = v.to(tl.float64) if IS64 else v.to(tl.float32)
    inside = (v >= -BOUND) & (v <= BOUND)
    vc = tl.minimum(tl.maximum(v, -BOUND), BOUND)
    pw, dzw, cmask = _probs(w_ptr, rows, rmask, kk, K, ZUKO, CLIP_A, IS64)
    ph, dzh, _ = _probs(h_ptr, rows, rmask, kk, K, ZUKO, CLIP_A, IS64)
    rx = _right_knots(pw, cmask, kk, K, BOUND, EPS, ZUKO)
    ry = _right_knots(ph, cmask, kk, K, BOUND, EPS, ZUKO)
    knots = ry if INVERSE else rx
    below = (kk[None, :] < K - 1) & (knots <= vc[:, None])
    idx = tl.sum(below.to(tl.int32), axis=1)
    x0, x1 = _pick(rx, idx, kk, BOUND)
    y0, y1 = _pick(ry, idx, kk, BOUND)
    KD: tl.constexpr = K - 1 if LINEAR else K + 1
    j0 = idx - 1 if LINEAR else idx
    j1 = idx if LINEAR else idx + 1
    m0 = rmask & (j0 >= 0)
    m1 = rmask & (j1 < KD)
    t0 = tl.load(d_ptr + rows * KD + j0, mask=m0, other=0.0)
    t1 = tl.load(d_ptr + rows * KD + j1, mask=m1, other=0.0)
    t0 = t0.to(tl.float64) if IS64 else t0.to(tl.float32)
    t1 = t1.to(tl.float64) if IS64 else t1.to(tl.float32)
    d0, _ = _deriv(t0, ZUKO, EPS, BETA, LOG_A)
    d1, _ = _deriv(t1, ZUKO, EPS, BETA, LOG_A)
    d0 = tl.where(m0, d0, 1.0)
    d1 = tl.where(m1, d1, 1.0)
    return (rows, rmask, kk, v, vc, inside, idx, x0, x1, y0, y1, d0, d1, pw, dzw, ph, dzh,
            cmask)  # fmt: skip


@triton.jit
def _xi(vc, x0, x1, y0, y1, d0, d1, INVERSE: tl.constexpr):
    """ξ ∈ [0, 1] of the (clamped) input in its bin: direct forward, stable root inverse."""
    dx = x1 - x0
    dy = y1 - y0
    s = dy / dx
    if INVERSE:
        near_left = (vc - y0) <= 0.5 * dy  # solve from the nearer end (mirrored bin: 1 − ξ)
        eta = tl.where(near_left, vc - y0, y1 - vc)
        dn = tl.where(near_left, d0, d1)
        g = d0 + d1 - 2.0 * s
        a = dy * (s - dn) + eta * g
        b = dy * dn - eta * g
        c = -s * eta
        root = tl.sqrt(tl.maximum(b * b - 4.0 * a * c, 0.0))
        neg = b < 0
        xi = tl.where(
            neg, (root - b) / tl.where(neg, 2.0 * a, 1.0), 2.0 * c / tl.where(neg, -1.0, -b - root)
        )
        xi = tl.where(near_left, xi, 1.0 - xi)
    else:
        xi = (vc - x0) / dx
    return tl.minimum(tl.maximum(xi, 0.0), 1.0), dx, dy, s


@triton.jit
def _fwd_kernel(
    v_ptr, w_ptr, h_ptr, d_ptr, out_ptr, ladj_ptr, N, BOUND, EPS, BETA, CLIP_A, LOG_A,
    K: tl.constexpr, KP: tl.constexpr, ZUKO: tl.constexpr, LINEAR: tl.constexpr,
    INVERSE: tl.constexpr, IS64: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    pid = tl.program_id(0)
    (rows, rmask, _kk, v, vc, inside, _idx, x0, x1, y0, y1, d0, d1, _pw, _dzw, _ph, _dzh,
     _cmask) = _bin(v_ptr, w_ptr, h_ptr, d_ptr, pid, K, KP, N, BOUND, EPS, BETA, CLIP_A, LOG_A,
                   ZUKO, LINEAR, INVERSE, IS64, BLOCK)  # fmt: skip
    xi, dx, dy, s = _xi(vc, x0, x1, y0, y1, d0, d1, INVERSE)
    t = xi * (1.0 - xi)
    den = s + (d0 + d1 - 2.0 * s) * t
    num = d1 * xi * xi + 2.0 * s * t + d0 * (1.0 - xi) * (1.0 - xi)
    ladj = 2.0 * tl.log(s) + tl.log(num) - 2.0 * tl.log(den)
    if INVERSE:
        out = x0 + xi * dx
        ladj = -ladj
    else:
        out = y0 + dy * (s * xi * xi + d0 * t) / den
    out = tl.minimum(tl.maximum(out, -BOUND), BOUND)
    out = tl.where(inside, out, v)
    ladj = tl.where(inside, ladj, 0.0)
    tl.store(out_ptr + rows, out.to(out_ptr.dtype.element_ty), mask=rmask)
    tl.store(ladj_ptr + rows, ladj.to(ladj_ptr.dtype.element_ty), mask=rmask)


@triton.jit
def _raw_grad(g_left, g_right, idx, p, dz, kk, K: tl.constexpr, BOUND, EPS, ZUKO: tl.constexpr):
    """Raw-value gradient of one knot set from the gradients of the bin's left/right knots.

    Right knot c = 2B·Σ_{i≤c} width_i − B (c < K − 1; the last is pinned), so
    ∂/∂width_i = 2B·(g_right·[i ≤ idx < K − 1] + g_left·[i ≤ idx − 1]); then the minimum-size
    affine, the softmax VJP and the soft clip.
    """
    col = kk[None, :]
    i2 = idx[:, None]
    gw = tl.where((col <= i2) & (i2 < K - 1), g_right[:, None], 0.0)
    gw += tl.where(col <= i2 - 1, g_left[:, None], 0.0)
    gw = 2.0 * BOUND * gw
    if not ZUKO:
        gw = (1.0 - K * EPS) * gw
    gz = p * (gw - tl.sum(p * gw, axis=1)[:, None])
    return gz * dz


@triton.jit
def _bwd_kernel(
    v_ptr, w_ptr, h_ptr, d_ptr, go_ptr, gl_ptr, gv_ptr, gw_ptr, gh_ptr, gd_ptr, N, BOUND, EPS,
    BETA, CLIP_A, LOG_A, K: tl.constexpr, KP: tl.constexpr, KDP: tl.constexpr,
    ZUKO: tl.constexpr, LINEAR: tl.constexpr, INVERSE: tl.constexpr, IS64: tl.constexpr,
    BLOCK: tl.constexpr,
):  # fmt: skip
    pid = tl.program_id(0)
    (rows, rmask, kk, _v, vc, inside, idx, x0, x1, y0, y1, d0, d1, pw, dzw, ph, dzh,
     cmask) = _bin(v_ptr, w_ptr, h_ptr, d_ptr, pid, K, KP, N, BOUND, EPS, BETA, CLIP_A, LOG_A,
                   ZUKO, LINEAR, INVERSE, IS64, BLOCK)  # fmt: skip
    go = tl.load(go_ptr + rows, mask=rmask, other=0.0)
    gl = tl.load(gl_ptr + rows, mask=rmask, other=0.0)
    go = go.to(tl.float64) if IS64 else go.to(tl.float32)
    gl = gl.to(tl.float64) if IS64 else gl.to(tl.float32)
    xi, dx, dy, s = _xi(vc, x0, x1, y0, y1, d0, d1, INVERSE)
    t = xi * (1.0 - xi)
    u = 1.0 - 2.0 * xi
    q = s * xi * xi + d0 * t
    den = s + (d0 + d1 - 2.0 * s) * t
    num = d1 * xi * xi + 2.0 * s * t + d0 * (1.0 - xi) * (1.0 - xi)
    # partials of y = y0 + dy·q/den (f) and of ladj = 2 log s + log num − 2 log den (l)
    f_q = dy / den
    f_den = -dy * q / (den * den)
    f_xi = f_q * (2.0 * s * xi + d0 * u) + f_den * (d0 + d1 - 2.0 * s) * u
    f_s = f_q * xi * xi + f_den * (1.0 - 2.0 * t)
    f_d0 = f_q * t + f_den * t
    f_d1 = f_den * t
    l_xi = (2.0 * d1 * xi + 2.0 * s * u - 2.0 * d0 * (1.0 - xi)) / num - 2.0 * (
        d0 + d1 - 2.0 * s
    ) * u / den
    l_s = 2.0 / s + 2.0 * t / num - 2.0 * (1.0 - 2.0 * t) / den
    l_d0 = (1.0 - xi) * (1.0 - xi) / num - 2.0 * t / den
    l_d1 = xi * xi / num - 2.0 * t / den
    if INVERSE:  # ξ solves f(ξ) = v: implicit derivatives, ∂ξ/∂θ = −(∂f/∂θ)/f_ξ
        r = (go * dx - gl * l_xi) / f_xi
        g_in = r
        g_s = -r * f_s - gl * l_s
        g_d0 = -r * f_d0 - gl * l_d0
        g_d1 = -r * f_d1 - gl * l_d1
        g_dy = -r * q / den + g_s / dx
        g_dx = go * xi - g_s * s / dx
        g_x0 = go - g_dx
        g_y0 = -r - g_dy
    else:
        g_xi = go * f_xi + gl * l_xi
        g_s = go * f_s + gl * l_s
        g_d0 = go * f_d0 + gl * l_d0
        g_d1 = go * f_d1 + gl * l_d1
        g_in = g_xi / dx
        g_dy = go * q / den + g_s / dx
        g_dx = -g_xi * xi / dx - g_s * s / dx
        g_x0 = -g_xi / dx - g_dx
        g_y0 = go - g_dy
    g_x1 = g_dx
    g_y1 = g_dy
    zero = go * 0.0
    g_in = tl.where(inside, g_in, go)
    g_x0 = tl.where(inside, g_x0, zero)
    g_x1 = tl.where(inside, g_x1, zero)
    g_y0 = tl.where(inside, g_y0, zero)
    g_y1 = tl.where(inside, g_y1, zero)
    g_d0 = tl.where(inside, g_d0, zero)
    g_d1 = tl.where(inside, g_d1, zero)
    tl.store(gv_ptr + rows, g_in.to(gv_ptr.dtype.element_ty), mask=rmask)
    gw = _raw_grad(g_x0, g_x1, idx, pw, dzw, kk, K, BOUND, EPS, ZUKO)
    gh = _raw_grad(g_y0, g_y1, idx, ph, dzh, kk, K, BOUND, EPS, ZUKO)
    offs = rows[:, None] * K + kk[None, :]
    tl.store(gw_ptr + offs, gw.to(gw_ptr.dtype.element_ty), mask=cmask)
    tl.store(gh_ptr + offs, gh.to(gh_ptr.dtype.element_ty), mask=cmask)
    KD: tl.constexpr = K - 1 if LINEAR else K + 1
    if KD > 0:
        jj = tl.arange(0, KDP)
        dmask = rmask[:, None] & (jj[None, :] < KD)
        doffs = rows[:, None] * KD + jj[None, :]
        theta = tl.load(d_ptr + doffs, mask=dmask, other=0.0)
        theta = theta.to(tl.float64) if IS64 else theta.to(tl.float32)
        _, ddt = _deriv(theta, ZUKO, EPS, BETA, LOG_A)
        j0 = (idx - 1 if LINEAR else idx)[:, None]
        j1 = (idx if LINEAR else idx + 1)[:, None]
        gd = tl.where(jj[None, :] == j0, g_d0[:, None], 0.0)
        gd += tl.where(jj[None, :] == j1, g_d1[:, None], 0.0)
        tl.store(gd_ptr + doffs, (gd * ddt).to(gd_ptr.dtype.element_ty), mask=dmask)


def _consts(cfg: dict[str, Any]) -> dict[str, Any]:
    eps = float(cfg["eps"])
    zuko = cfg["param"] == "zuko"
    log_s = abs(math.log(eps)) if zuko else 1.0
    beta = 1.0 if zuko or not cfg["identity_init"] else math.log(2.0) / (1.0 - eps)
    return {
        "BOUND": float(cfg["bound"]), "EPS": eps, "BETA": beta, "CLIP_A": 2.0 / log_s,
        "LOG_A": 1.0 / log_s, "ZUKO": zuko, "LINEAR": cfg["tails"] == "linear",
    }  # fmt: skip


def _pow2(n: int) -> int:
    return max(2, triton.next_power_of_2(max(n, 1)))


def spline_fwd(
    v: Tensor, w: Tensor, h: Tensor, d: Tensor, cfg: dict[str, Any]
) -> tuple[Tensor, Tensor]:
    """Launch the forward (or inverse) kernel on flat v (N,) and row-major w, h (N, K), d (N, KD)."""
    n, k = v.numel(), w.shape[-1]
    is64 = v.dtype == torch.float64
    out = torch.empty_like(v)
    ladj = torch.empty(n, dtype=torch.float64 if is64 else torch.float32, device=v.device)
    if n:
        blk = _block(k)
        _fwd_kernel[(triton.cdiv(n, blk),)](
            v, w, h, d, out, ladj, n, K=k, KP=_pow2(k), INVERSE=bool(cfg["inverse"]),
            IS64=is64, BLOCK=blk, **_consts(cfg),
        )  # fmt: skip
    return out, ladj


def spline_bwd(
    v: Tensor, w: Tensor, h: Tensor, d: Tensor, g_out: Tensor, g_ladj: Tensor, cfg: dict[str, Any]
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Launch the backward kernel: (dv, dw, dh, dd) in the dtypes of v, w, h, d."""
    n, k = v.numel(), w.shape[-1]
    gv = torch.empty_like(v)
    gw, gh, gd = torch.empty_like(w), torch.empty_like(h), torch.empty_like(d)
    if n:
        blk = _block(k)
        _bwd_kernel[(triton.cdiv(n, blk),)](
            v, w, h, d, g_out.contiguous(), g_ladj.contiguous(), gv, gw, gh, gd, n, K=k,
            KP=_pow2(k), KDP=_pow2(d.shape[-1]), INVERSE=bool(cfg["inverse"]),
            IS64=v.dtype == torch.float64, BLOCK=blk, **_consts(cfg),
        )  # fmt: skip
    return gv, gw, gh, gd


class SplineFunction(torch.autograd.Function):
    """rq_spline on the kernels: flat contiguous inputs, the fused backward (no double backward)."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, v: Tensor, w: Tensor, h: Tensor, d: Tensor, cfg: dict[str, Any]
    ) -> tuple[Tensor, Tensor]:
        out, ladj = spline_fwd(v, w, h, d, cfg)
        ctx.save_for_backward(v, w, h, d)
        ctx.cfg = cfg
        return out, ladj

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: Any, g_out: Tensor | None, g_ladj: Tensor | None
    ) -> tuple[Tensor | None, ...]:
        v, w, h, d = ctx.saved_tensors
        g_out = torch.zeros_like(v) if g_out is None else g_out
        acc = torch.float64 if v.dtype == torch.float64 else torch.float32
        g_ladj = torch.zeros(v.shape, dtype=acc, device=v.device) if g_ladj is None else g_ladj
        grads = spline_bwd(v, w, h, d, g_out, g_ladj, ctx.cfg)
        return (*(g if need else None for g, need in zip(grads, ctx.needs_input_grad)), None)
