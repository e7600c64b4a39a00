"""Triton coupling kernel vs the torch reference (CPU interpreter without CUDA; CUDA tensors with).

Forward, inverse and backward for every scale map and both h layouts, fp32 and bf16 storage,
deterministic logdet reduction, odd sizes that are not multiples of the tile, fp64 gradcheck.
"""

from __future__ import annotations

import functools

import pytest
import torch
from torch import nn

pytest.importorskip("triton")

from kexue.flows.functional import fused_coupling
from kexue.flows.layers.coupling import AffineCoupling
from kexue.flows.layers.scale_maps import SCALE_MAPS

MAPS = sorted(SCALE_MAPS)
# (B, C, *spatial) of the transformed half: a 2-tile sample (N = 105) and a vector (N = 7).
SHAPES = [(2, 3, 5, 7), (5, 7)]


@pytest.fixture
def device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def _inputs(
    shape: tuple[int, ...], kind: str, dtype: torch.dtype, device: str, seed: int = 0,
    h_scale: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g, dtype=torch.float64)
    hshape = (shape[0], shape[1] * (2 if kind == "affine" else 1), *shape[2:])
    h = torch.randn(hshape, generator=g, dtype=torch.float64) * h_scale
    w = torch.rand(shape[1], generator=g, dtype=torch.float64) + 0.5
    return x.to(device, dtype), h.to(device, dtype), w.to(device, dtype)


def _run(
    x: torch.Tensor, h: torch.Tensor, w: torch.Tensor | None, backend: str, seed: int = 1,
    **cfg: object,
) -> list[torch.Tensor]:  # fmt: skip
    """(out, logdet, d_inp, d_h[, d_w]) for a random upstream gradient of out and logdet."""
    leaves = [t.detach().clone().requires_grad_() for t in (x, h)]
    wl = w.detach().clone().requires_grad_() if w is not None else None
    out, logdet = fused_coupling(*leaves, scale_weight=wl, backend=backend, **cfg)  # type: ignore[arg-type]
    g = torch.Generator().manual_seed(seed)
    g_out = torch.randn(out.shape, generator=g).to(out)
    g_ld = torch.randn(logdet.shape, generator=g).to(logdet)
    grads = torch.autograd.grad(
        (out.float() * g_out.float()).sum() + (logdet * g_ld).sum(),
        leaves + ([wl] if wl is not None else []),
    )
    return [out, logdet, *grads]


def _assert_parity(a: list[torch.Tensor], b: list[torch.Tensor], tol: float) -> None:
    for ta, tb in zip(a, b, strict=True):
        assert ta.dtype == tb.dtype and ta.shape == tb.shape
        torch.testing.assert_close(ta, tb, rtol=tol, atol=tol)


@pytest.mark.parametrize("scale_map", MAPS)
@pytest.mark.parametrize("h_layout", ["interleave", "chunk"])
@pytest.mark.parametrize("shape", SHAPES)
def test_affine_parity_fp32(scale_map: str, h_layout: str, shape: tuple, device: str) -> None:
    x, h, w = _inputs(shape, "affine", torch.float32, device)
    w_arg = w if scale_map == "tanh_w" else None
    for order in ("glow", "realnvp"):
        for inverse in (False, True):
            cfg = {"scale_map": scale_map, "h_layout": h_layout, "order": order,
                   "inverse": inverse}  # fmt: skip
            ref = _run(x, h, w_arg, "torch", **cfg)
            ker = _run(x, h, w_arg, "triton", **cfg)
            _assert_parity(ker, ref, 1e-5)


@pytest.mark.parametrize("sign", [1.0, -1.0])
@pytest.mark.parametrize("inverse", [False, True])
def test_additive_parity_fp32(sign: float, inverse: bool, device: str) -> None:
    x, h, _ = _inputs((3, 4, 3, 5), "additive", torch.float32, device)
    cfg = {"kind": "additive", "sign": sign, "inverse": inverse}
    ref = _run(x, h, None, "torch", **cfg)
    ker = _run(x, h, None, "triton", **cfg)
    _assert_parity(ker, ref, 1e-6)
    assert torch.equal(ker[1], torch.zeros(3, device=device))


@pytest.mark.parametrize("scale_map", ["atan_clamp", "sigmoid2", "sigmoid2_eps", "soft_clip"])
def test_bounded_maps_large_raw_outputs(scale_map: str, device: str) -> None:
    """|ĥ| up to 1e4 (and the |ĥ| > 1 branches of the kernel's atan) match the reference."""
    x, h, _ = _inputs((2, 3, 9), "affine", torch.float32, device, h_scale=50.0)
    h[0, :, :3] = 1e4
    h[1, :, :3] = -1e4
    cfg = {"scale_map": scale_map, "h_layout": "chunk", "order": "realnvp"}
    ref = _run(x, h, None, "torch", **cfg)
    ker = _run(x, h, None, "triton", **cfg)
    assert all(torch.isfinite(t).all() for t in ker)
    _assert_parity(ker, ref, 1e-5)


