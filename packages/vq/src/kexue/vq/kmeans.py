"""k-means codebook initialisation: k-means++ (or random) seeding and Lloyd iterations.

The assignment step uses the same ``nearest_code`` as training (fused kernel on CUDA), and the
update uses ``code_counts_and_sums`` (no one-hot, no N×K matrix). Under ``torch.distributed``
every rank passes its local samples: the seeding runs on rank 0 over the gathered samples (in rank
order) and is broadcast; each Lloyd step all-reduces counts and sums in one collective. With the
same ``generator`` seed on rank 0 the result equals single-process k-means on the concatenation
of the ranks' samples (up to fp32 summation order of the sums). Every collective is taken on
every rank unconditionally (no data-dependent collectives, cf. lucidrains#25, #105).
"""

from __future__ import annotations

import math
import warnings

import torch
import torch.distributed as dist
from torch import Tensor

from . import _distributed
from .functional import _counts_and_sums, _nearest_code

__all__ = ["kmeans"]

_FEW = ("error", "repeat")
_REPEAT_NOISE = 1e-2  # relative noise of repeated seeds (kexue decision)


def _gather_rows(x: Tensor) -> Tensor:
    """All-gather (N_r, D) tensors of different N_r; returns the concatenation in rank order."""
    world = dist.get_world_size()
    n = torch.tensor([x.shape[0]], dtype=torch.int64, device=x.device)
    sizes = [torch.zeros_like(n) for _ in range(world)]
    dist.all_gather(sizes, n)
    n_max = max(int(s) for s in sizes)
    padded = torch.zeros(n_max, x.shape[1], dtype=x.dtype, device=x.device)
    padded[: x.shape[0]] = x
    parts = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded)
    return torch.cat([p[: int(s)] for p, s in zip(parts, sizes, strict=True)])


def _times_pow2(t: Tensor, e: int) -> Tensor:
    """t·2^e in two exact steps, so that neither factor over- or underflows fp32 (|e| <= 256)."""
    half = e // 2
    return t * math.ldexp(1.0, half) * math.ldexp(1.0, e - half)


def _scale_exponent(pool: Tensor) -> int:
    """e with max|x| < 2^e: k-means runs on x·2^−e in (−1, 1), so no squared distance overflows
    (1e20 in fp32, 1e300 in fp64); a power of two keeps the scaling exact (seeds stay samples)."""
    amax = float(torch.linalg.vector_norm(pool, ord=math.inf)) if pool.numel() else 0.0
    return math.frexp(amax)[1] if amax > 0 else 0


def _draw_perm(n: int, generator: torch.Generator | None, device: torch.device) -> Tensor:
    gdev = generator.device if generator is not None else torch.device("cpu")
    return torch.randperm(n, generator=generator, device=gdev).to(device)


def _plusplus(x: Tensor, k: int, generator: torch.Generator | None) -> Tensor:
    """k-means++ seeding (D² sampling); O(N·K·D) time, O(N) extra memory."""
    n = x.shape[0]
    gdev = generator.device if generator is not None else torch.device("cpu")
    first = int(torch.randint(n, (1,), generator=generator, device=gdev))
    centers = torch.empty(k, x.shape[1], dtype=x.dtype, device=x.device)
    centers[0] = x[first]
    d2 = ((x - centers[0]) ** 2).sum(dim=1).double()
    for j in range(1, k):
        total = float(d2.sum())
        weights = d2 if total > 0 else torch.ones_like(d2)  # all points covered: uniform
        pick = int(torch.multinomial(weights.to(gdev), 1, generator=generator))
        centers[j] = x[pick]
        d2 = torch.minimum(d2, ((x - centers[j]) ** 2).sum(dim=1).double())
    return centers


