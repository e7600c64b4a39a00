"""Character n-gram counting for word discovery: fragments, vectorised counts, mergeable tables.

Text is split into *fragments* at runs of characters other than Han (U+4E00–U+9FA5), ASCII letters,
digits and space (nlp-zero's rule); n-grams never cross a fragment boundary. Counting is vectorised
with numpy: characters become integer ids, every n-gram an int64 key (ids packed in base
``len(vocab) + 1``), and one ``np.unique`` over the padded ``order``-gram keys yields the sorted counts
of all n ≤ ``order`` (shorter grams are prefixes). Chunks are counted in worker processes and merged
by a linear sort-merge. Measured on the 5.5 MB People's Daily 1998-01 text: see BENCHMARKS.md.

The table class :class:`NgramCounts` and its on-disk format live in :mod:`._table` (re-exported
here); the worker processes in :mod:`._workers` (an interrupt ends them at any point).

Tables with different vocabularies merge after a monotone remapping of ids.

References:
    - Su Jianlin, "【中文分词系列】 8. 更好的新词发现算法", https://kexue.fm/archives/4256
    - Su Jianlin, "重新写了之前的新词发现算法：更快更好的新词发现", https://kexue.fm/archives/6920
    - bojone/nlp-zero (fragment rule), bojone/word-discovery (n-gram counting).
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

from . import _arrays as _A
from ._arrays import DEFAULT_FRAGMENT_PATTERN
from ._checks import check_at_least
from ._table import NgramCounts
from ._workers import WorkerPool

__all__ = [
    "DEFAULT_FRAGMENT_PATTERN",
    "NgramCounts",
    "count_ngrams",
    "count_ngrams_files",
    "fragments",
]

DEFAULT_CHUNK_CHARS = 1 << 21


def fragments(text: str, *, pattern: str = DEFAULT_FRAGMENT_PATTERN) -> list[str]:
    """Split ``text`` at runs of characters matched by ``pattern``; empty pieces are dropped.

    Arguments:
        text: input string.
        pattern: regex of separator runs; the default keeps Han U+4E00–U+9FA5, ASCII letters,
            digits and space together (nlp-zero ``Word_Finder``).

    Returns:
        The non-empty fragments, in order.
    """
    return [f for f in re.split(pattern, text) if f]


# ------------------------------------------------------------------ counting
def _count_text(text: str, order: int, pattern: str) -> NgramCounts:
    ids, vocab = _A.text_to_ids(text, pattern, None)
    base = len(vocab) + 1
    parts = _A.count_ids(ids, order, base)
    return NgramCounts(order, vocab, [p[0] for p in parts], [p[1] for p in parts])


def _chunks(texts: Iterable[str], chunk_chars: int) -> Iterator[str]:
    """Texts joined by NUL into chunks of about ``chunk_chars`` characters (never split a text)."""
    if isinstance(texts, (list, tuple)):  # fast path: one C-level join, then cuts at NULs
        try:
            whole = "\x00".join(texts)
        except TypeError:
            bad = next(t for t in texts if not isinstance(t, str))
            raise ValueError(f"texts must hold str, got {type(bad).__name__}") from None
        if not texts:
            return
        start = 0
        while len(whole) - start > chunk_chars:
            cut = whole.find("\x00", start + chunk_chars - 1)
            if cut < 0:
                break
            yield whole[start:cut]
            start = cut + 1
        yield whole[start:]
        return
    buf: list[str] = []
    size = 0
    for t in texts:
        if not isinstance(t, str):
            raise ValueError(f"texts must hold str, got {type(t).__name__}")
        buf.append(t)
        size += len(t) + 1
        if size >= chunk_chars:
            yield "\x00".join(buf)
            buf, size = [], 0
    if buf:
        yield "\x00".join(buf)


class _Accumulator:
    """Running sum of chunk tables, merged in geometric batches, pruned every ``prune_every``."""

    def __init__(self, order: int, min_count: int, prune_every: int | None) -> None:
        self.order, self.min_count, self.prune_every = order, min_count, prune_every
        self.total: NgramCounts | None = None
        self.pending: list[NgramCounts] = []
        self.pending_size = 0
        self.since_prune = 0

    def add(self, table: NgramCounts, chars: int) -> None:
        self.pending.append(table)
        self.pending_size += len(table)
        self.since_prune += chars
        if self.total is None or self.pending_size >= len(self.total):
            self._flush()
        if self.prune_every and self.since_prune >= self.prune_every:
            self._flush()
            assert self.total is not None
            self.total = self.total.prune(self.min_count)
            self.since_prune = 0

    def _flush(self) -> None:
        if self.pending:
            tabs = ([self.total] if self.total is not None else []) + self.pending
            self.total = NgramCounts.merge_all(tabs)
            self.pending, self.pending_size = [], 0

    def result(self, empty_vocab: np.ndarray) -> NgramCounts:
        self._flush()
        if self.total is None:
            z = np.zeros(0, dtype=np.int64)
            return NgramCounts(self.order, empty_vocab, [z] * self.order, [z] * self.order)
        return self.total.prune(self.min_count)


def _empty_vocab(pattern: str) -> np.ndarray:
    return _A.default_vocab() if pattern == DEFAULT_FRAGMENT_PATTERN else np.zeros(0, np.uint32)


def count_ngrams(
    texts: Iterable[str] | str,
    *,
    order: int = 4,
    min_count: int = 1,
    workers: int = 1,
    chunk_chars: int = DEFAULT_CHUNK_CHARS,
    pattern: str = DEFAULT_FRAGMENT_PATTERN,
) -> NgramCounts:
    """Count all character n-grams (n = 1..order) inside fragments of ``texts``. Exact.

    Arguments:
        texts: strings (each counted independently; grams never span two texts), or one string.
        order: largest n (default 4, bojone/word-discovery). With the default pattern the
            alphabet has 20,965 characters, which allows order ≤ 4 in int64 keys.
        min_count: drop grams counted fewer times (applied once, after all counting).
        workers: processes counting chunks in parallel (1, or a corpus of one chunk: in this
            process).
        chunk_chars: characters per counting chunk (memory ≈ 60 bytes per character per worker).
        pattern: fragment separator regex (see :func:`fragments`).

    Returns:
        An :class:`NgramCounts`.
    """
    check_at_least(1, order=order, min_count=min_count, workers=workers, chunk_chars=chunk_chars)
    if isinstance(texts, str):
        texts = [texts]
    acc = _Accumulator(order, min_count, None)
    it = _chunks(texts, chunk_chars)
    head = [c for c in (next(it, None), next(it, None)) if c is not None]
    jobs = ((c, order, pattern) for c in itertools.chain(head, it))
    if workers == 1 or len(head) < 2:  # a single chunk is counted in this process
        for job in jobs:
            acc.add(_count_text(*job), len(job[0]))
    else:
        with WorkerPool(workers) as pool:
            for table in pool.imap(_count_text, jobs):
                acc.add(table, 0)
    return acc.result(_empty_vocab(pattern))


def _read_blocks(path: Path, encoding: str, block_bytes: int) -> Iterator[tuple[str, int]]:
    """Decoded blocks of whole lines and their byte sizes; bad bytes raise naming file and line."""
    line_no = 1
    rest = b""
    with open(path, "rb") as f:
        while True:
            data = f.read(block_bytes)
            eof = not data
            buf = rest + data
            if eof:
                block, rest = buf, b""
            else:
                cut = buf.rfind(b"\n")
                if cut < 0:
                    rest = buf
                    continue
                block, rest = buf[: cut + 1], buf[cut + 1 :]
            if block:
                try:
                    text = block.decode(encoding)
                except UnicodeDecodeError as e:
                    bad_line = line_no + block.count(b"\n", 0, e.start)
                    raise ValueError(
                        f"{path}: line {bad_line}: cannot decode as {encoding} ({e.reason} at byte "
                        f"{e.start} of the block)"
                    ) from None
                line_no += block.count(b"\n")
                yield text, len(block)
            if eof:
                return


def count_ngrams_files(
    paths: Sequence[str | os.PathLike[str]] | str | os.PathLike[str],
    *,
    order: int = 4,
    min_count: int = 1,
    workers: int = 1,
    encoding: str = "utf-8",
    chunk_chars: int = DEFAULT_CHUNK_CHARS,
    prune_every: int | None = 50_000_000,
    progress: Callable[[int, int], None] | None = None,
    pattern: str = DEFAULT_FRAGMENT_PATTERN,
) -> NgramCounts:
    """Count n-grams of text files streamed in blocks of whole lines, with count pruning.

    Each line is a text (grams never span lines). Memory is bounded by the chunks in flight plus
    the running table, which is pruned every ``prune_every`` characters.

    **Pruning approximation.** Every ``prune_every`` characters the running table drops grams
    counted fewer than ``min_count`` times so far (lossy counting). A gram never dropped has its
    exact count; one dropped in some of the R pruning rounds loses at most ``min_count − 1``
    occurrences per round, so every gram with true count ≥ R·(min_count − 1) + min_count is
    reported, with count underestimated by at most R·(min_count − 1). ``min_count=1`` or
    ``prune_every=None`` counts exactly (memory then grows with the number of distinct grams).

    Arguments:
        paths: one path or several; read as ``encoding``.
        order, min_count, workers, chunk_chars, pattern: as in :func:`count_ngrams`.
        encoding: text encoding (default utf-8); undecodable bytes raise ValueError naming the
            file and the line.
        prune_every: characters between pruning rounds (None: never prune before the end).
        progress: optional ``callable(bytes_done, bytes_total)`` called after every chunk.

    Returns:
        An :class:`NgramCounts`.
    """
    check_at_least(1, order=order, min_count=min_count, workers=workers, chunk_chars=chunk_chars)
    check_at_least(1, allow_none=True, prune_every=prune_every)
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    plist = [Path(p) for p in paths]
    for p in plist:
        if not p.is_file():
            raise FileNotFoundError(f"paths: no such file {p}")
    total_bytes = sum(p.stat().st_size for p in plist)
    done = 0
    default = pattern == DEFAULT_FRAGMENT_PATTERN
    block_bytes = max(chunk_chars * 3, 1 << 12)

    def blocks() -> Iterator[tuple[str, int]]:
        for p in plist:
            for text, nbytes in _read_blocks(p, encoding, block_bytes):
                yield (text if default else text.replace("\n", "\x00")), nbytes

    acc = _Accumulator(order, min_count, prune_every)
    if workers == 1 or total_bytes <= block_bytes:  # one block: no pool
        for text, nbytes in blocks():
            acc.add(_count_text(text, order, pattern), len(text))
            done += nbytes
            if progress is not None:
                progress(done, total_bytes)
    else:
        sizes: list[tuple[int, int]] = []

        def jobs() -> Iterator[tuple[str, int, str]]:
            for text, nbytes in blocks():
                sizes.append((len(text), nbytes))
                yield text, order, pattern

        with WorkerPool(workers) as pool:  # ≤ 1 block per worker in flight: bounded memory
            for i, table in enumerate(pool.imap(_count_text, jobs())):
                nchar, nb = sizes[i]
                acc.add(table, nchar)
                done += nb
                if progress is not None:
                    progress(done, total_bytes)
    return acc.result(_empty_vocab(pattern))
