"""Unsupervised word discovery: the n-gram cohesion algorithm (B) and nlp-zero's algorithm (A).

Both count with :mod:`kexue.textkit.terms.ngrams` and cut the text with vectorised join masks
(:mod:`kexue.textkit.terms._pieces`); only the candidate lexicon is handled in Python.

**Algorithm B** (:func:`discover_ngrams`, bojone/word-discovery): count n-grams n ≤ ``order``, drop
counts < ``min_count``; keep a gram w (n ≥ 2) when ln min_{w=a|b} total·c(w)/(c(a)c(b)) ≥
``min_pmi[n−1]`` (total: see :func:`cohesive_ngrams`); join every span covered by a kept gram
(lenient cut); count the pieces, keep those ≥ ``min_count``; back-check (length ≤ 2 kept,
3..order must be kept grams, longer words need every ``order``-window kept). Output sorted by
count (ties: shorter first, then code-point order).

On the 5.5 MB People's Daily 1998-01 text, ``min_count=2, min_pmi=(0, 3, 5, 7)`` gives P@1000 0.956
and P@5000 0.879 against its gold lexicon (BENCHMARKS.md); the defaults (32; 0, 2, 4, 6) are the
reference's for gigabyte corpora.

**Algorithm A** (:class:`WordFinder`, nlp-zero ``Word_Finder``): see its docstring.

References:
    - Su Jianlin, https://kexue.fm/archives/4256 and https://kexue.fm/archives/6920 (algorithm B).
    - Su Jianlin, https://kexue.fm/archives/5476 (minimum entropy; algorithm A, nlp-zero).
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import _arrays as _A
from . import _pieces as _P
from ._checks import check_at_least
from ._redundancy import remove_redundancy
from ._workers import WorkerPool
from .ngrams import (
    DEFAULT_CHUNK_CHARS,
    DEFAULT_FRAGMENT_PATTERN,
    NgramCounts,
    _chunks,
    _read_blocks,
    count_ngrams,
    count_ngrams_files,
)

__all__ = [
    "WordFinder",
    "cohesive_ngrams",
    "discover_ngrams",
    "discover_ngrams_files",
]


def _sorted_by_count(counts: dict[str, int]) -> dict[str, int]:
    """By count, descending; ties keep their order (stable)."""
    words = list(counts)
    c = np.fromiter(counts.values(), dtype=np.int64, count=len(words))
    return {words[i]: int(c[i]) for i in np.argsort(-c, kind="stable").tolist()}


def _check_min_pmi(min_pmi: Sequence[float], order: int) -> list[float]:
    thr = [float(x) for x in min_pmi]
    if len(thr) != order:
        raise ValueError(f"min_pmi needs one threshold per n = 1..order ({order}), got {len(thr)}")
    return thr


def cohesive_ngrams(
    counts: NgramCounts,
    *,
    min_count: int = 32,
    min_pmi: Sequence[float] = (0, 2, 4, 6),
    total: str = "chars",
) -> list[np.ndarray]:
    """Sorted keys of the grams kept by algorithm B's cohesion filter, per n (index n−1).

    score(w) = min over splits w = a|b of total·c(w)/(c(a)·c(b)), kept when ln score ≥
    ``min_pmi[n−1]`` and c(w) ≥ ``min_count``. Index 0 (n = 1) holds the characters counted
    ≥ ``min_count`` (no split exists).

    ``total``: ``"chars"`` (default) = Σ counts of the characters counted ≥ ``min_count``, the
    normaliser consistent with exact n-gram counts (so a table pruned at ≤ ``min_count`` gives the
    same result as the full one); ``"kept"`` = Σ of the ``order``-gram counts
    ≥ ``min_count``, as bojone/word-discovery, whose shorter-gram counts are themselves summed
    from the kept ``order``-grams (with exact counts this deflates every score; on a small corpus
    with one frequent ``order``-gram nothing passes).

    Arguments:
        counts: n-gram table.
        min_count: count threshold (default 32, bojone/word-discovery).
        min_pmi: ln thresholds per n (default (0, 2, 4, 6), bojone/word-discovery).
        total: ``"chars"`` or ``"kept"`` (see above).

    Returns:
        A list of ``counts.order`` sorted int64 key arrays (keys as in :class:`NgramCounts`).

    References:
        https://kexue.fm/archives/6920 (score), https://kexue.fm/archives/5476 (PMI > 1 nat).
    """
    order = counts.order
    thr = _check_min_pmi(min_pmi, order)
    if total not in ("chars", "kept"):
        raise ValueError(f"total must be 'chars' or 'kept', got {total!r}")
    pr = counts.prune(min_count)
    mass = pr.total(1) if total == "chars" else pr.total(order)
    base = pr.base
    kept = [pr.arrays(1)[0]]
    if mass == 0:
        return kept + [np.zeros(0, dtype=np.int64) for _ in range(1, order)]
    log_total = math.log(mass)
    logc = [np.log(pr.arrays(m)[1]) for m in range(1, order)]  # ln c of the parts, once
    for n in range(2, order + 1):
        keys, cnt = pr.arrays(n)
        # score = min over splits of ln total + ln c(w) − ln c(a) − ln c(b); every part of a
        # gram counted ≥ min_count is itself counted ≥ min_count, so the lookups always hit
        worst = np.full(len(keys), -np.inf)
        for s in range(1, n):
            ka, kb = np.divmod(keys, base ** (n - s))
            parts = logc[s - 1][np.searchsorted(pr.arrays(s)[0], ka)]
            parts += logc[n - s - 1][np.searchsorted(pr.arrays(n - s)[0], kb)]
            np.maximum(worst, parts, out=worst)
        score = log_total + np.log(cnt) - worst
        kept.append(keys[score >= thr[n - 1]])
    return kept


def _cut_lenient(
    text: str,
    kept: Sequence[_P.KeySet],
    base: int,
    vocab: np.ndarray,
    ids: np.ndarray | None = None,
) -> _P.PieceCounts:
    """Pieces of ``text`` after joining every span covered by a kept gram (``kept[n-1]``);
    ``ids``: the text's ids in ``vocab`` when already computed."""
    if ids is None:
        ids, _ = _A.text_to_ids(text, DEFAULT_FRAGMENT_PATTERN, vocab)
    n_pos = len(ids)
    cover = np.zeros(n_pos + 1, dtype=np.int64)
    nz = ids != 0
    key, ok = ids, nz
    for n in range(2, len(kept) + 1):
        if n_pos < n:
            break
        key = key[:-1] * base + ids[n - 1 :]
        ok = ok[:-1] & nz[n - 1 :]
        pos = np.flatnonzero(ok)
        hit = pos[kept[n - 1].contains(key[pos])]
        cover[hit] += 1  # a gram starting at i joins i..i+n-2 (positions are unique per n)
        cover[hit + n - 1] -= 1
    join = np.cumsum(cover)[: max(n_pos - 1, 0)] > 0
    return _P.count_pieces(text, ids, join, base)


