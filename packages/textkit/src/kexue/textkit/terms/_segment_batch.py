"""Batched, vectorised unigram Viterbi over many pieces at once (private; ``segment_many``).

Word scores at every (position, length) come from packed-key lookups (length ≤ 4, exact) and a
64-bit rolling hash for longer words (every hash hit is verified against the string, so the
result is exact). The DP then runs column by column (offset t within a piece) over all pieces
whose length is ≥ t, with the same tie rule as the scalar DP (earliest start of the last word).
"""

from __future__ import annotations

import numpy as np

from . import _arrays as _A
from ._pieces import KeySet

__all__: list[str] = []

_PACK = 4
_P = np.uint64(1_000_003)


class BatchLexicon:
    """Array form of a ``{word: score}`` lexicon for :func:`segment_pieces`."""

    def __init__(self, scores: dict[str, float]) -> None:
        words = list(scores)
        self.vocab = _A.unique(_A.codepoints("".join(words))).astype(np.uint32)
        self.unk = len(self.vocab) + 1
        self.base = len(self.vocab) + 2
        self.ok = self.base**_PACK < 2**62
        self.max_len = max(len(w) for w in words)
        self.scores = scores
        self.short: dict[int, tuple[KeySet, np.ndarray]] = {}
        if not self.ok:
            return
        by_len: dict[int, list[str]] = {}
        for w in words:
            by_len.setdefault(len(w), []).append(w)
        self.long_hash: dict[int, tuple[np.ndarray, list[str], np.ndarray]] = {}
        for m, ws in by_len.items():
            ids = self.ids(ws, m)
            sc = np.array([scores[w] for w in ws])
            if m <= _PACK:
                k = _A.pack(ids, self.base)
                o = np.argsort(k)
                self.short[m] = (KeySet(k[o]), sc[o])
            else:
                h = _hash(ids)
                o = np.argsort(h)
                self.long_hash[m] = (h[o], [ws[i] for i in o.tolist()], sc[o])
        longs = [w[:_PACK] for m, ws in by_len.items() if m > _PACK for w in ws]
        self.long_prefix = KeySet(_A.pack(self.ids(longs, _PACK), self.base)) if longs else None

    def ids(self, words: list[str], m: int) -> np.ndarray:
        cps = _A.codepoints("".join(words)).reshape(len(words), m)
        return self.map_ids(cps)

    def map_ids(self, cps: np.ndarray) -> np.ndarray:
        pos = np.minimum(np.searchsorted(self.vocab, cps), len(self.vocab) - 1)
        return np.where(self.vocab[pos] == cps, pos + 1, self.unk).astype(np.int64)


def _hash(ids: np.ndarray) -> np.ndarray:
    h = np.zeros(ids.shape[0], dtype=np.uint64)
    for j in range(ids.shape[1]):
        h = h * _P + ids[:, j].astype(np.uint64)
    return h


_SEPARATORS = np.array(sorted(map(ord, "。，、！？\n ")), dtype=np.uint32)


