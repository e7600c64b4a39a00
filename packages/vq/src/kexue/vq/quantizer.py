"""`VectorQuantizer`: nearest-code assignment, straight-through estimator, losses, EMA codebook.

Forward (spec §2.1–§2.7), for an input z flattened to (N, D):

- k*(i) = argmin_k ‖z_i − e_k‖² through :func:`kexue.vq.functional.nearest_code` (no N×K tensor);
- z_q = z + sg(e_{k*} − z) (straight-through estimator, ``estimator="ste"``, default), or the
  rotation trick (``estimator="rotation"``, arXiv:2410.06424, :mod:`kexue.vq.rotation`); the forward
  value is the code e_{k*} bit for bit with either;
- ``sample="gumbel"`` draws the code from softmax(−d/τ) in training (:mod:`kexue.vq.sampling`);
- ``mask=`` / ``lens=`` exclude padded positions from everything (index −1, output = input);
- losses: commitment β·‖z − sg(e)‖², and, for a learned codebook (``decay=None``), the codebook
  term codebook_weight·‖sg(z) − e‖²; ``reduction="mean"`` averages over all N·D elements (paper,
  Su 2019), ``"sum_per_sample"`` sums and divides by the batch size B = x.shape[0] (Su 2023);
- with ``decay`` set, the codebook is an EMA of assigned inputs (buffers, not parameters; updated
  in training mode only, see :mod:`kexue.vq.ema`), and there is no codebook loss.

**The EMA statistics ``cluster_size`` and ``embed_avg`` are buffers, not parameters**: the optimiser
never sees them; they live in ``state_dict``. Under bf16/fp16 autocast the quantiser's maths runs in
fp32 with autocast disabled; the quantised output comes back in the input dtype, the losses in fp32.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._codebook_init import _CodebookInitMixin
from ._distributed import all_reduce_sum_, is_distributed
from ._implicit import work_dtype
from ._layout import check_layout, flatten_input, unflatten
from ._options import _DEFAULTS, QUANTIZER_PRESETS, _validate_options, _validate_sampling
from .ema import _ema_codebook, _ema_update_
from .functional import _counts_and_sums, _nearest_code, perplexity, usage
from .restart import DeadCodeRestart
from .rotation import rotation_trick, straight_through
from .sampling import gumbel_nearest

__all__ = ["QUANTIZER_PRESETS", "QuantizerOutput", "VectorQuantizer"]

#: EMA decay of the usage counts kept for statistics when the codebook is learned (decay=None).
STATS_DECAY = 0.99
#: With no dead-code threshold configured, ``stats["dead_codes"]`` counts EMA counts below this
#: fraction of ``init_count`` (≈ 460 steps unused at γ = 0.99).
DEAD_FLOOR = 1e-2
_INDEX_DTYPES = (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8)


class QuantizerOutput(NamedTuple):
    """Result of a quantiser forward.

    Attributes:
        quantized: z_q, same shape and dtype as the input (straight-through gradient).
        indices: int64 code indices, the input's shape without D (residual/grouped: plus a last
            axis of size num_quantizers/groups).
        loss: scalar total loss (fp32; fp64 for fp64 inputs).
        losses: {"commitment", "codebook", "total"} scalars.
        stats: {"perplexity", "usage", "dead_codes"} 0-d tensors (detached; over valid positions
            only), plus ``"rotation_fallback"`` (rows that fell back to the STE) with
            ``estimator="rotation"``. A dict here; FSQ, LFQ, SimVQ and their residual stacks
            return a read-only mapping that computes ``perplexity`` / ``usage`` on first access.
    """

    quantized: Tensor
    indices: Tensor
    loss: Tensor
    losses: dict[str, Tensor]
    stats: Mapping[str, Tensor]


class VectorQuantizer(_CodebookInitMixin):
    """Vector quantiser with a straight-through estimator and an optional EMA codebook.

    Arguments:
        num_codes: K, the codebook size.
        dim: D, the input feature size.
        codebook_dim: lookup dimension; when set and ≠ D, ``project_in``/``project_out`` linear maps
            surround the lookup (Improved VQGAN, arXiv:2110.04627; 8–32 per lucidrains README).
        layout: ``"channels_last"`` (x is (..., D)) or ``"channels_first"`` (x is (B, D, *spatial)).
        metric: ``"l2"`` or ``"cosine"`` (inputs and codes L2-normalised; codes re-normalised after
            each EMA update; commitment on the normalised vectors).
        beta: commitment weight β; 0.25 [VQ-VAE §3.2].
        codebook_weight: weight of ‖sg(z) − e‖² for a learned codebook; 1.0 [VQ-VAE §3.2].
        reduction: ``"mean"`` over all elements (paper, Su 2019) or ``"sum_per_sample"`` (Su 2023).
        decay: EMA decay γ ∈ [0, 1) (0.99 [VQ-VAE appendix]); ``None`` = learned codebook (a
            parameter). γ = 0 sets each used code to its batch mean.
        eps: Laplace smoothing ε >= 0; 1e-5 [VQ-VAE appendix]. A code whose smoothed count is 0
            (γ = 0 with ε = 0, or an empty batch at γ = 0) keeps its vector instead of 0/0.
        init_count: n₀; the EMA starts at N_k = n₀, m_k = n₀·e_k (spec §2.4), also after k-means,
            restart and :meth:`load_codebook`.
        kmeans_init: initialise the codebook by k-means (k-means++ seeding) on the first training
            batch (or call :meth:`init_codebook_`).
        kmeans_iters: Lloyd iterations; 10 (lucidrains default).
        kmeans_plusplus: k-means++ seeding (default True, vqtorch); False seeds with random batch
            samples (lucidrains).
        kmeans_on_few_samples: ``"error"`` (default) raises when the first batch holds fewer
            vectors than codes; ``"repeat"`` warns and seeds from noisy copies of the samples
            (see :func:`kexue.vq.kmeans.kmeans`).
        dead_code_threshold: shorthand for ``restart=DeadCodeRestart("threshold", threshold=...)``;
            0.0 = off (lucidrains ``threshold_ema_dead_code`` default).
        restart: a :class:`~kexue.vq.restart.DeadCodeRestart` policy, or None.
        projection_norm: LayerNorm after ``project_in`` (needs a projection).
        sync: ``"auto"`` (all-reduce when ``torch.distributed`` has > 1 rank), True or False.
        precision: assignment precision passed to ``nearest_code`` (``"auto"`` = ``"fp32"``,
            ``"fp32"``, ``"rerank"`` = bf16 operands on the Triton path); every mode and backend
            returns the same (exact) indices, the kernel being certified.
        backend: ``"auto"``, ``"triton"`` or ``"torch"``.
        deterministic: deterministic accumulation of EMA counts and sums.
        estimator: ``"ste"`` (default) or ``"rotation"`` (the rotation trick, Fifty et al. 2024,
            arXiv:2410.06424: gradient λRᵀg, forward value still e bit for bit; applied in the
            codebook space; rows with ‖z‖ or ‖e‖ < 1e-12 or z nearly opposite e use the STE and
            are counted in ``stats["rotation_fallback"]``). ``preset="lucidrains_compat"`` sets
            ``"rotation"`` (vector-quantize-pytorch's default).
        sample: ``"argmax"`` (default, nearest code) or ``"gumbel"``: in training, draw the code
            from softmax(−d/τ) (lucidrains ``stochastic_sample_codes``); eval stays argmax.
        temperature: τ > 0 of ``sample="gumbel"``; 1.0.
        sample_distance: d of ``sample="gumbel"``: ``"sq_l2"`` (default) or ``"l2"`` (lucidrains).
        preset: ``"paper"``, ``"su_compat"`` or ``"lucidrains_compat"`` (see :data:`QUANTIZER_PRESETS`); a
            preset only replaces arguments left at their defaults.

    References:
        VQ-VAE, arXiv:1711.00937; VQ-VAE-2, arXiv:1906.00446; https://kexue.fm/archives/6760.
    """

    cluster_size: Tensor
    initted: Tensor

    def __init__(
        self,
        num_codes: int,
        dim: int,
        *,
        codebook_dim: int | None = None,
        layout: Literal["channels_last", "channels_first"] = "channels_last",
        metric: Literal["l2", "cosine"] = "l2",
        beta: float = 0.25,
        codebook_weight: float = 1.0,
        reduction: Literal["mean", "sum_per_sample"] = "mean",
        decay: float | None = 0.99,
        eps: float = 1e-5,
        init_count: float = 1.0,
        kmeans_init: bool = False,
        kmeans_iters: int = 10,
        kmeans_plusplus: bool = True,
        kmeans_on_few_samples: Literal["error", "repeat"] = "error",
        dead_code_threshold: float = 0.0,
        restart: DeadCodeRestart | None = None,
        projection_norm: bool = False,
        sync: bool | Literal["auto"] = "auto",
        precision: Literal["auto", "fp32", "rerank"] = "auto",
        backend: Literal["auto", "triton", "torch"] = "auto",
        deterministic: bool = True,
        estimator: Literal["ste", "rotation"] = "ste",
        sample: Literal["argmax", "gumbel"] = "argmax",
        temperature: float = 1.0,
        sample_distance: Literal["sq_l2", "l2"] = "sq_l2",
        preset: str | None = None,
    ) -> None:
        super().__init__()
        opts = {"beta": beta, "codebook_weight": codebook_weight, "reduction": reduction}
        opts.update(decay=decay, eps=eps, estimator=estimator)
        if preset is not None:
            if preset not in QUANTIZER_PRESETS:
                raise ValueError(
                    f"preset must be one of {sorted(QUANTIZER_PRESETS)} or None, got {preset!r}"
                )
            for key, value in QUANTIZER_PRESETS[preset].items():
                if opts[key] == _DEFAULTS[key]:
                    opts[key] = value
        beta, codebook_weight, reduction = opts["beta"], opts["codebook_weight"], opts["reduction"]
        decay, eps, estimator = opts["decay"], opts["eps"], opts["estimator"]
        _validate_sampling(estimator, sample, temperature, sample_distance)
        self.estimator, self.sample = estimator, sample
        self.temperature, self.sample_distance = float(temperature), sample_distance
        _validate_options(
            num_codes=num_codes,
            dim=dim,
            codebook_dim=codebook_dim,
            metric=metric,
            beta=beta,
            codebook_weight=codebook_weight,
            reduction=reduction,
            decay=decay,
            eps=eps,
            init_count=init_count,
            kmeans_iters=kmeans_iters,
            dead_code_threshold=dead_code_threshold,
            sync=sync,
            precision=precision,
            backend=backend,
        )
        check_layout(layout)
        if restart is not None and dead_code_threshold > 0:
            raise ValueError("give either restart or dead_code_threshold, not both")
        if dead_code_threshold > 0:
            restart = DeadCodeRestart("threshold", threshold=dead_code_threshold)
        self.num_codes, self.dim, self.layout, self.metric = num_codes, dim, layout, metric
        self.beta, self.codebook_weight, self.reduction = float(beta), codebook_weight, reduction
        self.decay, self.eps, self.init_count = decay, float(eps), float(init_count)
        self.kmeans_init, self.kmeans_iters = bool(kmeans_init), int(kmeans_iters)
        if kmeans_on_few_samples not in ("error", "repeat"):
            raise ValueError(
                f"kmeans_on_few_samples must be 'error' or 'repeat', got {kmeans_on_few_samples!r}"
            )
        self.kmeans_plusplus, self.kmeans_on_few_samples = (
            bool(kmeans_plusplus),
            kmeans_on_few_samples,
        )
        self.sync, self.precision, self.backend = sync, precision, backend
        self.deterministic, self.preset = bool(deterministic), preset
        self.codebook_dim = dim if codebook_dim is None else int(codebook_dim)

        self.project_in: nn.Linear | None = None
        self.project_out: nn.Linear | None = None
        self.project_norm: nn.LayerNorm | None = None
        if self.codebook_dim != dim:
            self.project_in = nn.Linear(dim, self.codebook_dim)
            self.project_out = nn.Linear(self.codebook_dim, dim)
            if projection_norm:
                self.project_norm = nn.LayerNorm(self.codebook_dim)
        elif projection_norm:
            raise ValueError(
                f"projection_norm=True needs a projection (codebook_dim != dim = {dim}), "
                f"got codebook_dim={codebook_dim}"
            )

        embed = self._initial_codebook(preset)
        if decay is None:
            self.embed = nn.Parameter(embed)
        else:
            self.register_buffer("embed", embed)
            self.register_buffer("embed_avg", embed.detach().clone() * self.init_count)
        self.register_buffer("cluster_size", torch.full((num_codes,), self.init_count))
        self.register_buffer("initted", torch.tensor(False))
        self.restart = restart
        if restart is not None:
            restart.setup_(num_codes)
        # (z, indices, valid) of deferred training calls, or None (update in every forward)
        self._pending: list[tuple[Tensor, Tensor, Tensor | None]] | None = None

    def extra_repr(self) -> str:
        return (
            f"num_codes={self.num_codes}, dim={self.dim}, codebook_dim={self.codebook_dim}, "
            f"layout={self.layout!r}, metric={self.metric!r}, beta={self.beta}, "
            f"decay={self.decay}, reduction={self.reduction!r}, estimator={self.estimator!r}"
        )

    # ------------------------------------------------------------------ helpers
    @property
    def codebook(self) -> Tensor:
        """(K, codebook_dim) effective codebook (unit rows for cosine), in the lookup space."""
        return self._effective_codebook(self.embed.dtype)

    def _effective_codebook(self, dtype: torch.dtype) -> Tensor:
        embed = self.embed.to(dtype)
        if self.metric == "cosine":
            # clone: normalize saves its input for backward, and a restart later in the same
            # forward rewrites the codebook's storage in place (through .data)
            embed = F.normalize(embed.clone(), dim=-1, eps=1e-12)
        return embed

    def _resolved_sync(self) -> bool:
        return is_distributed() if self.sync == "auto" else bool(self.sync) and is_distributed()

    def _to_codebook_space(self, z: Tensor) -> Tensor:
        if self.project_in is not None:
            z = F.linear(z, self.project_in.weight.to(z.dtype), self.project_in.bias.to(z.dtype))
            if self.project_norm is not None:
                norm = self.project_norm
                z = F.layer_norm(
                    z, norm.normalized_shape, norm.weight.to(z.dtype), norm.bias.to(z.dtype)
                )
        if self.metric == "cosine":
            z = F.normalize(z, dim=-1, eps=1e-12)
        return z

    def _to_output_space(self, z: Tensor) -> Tensor:
        if self.project_out is None:
            return z
        w, b = self.project_out.weight, self.project_out.bias
        return F.linear(z, w.to(z.dtype), b.to(z.dtype))

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        x: Tensor,
        mask: Tensor | None = None,
        lens: Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
    ) -> QuantizerOutput:
        """Quantise ``x``.

        Arguments:
            x: (..., D) for ``layout="channels_last"`` or (B, D, *spatial) for ``"channels_first"``.
            mask: optional bool tensor of x's shape without D (True = valid). Padded positions
                get index −1, ``quantized`` equal to the input (bitwise), and are excluded from
                the losses (means over valid rows), the EMA counts and sums, k-means, restart
                candidates and LRU countdowns, and the usage statistics.
            lens: optional (B,) integer lengths instead of ``mask``, for x (B, T, D) (or
                (B, D, T) channels_first): position t of sample b is valid iff t < lens[b].
            generator: random source of ``sample="gumbel"`` (training only).

        Returns:
            :class:`QuantizerOutput` (quantized in x's shape and dtype, int64 indices of x's shape
            without D, total loss, losses dict, stats dict).
        """
        flat, index_shape, mask = flatten_input(x, self.dim, self.layout, mask, lens)
        valid = None if mask is None else mask.reshape(-1)
        dtype = work_dtype(x)
        with torch.autocast(device_type=x.device.type, enabled=False):
            z = self._to_codebook_space(flat.to(dtype))
            sync = self._resolved_sync()
            if self.training and not bool(self.initted):
                self._first_batch_(z.detach(), valid, sync)
            indices, z_q, losses, extra = self._quantize(z, valid, x.shape[0], generator)
            out = self._to_output_space(z_q)
            if valid is not None:  # padded rows: the input, bit for bit
                out = torch.where(valid[:, None], out, flat.to(out.dtype))
            if self.training and self._pending is None:
                counts = self._update_(z.detach(), indices, valid, sync)
            else:
                counts = self._counts(indices, valid)
                if self.training:  # shared codebook: ResidualVQ applies one pooled update
                    self._pending.append((z.detach(), indices, valid))
            stats = {**self._stats(counts), **extra}
        quantized = unflatten(out, index_shape, self.layout).to(x.dtype)
        if valid is not None:
            indices = indices.masked_fill(~valid, -1)
        return QuantizerOutput(
            quantized, indices.reshape(index_shape), losses["total"], losses, stats
        )

    def _quantize(
        self, z: Tensor, valid: Tensor | None, batch: int, generator: torch.Generator | None
    ) -> tuple[Tensor, Tensor, dict[str, Tensor], dict[str, Tensor]]:
        """Assignment, losses and estimator on codebook-space rows z (N, d); no state change.

        Returns (indices (N,) (garbage on padded rows), z_q (N, d), losses, extra stats).
        """
        codebook = self._effective_codebook(z.dtype)
        indices = self._assign(z.detach(), codebook.detach(), generator)
        e = codebook[indices]
        w = None if valid is None else valid.to(z.dtype)
        commitment = self.beta * self._reduce((z - e.detach()).pow(2), batch, w)
        if self.decay is None:
            sq = (z.detach() - e).pow(2)
            codebook_loss = self.codebook_weight * self._reduce(sq, batch, w)
        else:
            codebook_loss = commitment.new_zeros(())
        extra: dict[str, Tensor] = {}
        if self.estimator == "rotation":
            z_q, fallback = rotation_trick(z, e)
            if valid is not None:
                fallback = fallback & valid
            extra["rotation_fallback"] = fallback.sum().to(torch.float32)
        else:  # z + sg(e − z), written so that the forward value is e bit for bit
            z_q = straight_through(z, e)
        total = commitment + codebook_loss
        losses = {"commitment": commitment, "codebook": codebook_loss, "total": total}
        return indices, z_q, losses, extra

    def _reduce(self, sq: Tensor, batch: int, w: Tensor | None) -> Tensor:
        """Mean over valid elements (``"mean"``) or valid sum / B (``"sum_per_sample"``)."""
        if w is None:
            return sq.mean() if self.reduction == "mean" else sq.sum() / batch
        total = (sq.sum(dim=-1) * w).sum()
        if self.reduction == "mean":
            return total / (w.sum().clamp_min(1.0) * sq.shape[-1])
        return total / batch

    def _assign(
        self, z: Tensor, codebook: Tensor, generator: torch.Generator | None = None
    ) -> Tensor:
        # z and the codebook stay fp32 (fp64) on every backend: the kernel is certified exact on
        # them, so Triton and torch return the same indices.
        if self.sample == "gumbel" and self.training:
            return gumbel_nearest(
                z, codebook, temperature=self.temperature, distance=self.sample_distance,
                generator=generator,
            )  # fmt: skip
        indices, _ = _nearest_code(
            z, codebook, metric="l2", precision=self.precision, backend=self.backend
        )
        return indices

    def _counts(self, indices: Tensor, valid: Tensor | None) -> Tensor:
        """(K,) fp32 counts of the valid rows' indices (padded rows go to a dropped bin K)."""
        if valid is None:
            return torch.bincount(indices, minlength=self.num_codes).to(torch.float32)
        binned = torch.where(valid, indices, self.num_codes)
        return torch.bincount(binned, minlength=self.num_codes + 1)[:-1].to(torch.float32)

    @torch.no_grad()
    def _update_(self, z: Tensor, indices: Tensor, valid: Tensor | None, sync: bool) -> Tensor:
        """EMA update (or usage counting) on the valid rows, one collective, then restart."""
        if self.decay is not None:
            k = self.num_codes
            if valid is None:
                counts, sums = _counts_and_sums(
                    indices, z.float(), k, backend=self.backend, deterministic=self.deterministic
                )
            else:  # padded rows land in an extra bin K that is dropped: no boolean indexing
                binned = torch.where(valid, indices, k)
                counts, sums = _counts_and_sums(
                    binned, z.float(), k + 1, backend=self.backend,
                    deterministic=self.deterministic,
                )  # fmt: skip
                counts, sums = counts[:k], sums[:k]
            if sync:
                all_reduce_sum_(counts, sums)
            _ema_update_(self.cluster_size, self.embed_avg, counts, sums, decay=self.decay)
            # codes with smoothed count 0 (decay 0 and eps 0, or an empty batch) keep their code
            new = _ema_codebook(self.cluster_size, self.embed_avg, self.eps, self.embed)
            if self.metric == "cosine":
                new = F.normalize(new, dim=-1, eps=1e-12)
            self.embed.copy_(new.to(self.embed.dtype))
        else:
            counts = self._counts(indices, valid)
            if sync:
                all_reduce_sum_(counts)
            self.cluster_size.mul_(STATS_DECAY).add_(
                counts.to(self.cluster_size), alpha=1 - STATS_DECAY
            )
        if self.restart is not None:
            self.restart.step_(
                self.embed.data,
                z,
                counts=counts,
                cluster_size=self.cluster_size,
                embed_avg=self.embed_avg if self.decay is not None else None,
                init_count=self.init_count,
                normalize=self.metric == "cosine",
                sync=sync,
                valid=valid,
            )
        return counts

    @torch.no_grad()
    def _pooled_update_(self, sync: bool) -> None:
        """One EMA step (and restart) on the valid rows of every deferred call, then clear."""
        parts, self._pending = self._pending or [], []
        if not parts:
            return
        z = torch.cat([p[0] for p in parts])
        indices = torch.cat([p[1] for p in parts])
        valid = torch.cat(
            [p[2] if p[2] is not None else torch.ones_like(p[1], dtype=torch.bool) for p in parts]
        )
        self._update_(z, indices, valid, sync)

    def _dead_threshold(self) -> float:
        if self.restart is not None and self.restart.mode == "threshold" and self.restart.enabled:
            return self.restart.threshold
        return DEAD_FLOOR * self.init_count

    @torch.no_grad()
    def _stats(self, counts: Tensor) -> dict[str, Tensor]:
        dead = (self.cluster_size < self._dead_threshold()).sum().to(torch.float32)
        return {"perplexity": perplexity(counts), "usage": usage(counts), "dead_codes": dead}

    @torch.no_grad()
    def lookup(self, indices: Tensor) -> Tensor:
        """Code vectors for ``indices``, projected back to D and laid out like the input.

        Arguments:
            indices: integer tensor of shape (...) (at least 1 axis), values in [0, K) or −1
                (a padded position or dropped stage), which maps to the zero vector.

        Returns:
            (..., D) for channels_last or (B, D, ...) for channels_first, in the codebook dtype.
        """
        integer = isinstance(indices, Tensor) and indices.dtype in _INDEX_DTYPES
        if not integer or indices.dim() < 1:
            raise ValueError(
                "indices must be an integer tensor (int64, int32, int16, int8 or uint8; "
                "not bool) with at least 1 axis, got "
                f"{getattr(indices, 'dtype', type(indices))} of shape "
                f"{tuple(getattr(indices, 'shape', ()))}"
            )
        if indices.numel():
            lo, hi = torch.stack([indices.min(), indices.max()]).long().tolist()
            if lo < -1 or hi >= self.num_codes:
                raise ValueError(
                    f"indices must lie in [0, {self.num_codes}) or be -1, got range [{lo}, {hi}] "
                    f"(shape {tuple(indices.shape)})"
                )
        dtype = self.embed.dtype
        flat = indices.reshape(-1).long()
        vectors = self._to_output_space(self._effective_codebook(dtype)[flat.clamp_min(0)])
        vectors = vectors.masked_fill((flat < 0)[:, None], 0.0)
        return unflatten(vectors, tuple(indices.shape), self.layout)
