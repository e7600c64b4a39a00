"""GLO's pieces (post 6394; Bojanowski et al.): Laplacian-pyramid L1, perceptual distance, codes.

- **Pyramid.** Burt–Adelson: G⁰ = x, G^{j+1} = down(blur(G^j)), L^j = G^j − up(G^{j+1}), with the
  5-tap binomial blur [1, 4, 6, 4, 1]/16 (replicate padding), down = stride 2, up = blur of a
  nearest upsampling. The last entry is the low-pass residual G^J. Exactly invertible
  (x = L⁰ + up(L¹ + up(…))), and a constant image has no band energy.
- **Lap1** = Σ_j 2^{2j}‖L^j(x) − L^j(x')‖₁, level 0 finest, the residual included as level J:
  4^j offsets the level's 4^{−j} pixels, so "paper" weights = D·Σ_j mean_j|ΔL^j|.
- **Perceptual distance** (GLANN's code) pixel_weight·mean|x − x'| + Σ_l w_l·mean|φ_l(x) − φ_l(x')|
  for any frozen feature extractor φ (no weights are shipped).
- **Codes** live on the unit sphere (GLANN code: rows renormalised, G divides by the norm;
  ``projection="sphere"``) or inside the unit ball (tneumann's minimal_glo: ``"ball"``).

References:
    https://kexue.fm/archives/6394; Bojanowski et al., Optimizing the Latent Space of Generative
    Networks, arXiv:1707.05776; Hoshen et al., GLANN, arXiv:1812.08985; Burt & Adelson 1983.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ._validation import (
    Reduction,
    check_batched,
    check_choice,
    check_int,
    check_reduction,
    check_same_shape,
    flat,
    reduce,
)

__all__ = [
    "lap1_loss",
    "laplacian_pyramid",
    "perceptual_distance",
    "project_codes",
    "pyramid_reconstruct",
]

_BINOMIAL = (1.0, 4.0, 6.0, 4.0, 1.0)


def _blur(x: Tensor) -> Tensor:
    """Separable 5-tap binomial blur of ``(B, C, H, W)``, replicate padding, per channel."""
    c = x.shape[1]
    k1 = torch.tensor(_BINOMIAL, dtype=x.dtype, device=x.device) / 16.0
    k2 = (k1[:, None] * k1[None, :]).expand(c, 1, 5, 5)
    return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="replicate"), k2, groups=c)


def _up(x: Tensor, size: tuple[int, int]) -> Tensor:
    return _blur(F.interpolate(x, size=size, mode="nearest"))


def _check_image(x: object, name: str) -> Tensor:
    t = check_batched(x, name, min_dim=4)
    if t.dim() != 4:
        raise ValueError(f"{name} must be (B, C, H, W), got shape {tuple(t.shape)}")
    return t


def laplacian_pyramid(x: Tensor, levels: int = 3) -> list[Tensor]:
    """Burt–Adelson Laplacian pyramid: ``levels − 1`` band-pass levels then the low-pass residual.

    Arguments:
        x: ``(B, C, H, W)``.
        levels: number of entries returned (≥ 1; 3 on 8×8 digits: bands at 8 and 4 px, a 2×2
            residual). Each level halves H and W (rounded up).

    Returns:
        ``[L⁰, …, L^{J−1}, G^J]`` with ``J = levels − 1``, finest first.
    """
    x = _check_image(x, "x")
    levels = check_int(levels, "levels")
    out = []
    g = x
    for _ in range(levels - 1):
        if min(g.shape[-2:]) < 2:
            raise ValueError(f"x of shape {tuple(x.shape)} is too small for {levels} levels")
        nxt = _blur(g)[..., ::2, ::2]
        out.append(g - _up(nxt, tuple(g.shape[-2:])))
        g = nxt
    out.append(g)
    return out


def pyramid_reconstruct(pyramid: Sequence[Tensor]) -> Tensor:
    """Inverse of :func:`laplacian_pyramid`: x = L⁰ + up(L¹ + up(… + G^J))."""
    g = pyramid[-1]
    for band in reversed(pyramid[:-1]):
        g = band + _up(g, tuple(band.shape[-2:]))
    return g


def lap1_loss(
    x: Tensor,
    y: Tensor,
    *,
    levels: int = 3,
    level_weights: str | Sequence[float] = "paper",
    reduction: Reduction = "mean",
) -> Tensor:
    """Laplacian-pyramid L1 distance Σ_j w_j‖L^j(x) − L^j(y)‖₁ per sample (GLO's Lap1).

    Arguments:
        x, y: ``(B, C, H, W)``, same shape.
        levels: pyramid entries (bands + residual), default 3.
        level_weights: "paper" (w_j = 2^{2j}, level 0 finest: = D·Σ_j mean|ΔL^j|) or a sequence
            of ``levels`` weights applied to per-level *sums*.
        reduction: "mean" (default), "sum" or "none".

    References:
        Bojanowski et al., arXiv:1707.05776, §3.2; https://kexue.fm/archives/6394.
    """
    check_reduction(reduction)
    x = _check_image(x, "x")
    check_same_shape(x, y, "x", "y")
    if isinstance(level_weights, str):
        check_choice(level_weights, "level_weights", ("paper",))
        weights = [4.0**j for j in range(levels)]
    else:
        weights = [float(w) for w in level_weights]
        if len(weights) != levels:
            raise ValueError(f"level_weights must have {levels} entries, got {len(weights)}")
    px, py = laplacian_pyramid(x, levels), laplacian_pyramid(y, levels)
    per = sum(w * flat(a - b).abs().sum(1) for w, a, b in zip(weights, px, py))
    return reduce(per, reduction)  # type: ignore[arg-type]


def perceptual_distance(
    x: Tensor,
    y: Tensor,
    *,
    features: Callable[[Tensor], Tensor | Sequence[Tensor]],
    weights: Sequence[float] | None = None,
    pixel_weight: float = 1.0,
    reduction: Reduction = "mean",
) -> Tensor:
    """GLANN's perceptual distance: pixel_weight·mean|x − y| + Σ_l w_l·mean|φ_l(x) − φ_l(y)|.

    Arguments:
        x, y: ``(B, ...)``, same shape (y is usually the data, x the generator's output).
        features: a frozen extractor returning one tensor or a sequence of tensors ``(B, ...)``
            (GLANN: VGG16 taps; here any net, e.g. :class:`kexue.vae.DigitsFeatureNet` taps).
        weights: per-tap weights, default all 1 [GLANN code].
        pixel_weight: weight of the pixel L1 term, default 1.
        reduction: "mean" (default), "sum" or "none".

    References:
        Hoshen et al., GLANN, arXiv:1812.08985 (``yedidh/glann``); https://kexue.fm/archives/6394.
    """
    check_reduction(reduction)
    check_batched(x, "x")
    check_same_shape(x, y, "x", "y")
    fx, fy = features(x), features(y)
    fx = [fx] if isinstance(fx, Tensor) else list(fx)
    fy = [fy] if isinstance(fy, Tensor) else list(fy)
    w = [1.0] * len(fx) if weights is None else [float(v) for v in weights]
    if len(w) != len(fx) or len(fy) != len(fx):
        raise ValueError(f"features gave {len(fx)} taps but weights has {len(w)} entries")
    per = pixel_weight * flat(x - y).abs().mean(1)
    for wl, a, b in zip(w, fx, fy):
        per = per + wl * flat(a - b).abs().mean(1)
    return reduce(per, reduction)


def project_codes(codes: Tensor, projection: str = "sphere", *, eps: float = 1e-12) -> Tensor:
    """Project code rows onto the unit sphere (‖z‖ = 1) or into the unit ball (‖z‖ ≤ 1).

    Arguments:
        codes: ``(N, nz)``.
        projection: "sphere" (default; GLANN) or "ball" (minimal_glo).
        eps: guards the division for zero rows (which stay zero).
    """
    check_choice(projection, "projection", ("sphere", "ball"))
    check_batched(codes, "codes", min_dim=2)
    norm = codes.norm(dim=-1, keepdim=True)
    if projection == "sphere":
        return codes / norm.clamp_min(eps)
    return codes / norm.clamp_min(1.0)
