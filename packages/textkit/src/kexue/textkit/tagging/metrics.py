"""Evaluation: entity-level NER precision/recall/F1 and word-segmentation scores (SIGHAN).

NER (spec §3.4): an entity counts as correct only when its type and both boundaries match (exact
span match); scores are micro (pooled counts), per type, and macro (unweighted mean of the per-type
precision, recall and F1, as seqeval's ``average="macro"``). Decoding of tags into entities follows
:func:`~kexue.textkit.tagging.tags_to_spans` in ``"strict"`` (default; bert4keras / seqeval strict
mode) or ``"conlleval"`` mode (seqeval's default). Undefined ratios (0/0) are 0, as in seqeval.

CWS: words are compared as character-offset spans per sentence, as the SIGHAN 2005 ``score``
script does; OOV recall is the recall over gold words absent from the training word list, IV
recall over the others.

References:
    seqeval (https://github.com/chakki-works/seqeval), conlleval.pl (CoNLL-2000);
    Emerson 2005, "The Second International Chinese Word Segmentation Bakeoff" (SIGHAN ``score``);
    https://kexue.fm/archives/5542 (CRF for segmentation and NER).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from .schemes import Span, tags_to_spans

__all__ = [
    "PRF",
    "CWSReport",
    "EntityReport",
    "cws_scores",
    "entity_scores",
    "span_scores",
    "to_halfwidth",
]


def _div(a: float, b: float) -> float:
    return a / b if b else 0.0


@dataclass(frozen=True)
class PRF:
    """Precision, recall, F1 and support (number of gold items), with the raw counts.

    Arguments:
        precision: tp / predicted.
        recall: tp / gold.
        f1: 2PR / (P + R) (0 when both are 0).
        support: number of gold items.
        tp: correct predictions (macro rows: summed over types).
        predicted: number of predicted items.
    """

    precision: float
    recall: float
    f1: float
    support: int
    tp: int = 0
    predicted: int = 0

    @classmethod
    def from_counts(cls, tp: int, predicted: int, gold: int) -> PRF:
        """Build from counts: P = tp/predicted, R = tp/gold, F1 = 2PR/(P+R), 0 where undefined.

        Arguments:
            tp: correct items; predicted: predicted items; gold: gold items.

        Returns:
            The :class:`PRF`.
        """
        p, r = _div(tp, predicted), _div(tp, gold)
        return cls(p, r, _div(2 * p * r, p + r), gold, tp, predicted)


@dataclass(frozen=True)
class EntityReport:
    """Entity-level scores: micro, macro and per type.

    Arguments:
        micro: pooled over all types.
        macro: unweighted means of the per-type precision, recall and F1 (support = total gold).
        per_type: type → :class:`PRF`, types sorted (union of gold and predicted types).
    """

    micro: PRF
    macro: PRF
    per_type: dict[str, PRF] = field(default_factory=dict)

    def to_table(self, digits: int = 4) -> str:
        """A plain-text table (one row per type, then micro and macro).

        Arguments:
            digits: decimals shown (default 4).

        Returns:
            The table as a string.
        """
        rows = [(t or "_", s) for t, s in self.per_type.items()]
        rows += [("micro", self.micro), ("macro", self.macro)]
        width = max(8, *(len(name) for name, _ in rows))
        head = f"{'type':<{width}} {'precision':>10} {'recall':>10} {'f1':>10} {'support':>8}"
        lines = [head]
        for name, s in rows:
            lines.append(
                f"{name:<{width}} {s.precision:>10.{digits}f} {s.recall:>10.{digits}f} "
                f"{s.f1:>10.{digits}f} {s.support:>8d}"
            )
        return "\n".join(lines)


def _check_pairs(gold: Sequence, pred: Sequence) -> None:
    if isinstance(gold, str) or isinstance(pred, str):
        raise ValueError("gold and pred must be lists of sequences, not strings")
    if len(gold) != len(pred):
        raise ValueError(
            f"gold and pred must hold the same number of sequences, got {len(gold)} and {len(pred)}"
        )


def span_scores(gold: Sequence[Iterable[Span]], pred: Sequence[Iterable[Span]]) -> EntityReport:
    """Exact-match scores of span sets, sentence by sentence.

    Arguments:
        gold: per sentence, the gold spans ``(start, end, type)``.
        pred: per sentence, the predicted spans; duplicates count once.

    Returns:
        An :class:`EntityReport`.
    """
    _check_pairs(gold, pred)
    counts: dict[str, list[int]] = {}  # type → [tp, predicted, gold]
    for g, p in zip(gold, pred, strict=True):
        gs, ps = set(map(tuple, g)), set(map(tuple, p))
        for s in gs:
            counts.setdefault(s[2], [0, 0, 0])[2] += 1
        for s in ps:
            c = counts.setdefault(s[2], [0, 0, 0])
            c[1] += 1
            if s in gs:
                c[0] += 1
    per_type = {t: PRF.from_counts(*counts[t]) for t in sorted(counts)}
    tp = sum(c[0] for c in counts.values())
    n_pred = sum(c[1] for c in counts.values())
    n_gold = sum(c[2] for c in counts.values())
    micro = PRF.from_counts(tp, n_pred, n_gold)
    k = len(per_type)
    if k:
        macro = PRF(
            sum(s.precision for s in per_type.values()) / k,
            sum(s.recall for s in per_type.values()) / k,
            sum(s.f1 for s in per_type.values()) / k,
            n_gold,
            tp,
            n_pred,
        )
    else:
        macro = PRF(0.0, 0.0, 0.0, 0, 0, 0)
    return EntityReport(micro, macro, per_type)


def entity_scores(
    gold: Sequence[Sequence[str]],
    pred: Sequence[Sequence[str]],
    *,
    scheme: str = "BIO",
    mode: str = "strict",
) -> EntityReport:
    """Entity-level exact-match precision, recall and F1 of tag sequences.

    Matches seqeval: ``mode="strict"`` equals ``seqeval.metrics`` with ``mode="strict",
    scheme=IOB2`` (BIO) or ``IOBES`` (BIOES); ``mode="conlleval"`` equals seqeval's default.

    Arguments:
        gold: gold tag sequences, one per sentence.
        pred: predicted tag sequences, each as long as its gold sequence.
        scheme: BIO (default), IOB1, BIOES, BIOUL or BMES.
        mode: ``"strict"`` (default) or ``"conlleval"``; see
            :func:`~kexue.textkit.tagging.tags_to_spans`.

    Returns:
        An :class:`EntityReport` (``.micro``, ``.macro``, ``.per_type``, ``.to_table()``).
    """
    _check_pairs(gold, pred)
    for i, (g, p) in enumerate(zip(gold, pred, strict=True)):
        if len(g) != len(p):
            raise ValueError(
                f"gold and pred: sequence {i} has {len(g)} gold tags but {len(p)} predicted"
            )
    gs = [tags_to_spans(g, scheme, mode) for g in gold]
    ps = [tags_to_spans(p, scheme, mode) for p in pred]
    return span_scores(gs, ps)


_HALFWIDTH = {c: c - 0xFEE0 for c in range(0xFF01, 0xFF5F)} | {0x3000: 0x20}


def to_halfwidth(text: str) -> str:
    """Map full-width ASCII variants (U+FF01–U+FF5E) and the ideographic space to ASCII.

    Arguments:
        text: any string.

    Returns:
        The string with ``１２３ＡＢ！`` → ``123AB!``; other characters unchanged.
    """
    return text.translate(_HALFWIDTH)


@dataclass(frozen=True)
class CWSReport:
    """Word-segmentation scores (SIGHAN ``score`` semantics).

    Arguments:
        precision, recall, f1: over word spans.
        oov_recall: recall over gold words not in ``train_words`` (None without ``train_words``
            or when no gold word is OOV).
        iv_recall: recall over the other gold words (None likewise).
        gold_words, pred_words, correct: counts.
        oov_rate: fraction of gold words that are OOV (None without ``train_words``).
    """

    precision: float
    recall: float
    f1: float
    oov_recall: float | None
    iv_recall: float | None
    gold_words: int
    pred_words: int
    correct: int
    oov_rate: float | None

    def to_table(self, digits: int = 4) -> str:
        """One line per figure, as the SIGHAN script prints its summary.

        Arguments:
            digits: decimals shown (default 4).

        Returns:
            The summary as a string.
        """

        def fmt(x: float | None) -> str:
            return "n/a" if x is None else f"{x:.{digits}f}"

        return "\n".join(
            [
                f"TOTAL TRUE WORD COUNT: {self.gold_words}",
                f"TOTAL TEST WORD COUNT: {self.pred_words}",
                f"TOTAL CORRECT: {self.correct}",
                f"RECALL: {fmt(self.recall)}",
                f"PRECISION: {fmt(self.precision)}",
                f"F MEASURE: {fmt(self.f1)}",
                f"OOV RATE: {fmt(self.oov_rate)}",
                f"OOV RECALL: {fmt(self.oov_recall)}",
                f"IV RECALL: {fmt(self.iv_recall)}",
            ]
        )


def _word_spans(words: Sequence[str], norm: bool) -> tuple[str, list[tuple[int, int, str]]]:
    spans = []
    off = 0
    for w in words:
        if not isinstance(w, str) or not w:
            raise ValueError(f"words must be non-empty strings, got {w!r}")
        if norm:
            w = to_halfwidth(w)
        spans.append((off, off + len(w), w))
        off += len(w)
    return "".join(s[2] for s in spans), spans


def cws_scores(
    gold_words: Sequence[Sequence[str]],
    pred_words: Sequence[Sequence[str]],
    *,
    train_words: Iterable[str] | None = None,
    normalize_width: bool = False,
) -> CWSReport:
    """Word-segmentation precision, recall, F1 and OOV/IV recall.

    A predicted word is correct when a gold word has the same character offsets in the same
    sentence (SIGHAN ``score``). A gold word is OOV when it is not in ``train_words``.

    Arguments:
        gold_words: per sentence, the gold words.
        pred_words: per sentence, the predicted words; each sentence must spell the same text.
        train_words: the training lexicon (e.g. ``pku_training_words``); None skips OOV/IV.
        normalize_width: map full-width ASCII variants to ASCII in all three inputs first
            (:func:`to_halfwidth`; default False) — use it when the lexicon and the test text
            differ in width.

    Returns:
        A :class:`CWSReport`.
    """
    _check_pairs(gold_words, pred_words)
    lexicon = None
    if train_words is not None:
        if isinstance(train_words, str):
            raise ValueError("train_words must be an iterable of words, not a string")
        lexicon = {to_halfwidth(w) if normalize_width else w for w in train_words}
    n_gold = n_pred = correct = 0
    n_oov = oov_hit = 0
    for i, (g, p) in enumerate(zip(gold_words, pred_words, strict=True)):
        if isinstance(g, str) or isinstance(p, str):
            raise ValueError(f"gold_words and pred_words: sentence {i} must be a list of words")
        gtext, gspans = _word_spans(g, normalize_width)
        ptext, pspans = _word_spans(p, normalize_width)
        if gtext != ptext:
            raise ValueError(
                f"gold_words and pred_words: sentence {i} spells different texts "
                f"({gtext[:20]!r}… vs {ptext[:20]!r}…)"
            )
        pset = {(s, e) for s, e, _ in pspans}
        n_gold += len(gspans)
        n_pred += len(pspans)
        for s, e, w in gspans:
            hit = (s, e) in pset
            correct += hit
            if lexicon is not None and w not in lexicon:
                n_oov += 1
                oov_hit += hit
    prf = PRF.from_counts(correct, n_pred, n_gold)
    if lexicon is None:
        oov_recall = iv_recall = oov_rate = None
    else:
        oov_rate = _div(n_oov, n_gold)
        oov_recall = oov_hit / n_oov if n_oov else None
        n_iv = n_gold - n_oov
        iv_recall = (correct - oov_hit) / n_iv if n_iv else None
    return CWSReport(
        prf.precision,
        prf.recall,
        prf.f1,
        oov_recall,
        iv_recall,
        n_gold,
        n_pred,
        correct,
        oov_rate,
    )
