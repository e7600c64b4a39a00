"""Fused nearest-code search in Triton: distance GEMM + running (min, argmin), no N×K tensor.

For each row tile of ``x`` the kernel streams the codebook in tiles of ``BLOCK_K`` codes, computes
``acc = x̃_tile · C̃_tileᵀ`` with ``tl.dot`` (fp32 accumulation; tensor cores on GPU), forms the score
``s = ‖ẽ_k‖² − 2·x̃·ẽ_k`` and keeps a running minimum, its index and the runner-up score per row.
Only O(N) outputs are written, so peak extra memory is O(N + K·D) (plus O(N·D) for the cosine
normalisation, and fp64 row chunks for the exact distances).

Exactness (issue 14 item 7). Scores are computed on centred, power-of-two-scaled data: the codes
are translated by their mean μ and scaled by σ (O(K·D), in torch), the rows are translated and
scaled on load (x̃ = σx − μ, fp32). Without the centring a common offset c costs O(‖c‖²) in every
score while score gaps are O(spread²): at offset 1e3 a third of the rows came out wrong. The
kernel's best/runner-up gap is then certified against the rounding bound of
:mod:`kexue.vq._reference`, and the rare ambiguous rows are recomputed by the reference, so every
precision mode returns the reference's indices and distances (see :func:`nearest_code_triton`).

Tie-breaking matches ``torch.argmin``: inside a tile the lowest column among those equal to the tile
minimum wins, and across tiles (visited in increasing code order) a later tile replaces the running
minimum only when strictly smaller. ``tl.argmin`` is not relied upon for ties. Exact ties are
ambiguous rows by construction (gap 0), so the reference settles them with the same rule.

Precision modes:

- ``"fp32"``: IEEE fp32 dots (``input_precision="ieee"``, no TF32) of the centred fp32 values.
- ``"rerank"``: bf16 operands (centred values rounded to bf16 in the kernel), fp32 accumulation;
  the bound carries u_in = 2⁻⁸, so more rows are re-ranked. bf16 (not fp16) operands for every
  input dtype: the centred, scaled values keep the fp32 exponent range (no fp16 over/underflow).
- ``"auto"``: ``"fp32"`` for every input dtype. Measured under the interpreter (N 1024, K 64,
  Gaussian data, D 8 and 64, offsets 0–1e6): 0–0.2 % of rows ambiguous with fp32 operands, 83–86 %
  with bf16 operands, whose rigorous bound is ~80x wider than the gaps between nearest codes.
  ``"rerank"`` still returns the exact answer, but only pays off for well-separated codebooks.

Small N with large K runs in split-code mode: the grid is (row tiles, code splits), each program
writes its partial (min, idx, runner-up), and a tiny torch reduction over the splits takes the
minimum (lowest index on ties) and the overall runner-up.

Triton's CPU interpreter (``TRITON_INTERPRET=1``) computes bf16 ``tl.dot`` wrongly (checked with
triton 3.9); there bf16 operands are upcast to fp32 before the dot, which gives the same exact
products with fp32 accumulation as a GPU bf16 tensor-core dot.
"""

from __future__ import annotations

import math
import os

import torch
import torch.nn.functional as F
import triton
import triton.language as tl

from .._reference import (
    DEFAULT_CHUNK_BYTES,
    NORM_EPS,
    check_codebook_sqnorm,
    exact_sqdist,
    nearest_code_exact,
    pow2_scale,
    score_tolerance,
)

__all__ = ["nearest_code_triton"]

_INTERPRET = os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")
_METRICS = ("l2", "cosine")
_PRECISIONS = ("auto", "fp32", "rerank")
_DTYPES = (torch.float32, torch.bfloat16, torch.float16)
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


@triton.jit
def _centred_rows(x_rows, MU, d0, dcols, D, rmask, stride_xd, scale):
    """x̃ = σ·x − μ in fp32 on load (the centring of the module docstring) for columns d0 + dcols of
    the tile's rows; 0 outside the matrix."""
    dm = (d0 + dcols) < D
    m2 = rmask[:, None] & dm[None, :]
    xt = tl.load(x_rows + (d0 + dcols)[None, :] * stride_xd, mask=m2, other=0)
    mu = tl.load(MU + d0 + dcols, mask=dm, other=0.0)
    return tl.where(m2, xt.to(tl.float32) * scale - mu[None, :], 0.0)


