"""Vectorised cut helpers shared by the word-discovery algorithms (private).

A text chunk is an id array (0 = boundary, see :mod:`kexue.textkit.terms._arrays`) aligned with
its string. A *join mask* ``join[i]`` says characters i and i+1 belong to one piece; pieces are the
maximal joined runs of non-zero ids. Pieces of length ≤ 4 are counted with packed int64 keys and
``np.unique``; longer (rare) pieces with a ``Counter`` over their strings.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from . import _arrays as _A

__all__: list[str] = []

_MAX_PACKED = 4


def run_lengths(ids: np.ndarray, cap: int) -> np.ndarray:
    """r[i] = number of consecutive non-zero ids starting at i, capped at ``cap``."""
    n = len(ids)
    idx = np.arange(n)
    nxt = np.where(ids == 0, idx, n)
    nxt = np.minimum.accumulate(nxt[::-1])[::-1]
    return np.minimum(nxt - idx, cap)


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _slots(keys: np.ndarray, bits: int) -> np.ndarray:
    """Fibonacci hashing of keys ≥ 0: the top ``bits`` bits of key·φ⁻¹·2⁶⁴ (one temporary)."""
    h = np.multiply(keys.view(np.uint64), _GOLDEN)
    h >>= np.uint64(64 - bits)
    return h.view(np.int64)


class KeySet:
    """Open-addressing hash set of int64 keys (≥ 0) with vectorised build and lookup.

    Load factor ≤ 1/4, linear probing; a lookup costs about one gather per query (the table of a
    few thousand keys stays in cache, where a binary search over the sorted keys would not help).
    """

    def __init__(self, keys: np.ndarray) -> None:
        keys = _A.unique(np.asarray(keys, dtype=np.int64))
        self.bits = max(4, int(4 * max(len(keys), 1) - 1).bit_length())
        size = 1 << self.bits
        self.mask = size - 1
        table = np.full(size, -1, dtype=np.int64)
        where = np.full(size, -1, dtype=np.int64)  # slot -> position in the sorted keys
        self.keys = keys
        pend, pidx = keys, np.arange(len(keys))
        h = _slots(pend, self.bits)
        while len(pend):
            free = table[h] == -1
            # among keys probing the same free slot, the first one takes it
            cand = np.flatnonzero(free)
            _, first = np.unique(h[cand], return_index=True)
            won = cand[first]
            table[h[won]] = pend[won]
            where[h[won]] = pidx[won]
            placed = np.zeros(len(pend), dtype=bool)
            placed[won] = True
            pend, pidx, h = pend[~placed], pidx[~placed], (h[~placed] + 1) & self.mask
        self.table = table
        self.where = where

    def index(self, q: np.ndarray) -> np.ndarray:
        """Position of each query in the sorted unique keys, −1 when absent."""
        q = np.ascontiguousarray(q, dtype=np.int64)
        out = np.full(len(q), -1, dtype=np.int64)
        idx = np.arange(len(q))
        h = _slots(q, self.bits)
        qq = q
        while len(idx):
            s = self.table[h]
            hit = s == qq
            out[idx[hit]] = self.where[h[hit]]
            go = ~hit & (s != -1)
            idx, qq, h = idx[go], qq[go], (h[go] + 1) & self.mask
        return out

    def contains(self, q: np.ndarray) -> np.ndarray:
        """Bool mask of the queries present in the set."""
        q = np.ascontiguousarray(q, dtype=np.int64)
        h = _slots(q, self.bits)
        s = self.table[h]
        out = s == q  # first probe over all queries, without index bookkeeping
        idx = np.flatnonzero(~out & (s != -1))  # occupied by another key: probe on
        qq, h = q[idx], (h[idx] + 1) & self.mask
        while len(idx):
            s = self.table[h]
            hit = s == qq
            out[idx[hit]] = True
            go = ~hit & (s != -1)
            idx, qq, h = idx[go], qq[go], (h[go] + 1) & self.mask
        return out


def member(keys: np.ndarray, table: np.ndarray | KeySet) -> np.ndarray:
    """Bool mask of ``keys`` present in ``table`` (a sorted key array or a :class:`KeySet`)."""
    if isinstance(table, KeySet):
        return table.contains(keys)
    if len(table) == 0:
        return np.zeros(len(keys), dtype=bool)
    p = np.minimum(np.searchsorted(table, keys), len(table) - 1)
    return table[p] == keys


class PieceCounts:
    """Piece counts: packed (keys, counts) per length ≤ 4 (sorted) plus a Counter of longer ones."""

    def __init__(self) -> None:
        self.short: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
        self.long: Counter[str] = Counter()

    def update(self, other: PieceCounts) -> None:
        for m, parts in other.short.items():
            self.short.setdefault(m, []).extend(parts)
        self.long.update(other.long)
        self.compact()

    def compact(self) -> None:
        for m, parts in self.short.items():
            if len(parts) > 1:
                self.short[m] = [_A.merge_sorted(parts)]

    def at_least(self, min_count: int) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """Per length ≤ 4: sorted keys and counts of the pieces counted ≥ ``min_count``."""
        self.compact()
        out = {}
        for m, parts in self.short.items():
            k, c = parts[0]
            keep = c >= min_count
            out[m] = (k[keep], c[keep])
        return out

    def to_dict(self, min_count: int, base: int, vocab: np.ndarray) -> dict[str, int]:
        """``{piece: count}`` of the pieces counted ≥ ``min_count``."""
        out: dict[str, int] = {}
        for m, (k, c) in self.at_least(min_count).items():
            out.update(zip(_A.decode_keys(k, m, base, vocab), c.tolist()))
        out.update((w, c) for w, c in self.long.items() if c >= min_count)
        return out

    def total(self) -> int:
        """Number of pieces counted."""
        self.compact()
        return int(sum(int(p[0][1].sum()) for p in self.short.values()) + sum(self.long.values()))


def count_pieces(text: str, ids: np.ndarray, join: np.ndarray, base: int) -> PieceCounts:
    """Counts of the pieces of one chunk under the join mask (``join`` has len(ids) − 1 entries)."""
    n = len(ids)
    nz = ids != 0
    j = np.zeros(n, dtype=bool)
    j[:-1] = join & nz[:-1] & nz[1:]
    prev = np.zeros(n, dtype=bool)
    prev[1:] = j[:-1]
    starts = np.flatnonzero(nz & ~prev)
    ends = np.flatnonzero(nz & ~j) + 1
    lengths = ends - starts
    out = PieceCounts()
    for m in range(1, _MAX_PACKED + 1):
        s = starts[lengths == m]
        if len(s) == 0:
            continue
        key = ids[s].copy()
        for k in range(1, m):
            key *= base
            key += ids[s + k]
        out.short[m] = [_A.unique_counts_inplace(key)]
    long_sel = lengths > _MAX_PACKED
    if long_sel.any():
        out.long.update(
            text[a:b] for a, b in zip(starts[long_sel].tolist(), ends[long_sel].tolist())
        )
    return out