def _seed(
    x: Tensor, k: int, plusplus: bool, on_few_samples: str, generator: torch.Generator | None
) -> Tensor:
    n = x.shape[0]
    if n >= k:
        if plusplus:
            return _plusplus(x, k, generator)
        return x[_draw_perm(n, generator, x.device)[:k]].clone()
    # on_few_samples == "repeat": every sample once, then noisy copies (validated by the caller).
    order = _draw_perm(n, generator, x.device)
    reps = order.repeat((k + n - 1) // n)[:k]
    centers = x[reps].clone()
    spread = x.std(dim=0, correction=0) if n > 1 else torch.zeros_like(x[0])
    spread = torch.where(spread > 0, spread, x.abs().mean(dim=0).clamp_min(1.0))
    gdev = generator.device if generator is not None else torch.device("cpu")
    noise = torch.randn(k - n, x.shape[1], generator=generator, device=gdev).to(x)
    centers[n:] += _REPEAT_NOISE * spread * noise
    return centers


def kmeans(
    x: Tensor,
    num_codes: int,
    *,
    iters: int = 10,
    plusplus: bool = True,
    generator: torch.Generator | None = None,
    backend: str = "auto",
    sync: bool | str = "auto",
    on_few_samples: str = "error",
) -> tuple[Tensor, Tensor]:
    """k-means on the rows of ``x``: seeding, then ``iters`` Lloyd steps.

    Lloyd step: k_i = argmin_k ‖x_i − c_k‖² (``nearest_code``); c_k ← (1/n_k)·Σ_{k_i = k} x_i for
    n_k > 0, while empty clusters keep their previous centroid (as lucidrains' ``kmeans``).
    Seeding: k-means++ (Arthur & Vassilvitskii 2007; first centre uniform, then D² sampling;
    sequential, O(N·K·D)) or, with ``plusplus=False``, K distinct random samples.

    Fewer samples than codes (N < K, N summed over ranks): ``on_few_samples="error"`` (default)
    raises a ValueError naming x and num_codes; ``"repeat"`` warns and seeds every sample once
    plus noisy copies (noise 1e-2 × the per-feature std, or × 2^e where the std is 0, with 2^e
    the power of two just above max|x|).

    Scale: the samples are first divided by 2^e, the power of two just above max|x| (exact), and
    the centroids scaled back, so inputs as large as 1e20 (fp32) or 1e300 (fp64)
    neither overflow the squared distances of k-means++ nor the assignment.

    Arguments:
        x: (N, D) floating samples (finite); under DDP the rank's local samples.
        num_codes: K >= 1.
        iters: number of Lloyd steps (default 10, lucidrains' ``kmeans_iters``); 0 returns the
            seeds and the counts of their assignment.
        plusplus: k-means++ seeding (default True) or random samples.
        generator: randomness of the seeding (used on rank 0 only under DDP).
        backend: backend of ``nearest_code`` / ``code_counts_and_sums``.
        sync: ``"auto"`` (all-reduce when ``torch.distributed`` has > 1 rank), True or False
            (local k-means on every rank).
        on_few_samples: ``"error"`` (default) or ``"repeat"``.

    Returns:
        ``(centroids, counts)``: centroids (K, D), fp64 for fp64 ``x`` and fp32 otherwise; counts fp32 (K,) of the last assignment
        (global under DDP). For counts_k > 0, centroids_k is the mean of the samples of that
        assignment (so N_k = counts, m_k = centroids·counts initialises an EMA consistently).

    References:
        Lloyd 1982; Arthur & Vassilvitskii 2007 (k-means++); spec §2.6;
        van den Oord et al. 2017, arXiv:1711.00937.
    """
    if not isinstance(x, Tensor):
        raise TypeError("x must be a torch.Tensor")
    if isinstance(num_codes, bool) or int(num_codes) != num_codes or num_codes < 1:
        raise ValueError(f"num_codes must be a positive int, got {num_codes!r}")
    k = int(num_codes)
    if x.dim() != 2 or not x.is_floating_point():
        raise ValueError(f"x must be a 2-D floating tensor (N, D), got shape {tuple(x.shape)}")
    if x.shape[1] < 1:
        raise ValueError(f"x needs D >= 1, got shape {tuple(x.shape)}")
    if isinstance(iters, bool) or int(iters) != iters or iters < 0:
        raise ValueError(f"iters must be a non-negative int, got {iters!r}")
    if on_few_samples not in _FEW:
        raise ValueError(f"on_few_samples must be one of {_FEW}, got {on_few_samples!r}")
    if sync not in ("auto", True, False):
        raise ValueError(f"sync must be 'auto', True or False, got {sync!r}")
    if x.numel() and not math.isfinite(float(torch.linalg.vector_norm(x, ord=math.inf))):
        raise ValueError(f"x contains NaN or inf (shape {tuple(x.shape)})")
    distributed = _distributed.is_distributed() and sync in ("auto", True)

    out_dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    x = x.to(out_dtype)
    pool = _gather_rows(x) if distributed else x
    n_total = pool.shape[0]
    if n_total == 0:
        raise ValueError(f"x has no samples (shape {tuple(x.shape)}); k-means needs N >= 1")
    if n_total < k:
        if on_few_samples == "error":
            raise ValueError(
                f"k-means needs at least num_codes samples: x has N={n_total} samples in total "
                f"(local shape {tuple(x.shape)}) but num_codes={k}; pass more data or "
                "on_few_samples='repeat'"
            )
        warnings.warn(
            f"kmeans: only {n_total} samples for num_codes={k}; seeding with every sample plus "
            f"{k - n_total} noisy copies (on_few_samples='repeat')",
            UserWarning,
            stacklevel=2,
        )

    # rescale by a power of two (from the gathered samples: the same on every rank)
    exponent = _scale_exponent(pool)
    x = _times_pow2(x, -exponent).float()
    pool = _times_pow2(pool, -exponent).float() if distributed else x

    if distributed:
        centroids = torch.empty(k, x.shape[1], dtype=torch.float32, device=x.device)
        if dist.get_rank() == 0:
            centroids.copy_(_seed(pool, k, plusplus, on_few_samples, generator))
        _distributed.broadcast_(centroids, src=0)
    else:
        centroids = _seed(pool, k, plusplus, on_few_samples, generator)
    del pool

    counts = torch.zeros(k, dtype=torch.float32, device=x.device)
    for step in range(max(iters, 1)):
        idx, _ = _nearest_code(x, centroids, backend=backend)
        counts, sums = _counts_and_sums(idx, x, k, backend=backend, deterministic=True)
        if distributed:
            _distributed.all_reduce_sum_(counts, sums)
        if step < iters:
            used = counts > 0
            means = sums / counts.clamp_min(1.0)[:, None]
            centroids = torch.where(used[:, None], means, centroids)
    return _times_pow2(centroids.to(out_dtype), exponent), counts
