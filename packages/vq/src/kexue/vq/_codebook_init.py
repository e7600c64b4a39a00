"""Codebook initialisation of :class:`~kexue.vq.quantizer.VectorQuantizer` (private mixin).

k-means on the first batch (valid rows only), :meth:`init_codebook_`, :meth:`load_codebook` and the
first-step broadcast under DDP. Every path re-initialises the EMA state consistently: N = n (the
k-means bin, else n₀) and m = e·N (spec §2.4; lucidrains#66).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._distributed import broadcast_
from ._layout import check_input, flatten

__all__: list[str] = []


class _CodebookInitMixin(nn.Module):
    """Initialisation methods; the host class defines the attributes used here."""

    embed: Tensor
    embed_avg: Tensor
    cluster_size: Tensor
    initted: Tensor

    def _initial_codebook(self, preset: str | None) -> Tensor:
        shape = (self.num_codes, self.codebook_dim)
        if preset == "su_compat":  # Keras "uniform" initializer, U(−0.05, 0.05) [bojone/vae]
            embed = torch.empty(shape).uniform_(-0.05, 0.05)
        elif preset == "lucidrains_compat":  # kaiming-uniform [lucidrains]
            embed = nn.init.kaiming_uniform_(torch.empty(shape), a=math.sqrt(5))
        else:  # N(0, 1), as rosinality/vq-vae-2-pytorch
            embed = torch.randn(shape)
        if self.metric == "cosine":
            embed = F.normalize(embed, dim=-1, eps=1e-12)
        return embed

    @torch.no_grad()
    def _set_codebook_(self, codebook: Tensor, counts: Tensor | None = None) -> None:
        """Set the codebook and re-initialise the EMA consistently: N = n, m = e·n."""
        if self.metric == "cosine":
            codebook = F.normalize(codebook, dim=-1, eps=1e-12)
        self.embed.data.copy_(codebook.to(self.embed.dtype))
        n = torch.full_like(self.cluster_size, self.init_count)
        if counts is not None:  # k-means bins; empty clusters keep the n₀ init (e stays finite)
            counts = counts.to(n)
            n = torch.where(counts > 0, counts, n)
        self.cluster_size.copy_(n)
        if self.decay is not None:
            self.embed_avg.copy_(self.embed.to(self.embed_avg.dtype) * n.unsqueeze(-1))
        self.initted.fill_(True)

    @torch.no_grad()
    def _kmeans_(self, z: Tensor) -> None:
        from .kmeans import kmeans  # imported when k-means is used

        centroids, counts = kmeans(
            z.float(),
            self.num_codes,
            iters=self.kmeans_iters,
            plusplus=self.kmeans_plusplus,
            on_few_samples=self.kmeans_on_few_samples,
            generator=None,
            backend=self.backend,
            sync=self.sync,
        )
        self._set_codebook_(centroids, counts)

    @torch.no_grad()
    def init_codebook_(self, data: Tensor) -> None:
        """Initialise the codebook by k-means on ``data`` (in the input layout), EMA consistently.

        After it, N_k = bins_k (n₀ for empty clusters) and m_k = e_k·N_k (lucidrains#66).

        Arguments:
            data: samples in the module's layout, e.g. (N, D) or (B, D, H, W) for channels_first.
        """
        check_input(data, self.dim, self.layout, name="data")
        flat, _ = flatten(data, self.layout)
        dtype = torch.float64 if data.dtype == torch.float64 else torch.float32
        self._kmeans_(self._to_codebook_space(flat.to(dtype)))

    @torch.no_grad()
    def load_codebook(self, codebook: Tensor) -> None:
        """Replace the codebook by ``codebook`` (K, codebook_dim), with N = n₀, m = n₀·e.

        The quantiser then counts as initialised: a pending ``kmeans_init`` (or the first-step
        broadcast under DDP) no longer runs.

        Arguments:
            codebook: (K, codebook_dim) tensor of finite values.
        """
        expected = (self.num_codes, self.codebook_dim)
        if not isinstance(codebook, Tensor) or tuple(codebook.shape) != expected:
            got = tuple(codebook.shape) if isinstance(codebook, Tensor) else type(codebook)
            raise ValueError(f"codebook must have shape {expected}, got {got}")
        if not bool(torch.isfinite(codebook).all()):
            raise ValueError("codebook contains NaN or inf values")
        self._set_codebook_(codebook)

    @torch.no_grad()
    def _first_batch_(self, z: Tensor, valid: Tensor | None, sync: bool) -> None:
        # Same branch on every rank (the flag is identical), so the collectives cannot hang.
        if self.kmeans_init:
            self._kmeans_(z if valid is None else z[valid])  # padded rows excluded
        elif sync:
            tensors = [self.embed.data, self.cluster_size]
            if self.decay is not None:
                tensors.append(self.embed_avg)
            broadcast_(*tensors, src=0)
        self.initted.fill_(True)
