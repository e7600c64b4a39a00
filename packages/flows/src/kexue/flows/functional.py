"""Pure-torch reference of the coupling transform and the dispatching fused op.

Also re-exports the rational-quadratic spline reference (:func:`rq_spline`, :func:`rq_knots`,
:func:`spline_raw_sizes`) from :mod:`kexue.flows.splines`.

The coupling acts on the transformed half ``x_b`` (B, C, *spatial) given the network output ``h``:

- ``kind="additive"``: ``h`` (B, C, *) is the shift t; y = x + sign·t, logdet = 0 (NICE).
- ``kind="affine"``: ``h`` (B, 2C, *) holds the shift t and the raw scale ĥ, split by
  ``h_layout``: ``"interleave"`` (openai/glow: t = h[:, 0::2], ĥ = h[:, 1::2]) or ``"chunk"``
  (rosinality/glow-pytorch: ĥ, t = h.chunk(2, 1), raw scale first). With (scale, s) = map(ĥ):
  ``order="glow"``: y = (x + t)·scale; ``order="realnvp"``: y = x·scale + t;
  logdet = Σ s over all non-batch dims, shape (B,).

``logdet`` is accumulated in fp32 (fp64 for fp64 inputs); the reference upcasts bf16/fp16 inputs
to fp32 for the arithmetic and casts ``y`` back to the storage dtype of ``x_b``.

References: NICE arXiv:1410.8516; RealNVP arXiv:1605.08803; Glow arXiv:1807.03039;
https://kexue.fm/archives/5776, https://kexue.fm/archives/5807.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import Tensor

from kexue.flows._dispatch import resolve_backend
from kexue.flows.layers.scale_maps import SCALE_MAPS, apply_scale_map, log_scale_derivative
from kexue.flows.splines import rq_knots, rq_spline, spline_raw_sizes

__all__ = [
    "CouplingKind",
    "CouplingOrder",
    "HLayout",
    "coupling_forward",
    "coupling_inverse",
    "fused_coupling",
    "join_h",
    "rq_knots",
    "rq_spline",
    "spline_raw_sizes",
    "split_h",
]

CouplingKind = Literal["additive", "affine"]
CouplingOrder = Literal["glow", "realnvp"]
HLayout = Literal["interleave", "chunk"]


def _acc_dtype(*tensors: Tensor) -> torch.dtype:
    return torch.float64 if any(t.dtype == torch.float64 for t in tensors) else torch.float32


def split_h(h: Tensor, h_layout: str) -> tuple[Tensor, Tensor]:
    """Split the affine network output into (shift, raw scale) along dim 1.

    Arguments:
        h: (B, 2C, *) network output.
        h_layout: ``"interleave"`` (shift = h[:, 0::2], raw = h[:, 1::2]; openai/glow) or
            ``"chunk"`` (raw, shift = h.chunk(2, 1); rosinality/glow-pytorch).

    Returns:
        ``(shift, raw)``, each (B, C, *).
    """
    if h_layout == "interleave":  # one unbind: its backward is one stack, not 2 scatters + add
        shift, raw = h.unflatten(1, (-1, 2)).unbind(2)
        return shift, raw
    if h_layout == "chunk":
        raw, shift = h.chunk(2, dim=1)
        return shift, raw
    raise ValueError(f"h_layout must be 'interleave' or 'chunk', got {h_layout!r}")


def join_h(shift: Tensor, raw: Tensor, h_layout: str) -> Tensor:
    """Inverse of :func:`split_h`: assemble (B, 2C, *) from shift and raw scale (B, C, *).

    Arguments:
        shift: (B, C, *).
        raw: (B, C, *).
        h_layout: ``"interleave"`` or ``"chunk"``.

    Returns:
        ``h`` (B, 2C, *).
    """
    if h_layout == "interleave":
        return torch.stack([shift, raw], dim=2).flatten(1, 2)
    if h_layout == "chunk":
        return torch.cat([raw, shift], dim=1)
    raise ValueError(f"h_layout must be 'interleave' or 'chunk', got {h_layout!r}")


def _check(
    x: Tensor,
    h: Tensor,
    *,
    name: str,
    kind: str,
    scale_map: str,
    order: str,
    h_layout: str,
    scale_weight: Tensor | None,
) -> None:
    if kind not in ("additive", "affine"):
        raise ValueError(f"kind must be 'additive' or 'affine', got {kind!r}")
    if order not in ("glow", "realnvp"):
        raise ValueError(f"order must be 'glow' or 'realnvp', got {order!r}")
    if h_layout not in ("interleave", "chunk"):
        raise ValueError(f"h_layout must be 'interleave' or 'chunk', got {h_layout!r}")
    if scale_map not in SCALE_MAPS:
        raise ValueError(f"scale_map must be one of {sorted(SCALE_MAPS)}, got {scale_map!r}")
    if not (x.is_floating_point() and h.is_floating_point()):
        raise ValueError(f"{name} and h must be floating point, got {x.dtype} and {h.dtype}")
    if x.dim() < 2:
        raise ValueError(f"{name} must be (B, C, *), got shape {tuple(x.shape)}")
    want = list(x.shape)
    if kind == "affine":
        want[1] *= 2
    if list(h.shape) != want:
        raise ValueError(
            f"h must have shape {tuple(want)} for kind={kind!r} and {name} of shape "
            f"{tuple(x.shape)}, got {tuple(h.shape)}"
        )
    if scale_weight is not None:
        if kind != "affine" or scale_map != "tanh_w":
            raise ValueError("scale_weight is only used by kind='affine', scale_map='tanh_w'")
        if tuple(scale_weight.shape) != (x.shape[1],):
            raise ValueError(
                f"scale_weight must have shape ({x.shape[1]},), got {tuple(scale_weight.shape)}"
            )


def _bcast_weight(w: Tensor | None, like: Tensor) -> Tensor | None:
    if w is None:
        return None
    return w.to(like.dtype).view(1, -1, *([1] * (like.dim() - 2)))


def _per_sample(t: Tensor) -> Tensor:
    return t.flatten(1).sum(dim=1)


def _reference(
    inp: Tensor,
    h: Tensor,
    *,
    kind: str,
    scale_map: str,
    order: str,
    h_layout: str,
    sign: float,
    scale_weight: Tensor | None,
    inverse: bool,
) -> tuple[Tensor, Tensor]:
    acc = _acc_dtype(inp, h)
    xin = inp.to(acc)
    hin = h.to(acc)
    if kind == "additive":
        out = xin - sign * hin if inverse else xin + sign * hin
        return out.to(inp.dtype), torch.zeros(inp.shape[0], dtype=acc, device=inp.device)
    shift, raw = split_h(hin, h_layout)
    scale, log_scale = apply_scale_map(scale_map, raw, weight=_bcast_weight(scale_weight, raw))
    if not inverse:
        out = (xin + shift) * scale if order == "glow" else xin * scale + shift
        logdet = _per_sample(log_scale)
    else:
        out = xin / scale - shift if order == "glow" else (xin - shift) / scale
        logdet = -_per_sample(log_scale)
    return out.to(inp.dtype), logdet


def _checked_reference(inp: Tensor, h: Tensor, *, name: str, **cfg: Any) -> tuple[Tensor, Tensor]:
    """Validate the arguments (``name`` for messages), then run :func:`_reference`."""
    _check(
        inp, h, name=name, kind=cfg["kind"], scale_map=cfg["scale_map"], order=cfg["order"],
        h_layout=cfg["h_layout"], scale_weight=cfg["scale_weight"],
    )  # fmt: skip
    return _reference(inp, h, **cfg)


def coupling_forward(
    x_b: Tensor,
    h: Tensor,
    *,
    kind: CouplingKind = "affine",
    scale_map: str = "sigmoid2",
    order: CouplingOrder = "glow",
    h_layout: HLayout = "interleave",
    sign: float = 1.0,
    scale_weight: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Reference coupling forward on the transformed half (autograd through torch ops).

    additive: y = x + sign·t; affine glow: y = (x + t)·scale(ĥ); affine realnvp:
    y = x·scale(ĥ) + t; logdet = Σ log scale(ĥ) per sample.

    Arguments:
        x_b: (B, C, *) transformed half.
        h: network output, (B, C, *) for additive, (B, 2C, *) for affine.
        kind: ``"affine"`` (default) or ``"additive"``.
        scale_map: name in :data:`kexue.flows.layers.scale_maps.SCALE_MAPS`; default ``"sigmoid2"``
            (Glow, openai/glow).
        order: ``"glow"`` (default; (x + t)·scale, openai/glow) or ``"realnvp"``
            (x·exp(s) + t, RealNVP paper).
        h_layout: ``"interleave"`` (default, openai/glow) or ``"chunk"`` (rosinality).
        sign: additive only, +1 (NICE paper) or −1 (Su's ``nice.py``).
        scale_weight: (C,) per-channel w of ``scale_map="tanh_w"``; ``None`` means 1.

    Returns:
        ``(y_b, logdet)``: y_b like ``x_b``; logdet (B,) in fp32 (fp64 for fp64 inputs).

    References:
        NICE arXiv:1410.8516; RealNVP arXiv:1605.08803; Glow arXiv:1807.03039;
        https://kexue.fm/archives/5807.
    """
    return _checked_reference(
        x_b, h, name="x_b", kind=kind, scale_map=scale_map, order=order, h_layout=h_layout,
        sign=sign, scale_weight=scale_weight, inverse=False,
    )  # fmt: skip


