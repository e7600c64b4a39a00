"""Sentence- and paragraph-level evaluation of reading comprehension by generation (post 7115).

- :func:`answer_questions` / :func:`evaluate_qa`: greedy answers of a UniLM model to (passage,
  question) pairs and their exact match (overall, answerable, 无答案, per type).
- :func:`paragraph_vote_answer`: one answer from all sentences of a paragraph by the author's vote
  (spec §2.7: drop passages answering ``[SEP]`` first; score Σp²/(Σp+1) per step).
- :func:`combine_sentence_answers`: the no-voting baselines ("first" answered sentence, "best"
  = most probable single-sentence answer).
- :func:`evaluate_paragraph_qa`: all of them against the paragraph's gold answer.

References:
    - Su Jianlin, seq2seq reading comprehension and voting: https://kexue.fm/archives/7115
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from torch import nn

from ..seq2seq.voting import unilm_passage_predict, vote_answer
from ._types import TokenizerLike
from .generation import generate_answers
from .qa_data import (
    NO_ANSWER,
    ParagraphQuestion,
    QAExample,
    collate_seq2seq,
    decode_answer,
    encode_qa,
    qa_exact_match,
)

__all__ = [
    "PARAGRAPH_METHODS",
    "ParagraphReport",
    "QAReport",
    "answer_questions",
    "combine_sentence_answers",
    "evaluate_paragraph_qa",
    "evaluate_qa",
    "paragraph_vote_answer",
    "score_paragraph_predictions",
]


def answer_questions(
    model: nn.Module,
    tokenizer: TokenizerLike,
    pairs: Sequence[tuple[str, str]],
    *,
    max_lens: Sequence[int] = (64, 8, 16),
    batch_size: int = 128,
) -> list[tuple[str, float]]:
    """Greedy answers to ``(passage, question)`` pairs: ``(answer, probability)`` each.

    The answer is :func:`~kexue.textkit.tasks.qa_data.decode_answer` of the generation (an empty
    generation is 无答案); the probability is that of the whole generated sequence, closing
    ``[SEP]`` included (:func:`generate_answers`).

    Arguments:
        model: a QA-trained UniLM model.
        tokenizer: with ``encode``, ``decode``, ``pad_id``, ``bos_id`` ([CLS]), ``eos_id`` ([SEP]).
        pairs: ``(passage, question)`` texts.
        max_lens: passage/question/answer token limits, as in training (default 64/8/16).
        batch_size: prompts per forward (default 128).

    Returns:
        One ``(answer, probability)`` per pair.
    """
    if not pairs:
        return []
    prompts = [
        encode_qa(
            tokenizer.encode,
            p,
            q,
            cls_id=tokenizer.bos_id,
            sep_id=tokenizer.eos_id,
            max_lens=max_lens,
        )[0]
        for p, q in pairs
    ]
    res = generate_answers(
        model,
        prompts,
        pad_id=tokenizer.pad_id,
        end_id=tokenizer.eos_id,
        max_new_tokens=max_lens[2] + 1,
        batch_size=batch_size,
    )
    return [(decode_answer(tokenizer.decode(ids)), p) for ids, p in res]


@dataclass
class QAReport:
    """Exact match of sentence-level QA.

    Arguments:
        em: overall exact match.
        em_answerable: EM on questions whose answer is an entity.
        em_no_answer: EM (= accuracy of 无答案) on questions without one.
        per_type: EM per entity type.
        count: number of questions.
        predictions: the predicted answers, in input order.
    """

    em: float
    em_answerable: float
    em_no_answer: float
    per_type: dict[str, float]
    count: int
    predictions: list[str] = field(repr=False, default_factory=list)


def evaluate_qa(
    model: nn.Module,
    tokenizer: TokenizerLike,
    examples: Sequence[QAExample],
    *,
    max_lens: Sequence[int] = (64, 8, 16),
    batch_size: int = 128,
) -> QAReport:
    """Exact match of greedy answers on :class:`~kexue.textkit.tasks.qa_data.QAExample` s.

    Arguments:
        model, tokenizer, max_lens, batch_size: as :func:`answer_questions`.
        examples: the questions with gold answers.

    Returns:
        A :class:`QAReport`.
    """
    if not examples:
        raise ValueError("examples must not be empty")
    preds = [
        a
        for a, _ in answer_questions(
            model,
            tokenizer,
            [(e.passage, e.question) for e in examples],
            max_lens=max_lens,
            batch_size=batch_size,
        )
    ]
    gold = [e.answer for e in examples]

    def em_of(keep: Callable[[QAExample], bool]) -> float:
        idx = [i for i, e in enumerate(examples) if keep(e)]
        return qa_exact_match([preds[i] for i in idx], [gold[i] for i in idx])

    types = list(dict.fromkeys(e.entity_type for e in examples))
    return QAReport(
        em=qa_exact_match(preds, gold),
        em_answerable=em_of(lambda e: e.answer != NO_ANSWER),
        em_no_answer=em_of(lambda e: e.answer == NO_ANSWER),
        per_type={t: em_of(lambda e, t=t: e.entity_type == t) for t in types},
        count=len(examples),
        predictions=preds,
    )


#: Ways to answer a paragraph question from its sentences (see :func:`paragraph_answers`).
PARAGRAPH_METHODS = ("vote", "first", "best")


def combine_sentence_answers(answers: Sequence[tuple[str, float]], *, method: str = "best") -> str:
    """One paragraph answer from its sentences' own answers, without voting.

    Arguments:
        answers: ``(answer, probability)`` per sentence, in order (:func:`answer_questions`).
        method: ``"first"`` = the first sentence that does not answer 无答案; ``"best"`` = the
            answered sentence with the highest sequence probability (ties: earliest).

    Returns:
        The answer, or :data:`~kexue.textkit.tasks.qa_data.NO_ANSWER` when every sentence says so.
    """
    if method not in ("first", "best"):
        raise ValueError(f"method must be 'first' or 'best', got {method!r}")
    answered = [(a, p) for a, p in answers if a != NO_ANSWER]
    if not answered:
        return NO_ANSWER
    if method == "first":
        return answered[0][0]
    best = max(range(len(answered)), key=lambda i: (answered[i][1], -i))
    return answered[best][0]


def paragraph_vote_answer(
    model: nn.Module,
    tokenizer: TokenizerLike,
    passages: Sequence[str],
    question: str,
    *,
    max_lens: Sequence[int] = (64, 8, 16),
    topk: int = 1,
) -> str:
    """Answer one question from several passages by the author's vote (spec §2.7).

    Step 0 drops the passages whose most probable first token is ``[SEP]`` (they answer 无答案);
    if none remain the answer is 无答案. Then every step scores a token by
    ``Σ_i p_i(v)² / (Σ_i p_i(v) + 1)`` over the remaining passages and beam search (width
    ``topk``, 1 in the post) continues. Runs :func:`kexue.textkit.seq2seq.voting.vote_answer` with
    :func:`kexue.textkit.seq2seq.voting.unilm_passage_predict`.

    Arguments:
        model, tokenizer, max_lens: as :func:`answer_questions`.
        passages: the passages (sentences of one paragraph).
        question: the question text.
        topk: beam width (default 1, post 7115).

    Returns:
        The voted answer (:func:`~kexue.textkit.tasks.qa_data.decode_answer`).

    References: https://kexue.fm/archives/7115.
    """
    if not passages:
        raise ValueError("passages must not be empty")
    prompts = [
        encode_qa(
            tokenizer.encode,
            p,
            question,
            cls_id=tokenizer.bos_id,
            sep_id=tokenizer.eos_id,
            max_lens=max_lens,
        )[0]
        for p in passages
    ]
    device = next(model.parameters()).device
    batch = collate_seq2seq([(ids, [0] * len(ids)) for ids in prompts], pad_id=tokenizer.pad_id)
    predict = unilm_passage_predict(model, batch.tokens.to(device), batch.mask.sum(1).to(device))
    ids = vote_answer(
        predict,
        num_passages=len(prompts),
        end_id=tokenizer.eos_id,
        maxlen=max_lens[2] + 1,
        topk=topk,
    )
    return decode_answer(tokenizer.decode(ids))


@dataclass
class ParagraphReport:
    """Paragraph-level exact match per method.

    Arguments:
        em: method → EM against the paragraph's gold answer (the most frequent entity).
        em_any: method → share of predictions that are ANY entity of the asked type in the
            paragraph (or 无答案 when it has none) — a lenient score.
        count: number of paragraph questions.
        predictions: method → predicted answers in input order.
    """

    em: dict[str, float]
    em_any: dict[str, float]
    count: int
    predictions: dict[str, list[str]] = field(repr=False, default_factory=dict)


def evaluate_paragraph_qa(
    model: nn.Module,
    tokenizer: TokenizerLike,
    questions: Sequence[ParagraphQuestion],
    *,
    methods: Sequence[str] = PARAGRAPH_METHODS,
    max_lens: Sequence[int] = (64, 8, 16),
    topk: int = 1,
) -> ParagraphReport:
    """Paragraph-level QA: voting over the sentences vs. combining per-sentence answers.

    Methods: ``"vote"`` (:func:`paragraph_vote_answer`), ``"first"`` and ``"best"``
    (:func:`combine_sentence_answers` of the greedy per-sentence answers).

    Arguments:
        model, tokenizer, max_lens: as :func:`answer_questions`.
        questions: :class:`~kexue.textkit.tasks.qa_data.ParagraphQuestion` s.
        methods: any of :data:`PARAGRAPH_METHODS`.
        topk: beam width of the vote.

    Returns:
        A :class:`ParagraphReport`.
    """
    if not questions:
        raise ValueError("questions must not be empty")
    bad = [m for m in methods if m not in PARAGRAPH_METHODS]
    if bad or not methods:
        raise ValueError(f"methods must be among {PARAGRAPH_METHODS}, got {list(methods)}")
    preds: dict[str, list[str]] = {}
    if any(m != "vote" for m in methods):
        flat = [(p, q.question) for q in questions for p in q.passages]
        answers = answer_questions(model, tokenizer, flat, max_lens=max_lens)
        per_q: list[list[tuple[str, float]]] = []
        k = 0
        for q in questions:
            per_q.append(answers[k : k + len(q.passages)])
            k += len(q.passages)
        for m in methods:
            if m != "vote":
                preds[m] = [combine_sentence_answers(a, method=m) for a in per_q]
    if "vote" in methods:
        preds["vote"] = [
            paragraph_vote_answer(
                model, tokenizer, q.passages, q.question, max_lens=max_lens, topk=topk
            )
            for q in questions
        ]
    em, em_any = score_paragraph_predictions(preds, questions)
    return ParagraphReport(em, em_any, len(questions), preds)


def score_paragraph_predictions(
    predictions: dict[str, Sequence[str]], questions: Sequence[ParagraphQuestion]
) -> tuple[dict[str, float], dict[str, float]]:
    """Strict and lenient paragraph scores of each method's predictions.

    Arguments:
        predictions: method → one predicted answer per question.
        questions: the paragraph questions.

    Returns:
        ``(em, em_any)``: exact match against the gold (most frequent) answer, and the share of
        predictions that are any entity of the type in the paragraph (无答案 when it has none).
    """
    for m, preds in predictions.items():
        if len(preds) != len(questions):
            raise ValueError(
                f"predictions[{m!r}] has {len(preds)} answers for {len(questions)} questions"
            )
    gold = [q.answer for q in questions]
    em = {m: qa_exact_match([decode_answer(a) for a in p], gold) for m, p in predictions.items()}
    em_any = {
        m: sum(
            (decode_answer(a) == NO_ANSWER and not q.entities) or decode_answer(a) in q.entities
            for a, q in zip(p, questions)
        )
        / max(len(questions), 1)
        for m, p in predictions.items()
    }
    return em, em_any