def segment_texts(
    lex: BatchLexicon, texts: list[str], unknown: float, cells: int
) -> list[list[str]]:
    """Segment texts: separators (。，、！？, newline, space) are one-character words; the pieces
    between them get the unigram DP, in batches of about ``cells`` DP cells."""
    lens_t = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
    text = "".join(texts)
    n = len(text)
    if n == 0:
        return [[] for _ in texts]
    cps = _A.codepoints(text)
    sep = np.isin(cps, _SEPARATORS)
    off = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum(lens_t, out=off[1:])
    # pieces: maximal runs of non-separators inside one text
    tstart = np.zeros(n, dtype=bool)
    tstart[off[:-1][lens_t > 0]] = True
    prev_sep = np.concatenate([[True], sep[:-1]])
    next_break = np.append(sep[1:] | tstart[1:], True)
    p_start = np.flatnonzero(~sep & (tstart | prev_sep))
    p_len = np.flatnonzero(~sep & next_break) + 1 - p_start
    cut = np.zeros(n + 1, dtype=bool)  # word starts: separators, what follows them, text starts
    cut[:n] = sep | tstart
    cut[np.flatnonzero(sep) + 1] = True
    ids = lex.map_ids(cps)
    order = np.argsort(-p_len, kind="stable")
    i = 0
    while i < len(order):
        width = int(p_len[order[i]]) + 1
        j = min(len(order), i + max(1, cells // width))
        _dp_batch(lex, text, ids, p_start[order[i:j]], p_len[order[i:j]], unknown, cut)
        i = j
    bounds = np.flatnonzero(cut[:n])
    ends = np.append(bounds[1:], n)
    words = [text[a:b] for a, b in zip(bounds.tolist(), ends.tolist())]
    first = np.searchsorted(bounds, off)
    return [words[a:b] for a, b in zip(first[:-1].tolist(), first[1:].tolist())]


def _dp_batch(
    lex: BatchLexicon,
    text: str,
    ids: np.ndarray,
    ss: np.ndarray,
    sl: np.ndarray,
    unknown: float,
    cut: np.ndarray,
) -> None:
    """DP over pieces (starts ``ss``, lengths ``sl``, sorted by length descending); marks word
    starts in ``cut``."""
    neg = -np.inf
    width = int(sl[0])
    maxlen = min(lex.max_len, width)
    # window positions: every offset of every piece, as rows of a (pieces, width) grid
    grid = ss[:, None] + np.arange(width)[None, :]
    inside = np.arange(width)[None, :] < sl[:, None]
    gp = np.where(inside, grid, 0)
    S: dict[int, np.ndarray] = {}
    key = np.zeros(gp.shape, dtype=np.int64)
    room = sl[:, None] - np.arange(width)[None, :]  # characters left from this offset
    for m in range(1, min(maxlen, _PACK) + 1):
        key = key * lex.base + ids[np.minimum(gp + m - 1, len(ids) - 1)]
        s = np.full(gp.shape, neg)
        if m in lex.short:
            tk, ts = lex.short[m]
            pos = tk.index(key.ravel()).reshape(key.shape)
            s = np.where(pos >= 0, ts[pos], neg)
        if m == 1:
            s = np.where(np.isneginf(s), unknown, s)
        S[m] = np.where(room >= m, s, neg)
    if maxlen > _PACK and lex.long_prefix is not None:
        ok4 = room >= _PACK + 1
        cr, cc = np.nonzero(ok4 & lex.long_prefix.contains(key.ravel()).reshape(key.shape))
        h = (
            _hash(ids[gp[cr, cc][:, None] + np.arange(_PACK)])
            if len(cr)
            else np.zeros(0, np.uint64)
        )
        for m in range(_PACK + 1, maxlen + 1):
            keep = room[cr, cc] >= m
            cr, cc, h = cr[keep], cc[keep], h[keep]
            if len(cr) == 0:
                break
            p0 = gp[cr, cc]
            h = h * _P + ids[p0 + m - 1].astype(np.uint64)
            if m not in lex.long_hash:
                continue
            th, tw, ts = lex.long_hash[m]
            pos = np.minimum(np.searchsorted(th, h), len(th) - 1)
            s = np.full(gp.shape, neg)
            for i in np.flatnonzero(th[pos] == h).tolist():  # verify: collisions never match
                p, k = int(p0[i]), int(pos[i])
                while k < len(th) and th[k] == h[i]:
                    if text[p : p + m] == tw[k]:
                        s[cr[i], cc[i]] = ts[k]
                        break
                    k += 1
            S[m] = s
    npc = len(sl)
    best = np.full((npc, width + 1), neg)
    best[:, 0] = 0.0
    back = np.zeros((npc, width + 1), dtype=np.int64)
    # active[t] = number of pieces with length >= t (pieces are sorted by length, descending)
    active = np.searchsorted(-sl, -np.arange(width + 1), side="right")
    for t in range(1, width + 1):
        na = int(active[t])
        b = np.full(na, neg)
        arg = np.zeros(na, dtype=np.int64)
        for m in range(min(t, maxlen), 0, -1):  # longest first: ties keep the earliest start
            if m not in S:
                continue
            c = best[:na, t - m] + S[m][:na, t - m]
            better = c > b
            b = np.where(better, c, b)
            arg = np.where(better, t - m, arg)
        best[:na, t] = b
        back[:na, t] = arg
    pos = sl.copy()
    act = np.arange(npc)
    while len(act):
        prev = back[act, pos[act]]
        cut[ss[act] + prev] = True
        pos[act] = prev
        act = act[prev > 0]
