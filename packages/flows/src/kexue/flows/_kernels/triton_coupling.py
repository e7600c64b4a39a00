"""Triton kernels of the fused coupling (spec §3.2): forward/inverse in one pass, fused backward.

Layout: the transformed half is viewed as (B, N) with N = C·S (S = prod(spatial), 1 for vectors);
each sample's block must be contiguous (a channel-slice view of a contiguous (B, 2C, H, W) tensor
qualifies; its batch stride is passed), h as (B, 2N) (affine) or (B, N) (additive) with the
interleaved (openai) or chunked (rosinality) channel layout decoded from the element index.
One program per (sample, tile of BLOCK elements): it reads x, shift and ĥ, computes the scale map
(a ``constexpr`` switch) in fp32 (fp64 for fp64 inputs), writes y and one partial logdet sum. The
per-sample logdet is either reduced from the (B, T) partials by ``sum(dim=1)`` (deterministic) or
accumulated with ``atomic_add`` (order-dependent rounding). Offsets are int64. The backward reads
dy, the saved input and h, and writes dx, dh (dshift and dĥ, in h's layout, including the logdet's
contribution dlogdet·∂s/∂ĥ) and, for ``tanh_w``, per-element dw terms reduced per channel in torch.

Import only through :mod:`kexue.flows.functional` (lazily): this module imports triton.
"""

from __future__ import annotations

import math
import os
from typing import Any

import torch
import triton
import triton.language as tl
from torch import Tensor

__all__ = ["MAP_CODES", "coupling_bwd", "coupling_fwd"]

MAP_CODES = {"exp": 0, "sigmoid2": 1, "sigmoid2_eps": 2, "atan_clamp": 3, "soft_clip": 4,
             "tanh_w": 5}  # fmt: skip
_ATAN_C = 2.0 * 2.0 / math.pi  # FrEIA clamp 2.0
_SOFT_L = -math.log(1e-3)  # zuko slope 1e-3
_PI_4 = math.pi / 4.0
_PI_2 = math.pi / 2.0
_TAN_PI_8 = math.tan(math.pi / 8.0)


def _block(n: int) -> int:
    if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
        return 16 if n <= 16 else 64  # tiny tiles: exercise masking and multi-tile reductions
    return 1024


@triton.jit
def _atan(x):
    """atan by range reduction to |u| ≤ tan(π/8) and a degree-25 odd Taylor polynomial."""
    ax = tl.abs(x)
    big = ax > 1.0
    t = tl.where(big, 1.0 / tl.maximum(ax, 1.0), ax)
    mid = t > _TAN_PI_8
    u = tl.where(mid, (t - 1.0) / (t + 1.0), t)
    z = u * u
    p = 1.0 / 25.0
    p = p * z - 1.0 / 23.0
    p = p * z + 1.0 / 21.0
    p = p * z - 1.0 / 19.0
    p = p * z + 1.0 / 17.0
    p = p * z - 1.0 / 15.0
    p = p * z + 1.0 / 13.0
    p = p * z - 1.0 / 11.0
    p = p * z + 1.0 / 9.0
    p = p * z - 1.0 / 7.0
    p = p * z + 1.0 / 5.0
    p = p * z - 1.0 / 3.0
    p = p * z + 1.0
    r = u * p
    r = tl.where(mid, r + _PI_4, r)
    r = tl.where(big, _PI_2 - r, r)
    return tl.where(x < 0, -r, r)


@triton.jit
def _tanh(x):
    """tanh(x) = sign(x)·(1 − e)/(1 + e) with e = exp(−2|x|) (no overflow)."""
    e = tl.exp(-2.0 * tl.abs(x))
    r = (1.0 - e) / (1.0 + e)
    return tl.where(x < 0, -r, r)


@triton.jit
def _sigmoid(z):
    """σ(z) from e = exp(−|z|) (no overflow)."""
    e = tl.exp(-tl.abs(z))
    return tl.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


