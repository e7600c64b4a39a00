"""nlp-zero's de-redundancy step, vectorised per word length (private; used by ``WordFinder``).

Words of length ≤ 4 live in sorted packed-key tables whose counts mutate (0 = absent); longer ones
in a dict. Each length class (longest first) runs one batched unigram DP over all its words.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import _arrays as _A
from ._pieces import member

__all__: list[str] = []

_PACK = 4
_UNKNOWN = -100.0  # nlp-zero DAG null_score and log(0)


def _ids_matrix(words: list[str], length: int, vocab: np.ndarray) -> np.ndarray:
    cps = _A.codepoints("".join(words)).reshape(len(words), length)
    return np.searchsorted(vocab, cps).astype(np.int64) + 1


@dataclass
class _Tables:
    """Mutable counts of every candidate: packed-key tables for lengths ≤ 4 (``keys[ell]`` sorted,
    ``counts[ell]`` aligned, 0 = absent; ``keys[1]`` holds every character), a dict for longer
    words, the packed 4-character prefixes of the long words, and the running total."""

    vocab: np.ndarray
    base: int
    keys: dict[int, np.ndarray]
    counts: dict[int, np.ndarray]
    long_counts: dict[str, int]
    long_prefix: np.ndarray
    total: float

    @classmethod
    def build(cls, cands: dict[str, int], by_len: dict[int, list[str]]) -> _Tables:
        vocab = _A.unique(_A.codepoints("".join(cands))).astype(np.uint32)
        base = len(vocab) + 1
        keys = {1: np.arange(1, base, dtype=np.int64)}
        counts = {1: np.zeros(base - 1, dtype=np.int64)}
        for ell in range(1, _PACK + 1):
            ws = by_len.get(ell, [])
            k = _A.pack(_ids_matrix(ws, ell, vocab), base) if ws else np.zeros(0, np.int64)
            c = np.array([cands[w] for w in ws], dtype=np.int64)
            order = np.argsort(k)
            if ell == 1:
                counts[1][k[order] - 1] = c[order]
            else:
                keys[ell], counts[ell] = k[order], c[order]
        long_counts = {w: c for w, c in cands.items() if len(w) > _PACK}
        long_prefix = (
            _A.unique(_A.pack(_ids_matrix([w[:_PACK] for w in long_counts], _PACK, vocab), base))
            if long_counts
            else np.zeros(0, dtype=np.int64)
        )
        total = float(sum(cands.values()))
        return cls(vocab, base, keys, counts, long_counts, long_prefix, total)

    def words(self) -> dict[str, int]:
        """The surviving words (count > 0) with their counts."""
        out: dict[str, int] = {}
        for ell in range(1, _PACK + 1):
            k, c = self.keys[ell], self.counts[ell]
            sel = c > 0
            out.update(zip(_A.decode_keys(k[sel], ell, self.base, self.vocab), c[sel].tolist()))
        out.update({w: c for w, c in self.long_counts.items() if c > 0})
        return out


def remove_redundancy(cands: dict[str, int], *, threshold: str | float = "code") -> dict[str, int]:
    """De-redundancy of nlp-zero's ``Word_Finder.find`` (see ``WordFinder``).

    Arguments:
        cands: candidate words and counts.
        threshold: ``"code"`` (pmi < len(w) − 1 removes w) or a float constant.

    Returns:
        The surviving words (count > 0) with updated counts, including single characters that
        received counts from removed words.
    """
    if not cands:
        return {}
    by_len: dict[int, list[str]] = {}
    for w in cands:
        by_len.setdefault(len(w), []).append(w)
    t = _Tables.build(cands, by_len)
    for length in sorted(by_len, reverse=True):
        if length >= 2:
            thr = (length - 1) if threshold == "code" else float(threshold)
            _remove_class(t, length, by_len[length] if length > _PACK else None, thr)
    return t.words()


def _remove_class(t: _Tables, length: int, words: list[str] | None, thr: float) -> None:
    """One length class: the surviving words (``words`` for a long class, else the table's),
    their best splits by one batched DP, and the removal of those with pmi < ``thr`` (their
    counts go to their parts)."""
    if words is None:
        sel = t.counts[length] > 0
        ids = _A.digits(t.keys[length][sel], length, t.base)
        num = t.counts[length][sel]
    else:
        words = [w for w in words if t.long_counts.get(w, 0) > 0]
        if not words:
            return
        ids = _ids_matrix(words, length, t.vocab)
        num = np.array([t.long_counts[w] for w in words], dtype=np.int64)
    if len(num) == 0:
        return
    log_total = math.log(t.total)
    dp_s, pm_s, idx = _substring_scores(t, ids, words, length, log_total)
    pmi, parts = _best_splits(dp_s, pm_s, num, length, log_total)
    remove = pmi < thr
    if not remove.any():
        return
    _credit_parts(t, parts, remove, ids, idx, num, words)
    nparts = np.zeros(len(num), dtype=np.int64)
    for r, _, _ in parts:
        np.add.at(nparts, r, 1)
    t.total += float((num[remove] * (nparts[remove] - 1)).sum())
    if length <= _PACK:
        sel_idx = np.flatnonzero(t.counts[length] > 0)[remove]
        t.counts[length][sel_idx] = 0
    else:
        for w in np.asarray(words)[remove].tolist():
            t.long_counts[w] = 0


def _substring_scores(t: _Tables, ids: np.ndarray, words: list[str] | None, length: int,
                      log_total: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """(m, L+1, L+1) scores of every proper substring ``[i, j)``: the DP's (−100 for an unknown
    single character, −inf otherwise), the pmi's (log 0 − log total), and the table index."""
    m = len(ids)
    dp_s = np.full((m, length + 1, length + 1), -np.inf)
    pm_s = np.zeros((m, length + 1, length + 1))
    idx = np.full((m, length + 1, length + 1), -1, dtype=np.int64)
    prefix_ok: list[int] | None = None
    prefix_at = -1
    for i in range(length):
        for j in range(i + 1, min(length, i + length - 1) + 1):
            ell = j - i
            if ell >= length:
                continue
            c = np.zeros(m, dtype=np.int64)
            if ell <= _PACK:
                tk = t.keys[ell]
                if len(tk):
                    sk = _A.pack(ids[:, i:j], t.base)
                    pos = np.minimum(np.searchsorted(tk, sk), len(tk) - 1)
                    found = tk[pos] == sk
                    c = np.where(found, t.counts[ell][pos], 0)
                    idx[:, i, j] = np.where(found, pos, -1)
            else:
                assert words is not None
                if prefix_ok is None or prefix_at != i:
                    prefix_ok = np.flatnonzero(
                        member(_A.pack(ids[:, i : i + _PACK], t.base), t.long_prefix)
                    ).tolist()
                    prefix_at = i
                for r in prefix_ok:  # only rows whose next 4 characters start a long word
                    c[r] = t.long_counts.get(words[r][i:j], 0)
            lp = np.log(np.maximum(c, 1)) - log_total
            dp_s[:, i, j] = np.where(c > 0, lp, _UNKNOWN if ell == 1 else -np.inf)
            pm_s[:, i, j] = np.where(c > 0, lp, _UNKNOWN - log_total)
    return dp_s, pm_s, idx


