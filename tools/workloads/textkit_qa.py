"""The People's Daily QA-by-generation set-up shared by the textkit demo and the seq2seq benchmark.

One copy of: the sentencepiece vocabulary (question words as user symbols, pieces ≤ 4 characters,
no dummy prefix), the balanced sentence-level QA examples (``build_qa_examples``, train seeded with
``seed``, held-out with ``seed + 1``, a seeded sample of the held-out pool), their encoding as
``[CLS] sentence [SEP] question [SEP] answer [SEP]`` (``MAX_LENS``), the language-model items with
their [PER, LOC, ORG] conditions, and the ``UniLMTransformer`` built after ``torch.manual_seed``.
The demo (``tools/demos/_textkit_seq2seq.py``) and the benchmark
(``python -m tools.bench.textkit.seq2seq``) differ only in sizes and budgets.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import torch

__all__ = [
    "MAX_LENS",
    "QASet",
    "encode_lm",
    "encode_qa_items",
    "qa_examples",
    "train_tokenizer",
    "unilm",
]

MAX_LENS = (64, 8, 16)  # passage, question, answer pieces


@dataclass
class QASet:
    """Balanced QA examples: ``train``, the held-out ``pool`` and the evaluated ``test`` sample."""

    train: list[Any]
    pool: list[Any]
    test: list[Any]


def train_tokenizer(texts: list[str], *, vocab_size: int, **options: Any) -> Any:
    """A sentencepiece unigram vocabulary on ``texts`` with the QA question words as symbols."""
    from kexue.textkit.seq2seq.tokenizer import SentencePieceTokenizer
    from kexue.textkit.tasks.qa_data import QA_QUESTIONS

    return SentencePieceTokenizer.train(
        texts,
        vocab_size=vocab_size,
        max_sentencepiece_length=4,
        user_defined_symbols=list(QA_QUESTIONS.values()),
        num_threads=1,
        add_dummy_prefix=False,
        **options,
    )


def qa_examples(data: dict[str, list[Any]], *, seed: int, eval_n: int, **options: Any) -> QASet:
    """Training examples (seed ``seed``), the held-out pool (``seed + 1``), ``eval_n`` sampled."""
    from kexue.textkit.tasks.qa_data import build_qa_examples

    train = build_qa_examples(
        data["train"], generator=torch.Generator().manual_seed(seed), **options
    )
    pool = build_qa_examples(
        data["test"], generator=torch.Generator().manual_seed(seed + 1), **options
    )
    test = random.Random(seed).sample(pool, min(eval_n, len(pool)))
    return QASet(train, pool, test)


def encode_qa_items(tok: Any, examples: list[Any]) -> list[Any]:
    """``encode_qa`` of each example with ``tok`` ([CLS] = bos, [SEP] = eos, ``MAX_LENS``)."""
    from kexue.textkit.tasks.qa_data import encode_qa

    return [
        encode_qa(
            tok.encode,
            e.passage,
            e.question,
            e.answer,
            cls_id=tok.bos_id,
            sep_id=tok.eos_id,
            max_lens=MAX_LENS,
        )
        for e in examples
    ]


def encode_lm(tok: Any, sentences: list[Any]) -> tuple[list[Any], list[Any], list[Any]]:
    """Sentences of ≥ 8 characters, their language-model items and [PER, LOC, ORG] conditions."""
    from kexue.textkit.tasks.qa_data import encode_seq2seq, entity_type_vector

    sents = [s for s in sentences if len(s.chars) >= 8]
    items = [
        encode_seq2seq(tok.encode, (), s.chars, cls_id=tok.bos_id, sep_id=tok.eos_id) for s in sents
    ]
    conds = [entity_type_vector(s.chars, s.ner_tags) for s in sents]
    return sents, items, conds


def unilm(
    tok: Any, *, dim: int, depth: int, heads: int, seed: int, cond_dim: int | None = None
) -> Any:
    """A ``UniLMTransformer`` over ``tok``'s vocabulary (max length 128), seeded with ``seed``."""
    from kexue.textkit.seq2seq.transformer import UniLMTransformer

    torch.manual_seed(seed)
    return UniLMTransformer(
        tok.vocab_size, dim=dim, depth=depth, heads=heads, max_len=128, cond_dim=cond_dim
    )