@pytest.mark.parametrize("scale_map", MAPS)
def test_bf16_storage_within_twice_reference_error(scale_map: str, device: str) -> None:
    """Kernel (bf16 storage, fp32 math) error vs fp64 truth ≤ 2× the bf16 reference's own."""
    x, h, w = _inputs((2, 4, 3, 5), "affine", torch.bfloat16, device, seed=3)
    w_arg = w if scale_map == "tanh_w" else None
    for order, layout in (("glow", "interleave"), ("realnvp", "chunk")):
        cfg = {"scale_map": scale_map, "order": order, "h_layout": layout}
        truth = _run(x.double(), h.double(), None if w_arg is None else w_arg.double(),
                     "torch", **cfg)  # fmt: skip
        ref = _run(x, h, w_arg, "torch", **cfg)
        ker = _run(x, h, w_arg, "triton", **cfg)
        for t_true, t_ref, t_ker in zip(truth, ref, ker, strict=True):
            assert t_ker.dtype == t_ref.dtype
            ref_err = (t_ref.double() - t_true).abs().max().item()
            ker_err = (t_ker.double() - t_true).abs().max().item()
            floor = 1e-6 * t_true.abs().max().item()
            assert ker_err <= 2 * ref_err + floor, (ker_err, ref_err)


def test_deterministic_mode_bitwise_and_atomic_mode_close(device: str) -> None:
    x, h, _ = _inputs((3, 5, 7, 5), "affine", torch.float32, device, seed=5)
    cfg = {"scale_map": "sigmoid2"}
    a = _run(x, h, None, "triton", deterministic=True, **cfg)
    b = _run(x, h, None, "triton", deterministic=True, **cfg)
    for ta, tb in zip(a, b, strict=True):
        assert torch.equal(ta, tb)
    c = _run(x, h, None, "triton", deterministic=False, **cfg)
    _assert_parity(c, a, 1e-5)


def _fused_positional(
    x: torch.Tensor, h: torch.Tensor, w: torch.Tensor | None, **cfg: object
) -> tuple[torch.Tensor, torch.Tensor]:
    return fused_coupling(x, h, scale_weight=w, **cfg)  # type: ignore[arg-type]


def test_gradcheck_triton_path_fp64(device: str) -> None:
    g = torch.Generator().manual_seed(9)
    x = torch.randn(2, 2, 2, generator=g, dtype=torch.float64).to(device).requires_grad_()
    h = torch.randn(2, 4, 2, generator=g, dtype=torch.float64).to(device).requires_grad_()
    w = (torch.rand(2, generator=g, dtype=torch.float64) + 0.5).to(device).requires_grad_()
    for scale_map, inverse, order in (("tanh_w", False, "glow"), ("sigmoid2", True, "realnvp"),
                                      ("atan_clamp", True, "glow")):  # fmt: skip
        fn = functools.partial(
            _fused_positional, scale_map=scale_map, inverse=inverse, order=order, backend="triton"
        )
        inputs = (x, h, w if scale_map == "tanh_w" else None)
        assert torch.autograd.gradcheck(fn, inputs, fast_mode=True, atol=1e-7, rtol=1e-5)


@pytest.mark.parametrize(
    ("split", "scale_map"), [("channel", "sigmoid2"), ("checkerboard", "tanh_w")]
)
def test_layer_triton_matches_torch(split: str, scale_map: str, device: str) -> None:
    """Through AffineCoupling: channel slices are strided views; parameters get equal grads."""
    torch.manual_seed(0)
    c = 4
    c_in, c_out = (c // 2, c) if split == "channel" else (c, 2 * c)
    net = nn.Conv2d(c_in, c_out, 3, padding=1)
    layers = {
        be: AffineCoupling(net, scale_map=scale_map, split=split, features=c, backend=be).to(device)
        for be in ("torch", "triton")
    }
    layers["triton"].load_state_dict(layers["torch"].state_dict())
    x = torch.randn(2, c, 3, 5, generator=torch.Generator().manual_seed(1)).to(device)
    res = {}
    for be, layer in layers.items():
        layer.zero_grad()
        y, ld = layer(x)
        x2, _ = layer.inverse(y)
        (y.square().sum() + ld.sum()).backward()
        res[be] = [y, ld, x2] + [p.grad.clone() for p in layer.parameters()]
    _assert_parity(res["triton"], res["torch"], 1e-5)
    torch.testing.assert_close(res["triton"][2], x, rtol=1e-4, atol=1e-4)
