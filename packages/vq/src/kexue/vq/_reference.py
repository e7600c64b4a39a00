"""The certified core of exact nearest-code assignment, shared by the reference and the kernel.

Scores. For a power of two σ and any shift μ (the codebook mean), the reference and the Triton
kernel rank codes by ŝ_k = fl(‖ẽ_k‖² − 2·x̃·ẽ_k) with x̃ = fl(σx − μ), ẽ_k = fl(σe_k − μ). In exact
arithmetic s_k = σ²‖x − e_k‖² − ‖σx − μ‖², a per-row shift of the squared distances, so the argmin
is unchanged; the translation removes the cancellation of a large common offset (scores become
O(spread²) instead of O(offset²)), the scaling removes overflow and underflow.

The bound (:func:`score_tolerance`). With unit roundoff u of the score dtype, operand rounding
u_in of the dot product (0 for IEEE fp32 or fp64 operands, 2⁻⁸ for bf16 operands), X = ‖x̃‖ and
E = max_k ‖ẽ_k‖, every score satisfies |ŝ_k − s_k| ≤ τ/2 with

    τ = c_D·(E + X)² + n_D·(E + X) + a,   c_D = 5·u_in + 4·(D + 6)·u,

where n_D = 8·(D + 4)·u for ``metric="cosine"`` (the rows were normalised in the score dtype:
the normalisation error is relative to ‖x̂‖ = 1, not to the centred norms) and 0 for L2, and
a = (D + 4)·2⁻¹²⁰ covers underflow (scores are computed on data scaled into [−2, 2]). The terms:
centring rounding ≤ 2u(E² + 2XE), operand rounding ≤ 2(2u_in + u_in²)XE, the fp32 dot and norm
≤ γ_D(E² + 2XE)(1 + u_in)², the final subtraction ≤ u(E² + 2XE); c_D is at least twice their
sum, so τ carries a factor-2 margin. A row whose runner-up score satisfies ŝ_2nd − ŝ_best > 2τ
has a unique exact nearest code (the best), separated from every other code by more than τ in
exact arithmetic — far above the fp64 rounding of the direct distances, so an fp64 brute-force
argmin agrees. Every other ("ambiguous") row is settled by :func:`exact_rerank`: each code with
ŝ_k ≤ ŝ_best + 2τ (a superset of the codes that can be nearest) is ranked by the fp64 distance
‖x − e_k‖² of the untranslated values (cosine: by −x̂·ê in fp64), lowest index on ties.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "CACHE_CHUNK_BYTES",
    "DEFAULT_CHUNK_BYTES",
    "NORM_EPS",
    "check_codebook_sqnorm",
    "exact_rerank",
    "exact_sqdist",
    "nearest_code_exact",
    "pow2_scale",
    "score_tolerance",
]


def check_codebook_sqnorm(codebook_sqnorm: Tensor | None, num_codes: int) -> None:
    """The deprecated ``codebook_sqnorm=`` argument of the lookups: a DeprecationWarning (it has
    been ignored since 0.2.0: exactness needs the norms of the translated codes, which every path
    recomputes in O(K·D)), and still a ValueError for a wrong shape until it is removed in 0.3."""
    if codebook_sqnorm is None:
        return
    warnings.warn(
        "codebook_sqnorm is deprecated and ignored since kexue-vq 0.2.0 (the lookups recompute "
        "the norms of the translated codes); it will be removed in 0.3",
        DeprecationWarning,
        stacklevel=4,  # the caller of nearest_code / nearest_code_reference / nearest_code_triton
    )
    if tuple(codebook_sqnorm.shape) != (num_codes,):
        raise ValueError(
            f"codebook_sqnorm must have shape (K,) = ({num_codes},), "
            f"got {tuple(codebook_sqnorm.shape)}"
        )


DEFAULT_CHUNK_BYTES = 32 * 2**20
"""Byte budget of one chunk of scores in the reference (32 MiB, design decision of kexue-vq)."""
CACHE_CHUNK_BYTES = 4 * 2**20
NORM_EPS = 1e-12
_UNDERFLOW = 2.0**-120


def pow2_scale(amax: float) -> float:
    """A power of two s with s·amax in [0.5, 1) (1.0 when amax is zero or not finite)."""
    if amax == 0.0 or not math.isfinite(amax):
        return 1.0
    _, exp = math.frexp(amax)  # amax = m·2^exp, m in [0.5, 1)
    return math.ldexp(1.0, -exp)


def score_tolerance(
    e_max: Tensor | float, x_norm: Tensor, *, dim: int, unit: float, u_in: float, cosine: bool
) -> Tensor:
    """τ of the module docstring: twice a rigorous bound on the rounding error of one score.

    Arguments:
        e_max: E = max_k ‖ẽ_k‖ of the centred, scaled codes.
        x_norm: (N,) X = ‖x̃‖ of the centred, scaled rows.
        dim: D.
        unit: unit roundoff u of the score arithmetic (2⁻²⁴ for fp32, 2⁻⁵³ for fp64).
        u_in: operand rounding of the dot product (0 for IEEE fp32/fp64 operands, 2⁻⁸ for bf16).
        cosine: add the normalisation term n_D·(E + X).

    Returns:
        (N,) τ in the dtype of ``x_norm``.
    """
    s = x_norm + e_max
    c_d = 5.0 * u_in + 4.0 * (dim + 6) * unit
    tau = c_d * s * s + (dim + 4) * _UNDERFLOW
    if cosine:
        tau = tau + 8.0 * (dim + 4) * unit * s
    return tau


def exact_sqdist(
    x: Tensor, codebook: Tensor, idx: Tensor, *, metric: str, scale: float = 1.0
) -> Tensor:
    """fp32 ‖x_i − e_idx_i‖² computed from fp64 differences (cosine: of the fp64-normalised rows).

    ``scale`` (a power of two) is applied before squaring and removed after (exact; it only keeps
    fp64 inputs near 1e±300 finite). Memory O(N·D) fp64: callers pass chunks.
    """
    x64 = x.to(torch.float64)
    e64 = codebook.index_select(0, idx).to(torch.float64)
    if metric == "cosine":
        x64 = F.normalize(x64, dim=1, eps=NORM_EPS)
        e64 = F.normalize(e64, dim=1, eps=NORM_EPS)
    if scale != 1.0:
        x64, e64 = x64 * scale, e64 * scale
    diff = x64 - e64
    return ((diff * diff).sum(dim=1) / (scale * scale)).to(torch.float32)


def nearest_code_exact(
    x: Tensor, codebook: Tensor, *, metric: str, chunk_size: int | None
) -> tuple[Tensor, Tensor]:
    """The reference assignment (unchecked inputs): certified scores, exact re-rank, fp64 distances.

    Not differentiable (indices are discrete; the distances are for statistics): inputs that
    require grad are detached.
    """
    x, codebook = x.detach(), codebook.detach()
    n, d = x.shape
    k = codebook.shape[0]
    device = x.device
    cdtype = torch.float64 if torch.float64 in (x.dtype, codebook.dtype) else torch.float32
    if n == 0:
        return (
            torch.empty(0, dtype=torch.int64, device=device),
            torch.empty(0, dtype=torch.float32, device=device),
        )
    unit = torch.finfo(cdtype).eps / 2  # unit roundoff u
    itemsize = torch.finfo(cdtype).bits // 8
    if chunk_size is None:
        # Cache-sized score blocks (about 4 MiB, at least 256 rows) run fastest on CPU; the memory
        # budget DEFAULT_CHUNK_BYTES caps them for very large K.
        cache_rows = max(256, CACHE_CHUNK_BYTES // (k * itemsize))
        chunk_size = max(1, min(cache_rows, DEFAULT_CHUNK_BYTES // (k * (itemsize + 1))))
    chunk_size = int(chunk_size)
    pair_batch = max(1, DEFAULT_CHUNK_BYTES // (d * 8 * 4))

    scale, center, e_c, e_sq, e_max = _score_frame(x, codebook, metric, cdtype)

    def e64(rows: Tensor) -> Tensor:
        # fp64 copies of the selected codes only (a whole fp64 codebook would double the peak).
        e = codebook.index_select(0, rows).to(torch.float64)
        if metric == "cosine":
            e = F.normalize(e, dim=1, eps=NORM_EPS)
        return e * scale if scale != 1.0 else e

    idx_out = torch.empty(n, dtype=torch.int64, device=device)
    dist_out = torch.empty(n, dtype=torch.float32, device=device)
    # One score buffer for every chunk: re-allocating it per chunk costs page faults (and was
    # measured to make whole calls up to 8x slower, intermittently, on a 2-core CPU).
    score_buf = torch.empty(min(chunk_size, n), k, dtype=cdtype, device=device)
    for start in range(0, n, chunk_size):
        stop = min(start + chunk_size, n)
        xr = x[start:stop].to(cdtype)
        if metric == "cosine":
            xr = F.normalize(xr, dim=1, eps=NORM_EPS)
        xc = xr * scale if scale != 1.0 else xr
        if center is not None:
            xc = xc - center
        scores = score_buf[: stop - start]
        torch.addmm(e_sq, xc, e_c.T, alpha=-2.0, out=scores)  # (c, K): ‖e‖² − 2·x·e
        best, first = scores.min(dim=1)
        tau = score_tolerance(
            e_max, xc.norm(dim=1), dim=d, unit=unit, u_in=0.0, cosine=metric == "cosine"
        )
        # Rows whose runner-up is within 2τ are ambiguous: all their codes within 2τ of the best
        # are candidates for the exact re-rank; every other row keeps ``first``.
        scores.scatter_(1, first[:, None], math.inf)
        ambiguous_mask = scores.amin(dim=1) <= best + 2.0 * tau
        row_idx = first
        if bool(ambiguous_mask.any()):
            ambiguous = torch.nonzero(ambiguous_mask).squeeze(1)
            sub = scores.index_select(0, ambiguous)
            sub.scatter_(1, first[ambiguous, None], best[ambiguous, None])
            bound = (best + 2.0 * tau)[ambiguous, None]
            amb_rows, amb_cols = torch.nonzero(sub <= bound, as_tuple=True)
            del sub
            x64 = x[start:stop].index_select(0, ambiguous).to(torch.float64)
            if metric == "cosine":
                x64 = F.normalize(x64, dim=1, eps=NORM_EPS)
            if scale != 1.0:
                x64 = x64 * scale
            row_idx = first.clone()
            row_idx[ambiguous] = exact_rerank(
                x64, e64, amb_rows, amb_cols, num_codes=k, rows=ambiguous.numel(),
                metric=metric, pair_batch=pair_batch,
            )  # fmt: skip
        idx_out[start:stop] = row_idx
        # Exact distance of every row to its code: direct fp64 differences (no cancellation).
        dist_out[start:stop] = exact_sqdist(
            x[start:stop], codebook, row_idx, metric=metric, scale=scale
        )
    return idx_out, dist_out


def _score_frame(
    x: Tensor, codebook: Tensor, metric: str, cdtype: torch.dtype
) -> tuple[float, Tensor | None, Tensor, Tensor, float]:
    """(σ, μ or None, centred scaled codes ẽ, ‖ẽ‖², E) of the scores (module docstring)."""
    # Scale everything by one power of two (exact) so that max|.| < 1: no overflow in squares.
    if metric == "l2":
        inf_norm = torch.linalg.vector_norm
        amax = max(
            float(inf_norm(x.detach(), ord=math.inf)),
            float(inf_norm(codebook.detach(), ord=math.inf)),
        )
        # Ordinary magnitudes need no rescaling (squares cannot overflow or underflow): skip the
        # extra passes over x and the codebook.
        scale = 1.0 if 2.0**-40 < amax < 2.0**40 else pow2_scale(amax)
    else:
        scale = 1.0  # unit vectors
    # Score side: codebook (normalised,) scaled, then translated by its mean (removes the
    # cancellation of a large common offset; the subtraction is exact for nearby values).
    e = codebook.to(cdtype)
    if metric == "cosine":
        e = F.normalize(e, dim=1, eps=NORM_EPS)
    if scale != 1.0:
        e = e * scale
    center: Tensor | None = e.mean(dim=0)
    e_c = e - center
    if float(center.square().sum()) <= float((e_c * e_c).sum(dim=1).mean()):
        # No large common offset to cancel: scoring the raw data saves a pass over every chunk.
        center, e_c = None, e
    e_sq = (e_c * e_c).sum(dim=1)  # (K,)
    e_max = float(e_sq.max().sqrt())
    return scale, center, e_c, e_sq, e_max


def exact_rerank(
    x64: Tensor,
    e64: Callable[[Tensor], Tensor],
    pair_rows: Tensor,
    pair_cols: Tensor,
    *,
    num_codes: int,
    rows: int,
    metric: str,
    pair_batch: int,
) -> Tensor:
    """Winner per row among candidate (row, code) pairs, ranked on fp64 keys, lowest code on ties.

    The key is ‖x − e‖² (l2) or −x̂·ê (cosine: the exact argmax of the cosine similarity, so a
    zero row ties on every code). Pairs are processed in batches of ``pair_batch`` to bound memory.
    """
    k = num_codes
    key = torch.empty(pair_rows.numel(), dtype=torch.float64, device=x64.device)
    for p0 in range(0, pair_rows.numel(), pair_batch):
        p1 = min(p0 + pair_batch, pair_rows.numel())
        xp = x64.index_select(0, pair_rows[p0:p1])
        ep = e64(pair_cols[p0:p1])
        if metric == "l2":
            diff = xp - ep
            key[p0:p1] = (diff * diff).sum(dim=1)
        else:
            key[p0:p1] = -(xp * ep).sum(dim=1)
    row_best = torch.full((rows,), math.inf, dtype=torch.float64, device=x64.device)
    row_best.scatter_reduce_(0, pair_rows, key, reduce="amin")
    is_best = key == row_best[pair_rows]
    row_idx = torch.full((rows,), k, dtype=torch.int64, device=x64.device)
    row_idx.scatter_reduce_(0, pair_rows[is_best], pair_cols[is_best], reduce="amin")
    return row_idx