@triton.jit
def _scale_map(raw, w, MAP: tl.constexpr):
    """Return (scale, log_scale, ds/dĥ, ds/dw) for the constexpr map code."""
    one = raw * 0.0 + 1.0
    if MAP == 0:  # exp
        ls = raw
        sc = tl.exp(raw)
        d = one
        dw = one * 0.0
    elif MAP == 1:  # sigmoid2
        z = raw + 2.0
        sc = _sigmoid(z)
        ls = tl.minimum(z, 0.0) - tl.log(1.0 + tl.exp(-tl.abs(z)))
        d = 1.0 - sc
        dw = one * 0.0
    elif MAP == 2:  # sigmoid2_eps
        sig = _sigmoid(raw + 2.0)
        sc = sig + 1e-3
        ls = tl.log(sc)
        d = sig * (1.0 - sig) / sc
        dw = one * 0.0
    elif MAP == 3:  # atan_clamp
        ls = _ATAN_C * _atan(raw)
        sc = tl.exp(ls)
        d = _ATAN_C / (1.0 + raw * raw)
        dw = one * 0.0
    elif MAP == 4:  # soft_clip
        q = 1.0 + tl.abs(raw) / _SOFT_L
        ls = raw / q
        sc = tl.exp(ls)
        d = 1.0 / (q * q)
        dw = one * 0.0
    else:  # tanh_w
        th = _tanh(raw)
        ls = w * th
        sc = tl.exp(ls)
        d = w * (1.0 - th * th)
        dw = th
    return sc, ls, d, dw


@triton.jit
def _cast_to(v, ptr):
    """Cast to the pointee dtype; fp32 → bf16 rounds to nearest even by hand (exact on GPU, where
    the rounded value is representable; the interpreter's own cast truncates)."""
    if ptr.dtype.element_ty == tl.bfloat16:
        bits = v.to(tl.float32).to(tl.uint32, bitcast=True)
        bits = (bits + (0x7FFF + ((bits >> 16) & 1))) & 0xFFFF0000
        return bits.to(tl.float32, bitcast=True).to(tl.bfloat16)
    else:
        return v.to(ptr.dtype.element_ty)


