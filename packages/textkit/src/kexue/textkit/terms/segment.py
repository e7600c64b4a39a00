"""Minimum-entropy (unigram) word segmentation over a lexicon of word counts.

The best segmentation of a string maximises Σ_k ln p(w_k), p(w) = count(w)/Σ counts, over all
splits into lexicon words; a character not in the lexicon is a word of score −100 (nlp-zero's
``DAG.null_score``); multi-character strings outside the lexicon are never words. Text is first
split at runs of 。，、！？, newline and space (kept as single-character tokens), like nlp-zero's
``Tokenizer.tokenize``, then each piece is solved by dynamic programming (Viterbi) in
O(len · max word length).

References:
    - Su Jianlin, "最小熵原理（二）：“当机立断”之词库构建", https://kexue.fm/archives/5476
    - bojone/nlp-zero ``Tokenizer`` (unknown-character score −100).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping

__all__ = ["UNKNOWN_CHAR_SCORE", "UnigramSegmenter"]

UNKNOWN_CHAR_SCORE = -100.0
_SPLIT = re.compile("[。，、！？\n ]+")


class UnigramSegmenter:
    """Unigram-model Viterbi segmenter (minimum entropy) over ``lexicon``.

    Ties between equally scored segmentations go to the one found first: ends are relaxed from
    left to right and a path replaces the incumbent only when strictly better, so the last word
    with the earliest start wins.

    Arguments:
        lexicon: ``{word: count}``; words with count ≤ 0 are ignored.
        unknown_score: score of an out-of-lexicon single character (default −100, nlp-zero).

    References:
        https://kexue.fm/archives/5476
    """

    def __init__(
        self, lexicon: Mapping[str, int | float], *, unknown_score: float = UNKNOWN_CHAR_SCORE
    ) -> None:
        words = {w: float(c) for w, c in lexicon.items() if c > 0 and w}
        for w in words:
            if not isinstance(w, str):
                raise ValueError(f"lexicon keys must be str, got {type(w).__name__}")
        total = sum(words.values())
        if total <= 0:
            raise ValueError("lexicon must contain at least one word with a positive count")
        log_total = math.log(total)
        self.unknown_score = float(unknown_score)
        self.scores: dict[str, float] = {w: math.log(c) - log_total for w, c in words.items()}
        self.max_len = max(len(w) for w in words)
        prefixes: set[str] = set()
        for w in words:
            for k in range(1, len(w)):
                prefixes.add(w[:k])
        self._prefixes = prefixes
        self._batch = None  # array form for segment_many, built on first use

    def _solve(self, s: str) -> list[str]:
        n = len(s)
        if n == 0:
            return []
        scores, prefixes, unk = self.scores, self._prefixes, self.unknown_score
        best = [-math.inf] * (n + 1)
        back = [0] * (n + 1)
        best[0] = 0.0
        for i in range(n):
            bi = best[i]
            if s[i] not in scores:
                sc = bi + unk
                if sc > best[i + 1]:
                    best[i + 1], back[i + 1] = sc, i
            for j in range(i + 1, min(n, i + self.max_len) + 1):
                w = s[i:j]
                sw = scores.get(w)
                if sw is not None:
                    sc = bi + sw
                    if sc > best[j]:
                        best[j], back[j] = sc, i
                if w not in prefixes:
                    break
        out: list[str] = []
        j = n
        while j > 0:
            i = back[j]
            out.append(s[i:j])
            j = i
        out.reverse()
        return out

    def score(self, words: Iterable[str]) -> float:
        """Σ ln p(w) of a segmentation (unknown single characters score ``unknown_score``)."""
        tot = 0.0
        for w in words:
            if w in self.scores:
                tot += self.scores[w]
            elif len(w) == 1:
                tot += self.unknown_score
            else:
                return -math.inf
        return tot

    def segment(self, text: str) -> list[str]:
        """Segment ``text``: split at 。，、！？/newline/space runs, then the unigram DP per piece.

        Arguments:
            text: input string.

        Returns:
            The words, concatenating back to ``text``.
        """
        if not isinstance(text, str):
            raise ValueError(f"text must be str, got {type(text).__name__}")
        out: list[str] = []
        start = 0
        for m in _SPLIT.finditer(text):
            out.extend(self._solve(text[start : m.start()]))
            out.extend(text[m.start() : m.end()])
            start = m.end()
        out.extend(self._solve(text[start:]))
        return out

    def segment_many(self, texts: Iterable[str]) -> list[list[str]]:
        """:meth:`segment` applied to each text, vectorised over all pieces at once.

        Same result as ``[segment(t) for t in texts]`` (ties included): word scores at every
        (position, length) come from array lookups and the DP runs column by column over all
        pieces, in batches of about 10⁶ DP cells.
        """
        texts = list(texts)
        for t in texts:
            if not isinstance(t, str):
                raise ValueError(f"texts must hold str, got {type(t).__name__}")
        if self._batch is None:
            from ._segment_batch import BatchLexicon

            self._batch = BatchLexicon(self.scores)
        if not self._batch.ok:
            return [self.segment(t) for t in texts]
        from ._segment_batch import segment_texts

        return segment_texts(self._batch, texts, self.unknown_score, 1_000_000)