def _best_splits(dp_s: np.ndarray, pm_s: np.ndarray, num: np.ndarray, length: int,
                 log_total: float) -> tuple[np.ndarray, list]:  # fmt: skip
    """The unigram DP over the substring scores; return each word's pmi against its best split
    and the split's parts, as (rows, starts, ends) per backtracking step."""
    m = len(num)
    best = np.full((m, length + 1), -np.inf)
    best[:, 0] = 0.0
    bp = np.zeros((m, length + 1), dtype=np.int64)
    for j in range(1, length + 1):
        cand = best[:, :j] + dp_s[:, :j, j]
        bp[:, j] = np.argmax(cand, axis=1)
        best[:, j] = cand[np.arange(m), bp[:, j]]
    rows = np.arange(m)
    pos = np.full(m, length)
    pmi = np.log(num) - log_total
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    while np.any(pos > 0):
        act = pos > 0
        r, e = rows[act], pos[act]
        s = bp[r, e]
        pmi[r] -= pm_s[r, s, e]
        parts.append((r, s, e))
        pos[act] = s
    return pmi, parts


def _credit_parts(t: _Tables, parts: list, remove: np.ndarray, ids: np.ndarray, idx: np.ndarray,
                  num: np.ndarray, words: list[str] | None) -> None:  # fmt: skip
    """Add each removed word's count to every part of its best split."""
    for r, s, e in parts:
        keep = remove[r]
        r, s, e = r[keep], s[keep], e[keep]
        for ell in _A.unique(e - s).tolist():
            sel = (e - s) == ell
            rr, ss, ee = r[sel], s[sel], e[sel]
            if ell == 1:
                np.add.at(t.counts[1], ids[rr, ss] - 1, num[rr])
            elif ell <= _PACK:
                np.add.at(t.counts[ell], idx[rr, ss, ee], num[rr])
            else:
                assert words is not None  # parts longer than 4 only occur in long classes
                for a, b, q in zip(rr.tolist(), ss.tolist(), ee.tolist()):
                    sub = words[a][b:q]
                    t.long_counts[sub] = t.long_counts.get(sub, 0) + int(num[a])
