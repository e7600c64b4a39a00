"""Fused nearest-code search in Triton: distance GEMM + running (min, argmin), no N×K tensor.

For each row tile of ``x`` the kernel streams the codebook in tiles of ``BLOCK_K`` codes, computes
``acc = x_tile · C_tileᵀ`` with ``tl.dot`` (fp32 accumulation; tensor cores on GPU), forms the score
``s = ‖e_k‖² − 2·x·e_k`` and keeps a running minimum and its index per row. Only O(N) outputs are
written, so peak extra memory is O(N + K) (plus O(N·D) for the cosine normalisation).

Tie-breaking matches ``torch.argmin``: inside a tile the lowest column among those equal to the tile
minimum wins, and across tiles (visited in increasing code order) a later tile replaces the running
minimum only when strictly smaller. ``tl.argmin`` is not relied upon for ties.

Precision modes (see ``/work/notes/vq.md``):

- ``"fp32"``: fp32 inputs use IEEE fp32 dots (``input_precision="ieee"``, no TF32); bf16/fp16
  inputs use native-dtype dots whose products are exact in fp32 and are accumulated in fp32.
- ``"rerank"``: low-precision operands (the input dtype for bf16/fp16, bf16 casts of fp32 inputs),
  the best *two* candidates kept per row, then both re-scored exactly in fp32 as ``‖x − e‖²`` by a
  small O(N·D) kernel; the lower index wins ties.
- ``"auto"``: ``"rerank"`` for bf16/fp16 inputs, ``"fp32"`` otherwise.

Small N with large K runs in split-code mode: the grid is (row tiles, code splits), each program
writes its partial (min, idx) pairs, and a tiny torch reduction over the splits takes the minimum,
lowest index on ties.

Triton's CPU interpreter (``TRITON_INTERPRET=1``) computes bf16 ``tl.dot`` wrongly (checked with
triton 3.9); there bf16 operands are upcast to fp32 before the dot, which gives the same exact
products with fp32 accumulation as a GPU bf16 tensor-core dot.
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

__all__ = ["nearest_code_triton"]

_INTERPRET = os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")
_METRICS = ("l2", "cosine")
_PRECISIONS = ("auto", "fp32", "rerank")
_DTYPES = (torch.float32, torch.bfloat16, torch.float16)
_COS_EPS = 1e-12
# D up to this (padded to a power of two) is loaded once per row tile; beyond it the kernel loops
# over D tiles of BLOCK_D. Small under the interpreter so that the tests exercise the D loop.
_MAX_SINGLE_D = 32 if _INTERPRET else 128
_SPLIT_ALIGN = 256  # code splits are multiples of the largest BLOCK_K
_SMEM_BUDGET = 200 * 1024  # bytes; H100 has 228 KB per SM


def _configs() -> list[triton.Config]:
    if _INTERPRET:  # the interpreter would benchmark every config: one small tile
        return [triton.Config({"BLOCK_N": 64, "BLOCK_K": 16, "BLOCK_D_LOOP": 32})]
    # A short list (each new autotune key compiles and times every surviving config):
    # (BLOCK_N, BLOCK_K, num_warps, num_stages); BLOCK_D_LOOP = 64 for D > 128.
    shapes = [
        (128, 128, 8, 3),
        (128, 256, 8, 3),
        (64, 256, 8, 3),
        (128, 64, 4, 4),
        (64, 128, 4, 4),
        (64, 64, 4, 3),
    ]
    return [
        triton.Config({"BLOCK_N": bn, "BLOCK_K": bk, "BLOCK_D_LOOP": 64}, num_warps=w, num_stages=s)
        for bn, bk, w, s in shapes
    ]


def _prune(configs: list[triton.Config], named_args: dict, **kwargs: object) -> list[triton.Config]:
    """Drop configs whose pipelined tiles would not fit in shared memory (estimate)."""
    args = {**named_args, **kwargs}
    d_pad, elt, single = args["D_PAD"], args["ELT"], args["SINGLE_D"]

    def footprint(cfg: triton.Config) -> int:
        width = d_pad if single else cfg.kwargs["BLOCK_D_LOOP"]
        return (cfg.kwargs["BLOCK_N"] + cfg.kwargs["BLOCK_K"]) * width * elt * cfg.num_stages

    kept = [cfg for cfg in configs if footprint(cfg) <= _SMEM_BUDGET]
    return kept or [min(configs, key=footprint)]


@triton.autotune(
    configs=_configs(),
    key=["N_BUCKET", "K_BUCKET", "D_PAD", "ELT", "TOP2", "SPLIT"],
    prune_configs_by={"early_config_prune": _prune},
)
@triton.jit
def _assign_kernel(
    X,
    C,
    CSQ,
    XSQ,
    S1,
    I1,
    S2,
    I2,
    N,
    K,
    D,
    k_per_split,
    stride_xn,
    stride_xd,
    stride_cn,
    stride_cd,
    N_BUCKET,
    K_BUCKET,
    D_PAD: tl.constexpr,
    ELT: tl.constexpr,
    SINGLE_D: tl.constexpr,
    TOP2: tl.constexpr,
    SPLIT: tl.constexpr,
    CAST_BF16: tl.constexpr,
    UPCAST: tl.constexpr,
    IEEE: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    BLOCK_D_LOOP: tl.constexpr,
):
    pid_n = tl.program_id(0)
    pid_s = tl.program_id(1)
    rows = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    rmask = rows < N
    x_rows = X + rows.to(tl.int64)[:, None] * stride_xn
    BLOCK_D: tl.constexpr = D_PAD if SINGLE_D else BLOCK_D_LOOP

    # ‖x‖² in fp32 (and the x tile itself when D fits in one tile).
    dcols = tl.arange(0, BLOCK_D)
    xsq = tl.zeros([BLOCK_N], dtype=tl.float32)
    for d0 in range(0, D, BLOCK_D):
        dm = (d0 + dcols) < D
        xt = tl.load(
            x_rows + (d0 + dcols)[None, :] * stride_xd, mask=rmask[:, None] & dm[None, :], other=0
        )
        xf = xt.to(tl.float32)
        xsq += tl.sum(xf * xf, axis=1)
    if pid_s == 0:
        tl.store(XSQ + rows, xsq, mask=rmask)
    if SINGLE_D:
        x_single = tl.load(
            x_rows + dcols[None, :] * stride_xd, mask=rmask[:, None] & (dcols < D)[None, :], other=0
        )
        if CAST_BF16:
            x_single = x_single.to(tl.bfloat16)
        if UPCAST:
            x_single = x_single.to(tl.float32)

    k_start = pid_s * k_per_split
    k_end = tl.minimum(k_start + k_per_split, K)
    best = tl.full([BLOCK_N], float("inf"), dtype=tl.float32)
    best_i = tl.zeros([BLOCK_N], dtype=tl.int32) + k_start
    second = tl.full([BLOCK_N], float("inf"), dtype=tl.float32)
    second_i = tl.full([BLOCK_N], -1, dtype=tl.int32)
    kcols = tl.arange(0, BLOCK_K)
    big = 2147483647
    for k0 in range(k_start, k_end, BLOCK_K):
        cols = k0 + kcols
        cmask = cols < k_end
        c_rows = C + cols.to(tl.int64)[:, None] * stride_cn
        acc = tl.zeros([BLOCK_N, BLOCK_K], dtype=tl.float32)
        if SINGLE_D:
            ct = tl.load(
                c_rows + dcols[None, :] * stride_cd,
                mask=cmask[:, None] & (dcols < D)[None, :],
                other=0,
            )
            if CAST_BF16:
                ct = ct.to(tl.bfloat16)
            if UPCAST:
                ct = ct.to(tl.float32)
            if IEEE:
                acc = tl.dot(x_single, tl.trans(ct), acc, input_precision="ieee")
            else:
                acc = tl.dot(x_single, tl.trans(ct), acc)
        else:
            for d0 in range(0, D, BLOCK_D):
                dm = (d0 + dcols) < D
                xt = tl.load(
                    x_rows + (d0 + dcols)[None, :] * stride_xd,
                    mask=rmask[:, None] & dm[None, :],
                    other=0,
                )
                ct = tl.load(
                    c_rows + (d0 + dcols)[None, :] * stride_cd,
                    mask=cmask[:, None] & dm[None, :],
                    other=0,
                )
                if CAST_BF16:
                    xt = xt.to(tl.bfloat16)
                    ct = ct.to(tl.bfloat16)
                if UPCAST:
                    xt = xt.to(tl.float32)
                    ct = ct.to(tl.float32)
                if IEEE:
                    acc = tl.dot(xt, tl.trans(ct), acc, input_precision="ieee")
                else:
                    acc = tl.dot(xt, tl.trans(ct), acc)
        csq = tl.load(CSQ + cols, mask=cmask, other=0.0)
        score = csq[None, :] - 2.0 * acc
        score = tl.where(cmask[None, :], score, float("inf"))
        # tile minimum, lowest column among equals (explicit; tl.argmin ties are not relied on)
        t1 = tl.min(score, axis=1)
        is1 = (score == t1[:, None]) & cmask[None, :]
        t1_i = tl.min(tl.where(is1, cols[None, :], big), axis=1)
        if TOP2:
            rest = tl.where(cols[None, :] == t1_i[:, None], float("inf"), score)
            t2 = tl.min(rest, axis=1)
            is2 = (rest == t2[:, None]) & cmask[None, :] & (cols[None, :] != t1_i[:, None])
            t2_i = tl.min(tl.where(is2, cols[None, :], big), axis=1)
            t2_i = tl.where(t2_i == big, -1, t2_i)
            # merge (best ≤ second, lower indices) with (t1 ≤ t2, higher indices)
            new_first = t1 < best
            n_second = tl.where(
                new_first,
                tl.where(best <= t2, best, t2),
                tl.where(t1 < second, t1, second),
            )
            n_second_i = tl.where(
                new_first,
                tl.where(best <= t2, best_i, t2_i),
                tl.where(t1 < second, t1_i, second_i),
            )
            second = n_second
            second_i = n_second_i
            best_i = tl.where(new_first, t1_i, best_i)
            best = tl.where(new_first, t1, best)
        else:
            upd = t1 < best
            best_i = tl.where(upd, t1_i, best_i)
            best = tl.where(upd, t1, best)
    out = pid_s.to(tl.int64) * N + rows
    tl.store(S1 + out, best, mask=rmask)
    tl.store(I1 + out, best_i.to(tl.int64), mask=rmask)
    if TOP2:
        tl.store(S2 + out, second, mask=rmask)
        tl.store(I2 + out, second_i.to(tl.int64), mask=rmask)


@triton.jit
def _rerank_kernel(
    X,
    C,
    CAND,
    OUT_I,
    OUT_D,
    N,
    D,
    M,
    stride_xn,
    stride_xd,
    stride_cn,
    stride_cd,
    BLOCK_R: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    pid = tl.program_id(0)
    rows = pid * BLOCK_R + tl.arange(0, BLOCK_R)
    rmask = rows < N
    dcols = tl.arange(0, BLOCK_D)
    x_rows = X + rows.to(tl.int64)[:, None] * stride_xn
    best = tl.full([BLOCK_R], float("inf"), dtype=tl.float32)
    best_i = tl.full([BLOCK_R], -1, dtype=tl.int64)
    for m in range(0, M):
        idx = tl.load(CAND + m * N + rows, mask=rmask, other=-1)
        valid = rmask & (idx >= 0)
        c_rows = C + tl.where(valid, idx, 0)[:, None] * stride_cn
        dist = tl.zeros([BLOCK_R], dtype=tl.float32)
        for d0 in range(0, D, BLOCK_D):
            dm = ((d0 + dcols) < D)[None, :]
            xv = tl.load(
                x_rows + (d0 + dcols)[None, :] * stride_xd, mask=valid[:, None] & dm, other=0
            )
            cv = tl.load(
                c_rows + (d0 + dcols)[None, :] * stride_cd, mask=valid[:, None] & dm, other=0
            )
            diff = xv.to(tl.float32) - cv.to(tl.float32)
            dist += tl.sum(diff * diff, axis=1)
        better = valid & ((dist < best) | ((dist == best) & (idx < best_i)) | (best_i < 0))
        best = tl.where(better, dist, best)
        best_i = tl.where(better, idx, best_i)
    tl.store(OUT_I + rows, best_i, mask=rmask)
    tl.store(OUT_D + rows, best, mask=rmask)


def _bucket(n: int) -> int:
    """Coarse size class for the autotune key: <= 4096, <= 65536, larger."""
    return 0 if n <= 4096 else (1 if n <= 65536 else 2)


def _num_sms(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).multi_processor_count
    return 1


def _choose_splits(n: int, k: int, device: torch.device, code_splits: int | None) -> int:
    """Number of code splits: enough CTAs to fill the device when N is small and K large."""
    if code_splits is not None:
        if code_splits < 1:
            raise ValueError(f"code_splits must be >= 1, got {code_splits}")
        return min(code_splits, k)
    row_tiles = triton.cdiv(n, 128)
    sms = _num_sms(device)
    if k < 4 * _SPLIT_ALIGN or row_tiles >= sms:
        return 1
    return max(1, min(triton.cdiv(k, _SPLIT_ALIGN), triton.cdiv(2 * sms, row_tiles)))


def nearest_code_triton(
    x: torch.Tensor,
    codebook: torch.Tensor,
    *,
    metric: str = "l2",
    codebook_sqnorm: torch.Tensor | None = None,
    precision: str = "auto",
    code_splits: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest code per row with the fused Triton kernel: k*(i) = argmin_k ‖x_i − e_k‖².

    Scores are s_ik = ‖e_k‖² − 2·x_i·e_k, streamed over codebook tiles (no N×K tensor); the
    returned distance is d_i = max(‖x_i‖² + min_k s_ik, 0) (``"fp32"``) or the exact fp32
    ‖x_i − e_k*‖² of the re-ranked winner (``"rerank"``). Ties go to the lowest index.

    Arguments:
        x: (N, D) fp32/bf16/fp16 on CUDA (or CPU under ``TRITON_INTERPRET=1``); any strides.
        codebook: (K, D), same dtype and device as ``x``.
        metric: ``"l2"`` (default) or ``"cosine"`` (both sides L2-normalised with eps 1e-12 in
            fp32 first; the distance is then 2 − 2·cos).
        codebook_sqnorm: optional precomputed fp32 ‖e_k‖² of shape (K,) (L2 only; ignored for
            cosine, whose normalised codes get fresh norms).
        precision: ``"auto"`` (default: ``"rerank"`` for bf16/fp16, ``"fp32"`` for fp32),
            ``"fp32"`` or ``"rerank"`` (module docstring).
        code_splits: number of code splits (split-code mode); ``None`` picks from N, K and the
            SM count (splits only when the row tiles cannot fill the device and K ≥ 1024).

    Returns:
        ``(idx, dist)``: int64 (N,) code indices and fp32 (N,) squared distances.

    References:
        https://kexue.fm/archives/6760 (VQ-VAE); arXiv 1711.00937; flash-kmeans "FlashAssign"
        (arXiv 2603.09229) for the streamed (min, argmin) design.
    """
    if metric not in _METRICS:
        raise ValueError(f"metric must be one of {_METRICS}, got {metric!r}")
    if precision not in _PRECISIONS:
        raise ValueError(f"precision must be one of {_PRECISIONS}, got {precision!r}")
    if x.dim() != 2 or codebook.dim() != 2 or x.shape[1] != codebook.shape[1]:
        raise ValueError(
            f"x must be (N, D) and codebook (K, D) with the same D, got x {tuple(x.shape)} and "
            f"codebook {tuple(codebook.shape)}"
        )
    if codebook.shape[0] < 1:
        raise ValueError(f"codebook must have at least one code, got {tuple(codebook.shape)}")
    for name, t in (("x", x), ("codebook", codebook)):
        if t.dtype not in _DTYPES:
            raise ValueError(
                f"{name} must be fp32, bf16 or fp16 for the Triton path, got {t.dtype} "
                "(use backend='torch' for other dtypes)"
            )
    if codebook.device != x.device:
        raise ValueError(f"codebook must be on x's device, got {codebook.device} and {x.device}")
    n, d = x.shape
    k = codebook.shape[0]
    device = x.device
    if n == 0:
        return torch.empty(0, dtype=torch.int64, device=device), torch.empty(0, device=device)
    low = [t.dtype for t in (x, codebook) if t.dtype != torch.float32]
    if precision == "auto":
        precision = "rerank" if low else "fp32"
    # Operand dtype of the GEMM: fp32 in "fp32" mode (bf16/fp16 with matching dtypes keep their
    # dtype: products are exact in fp32), the low dtype (bf16 for fp32 inputs) in "rerank" mode.
    if precision == "fp32":
        op_dtype = x.dtype if x.dtype == codebook.dtype else torch.float32
    elif len(set(low)) == 1:
        op_dtype = low[0]
    elif not low:
        op_dtype = torch.bfloat16
    else:  # bf16 with fp16: no common low dtype
        op_dtype = torch.float32
    x_exact, c_exact = x, codebook  # the re-rank reads these (any float dtype, upcast to fp32)
    if metric == "cosine":
        x_exact = x.float() / x.float().norm(dim=1, keepdim=True).clamp_min(_COS_EPS)
        c_exact = codebook.float() / codebook.float().norm(dim=1, keepdim=True).clamp_min(_COS_EPS)
        csq = c_exact.pow(2).sum(1)
    elif codebook_sqnorm is not None:
        if codebook_sqnorm.shape != (k,):
            raise ValueError(
                f"codebook_sqnorm must have shape ({k},) for codebook {tuple(codebook.shape)}, "
                f"got {tuple(codebook_sqnorm.shape)}"
            )
        csq = codebook_sqnorm.to(device=device, dtype=torch.float32).contiguous()
    else:
        csq = torch.linalg.vector_norm(codebook, dim=1, dtype=torch.float32).square()
    # fp32 inputs feeding bf16 operands are cast inside the kernel (no N×D copy).
    cast_bf16 = op_dtype == torch.bfloat16 and x_exact.dtype == codebook.dtype == torch.float32
    if metric == "cosine" and not cast_bf16:
        x, codebook = x_exact.to(op_dtype), c_exact.to(op_dtype)
    elif metric == "cosine":
        x, codebook = x_exact, c_exact
    elif not cast_bf16:
        x, codebook = x.to(op_dtype), codebook.to(op_dtype)

    top2 = precision == "rerank"
    upcast = _INTERPRET and op_dtype == torch.bfloat16
    ieee = op_dtype == torch.float32 or upcast
    splits = _choose_splits(n, k, device, code_splits)
    k_per_split = triton.cdiv(triton.cdiv(k, splits), _SPLIT_ALIGN) * _SPLIT_ALIGN
    if code_splits is not None or _INTERPRET:
        k_per_split = triton.cdiv(k, splits)
    splits = triton.cdiv(k, k_per_split)

    xsq = torch.empty(n, dtype=torch.float32, device=device)
    s1 = torch.empty(splits, n, dtype=torch.float32, device=device)
    i1 = torch.empty(splits, n, dtype=torch.int64, device=device)
    s2 = torch.empty_like(s1) if top2 else s1
    i2 = torch.empty_like(i1) if top2 else i1
    d_pad = max(16, triton.next_power_of_2(d))

    def grid(meta: dict) -> tuple[int, int]:
        return (triton.cdiv(n, meta["BLOCK_N"]), splits)

    _assign_kernel[grid](
        x, codebook, csq, xsq, s1, i1, s2, i2,
        n, k, d, k_per_split,
        x.stride(0), x.stride(1), codebook.stride(0), codebook.stride(1),
        _bucket(n), _bucket(k),
        D_PAD=d_pad, ELT=x.element_size(), SINGLE_D=d_pad <= _MAX_SINGLE_D, TOP2=top2,
        SPLIT=splits > 1, CAST_BF16=cast_bf16, UPCAST=upcast, IEEE=ieee,
    )  # fmt: skip

    if top2:
        cand = torch.cat([i1, i2], dim=0)  # (2·splits, N), O(N·splits)
        idx = torch.empty(n, dtype=torch.int64, device=device)
        dist = torch.empty(n, dtype=torch.float32, device=device)
        block_d = min(128, max(16, triton.next_power_of_2(d)))
        block_r = 64
        _rerank_kernel[(triton.cdiv(n, block_r),)](
            x_exact, c_exact, cand, idx, dist,
            n, d, cand.shape[0],
            x_exact.stride(0), x_exact.stride(1), c_exact.stride(0), c_exact.stride(1),
            BLOCK_R=block_r, BLOCK_D=block_d,
        )  # fmt: skip
        return idx, dist
    if splits == 1:
        return i1[0], (xsq + s1[0]).clamp_min_(0.0)
    best = s1.min(dim=0).values
    order = torch.arange(splits, device=device)[:, None].expand(splits, n)
    sel = torch.where(s1 == best[None, :], order, splits).min(dim=0).values.clamp_max_(splits - 1)
    idx = i1.gather(0, sel[None, :])[0]
    return idx, (xsq + best).clamp_min_(0.0)
