"""Semirings of the CRF chain: log (partition), max (Viterbi), k-max (n-best).

Every semiring here works on log-scores, so ⊗ is ``+`` and a real potential (an emission, a
transition, a start or end score) is ⊗-multiplied by broadcasting addition. They differ in ⊕, the
reduction over the previous tag (and in what an element holds):

- :data:`LOG`: ⊕ = logsumexp; an element is one score. The chain's total is log Z, and its
  gradient with respect to the emissions is the unary marginals.
- :data:`MAX`: ⊕ = max, with the argmax as witness (ties → the lowest index, ``torch.max``'s
  rule); the total is the best path score and the witnesses are Viterbi back-pointers.
- :class:`KMax` ``(k)``: an element is the k best scores, sorted (trailing dim of size k,
  −inf where fewer paths exist); ⊕ = top-k over the union of the reduced lists, with the witness
  ``tag · k + rank`` of each kept entry. ``KMax(1)`` is :data:`MAX`.

References:
    - Goodman 1999, "Semiring Parsing" (Computational Linguistics 25(4)).
    - Rush 2020, "Torch-Struct: Deep Structured Prediction Library", arXiv 2002.00876
      (one dynamic program, several semirings; the k-max semiring).
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["LOG", "MAX", "KMax", "Semiring"]


class Semiring:
    """A semiring over log-scores (⊗ = +). Subclasses define :meth:`lift` and :meth:`plus`.

    Attributes:
        ranks: the size of an element's trailing rank dim (k for k-max), or None when an element
            is a single score.
        has_witness: :meth:`plus` returns back-pointers (max and k-max), else None.
    """

    ranks: int | None = None
    has_witness = False

    def lift(self, x: Tensor) -> Tensor:
        """Real scores (..., ) → semiring elements (..., [ranks])."""
        return x

    def plus(self, x: Tensor, dim: int) -> tuple[Tensor, Tensor | None]:
        """⊕-reduce ``x`` over ``dim`` (a tag dim, not the rank dim); return (values, witness)."""
        raise NotImplementedError

    def identity_witness(self, shape: tuple[int, int], device: torch.device) -> Tensor:
        """Witness of "stay": (B, K[, ranks]) pointers from each entry to itself (padded steps)."""
        b, k = shape
        tags = torch.arange(k, device=device)
        if self.ranks is None:
            return tags.expand(b, k)
        r = self.ranks
        return (tags[:, None] * r + torch.arange(r, device=device)).expand(b, k, r)


class _Log(Semiring):
    def plus(self, x: Tensor, dim: int) -> tuple[Tensor, None]:
        return torch.logsumexp(x, dim), None

    def __repr__(self) -> str:
        return "LOG"


class _Max(Semiring):
    has_witness = True

    def plus(self, x: Tensor, dim: int) -> tuple[Tensor, Tensor]:
        values, index = torch.max(x, dim)  # ties → the first (lowest) index
        return values, index

    def __repr__(self) -> str:
        return "MAX"


class KMax(Semiring):
    """The k-max semiring: an element is its k best scores in descending order.

    Arguments:
        k: the number of scores kept (≥ 1).
    """

    has_witness = True

    def __init__(self, k: int) -> None:
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be a positive int, got {k!r}")
        self.ranks = k

    def lift(self, x: Tensor) -> Tensor:
        out = x.new_full((*x.shape, self.ranks), float("-inf"))
        out[..., 0] = x
        return out

    def plus(self, x: Tensor, dim: int) -> tuple[Tensor, Tensor]:
        k = self.ranks
        x = x.movedim(dim, -2)  # (..., N, k)
        values, flat = x.reshape(*x.shape[:-2], -1).topk(k, dim=-1)  # flat = tag · k + rank
        return values, flat

    def __repr__(self) -> str:
        return f"KMax({self.ranks})"


LOG: Semiring = _Log()
MAX: Semiring = _Max()