def _finish_b(
    pieces: _P.PieceCounts, ksets: list[_P.KeySet], counts: NgramCounts, min_count: int
) -> dict[str, int]:
    """Pieces ≥ ``min_count`` that pass the back-check, sorted by count."""
    order, base, vocab = counts.order, counts.base, counts.vocab_codes
    words: list[str] = []
    freqs: list[np.ndarray] = []
    for m, (k, c) in sorted(pieces.at_least(min_count).items()):
        if 3 <= m <= order:  # must itself be a kept gram
            ok = ksets[m - 1].contains(k)
            k, c = k[ok], c[ok]
        elif m > order:  # only when order < 4: every order-window kept
            d = _A.digits(k, m, base)
            ok = np.ones(len(k), dtype=bool)
            for i in range(m - order + 1):
                ok &= ksets[order - 1].contains(_A.pack(d[:, i : i + order], base))
            k, c = k[ok], c[ok]
        words.extend(_A.decode_keys(k, m, base, vocab))
        freqs.append(c)
    long_words = [(w, c) for w, c in pieces.long.items() if c >= min_count]
    if long_words:
        wins = [w[i : i + order] for w, _ in long_words for i in range(len(w) - order + 1)]
        ok_win = ksets[order - 1].contains(counts.encode(wins, order)[0]).tolist()
        pos = 0
        for w, c in long_words:
            nwin = len(w) - order + 1
            if all(ok_win[pos : pos + nwin]):
                words.append(w)
                freqs.append(np.array([c], dtype=np.int64))
            pos += nwin
    if not words:
        return {}
    f = np.concatenate(freqs)
    order_idx = np.lexsort((np.arange(len(f)), -f))
    return {words[i]: int(f[i]) for i in order_idx.tolist()}


