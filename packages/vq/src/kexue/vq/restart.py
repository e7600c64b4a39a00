"""Dead-code restart: re-seed codes that stopped being used with vectors from the current batch.

Two policies (spec §2.5):

- ``"threshold"`` (SoundStream; lucidrains ``threshold_ema_dead_code``): a code is dead when its EMA
  count N_k falls below ``threshold``. Its EMA state is reset with it (the fix of
  lucidrains/vector-quantize-pytorch#45): N_k = threshold, m_k = threshold·e_k.
- ``"lru"`` (vqtorch ``ReplaceLRU``): every code carries a countdown that is reset to ``timeout`` when
  the code is used and decremented otherwise; codes reaching 0 are re-seeded (plus mutation noise)
  and their EMA state is reset to N_k = n₀ (the quantiser's ``init_count``), m_k = n₀·e_k.

Under ``torch.distributed`` the dead mask and the replacement vectors are chosen on rank 0 from its
batch and **broadcast** (one fixed-size broadcast every step, whatever the data), so every rank applies
the identical restart and no collective depends on data (lucidrains#25, #105, #205).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from ._distributed import broadcast_, is_distributed

__all__ = ["DeadCodeRestart"]


class DeadCodeRestart(nn.Module):
    """Replace dead codes by random vectors of the current batch and reset their EMA state.

    The quantiser calls :meth:`setup_` once with its codebook size and :meth:`step_` after every
    training EMA update (an O(K·D) torch op).

    Arguments:
        mode: ``"threshold"`` (EMA count below ``threshold``) or ``"lru"`` (countdown reached 0).
        threshold: EMA-count threshold for ``"threshold"`` mode; 2.0 [spec §2.5]; 0 disables restarts.
        timeout: steps without use before a code is dead in ``"lru"`` mode; 20 (vqtorch README
            ``replace_freq = 20``).
        noise: standard deviation of Gaussian noise added to each replacement vector (the vqtorch
            "mutation"); 0.0 = none. Applied in both modes.
        reset_ema: whether to reset N_k and m_k of replaced codes (True; lucidrains#45).

    References:
        SoundStream, arXiv:2107.03312, §3.3; vqtorch (Huh et al. 2023, arXiv:2305.08842).
    """

    countdown: Tensor

    def __init__(
        self,
        mode: Literal["threshold", "lru"] = "threshold",
        *,
        threshold: float = 2.0,
        timeout: int = 20,
        noise: float = 0.0,
        reset_ema: bool = True,
    ) -> None:
        super().__init__()
        if mode not in ("threshold", "lru"):
            raise ValueError(f"mode must be 'threshold' or 'lru', got {mode!r}")
        if threshold < 0:
            raise ValueError(f"threshold must be >= 0, got {threshold}")
        if timeout < 1:
            raise ValueError(f"timeout must be >= 1, got {timeout}")
        if noise < 0:
            raise ValueError(f"noise must be >= 0, got {noise}")
        self.mode = mode
        self.threshold = float(threshold)
        self.timeout = int(timeout)
        self.noise = float(noise)
        self.reset_ema = bool(reset_ema)
        self.register_buffer("countdown", torch.zeros(0, dtype=torch.long))

    def extra_repr(self) -> str:
        return (
            f"mode={self.mode!r}, threshold={self.threshold}, timeout={self.timeout}, "
            f"noise={self.noise}, reset_ema={self.reset_ema}"
        )

    @property
    def enabled(self) -> bool:
        """False for threshold mode with threshold 0 (a no-op)."""
        return self.mode == "lru" or self.threshold > 0

    def setup_(self, num_codes: int) -> None:
        """Size the LRU countdown buffer for ``num_codes`` codes (each starts at ``timeout``).

        Arguments:
            num_codes: K, the codebook size of the quantiser that owns this policy.
        """
        self.countdown = torch.full(
            (num_codes,), self.timeout, dtype=torch.long, device=self.countdown.device
        )

    @torch.no_grad()
    def dead_mask(self, *, counts: Tensor, cluster_size: Tensor) -> Tensor:
        """The (K,) bool mask of dead codes; in LRU mode this also advances the countdowns.

        Arguments:
            counts: (K,) batch counts of this step (all-reduced under DDP).
            cluster_size: (K,) EMA counts after this step's update.

        Returns:
            (K,) bool tensor.
        """
        if self.mode == "threshold":
            return cluster_size < self.threshold
        if self.countdown.shape != counts.shape:
            raise ValueError(
                f"countdown has shape {tuple(self.countdown.shape)} but counts has "
                f"{tuple(counts.shape)}; call setup_(num_codes) first"
            )
        self.countdown.sub_(1)
        self.countdown.masked_fill_(counts > 0, self.timeout)
        return self.countdown <= 0

    @torch.no_grad()
    def step_(
        self,
        codebook: Tensor,
        batch: Tensor,
        *,
        counts: Tensor,
        cluster_size: Tensor,
        embed_avg: Tensor | None = None,
        init_count: float = 1.0,
        normalize: bool = False,
        sync: bool = False,
        generator: torch.Generator | None = None,
        valid: Tensor | None = None,
    ) -> Tensor:
        """Find dead codes and re-seed them in place from ``batch``.

        Arguments:
            codebook: (K, D) codebook, modified in place.
            batch: (N, D) vectors of the current step (in codebook space), N ≥ 1. Replacements are
                drawn uniformly with replacement.
            counts: (K,) batch counts (all-reduced under DDP).
            cluster_size: (K,) EMA counts, reset in place for dead codes when ``reset_ema``.
            embed_avg: (K, D) EMA sums or None (learned codebook), reset in place likewise.
            init_count: n₀, the count given to codes replaced in ``"lru"`` mode.
            normalize: L2-normalise the replacements (cosine codebooks).
            sync: choose the mask and replacements on rank 0 and broadcast them.
            generator: random source for the draw (and the noise).
            valid: optional (N,) bool, True for rows that may become replacements (padded rows
                are never drawn). A step whose deciding rank (rank 0 under ``sync``, else this
                process) has no valid row replaces nothing; the collectives stay the same.

        Returns:
            (K,) bool mask of the codes that were replaced.
        """
        num_codes, dim = codebook.shape
        if batch.dim() != 2 or batch.shape[1] != dim or batch.shape[0] < 1:
            raise ValueError(
                f"batch must be (N >= 1, {dim}) like codebook {tuple(codebook.shape)}, "
                f"got {tuple(batch.shape)}"
            )
        if not self.enabled:
            return torch.zeros(num_codes, dtype=torch.bool, device=codebook.device)
        dead = self.dead_mask(counts=counts, cluster_size=cluster_size)
        gen_device = generator.device if generator is not None else batch.device
        if valid is None:
            pick = torch.randint(
                batch.shape[0], (num_codes,), generator=generator, device=gen_device
            )
        else:  # uniform over the valid rows (a fixed-size draw, no host sync)
            w = valid.to(device=gen_device, dtype=torch.float32)
            has_valid = w.sum() > 0
            w = torch.where(has_valid, w, torch.ones_like(w))
            pick = torch.multinomial(w, num_codes, replacement=True, generator=generator)
            dead = dead & has_valid.to(dead.device)
        candidates = batch.detach()[pick.to(batch.device)].to(torch.float32)
        if self.noise > 0:
            noise = torch.randn(candidates.shape, generator=generator, device=gen_device)
            candidates = candidates + self.noise * noise.to(candidates.device)
        if normalize:
            candidates = nn.functional.normalize(candidates, dim=-1, eps=1e-12)
        if sync and is_distributed():
            flag = dead.to(torch.float32)
            broadcast_(flag, candidates, src=0)
            dead = flag > 0.5
        new = torch.where(dead.unsqueeze(-1), candidates.to(codebook.dtype), codebook)
        codebook.copy_(new)
        if self.mode == "lru":
            self.countdown.masked_fill_(dead, self.timeout)
        if self.reset_ema:
            count = self.threshold if self.mode == "threshold" else float(init_count)
            cluster_size.masked_fill_(dead, count)
            if embed_avg is not None:
                embed_avg.copy_(
                    torch.where(dead.unsqueeze(-1), codebook.to(embed_avg.dtype) * count, embed_avg)
                )
        return dead