@triton.jit
def _dot_codes(xt, ct, acc, UPCAST: tl.constexpr, IEEE: tl.constexpr):
    """acc + xt·ctᵀ for a row tile and a code tile (codes upcast to fp32 when ``UPCAST``; IEEE fp32
    products when ``IEEE``, else the default precision of ``tl.dot``)."""
    if UPCAST:
        ct = ct.to(tl.float32)
    if IEEE:
        acc = tl.dot(xt, tl.trans(ct), acc, input_precision="ieee")
    else:
        acc = tl.dot(xt, tl.trans(ct), acc)
    return acc


@triton.autotune(
    configs=_configs(),
    key=["N_BUCKET", "K_BUCKET", "D_PAD", "ELT", "SPLIT"],
    prune_configs_by={"early_config_prune": _prune},
)
@triton.jit
def _assign_kernel(
    X,
    C,
    CSQ,
    MU,
    XSQ,
    S1,
    I1,
    S2,
    scale,
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
    SPLIT: tl.constexpr,
    OP_BF16: tl.constexpr,
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

    # x̃ = σ·x − μ in fp32 on load (the centring of the module docstring), and ‖x̃‖² in fp32.
    dcols = tl.arange(0, BLOCK_D)
    xsq = tl.zeros([BLOCK_N], dtype=tl.float32)
    for d0 in range(0, D, BLOCK_D):
        xf = _centred_rows(x_rows, MU, d0, dcols, D, rmask, stride_xd, scale)
        xsq += tl.sum(xf * xf, axis=1)
    if pid_s == 0:
        tl.store(XSQ + rows, xsq, mask=rmask)
    if SINGLE_D:
        x_single = _centred_rows(x_rows, MU, 0, dcols, D, rmask, stride_xd, scale)
        if OP_BF16:
            x_single = x_single.to(tl.bfloat16)
            if UPCAST:
                x_single = x_single.to(tl.float32)

    k_start = pid_s * k_per_split
    k_end = tl.minimum(k_start + k_per_split, K)
    best = tl.full([BLOCK_N], float("inf"), dtype=tl.float32)
    best_i = tl.zeros([BLOCK_N], dtype=tl.int32) + k_start
    second = tl.full([BLOCK_N], float("inf"), dtype=tl.float32)
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
            acc = _dot_codes(x_single, ct, acc, UPCAST, IEEE)
        else:
            for d0 in range(0, D, BLOCK_D):
                dm = (d0 + dcols) < D
                xt = _centred_rows(x_rows, MU, d0, dcols, D, rmask, stride_xd, scale)
                ct = tl.load(
                    c_rows + (d0 + dcols)[None, :] * stride_cd,
                    mask=cmask[:, None] & dm[None, :],
                    other=0,
                )
                if OP_BF16:
                    xt = xt.to(tl.bfloat16)
                    if UPCAST:
                        xt = xt.to(tl.float32)
                acc = _dot_codes(xt, ct, acc, UPCAST, IEEE)
        csq = tl.load(CSQ + cols, mask=cmask, other=0.0)
        score = csq[None, :] - 2.0 * acc
        score = tl.where(cmask[None, :], score, float("inf"))
        # tile minimum, lowest column among equals (explicit; tl.argmin ties are not relied on)
        t1 = tl.min(score, axis=1)
        is1 = (score == t1[:, None]) & cmask[None, :]
        t1_i = tl.min(tl.where(is1, cols[None, :], big), axis=1)
        # tile runner-up: the minimum over the other columns (equal to t1 on a tie)
        t2 = tl.min(tl.where(cols[None, :] == t1_i[:, None], float("inf"), score), axis=1)
        # merge (best ≤ second, lower indices) with (t1 ≤ t2, higher indices)
        new_first = t1 < best
        second = tl.where(new_first, tl.minimum(best, t2), tl.minimum(t1, second))
        best_i = tl.where(new_first, t1_i, best_i)
        best = tl.where(new_first, t1, best)
    out = pid_s.to(tl.int64) * N + rows
    tl.store(S1 + out, best, mask=rmask)
    tl.store(I1 + out, best_i.to(tl.int64), mask=rmask)
    tl.store(S2 + out, second, mask=rmask)


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
    """Nearest code per row with the fused Triton kernel, certified: the reference's exact answer.

    k*(i) = argmin_k ‖x_i − e_k‖², ties to the lowest index, and d_i = ‖x_i − e_k*‖² from fp64
    differences, both equal to :func:`kexue.vq.functional.nearest_code_reference` on every input.
    The kernel scores the centred, power-of-two-scaled data, s_ik = ‖ẽ_k‖² − 2·x̃_i·ẽ_k with
    x̃ = σx − μ (μ the codebook mean, subtracted on load), streamed over codebook tiles (no N×K
    tensor), and keeps the best and the runner-up score of every row. A row is ambiguous when
    ŝ_2nd − ŝ_best ≤ 2τ_i with the bound of :mod:`kexue.vq._reference`,

        τ_i = c_D·(E + X_i)² + n_D·(E + X_i) + (D + 4)·2⁻¹²⁰,   c_D = 5·u_in + 4·(D + 6)·2⁻²⁴,

    E = max_k ‖ẽ_k‖, X_i = ‖x̃_i‖, u_in = 0 for ``"fp32"`` (IEEE fp32 dots) and 2⁻⁸ for
    ``"rerank"`` (bf16 dots), n_D = 8·(D + 4)·2⁻²⁴ for cosine (else 0). τ_i is twice a rigorous
    bound on the rounding error of one score, so an unambiguous row's best code is the exact
    nearest code by a margin above τ_i; ambiguous rows (ties, duplicated codes, near ties: about
    0–0.2 % of Gaussian rows in ``"fp32"`` mode) are recomputed by the reference, which re-ranks all
    their codes within its own bound in fp64. This costs two host syncs per call (the power-of-two
    scale, L2 only, and the count of ambiguous rows).

    Arguments:
        x: (N, D) fp32/bf16/fp16 on CUDA (or CPU under ``TRITON_INTERPRET=1``); any strides.
        codebook: (K, D) fp32/bf16/fp16, same device as ``x``.
        metric: ``"l2"`` (default) or ``"cosine"`` (both sides L2-normalised with eps 1e-12 in
            fp32 first, as the reference; the distance is then that of the normalised vectors).
        codebook_sqnorm: **deprecated** (DeprecationWarning; removed in 0.3): ignored, the
            kernel needs the norms of the centred codes, which it computes in O(K·D).
        precision: ``"auto"`` (default: ``"rerank"`` for bf16/fp16 inputs, ``"fp32"`` for fp32),
            ``"fp32"`` or ``"rerank"`` (bf16 operands: faster tensor-core GEMM, more re-ranked
            rows); both return the exact answer.
        code_splits: number of code splits (split-code mode); ``None`` picks from N, K and the
            SM count (splits only when the row tiles cannot fill the device and K ≥ 1024).

    Returns:
        ``(idx, dist)``: int64 (N,) code indices and fp32 (N,) squared distances.

    References:
        https://kexue.fm/archives/6760 (VQ-VAE); arXiv 1711.00937; flash-kmeans "FlashAssign"
        (arXiv 2603.09229) for the streamed (min, argmin) design; Higham, *Accuracy and Stability
        of Numerical Algorithms*, §3.1 (the γ_n dot-product bound).
    """
    _check(x, codebook, metric, codebook_sqnorm, precision)
    x, codebook = x.detach(), codebook.detach()
    n, d = x.shape
    device = x.device
    if n == 0:
        return torch.empty(0, dtype=torch.int64, device=device), torch.empty(0, device=device)
    # cosine: the kernel reads rows normalised in fp32 exactly as the reference's scores do; the
    # exact re-rank and the distances start again from the raw rows (fp64 normalisation)
    xk = F.normalize(x.float(), dim=1, eps=NORM_EPS) if metric == "cosine" else x
    idx, best, second, tau = certified_top2(xk, codebook, metric, precision, code_splits)
    ambiguous = torch.nonzero(second - best <= 2.0 * tau).squeeze(1)  # host sync
    if ambiguous.numel():
        amb_idx, _ = nearest_code_exact(
            x.index_select(0, ambiguous), codebook, metric=metric, chunk_size=None
        )
        idx = idx.index_copy(0, ambiguous, amb_idx)
    dist = torch.empty(n, dtype=torch.float32, device=device)
    rows = max(1, DEFAULT_CHUNK_BYTES // (16 * d))
    for start in range(0, n, rows):
        sl = slice(start, min(start + rows, n))
        dist[sl] = exact_sqdist(x[sl], codebook, idx[sl], metric=metric)
    return idx, dist


def certified_top2(
    x: torch.Tensor,
    codebook: torch.Tensor,
    metric: str,
    precision: str,
    code_splits: int | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Run the kernel: (best index, best score, runner-up score, τ) per row, all (N,).

    ``x`` is already L2-normalised for cosine. A row is ambiguous iff runner-up − best ≤ 2τ.
    """
    n, d = x.shape
    k = codebook.shape[0]
    device = x.device
    op_bf16 = precision == "rerank"  # "auto" is "fp32"
    cosine = metric == "cosine"
    if cosine:
        c32 = F.normalize(codebook.float(), dim=1, eps=NORM_EPS)
        scale = 1.0
    else:
        c32 = codebook.float()
        amax = torch.maximum(
            torch.linalg.vector_norm(x, ord=math.inf, dtype=torch.float32),
            torch.linalg.vector_norm(c32, ord=math.inf),
        )
        scale = pow2_scale(float(amax))
        c32 = c32 * scale
    mu = c32.mean(dim=0).contiguous()
    e_c = c32 - mu
    csq = (e_c * e_c).sum(dim=1).contiguous()
    c_op = e_c.to(torch.bfloat16) if op_bf16 else e_c
    upcast = _INTERPRET and op_bf16

    splits = _choose_splits(n, k, device, code_splits)
    k_per_split = triton.cdiv(triton.cdiv(k, splits), _SPLIT_ALIGN) * _SPLIT_ALIGN
    if code_splits is not None or _INTERPRET:
        k_per_split = triton.cdiv(k, splits)
    splits = triton.cdiv(k, k_per_split)
    xsq = torch.empty(n, dtype=torch.float32, device=device)
    s1 = torch.empty(splits, n, dtype=torch.float32, device=device)
    i1 = torch.empty(splits, n, dtype=torch.int64, device=device)
    s2 = torch.empty_like(s1)
    d_pad = max(16, triton.next_power_of_2(d))

    def grid(meta: dict) -> tuple[int, int]:
        return (triton.cdiv(n, meta["BLOCK_N"]), splits)

    _assign_kernel[grid](
        x, c_op, csq, mu, xsq, s1, i1, s2, scale,
        n, k, d, k_per_split,
        x.stride(0), x.stride(1), c_op.stride(0), c_op.stride(1),
        _bucket(n), _bucket(k),
        D_PAD=d_pad, ELT=c_op.element_size(), SINGLE_D=d_pad <= _MAX_SINGLE_D,
        SPLIT=splits > 1, OP_BF16=op_bf16, UPCAST=upcast, IEEE=not op_bf16 or upcast,
    )  # fmt: skip
    best, idx, second = _merge_splits(s1, i1, s2)
    u_in = 2.0**-8 if op_bf16 else 0.0
    e_max = csq.max().sqrt()
    tau = score_tolerance(e_max, xsq.sqrt(), dim=d, unit=2.0**-24, u_in=u_in, cosine=cosine)
    return idx, best, second, tau


def _merge_splits(
    s1: torch.Tensor, i1: torch.Tensor, s2: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Best score, its index (lowest split on ties) and the runner-up score over code splits."""
    splits, n = s1.shape
    if splits == 1:
        return s1[0], i1[0], s2[0]
    best = s1.min(dim=0).values
    order = torch.arange(splits, device=s1.device)[:, None].expand(splits, n)
    sel = torch.where(s1 == best[None, :], order, splits).min(dim=0).values.clamp_max_(splits - 1)
    idx = i1.gather(0, sel[None, :])[0]
    others = s1.scatter(0, sel[None, :], math.inf).min(dim=0).values
    second = torch.minimum(others, s2.gather(0, sel[None, :])[0])
    return best, idx, second


def _check(
    x: torch.Tensor,
    codebook: torch.Tensor,
    metric: str,
    codebook_sqnorm: torch.Tensor | None,
    precision: str,
) -> None:
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
    check_codebook_sqnorm(codebook_sqnorm, codebook.shape[0])
