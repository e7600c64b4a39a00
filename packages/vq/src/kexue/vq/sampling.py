"""Stochastic code sampling: a Gumbel-max draw from softmax(−d(x, e_k)/τ), chunked over rows.

k ~ Categorical(softmax_k(−d_ik/τ)) is drawn as argmax_k(−d_ik/τ + G_ik) with G_ik i.i.d.
Gumbel(0, 1) (the Gumbel-max trick), d the squared (``"sq_l2"``, default; RQ-VAE) or plain
(``"l2"``, lucidrains ``stochastic_sample_codes``) Euclidean distance. Rows are processed in chunks
of at most ``DEFAULT_CHUNK_BYTES`` of fp64 logits, so no N×K tensor is formed. Distances are
computed in fp64 on data translated by the codebook mean (no cancellation at large offsets), so
τ → 0 recovers the nearest code (up to fp64 rounding of the distances).

The noise is keyed, not streamed: one 62-bit key is drawn from ``generator`` per call, and the
noise of row block b (blocks of ⌈2²⁰/K⌉ rows, a function of K only) comes from a fresh generator
on x's device seeded with key + b. The draw therefore does not depend on the chunk size (on any
device), and the whole call consumes one number from ``generator``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ._reference import DEFAULT_CHUNK_BYTES

__all__ = ["SAMPLE_DISTANCES", "gumbel_nearest"]

SAMPLE_DISTANCES = ("sq_l2", "l2")
_NOISE_BLOCK = 2**20  # noise elements per row block


def gumbel_nearest(
    x: Tensor,
    codebook: Tensor,
    *,
    temperature: float = 1.0,
    distance: str = "sq_l2",
    generator: torch.Generator | None = None,
    chunk_size: int | None = None,
) -> Tensor:
    """Sample one code per row of ``x`` from softmax(−d(x_i, e_k)/τ) by the Gumbel-max trick.

    Arguments:
        x: (N, D) floating rows.
        codebook: (K, D) codes.
        temperature: τ > 0; 1.0 (lucidrains ``sample_codebook_temp``).
        distance: ``"sq_l2"`` (default) or ``"l2"``.
        generator: source of the Gumbel noise (its device may differ from x's); None = global RNG.
        chunk_size: rows per chunk (rounded to whole noise blocks); default from a 32 MiB fp64
            budget. The result does not depend on it.

    Returns:
        (N,) int64 sampled code indices.

    References:
        Gumbel-max: Maddison, Tarlow, Minka 2014 (arXiv:1411.0030); RQ-VAE stochastic sampling,
        Lee et al. 2022, arXiv:2203.01941; https://kexue.fm/archives/6760.
    """
    if not (
        isinstance(temperature, (int, float)) and temperature > 0 and math.isfinite(temperature)
    ):
        raise ValueError(f"temperature must be a finite float > 0, got {temperature!r}")
    if distance not in SAMPLE_DISTANCES:
        raise ValueError(f"distance must be one of {SAMPLE_DISTANCES}, got {distance!r}")
    n, k = x.shape[0], codebook.shape[0]
    block = max(1, _NOISE_BLOCK // k)  # rows per noise block: depends on K only
    if chunk_size is None:
        chunk_size = max(1, DEFAULT_CHUNK_BYTES // (8 * 3 * k))
    chunk_size = max(block, chunk_size // block * block)  # whole blocks per chunk
    e = codebook.detach().to(torch.float64)
    mu = e.mean(dim=0)
    e = e - mu
    e_sq = (e * e).sum(dim=1)
    gen_device = generator.device if generator is not None else torch.device("cpu")
    key = int(torch.randint(2**62, (1,), generator=generator, device=gen_device))
    out = torch.empty(n, dtype=torch.int64, device=x.device)
    for start in range(0, n, chunk_size):
        stop = min(start + chunk_size, n)
        xc = x[start:stop].detach().to(torch.float64) - mu
        d = ((xc * xc).sum(dim=1, keepdim=True) + e_sq - 2.0 * xc @ e.T).clamp_min_(0.0)
        if distance == "l2":
            d = d.sqrt_()
        gumbel = torch.cat(
            [_block_gumbel(key, b, min(block, n - b * block), k, x.device)
             for b in range(start // block, (stop + block - 1) // block)]
        )  # fmt: skip
        out[start:stop] = (gumbel - d / temperature).argmax(dim=1)
    return out


def _block_gumbel(key: int, b: int, rows: int, k: int, device: torch.device) -> Tensor:
    """Gumbel(0, 1) noise (rows, K) of row block b, from a generator seeded with key + b."""
    g = torch.Generator(device=device).manual_seed((key + b) % 2**63)
    u = torch.rand(rows, k, generator=g, dtype=torch.float64, device=device)
    return -torch.log(-torch.log(u.clamp_min_(torch.finfo(torch.float64).tiny)))
