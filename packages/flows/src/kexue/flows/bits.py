"""Dequantisation of integer pixels and bits per dimension (spec §1.2).

With ``n`` bins over a data range of width ``w`` (``[0, 1]``: w = 1; ``[−1, 1]``: w = 2), the
dequantised y = lo + w·(x + u)/n, u ~ U(0, 1)^D, and

    bpd = −(log p_Y(y) − D·ln(n/w)) / (D·ln 2) = −log p_Y(y)/(D·ln 2) + log₂(n/w),

i.e. ``+ b`` bits on [0, 1] and ``+ (b − 1)`` on [−1, 1] for n = 2^b.

References:
    - Theis et al. 2016, arXiv:1511.01844 (the dequantisation bound);
      Kingma & Dhariwal, Glow, arXiv:1807.03039 (objective −D·ln n_bins, divided by D·ln 2).
    - https://kexue.fm/archives/5807 (Su's Glow on [−1, 1], loss without the constant).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["bits_per_dim", "dequantize", "reduce_bits", "resolve_levels"]


def _check_range(data_range: tuple[float, float]) -> tuple[float, float]:
    lo, hi = (float(v) for v in data_range)
    if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
        raise ValueError(f"data_range must be finite (lo, hi) with hi > lo, got {data_range!r}")
    return lo, hi


def _check_levels(n_levels: int) -> int:
    if isinstance(n_levels, bool) or not isinstance(n_levels, int) or n_levels < 2:
        raise ValueError(f"n_levels must be an int >= 2, got {n_levels!r}")
    return n_levels


def resolve_levels(*, n_bits: int | None = None, n_levels: int | None = None) -> int:
    """The number of quantisation levels from exactly one of ``n_bits`` (→ 2^b) or ``n_levels``.

    Arguments:
        n_bits: bits per value b ≥ 1, giving n = 2^b.
        n_levels: the number of levels n ≥ 2 directly (e.g. 17 for sklearn digits).

    Returns:
        n_levels as an int.
    """
    if (n_bits is None) == (n_levels is None):
        raise ValueError(
            f"give exactly one of n_bits or n_levels, got n_bits={n_bits!r}, n_levels={n_levels!r}"
        )
    if n_bits is not None:
        if isinstance(n_bits, bool) or not isinstance(n_bits, int) or n_bits < 1:
            raise ValueError(f"n_bits must be an int >= 1, got {n_bits!r}")
        return 2**n_bits
    return _check_levels(n_levels)  # type: ignore[arg-type]


def reduce_bits(x_int: Tensor, *, n_bits: int, from_bits: int = 8) -> Tensor:
    """Reduce b₀-bit integer pixels to b bits: ``floor(x / 2^(b₀ − b))``.

    Arguments:
        x_int: integer-valued tensor in ``[0, 2^from_bits − 1]``.
        n_bits: target bits b, ``1 ≤ b ≤ from_bits``.
        from_bits: source bits b₀; default 8.

    Returns:
        Tensor of the same dtype with values in ``[0, 2^n_bits − 1]``.

    References:
        openai/glow ``preprocess`` and rosinality/glow-pytorch (``n_bits``), arXiv:1807.03039.
    """
    if not 1 <= n_bits <= from_bits:
        raise ValueError(f"n_bits must be in [1, from_bits={from_bits}], got {n_bits}")
    return torch.div(x_int, 2 ** (from_bits - n_bits), rounding_mode="floor")


def dequantize(
    x_int: Tensor,
    *,
    n_levels: int,
    generator: torch.Generator | None = None,
    data_range: tuple[float, float] = (0.0, 1.0),
    dtype: torch.dtype | None = None,
) -> Tensor:
    """Uniform dequantisation: ``y = lo + (hi − lo)·(x + u)/n``, u ~ U(0, 1) per value.

    With ``data_range=(0, 1)`` this is Glow/RealNVP's ``x/n + U(0, 1/n)``, y ∈ [0, 1);
    ``(−0.5, 0.5)`` is openai/glow's extra −0.5 shift; ``(−1, 1)`` is Su's scaling.

    Arguments:
        x_int: integer-valued pixels in ``{0, …, n − 1}`` (any dtype), shape (B, ...).
        n_levels: number of levels n (2^b for b-bit data).
        generator: for the noise u.
        data_range: (lo, hi) of the continuous data; default (0, 1).
        dtype: floating dtype of the result; default float32 (or x_int's if floating).

    Returns:
        Continuous y of x_int's shape, in [lo, hi) (values that round to hi are set to the
        largest representable value below it).

    References:
        Theis et al., arXiv:1511.01844; Kingma & Dhariwal, Glow, arXiv:1807.03039.
    """
    n = _check_levels(n_levels)
    lo, hi = _check_range(data_range)
    if dtype is None:
        dtype = x_int.dtype if x_int.is_floating_point() else torch.float32
    x = x_int.to(dtype)
    if x_int.numel() and (
        bool((x != torch.round(x)).any()) or bool((x < 0).any()) or bool((x > n - 1).any())
    ):
        raise ValueError(
            f"x_int must hold integers in [0, n_levels - 1 = {n - 1}] "
            f"(got min {x.min().item()}, max {x.max().item()}); pass continuous data with "
            "dequantize=False"
        )
    u = torch.rand(x.shape, generator=generator, device=x.device, dtype=dtype)
    y = lo + (hi - lo) * (x + u) / n
    # x + u rounds up to n when u is within an ulp of 1 (fp32: 255 + u = 256 for u > 1 − 2⁻¹⁷),
    # which would give y = hi; the largest value below hi keeps y in the documented [lo, hi).
    top = torch.nextafter(torch.tensor(hi, dtype=dtype), torch.tensor(lo, dtype=dtype))
    return torch.minimum(y, top.to(x.device))


def bits_per_dim(
    log_p_y: Tensor,
    *,
    num_dims: int,
    n_levels: int,
    data_range: tuple[float, float] = (0.0, 1.0),
) -> Tensor:
    """Bits per dimension from the continuous log-density of dequantised data (spec §1.2).

    ``bpd = −(log p_Y(y) − D·ln(n/w))/(D·ln 2)`` with w = hi − lo the width of the data range.

    Arguments:
        log_p_y: per-sample log p_Y(y) in nats, shape (B,).
        num_dims: D, the number of dimensions per sample (C·H·W).
        n_levels: quantisation levels n (2^b).
        data_range: (lo, hi) of the continuous data; default (0, 1) (the constant is then b bits).

    Returns:
        bpd of shape (B,), in log_p_y's dtype.

    References:
        Kingma & Dhariwal, Glow, arXiv:1807.03039 (openai/glow ``objective``);
        https://kexue.fm/archives/5807
    """
    n = _check_levels(n_levels)
    lo, hi = _check_range(data_range)
    if isinstance(num_dims, bool) or not isinstance(num_dims, int) or num_dims < 1:
        raise ValueError(f"num_dims must be a positive int, got {num_dims!r}")
    if log_p_y.dim() != 1:
        raise ValueError(f"log_p_y must have shape (B,), got {tuple(log_p_y.shape)}")
    const = num_dims * math.log(n / (hi - lo))
    return -(log_p_y - const) / (num_dims * math.log(2.0))
