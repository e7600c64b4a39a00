"""Reading comprehension by generation on People's Daily: examples, encoding, batching, scoring.

The task (issue 7, after post 7115): a question q ∈ {人名, 地名, 机构名} about a passage p (one
sentence); the answer is the **first** entity of that type in p (PER = merged runs of ``nr``, LOC =
``ns``, ORG = ``nt``, the NER view of :mod:`kexue.textkit.data.peoples_daily`), or ``无答案`` when p has
none. A UniLM model reads ``[CLS] p [SEP] q [SEP] a [SEP]`` with segment 1 on ``a [SEP]`` (spec
§2.5) and learns to generate a; ``无答案`` is encoded as the empty answer (:func:`encode_qa`), so
"no answer" means "``[SEP]`` first", the rule of the multi-passage vote (spec §2.7).

Balance. Most sentences hold no ORG and many no PER, so the natural mix is dominated by ``无答案``.
:func:`build_qa_examples` keeps every answerable (sentence, question) pair and, **per question
type**, a seeded random subset of the unanswerable ones of size ``round(no_answer_ratio ×
answerable)`` (default ratio 1.0: half of each type's examples have no answer).

Paragraph questions (for voting, spec §2.7). For a paragraph and a question type the gold answer is
the **most frequent** entity of that type over the paragraph's sentences (mentions counted; ties go
to the earliest first mention), ``无答案`` when the paragraph has none; :class:`ParagraphQuestion`
also keeps every entity of the type, for a lenient score.

This module holds the pure-data pieces (no model): examples, encoding with segment ids, padding
collate, exact match and the entity lexicon used to check generated sentences;
:mod:`kexue.textkit.tasks.generation` holds training and sampling, :mod:`kexue.textkit.tasks.qa_evaluation`
answering, voting and exact match.

References:
    - Su Jianlin, seq2seq reading comprehension: https://kexue.fm/archives/7115
    - UniLM: Dong et al. 2019, arXiv:1905.03197.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import torch
from torch import Tensor

from ..tagging.schemes import tags_to_spans

__all__ = [
    "NO_ANSWER",
    "QA_QUESTIONS",
    "EntityLexicon",
    "ParagraphQuestion",
    "QAExample",
    "Seq2SeqBatch",
    "build_paragraph_questions",
    "build_qa_examples",
    "collate_seq2seq",
    "decode_answer",
    "encode_qa",
    "encode_seq2seq",
    "entity_type_vector",
    "normalize_answer",
    "qa_exact_match",
    "sentence_entities",
]

#: Entity type → question text (issue 7).
QA_QUESTIONS: dict[str, str] = {"PER": "人名", "LOC": "地名", "ORG": "机构名"}
#: The answer when the passage holds no entity of the asked type (issue 7).
NO_ANSWER = "无答案"


class _TaggedSentence(Protocol):
    """What the builders read: :class:`kexue.textkit.data.peoples_daily.PDExample` has these fields."""

    chars: str
    ner_tags: list[str]
    paragraph: int


@dataclass(frozen=True)
class QAExample:
    """One (passage, question, answer) triple.

    Arguments:
        passage: the sentence.
        question: ``QA_QUESTIONS[entity_type]``.
        answer: the first entity of the type in the passage, or :data:`NO_ANSWER`.
        entity_type: ``"PER"``, ``"LOC"`` or ``"ORG"``.
        paragraph: paragraph id of the sentence (the voting unit).
        sentence: index of the sentence among its paragraph's sentences.
    """

    passage: str
    question: str
    answer: str
    entity_type: str
    paragraph: int = -1
    sentence: int = -1


@dataclass(frozen=True)
class ParagraphQuestion:
    """A question about a whole paragraph: its sentences are the passages that vote.

    Arguments:
        paragraph: paragraph id.
        entity_type: ``"PER"``, ``"LOC"`` or ``"ORG"``.
        question: ``QA_QUESTIONS[entity_type]``.
        passages: the paragraph's sentences, in order.
        answer: the most frequent entity of the type in the paragraph (mentions counted, ties to
            the earliest first mention), or :data:`NO_ANSWER`.
        entities: every distinct entity of the type in the paragraph, in order of first mention.
    """

    paragraph: int
    entity_type: str
    question: str
    passages: tuple[str, ...]
    answer: str
    entities: tuple[str, ...] = field(default_factory=tuple)


def sentence_entities(
    chars: str, tags: Sequence[str], *, scheme: str = "BIO"
) -> list[tuple[str, str]]:
    """The entities of one tagged sentence, in order: ``[(type, text), ...]``.

    Spans come from :func:`kexue.textkit.tagging.tags_to_spans` (strict mode).

    Arguments:
        chars: the sentence, one tag per character.
        tags: its tag sequence, e.g. ``["B-PER", "I-PER", "O"]``.
        scheme: tagging scheme of ``tags`` (default ``"BIO"``).

    Returns:
        ``(type, chars[start:end])`` for every span, sorted by start.
    """
    if len(chars) != len(tags):
        raise ValueError(
            f"chars and tags must have equal lengths, got {len(chars)} and {len(tags)}"
        )
    spans = sorted(tags_to_spans(list(tags), scheme=scheme), key=lambda s: (s[0], s[1]))
    return [(typ, chars[start:end]) for start, end, typ in spans]


def _check_types(types: Sequence[str]) -> None:
    if not types:
        raise ValueError("types must not be empty")
    bad = [t for t in types if t not in QA_QUESTIONS]
    if bad:
        raise ValueError(f"types must be among {sorted(QA_QUESTIONS)}, got {bad}")


def build_qa_examples(
    sentences: Iterable[_TaggedSentence],
    *,
    types: Sequence[str] = ("PER", "LOC", "ORG"),
    no_answer_ratio: float | None = 1.0,
    scheme: str = "BIO",
    generator: torch.Generator | None = None,
) -> list[QAExample]:
    """Sentence-level QA examples: one per (sentence, question type), balanced per type.

    Arguments:
        sentences: tagged sentences with ``chars``, ``ner_tags`` and ``paragraph``
            (:class:`kexue.textkit.data.peoples_daily.PDExample`), in corpus order.
        types: question types to ask (default all three).
        no_answer_ratio: per type, keep ``round(ratio × answerable)`` unanswerable examples (a
            seeded random subset, capped at what exists); ``None`` keeps them all (the natural
            mix). Default 1.0 (design decision: half answerable, half 无答案 for each type).
        scheme: tagging scheme of ``ner_tags`` (default ``"BIO"``).
        generator: seeds the choice of unanswerable examples (default: a fresh generator seeded 0,
            so the result is deterministic).

    Returns:
        Examples in corpus order (sentence, then type), answerable and kept unanswerable mixed.
    """
    _check_types(types)
    if no_answer_ratio is not None and not no_answer_ratio >= 0:
        raise ValueError(f"no_answer_ratio must be >= 0 or None, got {no_answer_ratio}")
    out: list[QAExample] = []
    last_par, index = None, -1
    for sent in sentences:
        index = index + 1 if sent.paragraph == last_par else 0
        last_par = sent.paragraph
        ents = sentence_entities(sent.chars, sent.ner_tags, scheme=scheme)
        for typ in types:
            first = next((text for t, text in ents if t == typ), NO_ANSWER)
            out.append(QAExample(sent.chars, QA_QUESTIONS[typ], first, typ, sent.paragraph, index))
    if no_answer_ratio is None:
        return out
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    drop: set[int] = set()
    for typ in types:
        pos = [i for i, ex in enumerate(out) if ex.entity_type == typ and ex.answer != NO_ANSWER]
        neg = [i for i, ex in enumerate(out) if ex.entity_type == typ and ex.answer == NO_ANSWER]
        keep = min(len(neg), round(no_answer_ratio * len(pos)))
        perm = torch.randperm(len(neg), generator=gen).tolist()
        drop.update(neg[j] for j in perm[keep:])
    return [ex for i, ex in enumerate(out) if i not in drop]


def build_paragraph_questions(
    sentences: Iterable[_TaggedSentence],
    *,
    types: Sequence[str] = ("PER", "LOC", "ORG"),
    scheme: str = "BIO",
) -> list[ParagraphQuestion]:
    """One question per (paragraph, type): the passages are the paragraph's sentences.

    Consecutive sentences with the same ``paragraph`` id form one paragraph. The gold answer is the
    most frequent entity of the type (mentions counted over all sentences; ties go to the earliest
    first mention), or :data:`NO_ANSWER` when there is none.

    Arguments:
        sentences: tagged sentences (``chars``, ``ner_tags``, ``paragraph``) in corpus order.
        types: question types (default all three).
        scheme: tagging scheme of ``ner_tags`` (default ``"BIO"``).

    Returns:
        Questions ordered by paragraph, then type.
    """
    _check_types(types)
    groups: list[tuple[int, list[_TaggedSentence]]] = []
    for sent in sentences:
        if groups and groups[-1][0] == sent.paragraph:
            groups[-1][1].append(sent)
        else:
            groups.append((sent.paragraph, [sent]))
    out: list[ParagraphQuestion] = []
    for par, sents in groups:
        ents = [e for s in sents for e in sentence_entities(s.chars, s.ner_tags, scheme=scheme)]
        for typ in types:
            mentions = [text for t, text in ents if t == typ]
            counts = Counter(mentions)
            order = list(dict.fromkeys(mentions))  # distinct, in order of first mention
            answer = max(order, key=lambda e: (counts[e], -order.index(e))) if order else NO_ANSWER
            out.append(
                ParagraphQuestion(
                    par, typ, QA_QUESTIONS[typ], tuple(s.chars for s in sents), answer, tuple(order)
                )
            )
    return out


def encode_seq2seq(
    encode: Callable[[str], list[int]],
    source: Sequence[str],
    target: str | None,
    *,
    cls_id: int,
    sep_id: int,
    max_lens: Sequence[int] | None = None,
) -> tuple[list[int], list[int]]:
    """Token ids and segment ids of ``[CLS] s1 [SEP] s2 [SEP] … [SEP] target [SEP]``.

    Segments are 0 on ``[CLS]``, the sources and their ``[SEP]``s, 1 on the target and its closing
    ``[SEP]`` (spec §2.5). With ``target=None`` the sequence stops after the last source ``[SEP]``
    (the decoding prompt). With ``source=()`` the layout is ``[CLS] target [SEP]``: a language
    model in UniLM form (``[CLS]`` alone is the source, the target is causal).

    Arguments:
        encode: text → ids (e.g. ``SentencePieceTokenizer.encode``).
        source: the source texts, e.g. ``(passage, question)``.
        target: the target text, or ``None``.
        cls_id: id of ``[CLS]`` (the tokenizer's BOS in textkit).
        sep_id: id of ``[SEP]`` (the tokenizer's EOS in textkit).
        max_lens: optional maximum token count per text (sources, then target), truncating from
            the right (post 7115 uses 256/64/32 for passage/question/answer).

    Returns:
        ``(ids, segments)``, lists of equal length.
    """
    texts = [*source] + ([] if target is None else [target])
    if not texts:
        raise ValueError("source must hold at least one text when target is None")
    if max_lens is not None and len(max_lens) != len(texts):
        raise ValueError(f"max_lens must give {len(texts)} lengths, got {len(max_lens)}")
    ids, segs = [cls_id], [0]
    for k, text in enumerate(texts):
        piece = encode(text)
        if max_lens is not None:
            piece = piece[: max_lens[k]]
        seg = 1 if (target is not None and k == len(texts) - 1) else 0
        ids += [*piece, sep_id]
        segs += [seg] * (len(piece) + 1)
    return ids, segs


def encode_qa(
    encode: Callable[[str], list[int]],
    passage: str,
    question: str,
    answer: str | None = None,
    *,
    cls_id: int,
    sep_id: int,
    max_lens: Sequence[int] = (64, 8, 16),
) -> tuple[list[int], list[int]]:
    """``[CLS] passage [SEP] question [SEP] answer [SEP]`` ids and segments (answer = segment 1).

    :data:`NO_ANSWER` is encoded as the EMPTY answer (the target is the closing ``[SEP]`` alone),
    as post 7115 does, so that "no answer" is "the first generated token is ``[SEP]``" — the rule
    voting uses (spec §2.7); :func:`decode_answer` maps an empty generation back to 无答案.

    Arguments:
        encode: text → ids.
        passage, question: the source texts.
        answer: the answer text; ``None`` gives the decoding prompt (no target).
        cls_id, sep_id: ``[CLS]`` and ``[SEP]`` ids (tokenizer BOS and EOS in textkit).
        max_lens: token limits of passage, question and answer (default 64/8/16 for CPU models;
            post 7115 uses 256/64/32).

    Returns:
        ``(ids, segments)``.
    """
    if len(max_lens) != 3:
        raise ValueError(
            f"max_lens must give 3 lengths (passage, question, answer), got {max_lens}"
        )
    if answer is None:
        return encode_seq2seq(
            encode, (passage, question), None, cls_id=cls_id, sep_id=sep_id, max_lens=max_lens[:2]
        )
    target = "" if answer == NO_ANSWER else answer
    return encode_seq2seq(
        encode, (passage, question), target, cls_id=cls_id, sep_id=sep_id, max_lens=max_lens
    )


def decode_answer(text: str) -> str:
    """A generated answer as compared by exact match: :func:`normalize_answer`, and the empty
    answer (or the literal 无答案) as :data:`NO_ANSWER`."""
    norm = normalize_answer(text)
    return norm if norm else NO_ANSWER


@dataclass
class Seq2SeqBatch:
    """A right-padded batch: ``tokens`` (B, L) long, ``segments`` (B, L) long, ``mask`` (B, L) bool
    (True on real tokens), ``cond`` (B, d_c) float or ``None``."""

    tokens: Tensor
    segments: Tensor
    mask: Tensor
    cond: Tensor | None = None


def collate_seq2seq(
    items: Sequence[tuple[Sequence[int], Sequence[int]]],
    *,
    pad_id: int,
    cond: Sequence[Sequence[float]] | None = None,
) -> Seq2SeqBatch:
    """Pad ``(ids, segments)`` pairs on the right into one :class:`Seq2SeqBatch`.

    Padding carries token ``pad_id`` and segment 0 (spec §2.5: the key-padding mask, ``mask``,
    must be ANDed into attention).

    Arguments:
        items: ``(ids, segments)`` pairs of equal lengths, at least one token each.
        pad_id: the padding token id.
        cond: optional per-item condition vectors (all of one length) → ``cond`` (B, d_c).

    Returns:
        The batch.
    """
    if not items:
        raise ValueError("items must not be empty")
    for k, (ids, segs) in enumerate(items):
        if len(ids) != len(segs) or not ids:
            raise ValueError(
                f"items[{k}] must have non-empty ids and segments of equal length, "
                f"got {len(ids)} and {len(segs)}"
            )
    length = max(len(ids) for ids, _ in items)
    tokens = torch.full((len(items), length), pad_id, dtype=torch.long)
    segments = torch.zeros((len(items), length), dtype=torch.long)
    mask = torch.zeros((len(items), length), dtype=torch.bool)
    for k, (ids, segs) in enumerate(items):
        tokens[k, : len(ids)] = torch.as_tensor(list(ids), dtype=torch.long)
        segments[k, : len(segs)] = torch.as_tensor(list(segs), dtype=torch.long)
        mask[k, : len(ids)] = True
    cond_t = None
    if cond is not None:
        if len(cond) != len(items):
            raise ValueError(f"cond must have one row per item, got {len(cond)} for {len(items)}")
        cond_t = torch.as_tensor([list(c) for c in cond], dtype=torch.float32)
    return Seq2SeqBatch(tokens, segments, mask, cond_t)


def normalize_answer(text: str) -> str:
    """The answer as compared by exact match: whitespace (and sentencepiece's ▁) removed."""
    return "".join(text.replace("\u2581", " ").split())


def qa_exact_match(predictions: Sequence[str], answers: Sequence[str]) -> float:
    """Exact match: the share of predictions equal to their answer after :func:`normalize_answer`.

    Arguments:
        predictions: predicted answers.
        answers: gold answers, same length.

    Returns:
        EM in [0, 1] (``nan`` for empty inputs).
    """
    if len(predictions) != len(answers):
        raise ValueError(
            f"predictions and answers must have equal lengths, got {len(predictions)} "
            f"and {len(answers)}"
        )
    if not answers:
        return float("nan")
    hits = sum(normalize_answer(p) == normalize_answer(a) for p, a in zip(predictions, answers))
    return hits / len(answers)


class EntityLexicon:
    """Entities seen in training, by type, to check which types a generated sentence mentions.

    A sentence "contains" a type when one of the type's lexicon entries (of at least ``min_chars``
    characters, seen at least ``min_count`` times) occurs in it as a substring. This is the
    dictionary-lookup check of issue 7, used when no trained tagger is at hand; it misses novel
    entities and counts an entry inside a longer word.

    Arguments:
        sentences: tagged training sentences (``chars``, ``ner_tags``).
        types: entity types to collect (default PER, LOC, ORG).
        min_chars: shortest entry kept (default 2: single characters match everywhere).
        min_count: fewest training mentions of an entry (default 1).
        scheme: tagging scheme (default ``"BIO"``).
    """

    def __init__(
        self,
        sentences: Iterable[_TaggedSentence],
        *,
        types: Sequence[str] = ("PER", "LOC", "ORG"),
        min_chars: int = 2,
        min_count: int = 1,
        scheme: str = "BIO",
    ) -> None:
        _check_types(types)
        counts: dict[str, Counter[str]] = {t: Counter() for t in types}
        for sent in sentences:
            for typ, text in sentence_entities(sent.chars, sent.ner_tags, scheme=scheme):
                if typ in counts:
                    counts[typ][text] += 1
        self.types = tuple(types)
        self.entries: dict[str, frozenset[str]] = {
            t: frozenset(e for e, c in counts[t].items() if len(e) >= min_chars and c >= min_count)
            for t in types
        }
        self._by_len = {
            t: sorted({len(e) for e in self.entries[t]}, reverse=True) for t in self.types
        }

    def find(self, text: str, entity_type: str) -> str | None:
        """The first (leftmost, then longest) lexicon entry of ``entity_type`` in ``text``."""
        entries, lengths = self.entries[entity_type], self._by_len[entity_type]
        for i in range(len(text)):
            for n in lengths:
                if text[i : i + n] in entries:
                    return text[i : i + n]
        return None

    def types_in(self, text: str) -> tuple[bool, ...]:
        """Presence of each type (in ``self.types`` order) in ``text``."""
        return tuple(self.find(text, t) is not None for t in self.types)


def entity_type_vector(
    chars: str,
    tags: Sequence[str],
    *,
    types: Sequence[str] = ("PER", "LOC", "ORG"),
    scheme: str = "BIO",
) -> list[float]:
    """The condition of the CLN language model: ``[has PER, has LOC, has ORG]`` as 0/1 floats.

    Arguments:
        chars: the sentence.
        tags: its tags.
        types: order of the bits (default PER, LOC, ORG).
        scheme: tagging scheme (default ``"BIO"``).

    Returns:
        One float per type.
    """
    present = {t for t, _ in sentence_entities(chars, tags, scheme=scheme)}
    return [1.0 if t in present else 0.0 for t in types]
