"""Running codebook-usage statistics: per-code counts in an fp32 buffer, with DDP synchronisation.

``CodebookStats`` accumulates how often each code is chosen (a plain sum, or an exponential moving
average with ``decay``) and exposes the metrics of spec §2.10: perplexity, usage and the number of
dead codes. ``sync()`` makes the counts global over ``torch.distributed`` ranks with one
all-reduce; it is exact for both modes and may be called after every update or only before
reading the metrics (every rank must call it, in the same order).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from . import _distributed
from .functional import perplexity, usage

__all__ = ["CodebookStats"]


class CodebookStats(nn.Module):
    """Per-code usage counts with perplexity, usage and dead-code metrics.

    Update rule per batch with counts n_k: ``decay=None`` → c_k ← c_k + n_k (a window sum until
    :meth:`reset`); ``decay=γ`` → c_k ← γ·c_k + (1 − γ)·n_k (an EMA, like the EMA codebook's
    cluster sizes). Buffers (not parameters, in ``state_dict``): ``counts`` (K,) fp32 and
    ``synced`` (K,) fp32, the part of ``counts`` that is already global across ranks, which lets
    :meth:`sync` add up only the per-rank contributions since the last sync.

    Arguments:
        num_codes: K >= 1.
        decay: None (default: running sum) or γ in [0, 1).

    References:
        Spec §2.10 (perplexity, usage, dead-code count); van den Oord et al. 2017,
        arXiv:1711.00937.
    """

    counts: Tensor
    synced: Tensor

    def __init__(self, num_codes: int, *, decay: float | None = None) -> None:
        super().__init__()
        if isinstance(num_codes, bool) or int(num_codes) != num_codes or num_codes < 1:
            raise ValueError(f"num_codes must be a positive int, got {num_codes!r}")
        if decay is not None and not 0.0 <= float(decay) < 1.0:
            raise ValueError(f"decay must be None or in [0, 1), got {decay!r}")
        self.num_codes = int(num_codes)
        self.decay = None if decay is None else float(decay)
        self.register_buffer("counts", torch.zeros(self.num_codes, dtype=torch.float32))
        self.register_buffer("synced", torch.zeros(self.num_codes, dtype=torch.float32))

    def extra_repr(self) -> str:
        return f"num_codes={self.num_codes}, decay={self.decay}"

    @torch.no_grad()
    def update(self, indices_or_counts: Tensor) -> None:
        """Add one batch: integer code indices of any shape, or floating per-code counts (K,).

        Arguments:
            indices_or_counts: int tensor of indices in [0, K) (any shape, flattened), or a
                floating (K,) tensor of non-negative counts.
        """
        t = indices_or_counts
        if not isinstance(t, Tensor):
            raise TypeError("indices_or_counts must be a torch.Tensor")
        if t.is_floating_point():
            if tuple(t.shape) != (self.num_codes,):
                raise ValueError(
                    f"indices_or_counts as counts must have shape ({self.num_codes},), "
                    f"got {tuple(t.shape)}"
                )
            if not bool(torch.isfinite(t).all()) or bool((t < 0).any()):
                raise ValueError("indices_or_counts (counts) must be finite and non-negative")
            new = t.to(device=self.counts.device, dtype=torch.float32)
        else:
            flat = t.reshape(-1).long()
            if flat.numel() and (int(flat.min()) < 0 or int(flat.max()) >= self.num_codes):
                raise ValueError(
                    f"indices_or_counts (indices) must lie in [0, {self.num_codes}), got range "
                    f"[{int(flat.min())}, {int(flat.max())}]"
                )
            new = torch.bincount(flat, minlength=self.num_codes).to(
                device=self.counts.device, dtype=torch.float32
            )
        if self.decay is None:
            self.counts.add_(new)
        else:
            self.counts.mul_(self.decay).add_(new, alpha=1.0 - self.decay)
            self.synced.mul_(self.decay)

    @torch.no_grad()
    def sync(self) -> None:
        """Make ``counts`` global: c ← synced + Σ_ranks (c_r − synced), one all-reduce.

        ``synced`` is identical on every rank (it is the value after the previous sync, decayed
        the same way everywhere), so the result is the sum (or the EMA of the summed counts)
        over all ranks. A no-op outside ``torch.distributed``; all ranks must call it.
        """
        if not _distributed.is_distributed():
            self.synced.copy_(self.counts)
            return
        local = self.counts - self.synced
        _distributed.all_reduce_sum_(local)
        self.counts.copy_(self.synced + local)
        self.synced.copy_(self.counts)

    @torch.no_grad()
    def reset(self) -> None:
        """Zero the counts (start a new window)."""
        self.counts.zero_()
        self.synced.zero_()

    def perplexity(self) -> Tensor:
        """exp(−Σ p_k ln p_k) of the current counts (0-d fp32; 0 before any data)."""
        return perplexity(self.counts)

    def usage(self) -> Tensor:
        """Fraction of codes with a non-zero count (0-d fp32)."""
        return usage(self.counts)

    def dead(self, threshold: float = 1.0) -> Tensor:
        """Number of codes whose count is below ``threshold`` (0-d int64).

        Arguments:
            threshold: default 1.0, i.e. codes never chosen when counts are raw sums.
        """
        return (self.counts < threshold).sum()