def _in_threads(fn: Callable[..., Any], jobs: list[tuple[Any, ...]]) -> list[Any]:
    """``[fn(*job) for job in jobs]``, the first job in this thread and each other in its own
    (daemon) thread: numpy releases the GIL, so the jobs run in parallel."""
    results: list[Any] = [None] * len(jobs)
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            results[i] = fn(*jobs[i])
        except BaseException as e:  # re-raised in the calling thread
            errors.append(e)

    helpers = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(1, len(jobs))]
    for t in helpers:
        t.start()
    if jobs:
        results[0] = fn(*jobs[0])
    for t in helpers:
        t.join()
    if errors:
        raise errors[0]
    return results


def _spans_at_nul(text: str, k: int) -> list[tuple[int, int]]:
    """(start, end) of about ``k`` parts of ``text`` cut at NUL separators (texts never split)."""
    out, start = [], 0
    for i in range(1, k):
        cut = text.find("\x00", max(start, len(text) * i // k))
        if cut < 0:
            break
        out.append((start, cut))
        start = cut + 1
    out.append((start, len(text)))
    return out


def _check_b(order: int, min_count: int) -> None:
    if not 2 <= order <= 4:
        raise ValueError(f"order must be in 2..4, got {order}")
    check_at_least(1, min_count=min_count)


def discover_ngrams(
    texts: Iterable[str] | str,
    *,
    order: int = 4,
    min_count: int = 32,
    min_pmi: Sequence[float] = (0, 2, 4, 6),
    counts: NgramCounts | None = None,
    workers: int = 1,
    chunk_chars: int = DEFAULT_CHUNK_CHARS,
    threads: int = 1,
) -> dict[str, int]:
    """Algorithm B: n-gram cohesion, lenient cut, back-check (bojone/word-discovery).

    Arguments:
        texts: the corpus (strings, or one string); read twice (count, then cut), so an iterator
            is materialised. Fragments follow :data:`~kexue.textkit.terms.ngrams.DEFAULT_FRAGMENT_PATTERN`.
        order: longest gram (2..4; default 4).
        min_count: count threshold for grams and pieces (default 32; the 2017 post used 128).
        min_pmi: ln cohesion thresholds per n (default (0, 2, 4, 6); 2017: ln 5/25/125).
        counts: a precomputed table of ``texts`` (skips counting; may be pruned at any
            threshold ≤ ``min_count``).
        workers: processes for the counting and the cut, used when the corpus spans more than one
            chunk: below ``chunk_chars`` the pool's start-up and transfers cost more than they
            save (measured on the 5.5 MB People's Daily text: 0.69 s in-process vs 1.32 s split
            over 2 processes, BENCHMARKS.md).
        chunk_chars: characters per chunk.
        threads: threads cutting the text when it is cut in this process (the cut is numpy
            work that releases the GIL: on the 5.5 MB People's Daily text 2 threads cut in
            0.09–0.12 s instead of 0.16–0.20 s); the result does not depend on it.

    Returns:
        ``{word: piece count}`` sorted by count (descending), single characters included.

    References:
        https://kexue.fm/archives/6920 (bojone/word-discovery).
    """
    _check_b(order, min_count)
    check_at_least(1, threads=threads)
    if isinstance(texts, str):
        texts = [texts]
    chunks = list(_chunks(texts, chunk_chars))
    ids = None
    if counts is None and len(chunks) == 1:  # one chunk: count here, keep its ids for the cut
        ids, vocab = _A.text_to_ids(chunks[0], DEFAULT_FRAGMENT_PATTERN, None)
        parts = _A.count_ids(ids, order, len(vocab) + 1)
        counts = NgramCounts(order, vocab, [p[0] for p in parts], [p[1] for p in parts])
    elif counts is None:
        counts = count_ngrams(chunks, order=order, workers=workers, chunk_chars=chunk_chars)
    if counts.order != order:
        raise ValueError(f"counts has order {counts.order}, expected order={order}")
    if not _A.is_default_vocab(counts.vocab_codes):
        counts, ids = counts.with_vocab(_A.default_vocab()), None
    kept = cohesive_ngrams(counts, min_count=min_count, min_pmi=min_pmi)
    ksets = [_P.KeySet(k) for k in kept]
    pieces = _P.PieceCounts()
    base, vocab = counts.base, counts.vocab_codes
    if workers > 1 and len(chunks) > 1:
        with WorkerPool(workers) as pool:
            for pc in pool.imap(_cut_lenient, [(ch, ksets, base, vocab) for ch in chunks]):
                pieces.update(pc)
    else:
        for ch in chunks:  # ids are per code point: a span of the text is that span of ids
            ch_ids = (
                ids if ids is not None else _A.text_to_ids(ch, DEFAULT_FRAGMENT_PATTERN, vocab)[0]
            )
            jobs = [
                (ch[a:b], ksets, base, vocab, ch_ids[a:b]) for a, b in _spans_at_nul(ch, threads)
            ]
            for pc in _in_threads(_cut_lenient, jobs):
                pieces.update(pc)
    return _finish_b(pieces, ksets, counts, min_count)


def discover_ngrams_files(
    paths: Sequence[str | os.PathLike[str]] | str | os.PathLike[str],
    *,
    order: int = 4,
    min_count: int = 32,
    min_pmi: Sequence[float] = (0, 2, 4, 6),
    workers: int = 1,
    encoding: str = "utf-8",
    chunk_chars: int = DEFAULT_CHUNK_CHARS,
    prune_every: int | None = 50_000_000,
) -> dict[str, int]:
    """Algorithm B streamed over files (two passes; memory bounded by chunks + pruned tables).

    Counting uses :func:`~kexue.textkit.terms.ngrams.count_ngrams_files` (see its pruning
    approximation); the cut pass streams the files again. Arguments as in :func:`discover_ngrams`.

    Returns:
        ``{word: piece count}`` sorted by count.

    References:
        https://kexue.fm/archives/6920
    """
    _check_b(order, min_count)
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    counts = count_ngrams_files(
        paths,
        order=order,
        min_count=min_count,
        workers=workers,
        encoding=encoding,
        chunk_chars=chunk_chars,
        prune_every=prune_every,
    )
    kept = cohesive_ngrams(counts, min_count=min_count, min_pmi=min_pmi)
    ksets = [_P.KeySet(k) for k in kept]
    pieces = _P.PieceCounts()
    blocks = (
        (text, ksets, counts.base, counts.vocab_codes)
        for p in paths
        for text, _ in _read_blocks(Path(p), encoding, max(chunk_chars * 3, 1 << 12))
    )
    single = sum(Path(p).stat().st_size for p in paths) <= max(chunk_chars * 3, 1 << 12)
    if workers == 1 or single:  # one block: no pool
        for job in blocks:
            pieces.update(_cut_lenient(*job))
    else:
        with WorkerPool(workers) as pool:  # ≤ 1 block per worker in flight: bounded memory
            for pc in pool.imap(_cut_lenient, blocks):
                pieces.update(pc)
    return _finish_b(pieces, ksets, counts, min_count)


class WordFinder:
    """Algorithm A: nlp-zero's ``Word_Finder`` (pair-PMI cut + minimum-entropy de-redundancy).

    Steps (spec §2.3 A): count characters N_c and in-fragment adjacent pairs N_ab; keep pairs with
    ln p_ab > ln ``min_proba`` and ln p_ab − ln p_a − ln p_b > ``min_pmi``; join adjacent characters
    whose pair is kept; keep pieces with ln(N_w/ΣN_w) > ln ``min_proba``; then remove redundant
    candidates, longest first: segment w with the unigram DP over the other candidates (−100 per
    unknown character), pmi = ln p(w) − Σ ln p(w_i); delete w and give its count to its parts when
    pmi < threshold (``"code"``: len(w) − 1 as nlp-zero's code; a float: that constant, e.g. 1.0
    as the post's wording).

    Differences from nlp-zero, all deliberate:

    - **Incremental training is exact**: :meth:`train` adds to the count tables and keeps the
      training text (as chunks, ≈ 2 bytes/character) so :attr:`words` is recomputed from all text
      seen; ``train(a); train(b)`` equals ``train(a + b)`` (nlp-zero's weak-pair removal corrupts
      its pair table, spec §2.3 A7b). No weak-pair pruning.
    - Candidates of one length are de-duplicated together, against the counts left by the longer
      ones (nlp-zero visits equal lengths in dict order, each seeing the previous updates), which
      makes the result order-independent and lets the DP run vectorised.
    - The DP inside de-redundancy does not re-join ASCII letter/digit runs.

    Arguments:
        min_proba: probability floor for pairs and pieces (default 1e-7, nlp-zero).
        min_pmi: pair PMI threshold in nats (default 1.0, nlp-zero).
        redundancy_threshold: ``"code"`` (default) or a float (see above).
        chunk_chars: characters per processing chunk.

    References:
        https://kexue.fm/archives/5476; bojone/nlp-zero ``Word_Finder``.
    """

    def __init__(
        self,
        min_proba: float = 1e-7,
        min_pmi: float = 1.0,
        redundancy_threshold: str | float = "code",
        *,
        chunk_chars: int = DEFAULT_CHUNK_CHARS,
    ) -> None:
        if not 0 < min_proba < 1:
            raise ValueError(f"min_proba must be in (0, 1), got {min_proba}")
        if redundancy_threshold != "code" and not isinstance(redundancy_threshold, (int, float)):
            raise ValueError(
                f"redundancy_threshold must be 'code' or a float, got {redundancy_threshold!r}"
            )
        self.min_proba = float(min_proba)
        self.min_pmi = float(min_pmi)
        self.redundancy_threshold = redundancy_threshold
        self.chunk_chars = chunk_chars
        self.counts: NgramCounts | None = None
        self._chunks: list[str] = []
        self._words: dict[str, int] | None = None

    def train(self, texts: Iterable[str] | str, *, workers: int = 1) -> WordFinder:
        """Add ``texts`` to the counts (incremental; see the class docstring). Returns self."""
        if isinstance(texts, str):
            texts = [texts]
        new = list(_chunks(texts, self.chunk_chars))
        if not new:
            return self
        c = count_ngrams(new, order=2, workers=workers, chunk_chars=self.chunk_chars)
        self.counts = c if self.counts is None else self.counts.merge(c)
        self._chunks.extend(new)
        self._words = None
        return self

    def kept_pairs(self) -> np.ndarray:
        """Sorted keys (base ``counts.base``) of the pairs passing the probability and PMI filter."""
        if self.counts is None:
            return np.zeros(0, dtype=np.int64)
        k1, c1 = self.counts.arrays(1)
        k2, c2 = self.counts.arrays(2)
        if len(k2) == 0:
            return k2
        lp1 = np.log(c1) - math.log(c1.sum())
        lp2 = np.log(c2) - math.log(c2.sum())
        base = self.counts.base
        a = np.searchsorted(k1, k2 // base)
        b = np.searchsorted(k1, k2 % base)
        keep = (lp2 > math.log(self.min_proba)) & (lp2 - lp1[a] - lp1[b] > self.min_pmi)
        return k2[keep]

    def candidates(self) -> dict[str, int]:
        """Pieces of the pair cut with ln(N_w/ΣN_w) > ln ``min_proba`` (before de-redundancy)."""
        if self.counts is None:
            return {}
        counts = self.counts.with_vocab(_A.default_vocab())
        pairs = self.kept_pairs() if counts is self.counts else WordFinder._rekey(self, counts)
        base, vocab = counts.base, counts.vocab_codes
        pset = _P.KeySet(pairs)
        pieces = _P.PieceCounts()
        for ch in self._chunks:
            ids, _ = _A.text_to_ids(ch, DEFAULT_FRAGMENT_PATTERN, vocab)
            join = pset.contains(ids[:-1] * base + ids[1:])
            pieces.update(_P.count_pieces(ch, ids, join, base))
        total = pieces.total()
        if total == 0:
            return {}
        # ln(c/total) > ln(min_proba)  <=>  c > min_proba·total (the smallest integer above it)
        floor = self.min_proba * total
        min_c = max(1, math.floor(floor) + 1)
        return pieces.to_dict(min_c, base, vocab)

    def _rekey(self, counts: NgramCounts) -> np.ndarray:
        saved = self.counts
        self.counts = counts
        try:
            return self.kept_pairs()
        finally:
            self.counts = saved

    @property
    def words(self) -> dict[str, int]:
        """The discovered lexicon ``{word: count}`` (after de-redundancy), sorted by count."""
        if self._words is None:
            words = remove_redundancy(self.candidates(), threshold=self.redundancy_threshold)
            self._words = _sorted_by_count(words)
        return self._words
