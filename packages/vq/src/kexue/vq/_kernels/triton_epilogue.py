"""Training epilogue in Triton: per-code counts n_k and sums s_k = Σ_{i: idx_i = k} x_i, no one-hot.

Two modes, chosen by ``deterministic``:

- ``True`` (default): sort the indices (stable), find each code's segment with ``searchsorted``
  and sum its rows in a fixed order (one program per (code, D tile), rows in blocks of
  ``BLOCK_R`` reduced in a fixed tree order). The result is **bitwise reproducible** from call to
  call on the same device, shapes and Triton version (the flash-kmeans "sort-inverse update").
  A code that takes most rows serialises its segment in one program (slower on degenerate
  assignments, still correct).
- ``False``: fp32 ``atomic_add`` of each row into ``sums[idx]`` and of 1 into ``counts[idx]``.
  Fast and well balanced, but the fp32 summation **order is nondeterministic** on GPU, so sums
  can differ in the last bits from run to run (counts stay exact below 2²⁴ per code).

The gather z_q = C[idx] needs no kernel: ``codebook.index_select(0, idx)``.
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

__all__ = ["code_counts_and_sums_triton"]

_INTERPRET = os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


@triton.jit
def _segment_sum_kernel(
    X,
    PERM,
    STARTS,
    ENDS,
    SUMS,
    D,
    stride_xn,
    stride_xd,
    BLOCK_R: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    code = tl.program_id(0)
    pid_d = tl.program_id(1)
    dcols = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    dmask = dcols < D
    start = tl.load(STARTS + code).to(tl.int32)
    end = tl.load(ENDS + code).to(tl.int32)
    acc = tl.zeros([BLOCK_D], dtype=tl.float32)
    r = tl.arange(0, BLOCK_R)
    for r0 in range(start, end, BLOCK_R):
        pos = r0 + r
        pmask = pos < end
        rows = tl.load(PERM + pos, mask=pmask, other=0)
        xt = tl.load(
            X + rows[:, None] * stride_xn + dcols[None, :] * stride_xd,
            mask=pmask[:, None] & dmask[None, :],
            other=0,
        )
        acc += tl.sum(xt.to(tl.float32), axis=0)
    tl.store(SUMS + code.to(tl.int64) * D + dcols, acc, mask=dmask)


@triton.jit
def _atomic_sum_kernel(
    X,
    IDX,
    COUNTS,
    SUMS,
    N,
    D,
    stride_xn,
    stride_xd,
    BLOCK_R: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    pid_r = tl.program_id(0)
    pid_d = tl.program_id(1)
    rows = pid_r * BLOCK_R + tl.arange(0, BLOCK_R)
    rmask = rows < N
    dcols = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    dmask = dcols < D
    idx = tl.load(IDX + rows, mask=rmask, other=0)
    m = rmask[:, None] & dmask[None, :]
    xt = tl.load(
        X + rows.to(tl.int64)[:, None] * stride_xn + dcols[None, :] * stride_xd, mask=m, other=0
    )
    tl.atomic_add(SUMS + idx[:, None] * D + dcols[None, :], xt.to(tl.float32), mask=m)
    if pid_d == 0:
        tl.atomic_add(COUNTS + idx, tl.full([BLOCK_R], 1.0, tl.float32), mask=rmask)


def code_counts_and_sums_triton(
    indices: torch.Tensor,
    x: torch.Tensor,
    num_codes: int,
    *,
    deterministic: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-code counts n_k = #{i: idx_i = k} and sums s_k = Σ_{i: idx_i = k} x_i in fp32.

    Arguments:
        indices: (N,) integer code indices in [0, num_codes) (not checked on the device, to avoid
            a host sync; the public ``code_counts_and_sums`` validates).
        x: (N, D) fp32/bf16/fp16 rows on the same device; any strides.
        num_codes: K.
        deterministic: ``True`` (default) sorts and takes segmented sums, bitwise reproducible;
            ``False`` uses fp32 atomics (faster, order-nondeterministic). See the module docstring.

    Returns:
        ``(counts, sums)``: fp32 (K,) and fp32 (K, D).

    References:
        https://kexue.fm/archives/6760 (VQ-VAE EMA statistics); arXiv 1711.00937 (appendix A.1);
        flash-kmeans sort-inverse update (arXiv 2603.09229).
    """
    if indices.dim() != 1 or x.dim() != 2 or indices.shape[0] != x.shape[0]:
        raise ValueError(
            f"indices must be (N,) and x (N, D) with the same N, got indices "
            f"{tuple(indices.shape)} and x {tuple(x.shape)}"
        )
    if num_codes < 1:
        raise ValueError(f"num_codes must be >= 1, got {num_codes}")
    n, d = x.shape
    device = x.device
    counts = torch.zeros(num_codes, dtype=torch.float32, device=device)
    sums = torch.zeros(num_codes, d, dtype=torch.float32, device=device)
    if n == 0 or d == 0:
        if n:
            counts += torch.bincount(indices, minlength=num_codes).float()
        return counts, sums
    indices = indices.to(torch.int64).contiguous()
    block_d = min(128, max(16, triton.next_power_of_2(d)))
    if deterministic:
        sorted_idx, perm = torch.sort(indices, stable=True)
        codes = torch.arange(num_codes, device=device, dtype=torch.int64)
        starts = torch.searchsorted(sorted_idx, codes)
        ends = torch.searchsorted(sorted_idx, codes, right=True)
        counts = (ends - starts).to(torch.float32)
        block_r = 16 if _INTERPRET else 32
        grid = (num_codes, triton.cdiv(d, block_d))
        _segment_sum_kernel[grid](
            x, perm, starts, ends, sums, d, x.stride(0), x.stride(1),
            BLOCK_R=block_r, BLOCK_D=block_d,
        )  # fmt: skip
        return counts, sums
    block_r = 16 if _INTERPRET else 64
    grid = (triton.cdiv(n, block_r), triton.cdiv(d, block_d))
    _atomic_sum_kernel[grid](
        x, indices, counts, sums, n, d, x.stride(0), x.stride(1),
        BLOCK_R=block_r, BLOCK_D=block_d,
    )  # fmt: skip
    return counts, sums
