"""Finite scalar quantisation (FSQ): a bounded, rounded latent whose codebook is an implicit grid.

Mentzer et al. 2023, "Finite Scalar Quantization: VQ-VAE Made Simple", arXiv:2309.15505; Su
Jianlin's post https://kexue.fm/archives/9826. Spec: ``vq-modern.md`` §2.1. No codebook, no loss, no
EMA: each of the d = len(levels) dimensions is squashed to L_i levels and rounded with a
straight-through estimator; the code index is the mixed-radix number of the level digits.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor

from ._implicit import ProjectedQuantizer, no_autocast, work_dtype
from ._masking import IndexStats, check_count
from .quantizer import QuantizerOutput

__all__ = ["FSQ", "FSQ_LEVELS", "MAX_IMPLICIT_CODES"]

#: Recommended levels per target codebook size 2^bits [FSQ paper §4.1, Table 1]; products are
#: 240, 1000, 4375, 15360 and 64000 codes.
FSQ_LEVELS: dict[int, tuple[int, ...]] = {
    8: (8, 6, 5),
    10: (8, 5, 5, 5),
    12: (7, 5, 5, 5, 5),
    14: (8, 8, 8, 6, 5),
    16: (8, 8, 8, 5, 5, 5),
}

#: ``implicit_codebook()`` refuses larger grids unless ``force=True`` (spec §2.1; lucidrains#99).
MAX_IMPLICIT_CODES = 2**24

_EPS = 1e-3  # ε of the bound's half-width h = (L − 1)(1 + ε)/2 [lucidrains `FSQ.bound`, 5f7851b]
_BOUNDS = ("paper", "symmetric")


Scalar = Tensor | float  # a per-level constant: a (d,) tensor, or a float when all L_i are equal


class _Grid(NamedTuple):
    """Per-level constants of the bound in one dtype/device (see :meth:`FSQ._grid`)."""

    half_l: Scalar  # paper: h = (L − 1)(1 + ε)/2
    offset: Scalar  # paper: ½ for even L, else 0
    shift: Scalar  # paper: artanh(offset/h)
    half: Scalar  # paper: ⌊L/2⌋
    lm1: Scalar  # symmetric: L − 1
    step: Scalar  # symmetric: 2/(L − 1)
    slope: Scalar  # ∂codes/∂bounded value: h/⌊L/2⌋ (paper) or (2/(L−1))·(L−1)/2 (symmetric)
    basis: Tensor  # B_i, in the dtype that sums the digits exactly (int64 above 2^53 codes)
    base: Tensor  # 0-d: Σ ⌊L_i/2⌋·B_i (paper: index = Σ round(·)·B_i + base), 0 (symmetric)


class _BoundRound(torch.autograd.Function):
    """z (..., d) → (codes, indices): the bounded, rounded codes with a straight-through gradient,
    and their int64 indices (no gradient). One op chain, no autograd graph inside; the backward is
    the closed form slope·(1 − t²)·g (tanh) or slope·1[|z| ≤ 1]·g (hard clamp)."""

    @staticmethod
    def forward(ctx: Any, z: Tensor, grid: _Grid, symmetric: bool, hard: bool) -> Any:
        if hard:
            t = z.clamp(-1.0, 1.0)
        else:
            t = torch.tanh(z) if symmetric else torch.add(z, grid.shift).tanh_()
        if symmetric:  # ẑ = (2/(L−1))·⌊(L−1)(t + 1)/2 + ½⌋ − 1, digit = the floor
            digits = (t + 1).mul_(grid.lm1).div_(2).add_(0.5).floor_()
            codes = (digits * grid.step).sub_(1.0)
        else:  # ẑ = round(h·t − o)/⌊L/2⌋, digit = round(·) + ⌊L/2⌋
            digits = (t * grid.half_l).sub_(grid.offset).round_()
            codes = digits / grid.half
        indices = _sum_digits(digits, grid.basis, grid.base)
        # intermediates kept as attributes (no double backward): the tanh or the clamp's inside mask
        ctx.saved, ctx.slope, ctx.hard = ((z.abs() <= 1.0) if hard else t), grid.slope, hard
        ctx.mark_non_differentiable(indices)
        return codes, indices

    @staticmethod
    def backward(ctx: Any, grad_codes: Tensor, _grad_indices: Tensor) -> Any:
        saved, slope = ctx.saved, ctx.slope
        if ctx.hard:
            grad = grad_codes * saved
        else:  # g·(1 − t²)
            grad = torch.ops.aten.tanh_backward(grad_codes, saved)
        return grad.mul_(slope), None, None, None


def _sum_digits(digits: Tensor, basis: Tensor, base: Tensor | None = None) -> Tensor:
    """int64 indices (..., C) of integer-valued float digits (..., C·d): Σ_i digits_i·B_i (+ base)
    per head of d = len(basis), exactly (``basis`` fp32 up to 2^24 codes, fp64 up to 2^53, else
    int64)."""
    heads = (*digits.shape[:-1], digits.shape[-1] // basis.shape[0])
    flat = digits.reshape(-1, basis.shape[0])
    if basis.dtype == torch.int64:
        out = (flat.to(torch.int64) * basis).sum(dim=-1)
        return (out if base is None else out + base).view(heads)
    if flat.dtype != basis.dtype:
        flat = flat.to(basis.dtype)
    out = torch.mv(flat, basis) if base is None else torch.addmv(base, flat, basis)
    return out.to(torch.int64).view(heads)


def _build_grid(
    levels: Tensor, bound: str, num_codes: int, dtype: torch.dtype, heads: int
) -> _Grid:
    """The constants of :class:`_Grid` for int64 ``levels`` (d,), computed in ``dtype``; the
    element-wise ones repeated for ``heads`` heads side by side (C·d,)."""
    basis = torch.cumprod(torch.cat([levels.new_ones(1), levels[:-1]]), 0)
    base_value = (levels // 2 * basis).sum() if bound == "paper" else basis.new_zeros(())
    levels = levels.repeat(heads)
    lv = levels.to(dtype)
    half_l = (lv - 1) * (1 + _EPS) / 2
    offset = torch.where(levels % 2 == 0, 0.5, 0.0).to(dtype)
    half = (levels // 2).to(dtype)
    lm1, step = lv - 1, 2.0 / (lv - 1)
    slope = step * lm1 / 2 if bound == "symmetric" else half_l / half
    shift = torch.atanh(offset / half_l)
    if num_codes <= 2**24:  # every partial sum of the digits is exact in fp32
        index_dtype = torch.float64 if dtype == torch.float64 else torch.float32
    else:
        index_dtype = torch.float64 if num_codes <= 2**53 else torch.int64
    consts: list[Scalar] = [half_l, offset, shift, half, lm1, step, slope]
    if bool((levels == levels[0]).all()):
        consts = [float(c[0]) for c in consts]
    return _Grid(*consts, basis.to(index_dtype), base_value.to(index_dtype))


def _check_levels(levels: Sequence[int], bound: str) -> list[int]:
    if isinstance(levels, (str, bytes)) or not isinstance(levels, Sequence) or len(levels) == 0:
        raise ValueError(f"levels must be a non-empty sequence of ints, got {levels!r}")
    out = []
    for level in levels:
        if isinstance(level, bool) or not isinstance(level, int) or level < 2:
            raise ValueError(f"levels must be ints >= 2, got {list(levels)!r}")
        out.append(int(level))
    if bound not in _BOUNDS:
        raise ValueError(f"bound must be one of {_BOUNDS}, got {bound!r}")
    if bound == "paper" and 2 in out:
        raise ValueError(
            "levels contains 2, whose only threshold under bound='paper' sits in tanh's saturated "
            "tail (lucidrains#237); use bound='symmetric' or levels >= 3"
        )
    if math.prod(out) > 2**62:
        raise ValueError(f"levels give {math.prod(out)} codes, more than int64 indices can hold")
    return out


class FSQ(ProjectedQuantizer):
    """Finite scalar quantiser with an implicit codebook of Π L_i codes.

    Per dimension i (``bound="paper"``): h = (L−1)(1+ε)/2, ε = 1e-3, o = ½ for even L else 0,
    s = artanh(o/h), b(z) = h·tanh(z + s) − o, ẑ = round_STE(b)/⌊L/2⌋. Odd L gives the levels
    {−1, …, 1}; even L gives {−1, −1+2/L, …, 1−2/L} (asymmetric, never +1). ``bound="symmetric"``
    (arXiv:2411.19842) gives L equally spaced levels including ±1:
    ẑ = (2/(L−1))·⌊(L−1)(tanh z + 1)/2 + ½⌋_STE − 1; it is required for L = 2.

    Index = Σ ℓ_i·B_i with level digits ℓ_i ∈ [0, L_i) and B_i = Π_{j<i} L_j (first dim least
    significant), as lucidrains. The quantisation runs in fp32 (fp64 for fp64 inputs) with autocast
    off; outputs come back in the input dtype.

    Arguments:
        levels: L_i per dimension, each >= 2 (see :data:`FSQ_LEVELS` for the paper's tables).
        dim: input feature size D; default ``len(levels) * num_codebooks``. When different,
            ``project_in``/``project_out`` linear maps surround the quantiser.
        num_codebooks: C independent FSQ heads over C slices of the projected feature (shared
            levels); indices gain a last axis of size C when C > 1.
        bound: ``"paper"`` (default, index parity with lucidrains' ``FSQ``) or ``"symmetric"``.
        hard_clamp: replace tanh by a clamp to [−1, 1] (used by :class:`ResidualFSQ` on inputs
            that are already soft-clamped).

    Returns (forward):
        :class:`QuantizerOutput` with ``loss = 0``, empty ``losses`` and stats
        ``{"perplexity", "usage"}`` (mean over codebooks, valid positions only).

    References:
        Mentzer et al. 2023, arXiv:2309.15505 (Appendix A.1); https://kexue.fm/archives/9826;
        lucidrains/vector-quantize-pytorch ``FSQ`` (v1.31.0).

    Example:
        >>> fsq = FSQ(FSQ_LEVELS[10])
        >>> out = fsq(torch.randn(2, 16, 4))
        >>> out.indices.shape, out.quantized.shape
        (torch.Size([2, 16]), torch.Size([2, 16, 4]))
    """

    levels: Tensor
    basis: Tensor

    def __init__(
        self,
        levels: Sequence[int],
        dim: int | None = None,
        *,
        num_codebooks: int = 1,
        bound: str = "paper",
        hard_clamp: bool = False,
    ) -> None:
        super().__init__()
        lv = _check_levels(levels, bound)
        check_count("num_codebooks", num_codebooks)
        self._init_projection(dim, len(lv) * num_codebooks)
        self.num_codebooks = num_codebooks
        self.codebook_dim = len(lv)
        self.num_codes = math.prod(lv)
        self.bound = bound
        self.hard_clamp = bool(hard_clamp)
        self.register_buffer("levels", torch.tensor(lv, dtype=torch.int64), persistent=False)
        basis = [math.prod(lv[:i]) for i in range(len(lv))]
        self.register_buffer("basis", torch.tensor(basis, dtype=torch.int64), persistent=False)
        self._grids: dict[tuple[torch.dtype, torch.device, int], _Grid] = {}

    def extra_repr(self) -> str:
        return (
            f"levels={self.levels.tolist()}, dim={self.dim}, num_codebooks={self.num_codebooks}, "
            f"bound={self.bound!r}, num_codes={self.num_codes}"
        )

    # -- the grid --------------------------------------------------------------------------------

    def _grid(self, dtype: torch.dtype, device: torch.device, heads: int = 1) -> _Grid:
        """The bound's per-level constants in ``dtype`` on ``device``, built once and cached.

        With equal levels they are Python floats (the exact ``dtype`` values): the element-wise
        ops then run without broadcasting a (d,) tensor."""
        key = (dtype, device, heads)
        grid = self._grids.get(key)
        if grid is None:
            grid = _build_grid(self.levels.to(device), self.bound, self.num_codes, dtype, heads)
            self._grids[key] = grid
        return grid

    def _bound_round(self, z: Tensor, heads: int = 1) -> tuple[Tensor, Tensor]:
        """(codes (..., C·d), int64 indices (..., C)) of z (..., C·d), C = ``heads`` side by side,
        in z's floating dtype; codes carry the STE gradient."""
        grid = self._grid(z.dtype, z.device, heads)
        symmetric = self.bound == "symmetric"
        return _BoundRound.apply(z, grid, symmetric, self.hard_clamp)

    def quantize(self, z: Tensor) -> Tensor:
        """Bound and round z: (..., d) → normalised codes (..., d) in [−1, 1], STE gradient."""
        return self._bound_round(z)[0]

    def _digits(self, codes: Tensor) -> Tensor:
        lv = self.levels.to(codes.dtype)
        if self.bound == "symmetric":
            digits = (codes + 1) * (lv - 1) / 2
        else:
            half = (self.levels // 2).to(codes.dtype)
            digits = codes * half + half
        return digits.round()

    def codes_to_indices(self, codes: Tensor) -> Tensor:
        """Normalised codes (..., d) → int64 indices (...), mixed radix, first dim least significant."""
        if codes.shape[-1:] != (self.codebook_dim,):
            raise ValueError(
                f"codes must have shape (..., {self.codebook_dim}), got {tuple(codes.shape)}"
            )
        digits = self._digits(codes)
        work = torch.promote_types(digits.dtype, torch.float32)
        return _sum_digits(digits, self._grid(work, digits.device).basis).squeeze(-1)

    def indices_to_codes(self, indices: Tensor) -> Tensor:
        """int64 indices (...) in [0, K) → normalised codes (..., d), fp32 (no projection)."""
        if indices.dtype.is_floating_point or indices.dtype == torch.bool:
            raise ValueError(f"indices must be an integer tensor, got {indices.dtype}")
        digits = (indices.to(torch.int64).unsqueeze(-1) // self.basis) % self.levels
        lv = self.levels.to(torch.float32)
        if self.bound == "symmetric":
            return digits * (2.0 / (lv - 1)) - 1.0
        half = (self.levels // 2).to(torch.float32)
        return (digits - half) / half

    def implicit_codebook(self, *, force: bool = False) -> Tensor:
        """All Π L_i codes, (K, d) fp32 normalised, row k = ``indices_to_codes(k)``.

        Built on demand, never in ``forward``; raises above :data:`MAX_IMPLICIT_CODES` codes unless
        ``force=True`` (a 2³² grid would take ~34 GB, lucidrains#99).
        """
        if self.num_codes > MAX_IMPLICIT_CODES and not force:
            raise ValueError(
                f"levels give {self.num_codes} codes > MAX_IMPLICIT_CODES={MAX_IMPLICIT_CODES}; "
                "pass force=True to build it anyway"
            )
        return self.indices_to_codes(torch.arange(self.num_codes, device=self.levels.device))

    def lookup(self, indices: Tensor) -> Tensor:
        """Indices (...) or (..., C) → output-space vectors (..., D); index −1 gives the zero vector."""
        idx = self._head_indices(indices, self.num_codebooks)
        codes = self.indices_to_codes(idx.clamp_min(0)).flatten(-2)
        return self._project_codes(codes, idx)

    # -- forward ---------------------------------------------------------------------------------

    def forward(
        self, x: Tensor, mask: Tensor | None = None, lens: Tensor | None = None
    ) -> QuantizerOutput:
        """Quantise x: (..., D). ``mask``: optional bool (...), True = valid; padded positions get
        index −1 and ``quantized`` = the input there, and are left out of the stats. ``lens``:
        (B,) integer lengths instead of ``mask`` for x (B, T, D) (valid iff t < lens[b])."""
        z, mask = self._enter(x, mask, lens)
        codes, indices = self._quantize_heads(z)
        quantized, indices = self._leave(codes, indices, z, x, mask)
        stats = IndexStats(indices, self.num_codes)
        if self.num_codebooks == 1:
            indices = indices.squeeze(-1)
        zero = torch.zeros((), dtype=work_dtype(x), device=x.device)
        return QuantizerOutput(quantized, indices, zero, {}, stats)

    def _quantize_heads(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """z (..., C·d) → codes (..., C·d) in the compute dtype, indices (..., C) int64."""
        work = work_dtype(z)
        zw = z if z.dtype == work else z.to(work)
        with no_autocast(z):
            return self._bound_round(zw, self.num_codebooks)