def coupling_inverse(
    y_b: Tensor,
    h: Tensor,
    *,
    kind: CouplingKind = "affine",
    scale_map: str = "sigmoid2",
    order: CouplingOrder = "glow",
    h_layout: HLayout = "interleave",
    sign: float = 1.0,
    scale_weight: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Reference coupling inverse: x = y/scale − t (glow), (y − t)/scale (realnvp), y − sign·t.

    Arguments:
        y_b: (B, C, *) transformed half of the output.
        h: network output computed from the (unchanged) kept half; shapes as in
            :func:`coupling_forward`.
        kind, scale_map, order, h_layout, sign, scale_weight: as in :func:`coupling_forward`.

    Returns:
        ``(x_b, logdet_inv)`` with logdet_inv = −Σ log scale (B,).

    References:
        RealNVP arXiv:1605.08803 eq. (8); Glow arXiv:1807.03039 Table 1.
    """
    return _checked_reference(
        y_b, h, name="y_b", kind=kind, scale_map=scale_map, order=order, h_layout=h_layout,
        sign=sign, scale_weight=scale_weight, inverse=True,
    )  # fmt: skip


def _reference_backward(
    inp: Tensor,
    h: Tensor,
    scale_weight: Tensor | None,
    g_out: Tensor,
    g_logdet: Tensor,
    cfg: dict[str, Any],
) -> tuple[Tensor, Tensor, Tensor | None]:
    """Closed-form VJP of the coupling (the formulas the Triton backward implements)."""
    acc = _acc_dtype(inp, h)
    g = g_out.to(acc)
    kind, inverse, sign = cfg["kind"], cfg["inverse"], cfg["sign"]
    if kind == "additive":
        dh = -sign * g if inverse else sign * g
        return g.to(inp.dtype), dh.to(h.dtype), None
    xin = inp.to(acc)
    shift, raw = split_h(h.to(acc), cfg["h_layout"])
    w = _bcast_weight(scale_weight, raw)
    scale, _ = apply_scale_map(cfg["scale_map"], raw, weight=w)
    dsdh, dsdw = log_scale_derivative(cfg["scale_map"], raw, weight=w)
    gl = g_logdet.to(acc).view(-1, *([1] * (inp.dim() - 1)))
    glow = cfg["order"] == "glow"
    if not inverse:
        din = g * scale
        dshift = din if glow else g
        pre = (xin + shift) * scale if glow else xin * scale  # ∂y/∂s
        dls = g * pre + gl
    else:
        din = g / scale
        dshift = -g if glow else -din
        out = xin / scale - shift if glow else (xin - shift) / scale
        post = out + shift if glow else out  # −∂x/∂s
        dls = -g * post - gl
    draw = dls * dsdh
    dw = None
    if dsdw is not None and scale_weight is not None:
        dw = (dls * dsdw).transpose(0, 1).flatten(1).sum(1).to(scale_weight.dtype)
    dh = join_h(dshift, draw, cfg["h_layout"])
    return din.to(inp.dtype), dh.to(h.dtype), dw


class _FusedCoupling(torch.autograd.Function):
    """Coupling forward/inverse on the Triton kernels, with the kernel's fused backward."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        inp: Tensor,
        h: Tensor,
        scale_weight: Tensor | None,
        cfg: dict[str, Any],
    ) -> tuple[Tensor, Tensor]:
        from kexue.flows._kernels import triton_coupling as kernels

        out, logdet = kernels.coupling_fwd(inp, h, scale_weight, **_kernel_cfg(cfg))
        ctx.save_for_backward(inp, h, scale_weight)
        ctx.cfg = cfg
        return out, logdet

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: Any, g_out: Tensor, g_logdet: Tensor
    ) -> tuple[Tensor | None, Tensor | None, Tensor | None, None]:
        inp, h, scale_weight = ctx.saved_tensors
        cfg = ctx.cfg
        from kexue.flows._kernels import triton_coupling as kernels

        din, dh, dw = kernels.coupling_bwd(
            inp, h, scale_weight, g_out, g_logdet, **_kernel_cfg(cfg)
        )
        need = ctx.needs_input_grad
        return (
            din if need[0] else None,
            dh if need[1] else None,
            dw if need[2] else None,
            None,
        )


