"""Functional core of kexue-vq: nearest-code assignment, per-code statistics and codebook metrics.

``nearest_code`` is the public entry point; it dispatches (``kexue.vq._dispatch.resolve_backend``)
to the fused Triton kernel on CUDA or to :func:`nearest_code_reference`, the pure-torch reference
that *is* the specification. No path ever materialises the N×K distance matrix: the reference
chunks over N so that its extra memory is O(chunk·K), with the chunk chosen from a byte budget.

Exactness of the reference. Scores ‖e_k‖² − 2·x·e_k are computed in fp32 (fp64 for fp64 inputs)
on data that is first translated by the codebook mean and scaled by a power of two (both leave the
argmin unchanged; translation removes the cancellation of huge common offsets, scaling removes
overflow). Every code whose score lies within a rigorous forward-error bound of the row minimum
is then re-ranked by its exact squared distance ‖x − e_k‖², computed from the differences in fp64;
the smallest wins, ties going to the lowest index. The result equals an fp64 brute-force argmin
of the direct distances (up to fp64 rounding of the distances themselves) whatever the magnitudes,
and does not depend on the chunk size. Large common offsets relative to the spread of the data
only widen the candidate set (more exact re-ranking work), never change the answer. The bound and
its derivation are in :mod:`kexue.vq._reference` (shared with the Triton kernel, which certifies
its own scores the same way and sends its ambiguous rows to this reference).

References:
    - VQ-VAE: van den Oord, Vinyals, Kavukcuoglu 2017, arXiv:1711.00937.
    - Su Jianlin, VQ-VAE post: https://kexue.fm/archives/6760
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ._dispatch import resolve_backend
from ._reference import DEFAULT_CHUNK_BYTES, check_codebook_sqnorm, nearest_code_exact

__all__ = [
    "DEFAULT_CHUNK_BYTES",
    "code_counts_and_sums",
    "nearest_code",
    "nearest_code_reference",
    "perplexity",
    "usage",
]

_METRICS = ("l2", "cosine")
_PRECISIONS = ("auto", "fp32", "rerank")


def _shape(t: Tensor) -> str:
    return str(tuple(t.shape))


def _check_assign_inputs(
    x: Tensor, codebook: Tensor, metric: str, codebook_sqnorm: Tensor | None, chunk_size: int | None
) -> None:
    if not isinstance(x, Tensor) or not isinstance(codebook, Tensor):
        raise TypeError("x and codebook must be torch.Tensor")
    if metric not in _METRICS:
        raise ValueError(f"metric must be one of {_METRICS}, got {metric!r}")
    if x.dim() != 2:
        raise ValueError(f"x must be 2-D (N, D), got shape {_shape(x)}")
    if codebook.dim() != 2:
        raise ValueError(f"codebook must be 2-D (K, D), got shape {_shape(codebook)}")
    if x.shape[1] != codebook.shape[1]:
        raise ValueError(
            f"x and codebook must share the feature dim D: x has shape {_shape(x)}, "
            f"codebook has shape {_shape(codebook)}"
        )
    if codebook.shape[0] < 1:
        raise ValueError(f"codebook must hold at least one code (K >= 1), got {_shape(codebook)}")
    if codebook.shape[1] < 1:
        raise ValueError(f"x and codebook need D >= 1, got codebook shape {_shape(codebook)}")
    if not (x.is_floating_point() and codebook.is_floating_point()):
        raise ValueError(f"x and codebook must be floating point, got {x.dtype}, {codebook.dtype}")
    if x.device != codebook.device:
        raise ValueError(
            f"x ({x.device}) and codebook ({codebook.device}) are on different devices"
        )
    # vector_norm(inf) is NaN/inf exactly when x holds a NaN/inf, and allocates nothing N-sized
    if x.numel() and not math.isfinite(float(torch.linalg.vector_norm(x.detach(), ord=math.inf))):
        raise ValueError("x contains NaN or inf")
    if not bool(torch.isfinite(codebook).all()):
        raise ValueError("codebook contains NaN or inf")
    check_codebook_sqnorm(codebook_sqnorm, codebook.shape[0])
    if chunk_size is not None and (isinstance(chunk_size, bool) or int(chunk_size) < 1):
        raise ValueError(f"chunk_size must be a positive int or None, got {chunk_size!r}")


def nearest_code(
    x: Tensor,
    codebook: Tensor,
    *,
    metric: str = "l2",
    codebook_sqnorm: Tensor | None = None,
    chunk_size: int | None = None,
    precision: str = "auto",
    backend: str = "auto",
) -> tuple[Tensor, Tensor]:
    """Nearest code of every row: idx_i = argmin_k ‖x_i − e_k‖², d_i = ‖x_i − e_idx‖².

    Computed as argmin_k (‖e_k‖² − 2·x_i·e_k) without ever forming the N×K matrix. Ties go to
    the lowest index (like ``torch.argmin``). With ``metric="cosine"`` rows of ``x`` and codes are
    L2-normalised first (eps 1e-12), so idx maximises the cosine similarity and d = 2 − 2·cos.

    Arguments:
        x: (N, D) floating tensor, finite (N may be 0).
        codebook: (K, D) floating tensor, K >= 1.
        metric: ``"l2"`` (default) or ``"cosine"``.
        codebook_sqnorm: **deprecated** (DeprecationWarning; removed in 0.3): ignored since
            0.2.0, both paths recompute the norms of the translated codes (exactness); a wrong
            shape still raises.
        chunk_size: rows per chunk of the reference path; default from a 32 MiB score budget.
        precision: ``"auto"`` (default, = ``"fp32"``), ``"fp32"`` (IEEE fp32 dot products) or
            ``"rerank"`` (bf16 dot products, u_in = 2⁻⁸).
            Honoured by the Triton path, where both modes are certified: rows whose two best
            scores lie within the bound τ of :mod:`kexue.vq._reference` are re-ranked exactly, so
            every mode returns the reference's indices and distances; ``"rerank"`` only trades a
            faster GEMM for more re-ranked rows. The reference is always exact.
        backend: ``"auto"`` (Triton on CUDA when importable), ``"triton"`` or ``"torch"``;
            env ``KEXUE_VQ_BACKEND`` overrides ``"auto"``.

    Returns:
        ``(idx, dist)``: idx int64 (N,), dist fp32 (N,) squared distance (>= 0).

    References:
        van den Oord et al. 2017, arXiv:1711.00937 (nearest-neighbour quantisation);
        https://kexue.fm/archives/6760
    """
    _check_assign_inputs(x, codebook, metric, codebook_sqnorm, chunk_size)
    if precision not in _PRECISIONS:
        raise ValueError(f"precision must be one of {_PRECISIONS}, got {precision!r}")
    return _nearest_code(
        x, codebook, metric=metric, chunk_size=chunk_size, precision=precision, backend=backend
    )


def _nearest_code(
    x: Tensor,
    codebook: Tensor,
    *,
    metric: str = "l2",
    chunk_size: int | None = None,
    precision: str = "auto",
    backend: str = "auto",
) -> tuple[Tensor, Tensor]:
    """:func:`nearest_code` without the input checks (two host syncs and a pass over x), for
    inputs this package already validated: the quantisers' rows and k-means' data."""
    fp64 = torch.float64 in (x.dtype, codebook.dtype)
    if backend == "auto" and fp64:
        backend = "torch"  # the kernels compute in fp32 at most: fp64 stays on the exact reference
    if resolve_backend(backend, x, codebook) == "triton":
        from ._kernels.triton_assign import nearest_code_triton

        return nearest_code_triton(x, codebook, metric=metric, precision=precision)
    return nearest_code_exact(x, codebook, metric=metric, chunk_size=chunk_size)


def nearest_code_reference(
    x: Tensor,
    codebook: Tensor,
    *,
    metric: str = "l2",
    codebook_sqnorm: Tensor | None = None,
    chunk_size: int | None = None,
) -> tuple[Tensor, Tensor]:
    """Pure-torch exact nearest-code assignment, chunked over N (the specification of the kernel).

    idx_i = argmin_k ‖x_i − e_k‖² with ties to the lowest index; d_i = ‖x_i − e_idx‖² computed
    directly from the differences (in fp64, returned as fp32), so it never suffers the
    cancellation of ‖x‖² + ‖e‖² − 2·x·e. Scores are computed in fp32 (fp64 when an input is
    fp64; bf16/fp16 are upcast) on translated and power-of-two-scaled data; codes within a
    rigorous rounding bound of the best score are re-ranked exactly (see the module docstring).
    Peak extra memory is O(chunk·K + chunk·D), never O(N·K).

    Arguments:
        x: (N, D) floating tensor, finite; any strides.
        codebook: (K, D) floating tensor, K >= 1; any strides.
        metric: ``"l2"`` (default) or ``"cosine"`` (rows L2-normalised with eps 1e-12 first;
            the exact re-rank then maximises the fp64 cosine x̂·ê, so a zero row ties on every
            code and gets index 0).
        codebook_sqnorm: **deprecated**, as in :func:`nearest_code` (warned, ignored).
        chunk_size: rows per chunk; default min(max(256, 4 MiB // (K·itemsize)),
            32 MiB // (K·(itemsize + 1))), at least 1.

    Returns:
        ``(idx, dist)``: idx int64 (N,), dist fp32 (N,).

    References:
        van den Oord et al. 2017, arXiv:1711.00937; https://kexue.fm/archives/6760
    """
    _check_assign_inputs(x, codebook, metric, codebook_sqnorm, chunk_size)
    return nearest_code_exact(x, codebook, metric=metric, chunk_size=chunk_size)


def code_counts_and_sums(
    indices: Tensor,
    x: Tensor,
    num_codes: int,
    *,
    backend: str = "auto",
    deterministic: bool = True,
) -> tuple[Tensor, Tensor]:
    """Per-code counts n_k = #{i: idx_i = k} and sums s_k = Σ_{i: idx_i = k} x_i, without a one-hot.

    These are the statistics of the EMA codebook update and of a Lloyd (k-means) step.

    Arguments:
        indices: (N,) integer tensor with values in [0, num_codes).
        x: (N, D) finite floating tensor (accumulated in fp32; fp64 inputs are accumulated in
            fp64); NaN or inf raises a ValueError.
        num_codes: K >= 1.
        backend: ``"auto"``, ``"triton"`` or ``"torch"`` (see ``kexue.vq._dispatch``).
        deterministic: the reference is bitwise reproducible on CPU (``bincount`` +
            ``index_add_``); on CUDA ``True`` uses the sort-based ``index_put_(accumulate=True)``
            instead of ``index_add_``'s atomics. Passed through to the Triton path.

    Returns:
        ``(counts, sums)``: counts fp32 (K,), sums fp32 (K, D) (fp64 for fp64 ``x``).

    References:
        van den Oord et al. 2017, arXiv:1711.00937, appendix A.1 (EMA statistics).
    """
    if not isinstance(indices, Tensor) or not isinstance(x, Tensor):
        raise TypeError("indices and x must be torch.Tensor")
    if isinstance(num_codes, bool) or int(num_codes) != num_codes or num_codes < 1:
        raise ValueError(f"num_codes must be a positive int, got {num_codes!r}")
    num_codes = int(num_codes)
    if indices.dim() != 1 or indices.is_floating_point() or indices.is_complex():
        raise ValueError(
            f"indices must be a 1-D integer tensor (N,), got shape {_shape(indices)} "
            f"and dtype {indices.dtype}"
        )
    if x.dim() != 2 or not x.is_floating_point():
        raise ValueError(f"x must be a 2-D floating tensor (N, D), got shape {_shape(x)}")
    if x.shape[0] != indices.shape[0]:
        raise ValueError(
            f"indices and x must have the same N: indices {_shape(indices)}, x {_shape(x)}"
        )
    if indices.device != x.device:
        raise ValueError(f"indices ({indices.device}) and x ({x.device}) are on different devices")
    if indices.numel():
        # one host sync for the index range and the finiteness of x
        parts = [indices.min().double(), indices.max().double()]
        if x.numel():
            parts.append(torch.linalg.vector_norm(x.detach(), ord=math.inf).double().to(parts[0]))
        lo, hi, *amax = torch.stack(parts).tolist()
        if lo < 0 or hi >= num_codes:
            raise ValueError(
                f"indices must lie in [0, {num_codes}), got range [{int(lo)}, {int(hi)}]"
            )
        if amax and not math.isfinite(amax[0]):
            raise ValueError(f"x contains NaN or inf (shape {_shape(x)})")
    return _counts_and_sums(indices, x, num_codes, backend=backend, deterministic=deterministic)


def _counts_and_sums(
    indices: Tensor, x: Tensor, num_codes: int, *, backend: str, deterministic: bool
) -> tuple[Tensor, Tensor]:
    """:func:`code_counts_and_sums` without input checks, for indices this package produced.

    The public range check costs two host syncs; the quantiser and k-means call this instead on
    every step, with indices straight from :func:`nearest_code`.
    """
    if backend == "auto" and x.dtype == torch.float64:
        backend = "torch"  # fp64 sums stay on the reference
    if resolve_backend(backend, indices, x) == "triton":
        from ._kernels.triton_epilogue import code_counts_and_sums_triton

        return code_counts_and_sums_triton(indices, x, num_codes, deterministic=deterministic)
    acc = torch.float64 if x.dtype == torch.float64 else torch.float32
    idx = indices.long()
    counts = torch.bincount(idx, minlength=num_codes).to(torch.float32)
    sums = torch.zeros(num_codes, x.shape[1], dtype=acc, device=x.device)
    if deterministic and x.is_cuda:
        sums.index_put_((idx,), x.to(acc), accumulate=True)
    else:
        sums.index_add_(0, idx, x.to(acc))
    return counts, sums


def _check_counts(counts: Tensor) -> None:
    if not isinstance(counts, Tensor):
        raise TypeError("counts must be a torch.Tensor")
    if counts.dim() < 1 or counts.shape[-1] < 1:
        raise ValueError(f"counts must have shape (..., K) with K >= 1, got {_shape(counts)}")
    if not bool(torch.isfinite(counts).all()) or bool((counts < 0).any()):
        raise ValueError("counts must be finite and non-negative")


def perplexity(counts: Tensor) -> Tensor:
    """Codebook perplexity exp(−Σ_k p_k·ln p_k), p_k = n_k / Σ_j n_j, over the last dim.

    Equals K for uniform usage and 1 when a single code is used; 0·ln 0 = 0. All-zero counts
    (no data) give 0.

    Arguments:
        counts: (..., K) non-negative counts (raw or EMA-smoothed).

    Returns:
        (...) perplexity, fp32 (fp64 for fp64 counts).

    References:
        Spec §2.10; van den Oord et al. 2017, arXiv:1711.00937.
    """
    _check_counts(counts)
    c = counts.to(torch.float64)
    total = c.sum(dim=-1, keepdim=True)
    p = c / total.clamp_min(torch.finfo(torch.float64).tiny)
    ppl = torch.exp(-torch.xlogy(p, p).sum(dim=-1))
    ppl = torch.where(total.squeeze(-1) > 0, ppl, torch.zeros_like(ppl))
    return ppl.to(torch.float64 if counts.dtype == torch.float64 else torch.float32)


def usage(counts: Tensor) -> Tensor:
    """Fraction of codes used: #{k: n_k > 0} / K over the last dim.

    Arguments:
        counts: (..., K) non-negative counts.

    Returns:
        (...) fp32 fraction in [0, 1].

    References:
        Spec §2.10.
    """
    _check_counts(counts)
    return (counts > 0).to(torch.float32).mean(dim=-1)
