"""Quantizer dropout for residual quantisers (SoundStream §3.3; DAC): train with fewer stages.

In training, each sample (``per_sample=True``, DAC) or the whole batch (lucidrains
``quantize_dropout``) keeps only its first n_q stages, n_q drawn uniformly from
[``min_stages``, Q] with probability ``p`` (else n_q = Q) and rounded up to a multiple of
``multiple_of`` (capped at Q). A dropped (sample, stage) pair counts as a padded row for that
stage: index −1, no loss, no EMA statistics, no restart candidate, and a zero contribution to the
output.

No collective (lucidrains#198 hangs on its all-reduced seed): the draw comes from a CPU generator
seeded with (``seed``, step), where ``step`` is a buffer advanced by every training draw. Under
``torch.distributed`` every rank draws the n_q of the *global* batch (world × local B samples, in
rank order; equal local batch sizes assumed) and keeps its own slice, so a 2-rank run draws
exactly what one process draws on the concatenated batch.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ._distributed import rank, world_size

__all__ = ["QuantizerDropout"]


class QuantizerDropout(nn.Module):
    """Random truncation of the residual stack in training (spec §2.7).

    Arguments:
        p: probability that a sample (or the batch) is truncated; 1.0 (every step, as
            SoundStream); 0 disables dropout.
        min_stages: smallest number of kept stages, >= 1 (lucidrains
            ``quantize_dropout_cutoff_index`` + 1); 1.
        multiple_of: n_q is rounded up to a multiple of this (lucidrains
            ``quantize_dropout_multiple_of``); 1.
        per_sample: draw n_q per sample (True, DAC/SoundStream) or once per batch (lucidrains).
        seed: base seed of the draws; 0.

    References:
        SoundStream, arXiv:2107.03312, §3.3; DAC, arXiv:2306.06546, §3.2.
    """

    step: Tensor

    def __init__(
        self,
        p: float = 1.0,
        *,
        min_stages: int = 1,
        multiple_of: int = 1,
        per_sample: bool = True,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if not 0.0 <= float(p) <= 1.0:
            raise ValueError(f"p must be in [0, 1], got {p!r}")
        if int(min_stages) < 1 or int(multiple_of) < 1:
            raise ValueError(
                f"min_stages and multiple_of must be >= 1, got {min_stages!r}, {multiple_of!r}"
            )
        self.p, self.min_stages, self.multiple_of = float(p), int(min_stages), int(multiple_of)
        self.per_sample, self.seed = bool(per_sample), int(seed)
        self.register_buffer("step", torch.zeros((), dtype=torch.int64))

    def extra_repr(self) -> str:
        return (
            f"p={self.p}, min_stages={self.min_stages}, multiple_of={self.multiple_of}, "
            f"per_sample={self.per_sample}, seed={self.seed}"
        )

    @torch.no_grad()
    def draw(self, batch: int, num_stages: int) -> Tensor:
        """Number of kept stages n_q per local sample, (batch,) int64 on CPU; advances ``step``.

        Arguments:
            batch: local batch size B.
            num_stages: Q.
        """
        if self.min_stages > num_stages:
            raise ValueError(
                f"min_stages = {self.min_stages} exceeds the number of stages {num_stages}"
            )
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + int(self.step))
        self.step.add_(1)
        total = batch * world_size() if self.per_sample else 1
        drop = torch.rand(total, generator=g) < self.p
        n_q = torch.randint(self.min_stages, num_stages + 1, (total,), generator=g)
        m = self.multiple_of
        n_q = ((n_q + m - 1) // m * m).clamp_max(num_stages)
        n_q = torch.where(drop, n_q, num_stages)
        if not self.per_sample:
            return n_q.expand(batch).clone()
        return n_q[rank() * batch : (rank() + 1) * batch]