@triton.jit
def _offsets(pid, T, N, HW, sxb, shb, BLOCK: tl.constexpr, AFFINE: tl.constexpr,
             LAYOUT: tl.constexpr):  # fmt: skip
    b = (pid // T).to(tl.int64)
    t = (pid % T).to(tl.int64)
    offs = t * BLOCK + tl.arange(0, BLOCK).to(tl.int64)
    mask = offs < N
    c = offs // HW
    x_off = b * sxb + offs
    if AFFINE:
        if LAYOUT == 0:  # interleave: shift channel 2c, raw 2c + 1
            s_off = b * shb + (c * 2) * HW + (offs - c * HW)
            r_off = s_off + HW
        else:  # chunk: raw first half, shift second half
            r_off = b * shb + offs
            s_off = r_off + N
    else:
        s_off = b * shb + offs
        r_off = s_off
    return b, t, offs, mask, c, x_off, s_off, r_off


@triton.jit
def _coupling_fwd_kernel(
    x_ptr, h_ptr, w_ptr, y_ptr, part_ptr, logdet_ptr,
    N, HW, T, sxb, shb, sign,
    AFFINE: tl.constexpr, MAP: tl.constexpr, ORDER: tl.constexpr, LAYOUT: tl.constexpr,
    INVERSE: tl.constexpr, DETERMINISTIC: tl.constexpr, COMPUTE: tl.constexpr,
    BLOCK: tl.constexpr,
):  # fmt: skip
    pid = tl.program_id(0)
    b, t, offs, mask, c, x_off, s_off, r_off = _offsets(
        pid, T, N, HW, sxb, shb, BLOCK, AFFINE, LAYOUT
    )
    x = tl.load(x_ptr + x_off, mask=mask, other=0.0).to(COMPUTE)
    shift = tl.load(h_ptr + s_off, mask=mask, other=0.0).to(COMPUTE)
    if AFFINE:
        raw = tl.load(h_ptr + r_off, mask=mask, other=0.0).to(COMPUTE)
        if MAP == 5:
            w = tl.load(w_ptr + c, mask=mask, other=0.0).to(COMPUTE)
        else:
            w = raw * 0.0
        sc, ls, _d, _dw = _scale_map(raw, w, MAP)
        if INVERSE:
            if ORDER == 0:
                y = x / sc - shift
            else:
                y = (x - shift) / sc
            part = -tl.sum(tl.where(mask, ls, 0.0), axis=0)
        else:
            if ORDER == 0:
                y = (x + shift) * sc
            else:
                y = x * sc + shift
            part = tl.sum(tl.where(mask, ls, 0.0), axis=0)
        if DETERMINISTIC:
            tl.store(part_ptr + b * T + t, part)
        else:
            tl.atomic_add(logdet_ptr + b, part)
    else:
        if INVERSE:
            y = x - sign * shift
        else:
            y = x + sign * shift
    tl.store(y_ptr + b * N + offs, _cast_to(y, y_ptr), mask=mask)


@triton.jit
def _coupling_bwd_kernel(
    x_ptr, h_ptr, w_ptr, gy_ptr, gl_ptr, gx_ptr, gh_ptr, gw_ptr,
    N, HW, T, sxb, shb, sign,
    AFFINE: tl.constexpr, MAP: tl.constexpr, ORDER: tl.constexpr, LAYOUT: tl.constexpr,
    INVERSE: tl.constexpr, COMPUTE: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    pid = tl.program_id(0)
    b, _t, offs, mask, c, x_off, s_off, r_off = _offsets(
        pid, T, N, HW, sxb, shb, BLOCK, AFFINE, LAYOUT
    )
    # gh is a fresh contiguous tensor: its batch stride is N (additive) or 2N (affine)
    gs_off = s_off - b * shb + b * (2 * N if AFFINE else N)
    gr_off = r_off - b * shb + b * (2 * N if AFFINE else N)
    g = tl.load(gy_ptr + b * N + offs, mask=mask, other=0.0).to(COMPUTE)
    if AFFINE:
        x = tl.load(x_ptr + x_off, mask=mask, other=0.0).to(COMPUTE)
        shift = tl.load(h_ptr + s_off, mask=mask, other=0.0).to(COMPUTE)
        raw = tl.load(h_ptr + r_off, mask=mask, other=0.0).to(COMPUTE)
        gl = tl.load(gl_ptr + b).to(COMPUTE)
        if MAP == 5:
            w = tl.load(w_ptr + c, mask=mask, other=0.0).to(COMPUTE)
        else:
            w = raw * 0.0
        sc, _ls, d, dw = _scale_map(raw, w, MAP)
        if INVERSE:
            gx = g / sc
            if ORDER == 0:
                gs = -g
                post = x / sc  # x_out + shift
            else:
                gs = -gx
                post = (x - shift) / sc
            dls = -g * post - gl
        else:
            gx = g * sc
            if ORDER == 0:
                gs = gx
                pre = (x + shift) * sc
            else:
                gs = g
                pre = x * sc
            dls = g * pre + gl
        tl.store(gx_ptr + b * N + offs, _cast_to(gx, gx_ptr), mask=mask)
        tl.store(gh_ptr + gs_off, _cast_to(gs, gh_ptr), mask=mask)
        tl.store(gh_ptr + gr_off, _cast_to(dls * d, gh_ptr), mask=mask)
        if MAP == 5:
            tl.store(gw_ptr + b * N + offs, (dls * dw).to(gw_ptr.dtype.element_ty), mask=mask)
    else:
        tl.store(gx_ptr + b * N + offs, _cast_to(g, gx_ptr), mask=mask)
        if INVERSE:
            gs = -sign * g
        else:
            gs = sign * g
        tl.store(gh_ptr + gs_off, _cast_to(gs, gh_ptr), mask=mask)


def _batch_view(t: Tensor) -> tuple[Tensor, int]:
    """Return a tensor whose per-sample block is contiguous, and its batch stride."""
    if t.shape[0] > 0 and t[0].is_contiguous():
        return t, t.stride(0) if t.shape[0] > 1 else t[0].numel()
    t = t.contiguous()
    return t, t[0].numel()


def _compute_dtype(*tensors: Tensor) -> tuple[Any, torch.dtype]:
    if any(t.dtype == torch.float64 for t in tensors):
        return tl.float64, torch.float64
    return tl.float32, torch.float32


def _meta(inp: Tensor, h: Tensor, kind: str) -> tuple[int, int, int, int, int]:
    B = inp.shape[0]
    N = inp[0].numel() if B else 0
    HW = max(N // inp.shape[1], 1) if inp.dim() > 1 and inp.shape[1] else 1
    block = _block(N)
    T = triton.cdiv(N, block) if N else 0
    return B, N, HW, block, T


def coupling_fwd(
    inp: Tensor,
    h: Tensor,
    scale_weight: Tensor | None,
    *,
    kind: str,
    scale_map: str,
    order: str,
    h_layout: str,
    sign: float,
    inverse: bool,
    deterministic: bool,
) -> tuple[Tensor, Tensor]:
    """Launch the fused forward (or inverse): returns ``(out, logdet)`` (see module docstring)."""
    tdt, acc = _compute_dtype(inp, h)
    B, N, HW, block, T = _meta(inp, h, kind)
    x, sxb = _batch_view(inp)
    hh, shb = _batch_view(h)
    out = torch.empty(inp.shape, dtype=inp.dtype, device=inp.device)
    logdet = torch.zeros(B, dtype=acc, device=inp.device)
    if B == 0 or N == 0:
        return out, logdet
    affine = kind == "affine"
    part = torch.empty((B, T) if deterministic else (1,), dtype=acc, device=inp.device)
    w = scale_weight.contiguous() if scale_weight is not None else x
    if scale_map == "tanh_w" and scale_weight is None:
        w = torch.ones(inp.shape[1], dtype=acc, device=inp.device)
    _coupling_fwd_kernel[(B * T,)](
        x, hh, w, out, part, logdet, N, HW, T, sxb, shb, float(sign),
        AFFINE=affine, MAP=MAP_CODES[scale_map], ORDER=0 if order == "glow" else 1,
        LAYOUT=0 if h_layout == "interleave" else 1, INVERSE=bool(inverse),
        DETERMINISTIC=bool(deterministic), COMPUTE=tdt, BLOCK=block,
    )  # fmt: skip
    if affine and deterministic:
        logdet = part.sum(dim=1)
    return out, logdet


def coupling_bwd(
    inp: Tensor,
    h: Tensor,
    scale_weight: Tensor | None,
    g_out: Tensor,
    g_logdet: Tensor,
    *,
    kind: str,
    scale_map: str,
    order: str,
    h_layout: str,
    sign: float,
    inverse: bool,
    deterministic: bool,
) -> tuple[Tensor, Tensor, Tensor | None]:
    """Launch the fused backward: returns ``(d_inp, d_h, d_scale_weight or None)``."""
    del deterministic  # the backward has no cross-program reduction except tanh_w's dw (torch)
    tdt, acc = _compute_dtype(inp, h)
    B, N, HW, block, T = _meta(inp, h, kind)
    x, sxb = _batch_view(inp)
    hh, shb = _batch_view(h)
    gy = g_out.contiguous()
    gl = g_logdet.to(acc).contiguous()
    gx = torch.empty(inp.shape, dtype=inp.dtype, device=inp.device)
    gh = torch.empty(h.shape, dtype=h.dtype, device=h.device)
    tanh_w = kind == "affine" and scale_map == "tanh_w"
    gw_elem = torch.empty((B, N) if tanh_w else (1,), dtype=acc, device=inp.device)
    if B == 0 or N == 0:
        return gx, gh.zero_(), None
    w = scale_weight.contiguous() if scale_weight is not None else x
    if tanh_w and scale_weight is None:
        w = torch.ones(inp.shape[1], dtype=acc, device=inp.device)
    _coupling_bwd_kernel[(B * T,)](
        x, hh, w, gy, gl, gx, gh, gw_elem, N, HW, T, sxb, shb, float(sign),
        AFFINE=kind == "affine", MAP=MAP_CODES[scale_map], ORDER=0 if order == "glow" else 1,
        LAYOUT=0 if h_layout == "interleave" else 1, INVERSE=bool(inverse), COMPUTE=tdt,
        BLOCK=block,
    )  # fmt: skip
    dw = None
    if tanh_w and scale_weight is not None:
        C = inp.shape[1]
        dw = gw_elem.view(B, C, HW).sum(dim=(0, 2)).to(scale_weight.dtype)
    return gx, gh, dw
