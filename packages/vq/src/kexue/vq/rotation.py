"""The rotation trick (Fifty et al. 2024, arXiv:2410.06424): a gradient estimator for VQ.

With u = z/‖z‖, q̂ = e/‖e‖, r = (u + q̂)/‖u + q̂‖ and λ = ‖e‖/‖z‖, all held constant (computed from
detached values), R = I − 2rrᵀ + 2q̂uᵀ is the rotation in span{u, q̂} that takes u to q̂, and
T(z) = λRz maps z onto e. The straight-through estimator passes the output gradient g unchanged;
the rotation trick passes λRᵀg = λ(g − 2r(r·g) + 2u(q̂·g)) instead, so the gradient "rotates" with
the angle between the input and its code and scales with their norm ratio.

kexue writes the output as z_q = sg(e) + (T(z) − sg(T(z))): the forward value is **e bit for bit**
(T(z) − sg(T(z)) is exactly 0), while the gradient is exactly λRᵀg. lucidrains' ``rotate_to``
returns λRz itself, which differs from e by rounding (up to 4.2e-3 relative for z ≈ −e) and is 0
for a zero input (spec §2.4). Rows where the rotation is undefined or ill-conditioned — ‖z‖ < 1e-12,
‖e‖ < 1e-12, or 1 + u·q̂ < 1e-6 (z nearly opposite e) — fall back to the straight-through estimator;
:func:`rotation_trick` returns which rows did.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["ESTIMATORS", "rotation_trick", "straight_through"]

ESTIMATORS = ("ste", "rotation")
_NORM_FLOOR = 1e-12
_ANTIPODAL = 1e-6


def straight_through(z: Tensor, e: Tensor) -> Tensor:
    """z_q = sg(e) + (z − sg(z)): forward value e bit for bit, gradient identity to z."""
    return e.detach() + (z - z.detach())


def rotation_trick(z: Tensor, e: Tensor) -> tuple[Tensor, Tensor]:
    """Rotation-trick output for rows z (N, D) and their codes e (N, D).

    Arguments:
        z: (N, D) inputs (with the graph to the encoder).
        e: (N, D) codes of the rows (detached inside: the codebook gets no gradient from here).

    Returns:
        ``(z_q, fallback)``: z_q (N, D) whose value equals ``e`` bit for bit and whose gradient to
        z is λRᵀg (module docstring); ``fallback`` (N,) bool, True for the rows that used the
        straight-through estimator instead.

    References:
        Fifty et al., "Restructuring Vector Quantization with the Rotation Trick", 2024,
        arXiv:2410.06424, §4 (Eq. 4–5); https://kexue.fm/archives/6760 (the STE it replaces).
    """
    e = e.detach()
    zd = z.detach()
    z_norm = zd.norm(dim=-1, keepdim=True)
    e_norm = e.norm(dim=-1, keepdim=True)
    ok = (z_norm > _NORM_FLOOR) & (e_norm > _NORM_FLOOR)
    u = zd / z_norm.clamp_min(_NORM_FLOOR)
    q = e / e_norm.clamp_min(_NORM_FLOOR)
    cos = (u * q).sum(dim=-1, keepdim=True)
    ok = ok & (1.0 + cos > _ANTIPODAL)
    w = u + q
    r = w / w.norm(dim=-1, keepdim=True).clamp_min(_NORM_FLOOR)
    lam = e_norm / z_norm.clamp_min(_NORM_FLOOR)
    # T(z) = λ(z − 2r(r·z) + 2q̂(u·z)), with λ, r, q̂, u constants; STE rows use T(z) = z
    rz = (r * z).sum(-1, keepdim=True)
    uz = (u * z).sum(-1, keepdim=True)
    rotated = lam * (z - 2.0 * r * rz + 2.0 * q * uz)
    t = torch.where(ok, rotated, z)
    z_q = e + (t - t.detach())
    return z_q, ~ok.squeeze(-1)
