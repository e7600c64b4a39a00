"""``mask=`` / ``lens=`` and argument checks of the 0.2 quantisers (LFQ, SimVQ; private).

``mask`` is bool with x's shape without D (True = valid); ``lens`` (B,) integer lengths of a
(B, T, D) input give mask = arange(T) < lens[:, None]. The two are exclusive.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import torch
from torch import Tensor, nn

from .functional import perplexity

__all__ = [
    "IndexStats",
    "check_count",
    "check_float_input",
    "index_stats",
    "pad_outputs",
    "project_codes",
    "resolve_mask",
    "row_weights",
]

#: Above this many codes the usage stats count distinct indices with a sort instead of bins.
MAX_BINNED_CODES = 2**24


def check_count(name: str, value: object) -> int:
    """``value`` as an int >= 1, or a ValueError naming ``name`` (bools rejected)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    return value


def check_float_input(x: Tensor, dim: int) -> None:
    """Raise ValueError naming ``x`` unless it is a floating tensor of shape (..., dim)."""
    if not isinstance(x, Tensor) or not x.dtype.is_floating_point:
        raise ValueError(f"x must be a floating-point tensor, got {getattr(x, 'dtype', type(x))}")
    if x.dim() < 1 or x.shape[-1] != dim:
        raise ValueError(f"x must have shape (..., {dim}), got {tuple(x.shape)}")


def resolve_mask(x: Tensor, mask: Tensor | None, lens: Tensor | None) -> Tensor | None:
    """The bool valid-position mask of x (..., D) from ``mask`` or ``lens`` (None: all valid)."""
    if mask is not None and lens is not None:
        raise ValueError("pass either mask= or lens=, not both")
    if lens is not None:
        if not isinstance(lens, Tensor) or lens.dtype.is_floating_point or lens.dtype == torch.bool:
            raise ValueError(
                f"lens must be an integer tensor, got {getattr(lens, 'dtype', type(lens))}"
            )
        if x.dim() != 3 or lens.shape != x.shape[:1]:
            raise ValueError(
                f"lens must have shape (B,) for x of shape (B, T, D), got lens "
                f"{tuple(lens.shape)} and x {tuple(x.shape)}"
            )
        steps = torch.arange(x.shape[1], device=x.device)
        return steps < lens.to(x.device).unsqueeze(-1)
    if mask is not None:
        if not isinstance(mask, Tensor) or mask.dtype != torch.bool:
            raise ValueError(
                f"mask must be a bool tensor, got {getattr(mask, 'dtype', type(mask))}"
            )
        if mask.shape != x.shape[:-1]:
            raise ValueError(
                f"mask must have shape {tuple(x.shape[:-1])} (x without D), got {tuple(mask.shape)}"
            )
    return mask


def row_weights(mask: Tensor | None, rows: int, like: Tensor) -> tuple[Tensor, Tensor]:
    """(w (rows,), total): 1 for valid rows and 0 for padded ones, and max(Σ w, 1) (no host sync)."""
    if mask is None:
        w = torch.ones(rows, dtype=like.dtype, device=like.device)
    else:
        w = mask.reshape(rows).to(like.dtype)
    return w, w.sum().clamp_min(1.0)


def pad_outputs(
    out: Tensor, indices: Tensor, x: Tensor, mask: Tensor | None
) -> tuple[Tensor, Tensor]:
    """Padded positions (mask False): output = the input x unchanged, every index −1."""
    if mask is None:
        return out, indices
    valid = mask.unsqueeze(-1)
    return torch.where(valid, out, x), indices.masked_fill(~valid, -1)


@torch.no_grad()
def index_stats(indices: Tensor, num_codes: int) -> dict[str, Tensor]:
    """Perplexity and usage of indices (..., C) per head (−1 skipped), averaged over heads.

    One ``bincount`` over all heads (head c shifted by c·(K + 1), −1 landing in a dropped bin);
    above :data:`MAX_BINNED_CODES` codes, distinct values by ``torch.unique`` instead.
    """
    flat = indices.reshape(-1, indices.shape[-1])
    heads = flat.shape[-1]
    if num_codes <= MAX_BINNED_CODES:
        shift = torch.arange(heads, device=flat.device) * (num_codes + 1)
        bins = torch.bincount((flat + 1 + shift).reshape(-1), minlength=heads * (num_codes + 1))
        counts = bins.view(heads, num_codes + 1)[:, 1:].to(torch.float64)
        ppl, use = perplexity(counts), (counts > 0).sum(-1) / num_codes
    else:
        ppl_list, use_list = [], []
        for c in range(heads):
            col = flat[:, c]
            _, n = torch.unique(col[col >= 0], return_counts=True)
            ppl_list.append(
                perplexity(n.to(torch.float64))
                if n.numel()
                else flat.new_zeros((), dtype=torch.float64)
            )
            use_list.append(torch.tensor(n.numel() / num_codes, dtype=torch.float64))
        ppl, use = torch.stack(ppl_list), torch.stack(use_list)
    return {
        "perplexity": ppl.mean().to(torch.float32),
        "usage": use.mean().to(torch.float32).to(indices.device),
    }


class IndexStats(Mapping[str, Tensor]):
    """The ``stats`` of a quantiser output: ``perplexity`` and ``usage`` of ``indices`` (as
    :func:`index_stats`), computed on first access, plus any ``extra`` entries given eagerly.

    A training step that never reads them pays nothing for them (no ``bincount``, and no host sync
    on devices where ``bincount`` needs one). They describe ``indices`` as they were returned:
    modifying that tensor in place before the first read changes them.
    """

    __slots__ = ("_extra", "_indices", "_num_codes", "_values")

    def __init__(
        self, indices: Tensor, num_codes: int, extra: dict[str, Tensor] | None = None
    ) -> None:
        self._indices: Tensor | None = indices
        self._num_codes = num_codes
        self._extra = dict(extra or {})
        self._values: dict[str, Tensor] | None = None

    def _resolved(self) -> dict[str, Tensor]:
        if self._values is None:
            assert self._indices is not None
            self._values = {**index_stats(self._indices, self._num_codes), **self._extra}
            self._indices = None
        return self._values

    def __getitem__(self, key: str) -> Tensor:
        if key in self._extra:
            return self._extra[key]
        return self._resolved()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(("perplexity", "usage", *(k for k in self._extra if k not in _STAT_KEYS)))

    def __len__(self) -> int:
        return len(_STAT_KEYS) + sum(k not in _STAT_KEYS for k in self._extra)

    def __repr__(self) -> str:
        return f"IndexStats({self._resolved()!r})"


_STAT_KEYS = ("perplexity", "usage")


def project_codes(project_out: nn.Module, codes: Tensor, indices: Tensor) -> Tensor:
    """``project_out`` of looked-up codes (..., d) in its weight's dtype; the zero vector where every
    index of a position (last axis of ``indices``) is −1."""
    weight = getattr(project_out, "weight", None)
    out = project_out(codes.to(weight.dtype) if weight is not None else codes)
    return out.masked_fill((indices < 0).all(dim=-1, keepdim=True), 0.0)