def _kernel_cfg(cfg: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in cfg.items() if k != "backend"}


def fused_coupling(
    inp: Tensor,
    h: Tensor,
    *,
    kind: CouplingKind = "affine",
    scale_map: str = "sigmoid2",
    order: CouplingOrder = "glow",
    h_layout: HLayout = "interleave",
    sign: float = 1.0,
    scale_weight: Tensor | None = None,
    inverse: bool = False,
    backend: str = "auto",
    deterministic: bool = True,
) -> tuple[Tensor, Tensor]:
    """Coupling forward (or inverse) as one autograd op: fused Triton kernel or torch reference.

    Same maths as :func:`coupling_forward` / :func:`coupling_inverse`. On the kernel path the
    backward is one written-out Triton kernel (dx, dshift, dĥ and the logdet's contribution
    dlogdet·∂s/∂ĥ) that recomputes the scale from ``h`` instead of saving it (the kernel's traffic
    model, spec §3.2); on the reference path autograd runs through the torch ops.

    Arguments:
        inp: (B, C, *) transformed half (x_b forward, y_b inverse).
        h: network output, (B, C, *) additive or (B, 2C, *) affine.
        kind, scale_map, order, h_layout, sign, scale_weight: as in :func:`coupling_forward`.
        inverse: compute the inverse (logdet_inv = −Σ s).
        backend: ``"auto"`` (Triton on CUDA when importable; env ``KEXUE_FLOWS_BACKEND``),
            ``"triton"`` or ``"torch"``.
        deterministic: Triton only: per-tile logdet partials reduced in a second pass (bitwise
            reproducible) instead of ``atomic_add``.

    Returns:
        ``(out, logdet)``: out like ``inp``; logdet (B,) fp32 (fp64 for fp64 inputs).

    References:
        Spec §3.2 (fused coupling design); Glow arXiv:1807.03039.
    """
    _check(
        inp, h, name="inp", kind=kind, scale_map=scale_map, order=order,
        h_layout=h_layout, scale_weight=scale_weight,
    )  # fmt: skip
    tensors = [inp, h] + ([scale_weight] if scale_weight is not None else [])
    chosen = resolve_backend(backend, *tensors)
    cfg = {
        "kind": kind, "scale_map": scale_map, "order": order, "h_layout": h_layout,
        "sign": float(sign), "inverse": bool(inverse), "backend": chosen,
        "deterministic": bool(deterministic),
    }  # fmt: skip
    if chosen == "torch":
        # Plain autograd through the reference ops (measured faster on CPU than a hand-written
        # backward, and it keeps double backward). ``_reference_backward`` writes out the VJP the
        # Triton backward implements; the tests check it against autograd.
        return _reference(
            inp, h, kind=kind, scale_map=scale_map, order=order, h_layout=h_layout,
            sign=float(sign), scale_weight=scale_weight, inverse=bool(inverse),
        )  # fmt: skip
    out, logdet = _FusedCoupling.apply(inp, h, scale_weight, cfg)
    return out, logdet
