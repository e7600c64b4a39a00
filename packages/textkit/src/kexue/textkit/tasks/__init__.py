"""Applications built on the library, importable and documented but not re-exported from
``kexue.textkit``: the People's Daily reading-comprehension (QA) and conditional-generation pipeline,
and the GRU + AM-Softmax sentence-similarity model.

- :mod:`.qa_data` — QA examples from People's Daily entities, encoding and collation.
- :mod:`.generation` — the seq2seq training loop and sampling.
- :mod:`.qa_evaluation` — answering, voting across sentences, exact-match scoring.
- :mod:`.similarity` — ``SentenceSimilarityModel``.
"""

from __future__ import annotations

from .generation import (
    TrainLog,
    condition_hit_rates,
    generate_answers,
    sample_sentences,
    seq2seq_target_loss,
    train_seq2seq,
)
from .qa_data import (
    NO_ANSWER,
    QA_QUESTIONS,
    EntityLexicon,
    ParagraphQuestion,
    QAExample,
    Seq2SeqBatch,
    build_paragraph_questions,
    build_qa_examples,
    collate_seq2seq,
    decode_answer,
    encode_qa,
    encode_seq2seq,
    entity_type_vector,
    normalize_answer,
    qa_exact_match,
    sentence_entities,
)
from .qa_evaluation import (
    PARAGRAPH_METHODS,
    ParagraphReport,
    QAReport,
    answer_questions,
    combine_sentence_answers,
    evaluate_paragraph_qa,
    evaluate_qa,
    paragraph_vote_answer,
    score_paragraph_predictions,
)
from .similarity import (
    GRUSentenceEncoder,
    SentenceSimilarityModel,
    retrieval_topk_accuracy,
    topk_similar,
)

__all__ = [
    "NO_ANSWER",
    "PARAGRAPH_METHODS",
    "QA_QUESTIONS",
    "EntityLexicon",
    "GRUSentenceEncoder",
    "ParagraphQuestion",
    "ParagraphReport",
    "QAExample",
    "QAReport",
    "SentenceSimilarityModel",
    "Seq2SeqBatch",
    "TrainLog",
    "answer_questions",
    "build_paragraph_questions",
    "build_qa_examples",
    "collate_seq2seq",
    "combine_sentence_answers",
    "condition_hit_rates",
    "decode_answer",
    "encode_qa",
    "encode_seq2seq",
    "entity_type_vector",
    "evaluate_paragraph_qa",
    "evaluate_qa",
    "generate_answers",
    "normalize_answer",
    "paragraph_vote_answer",
    "qa_exact_match",
    "retrieval_topk_accuracy",
    "sample_sentences",
    "score_paragraph_predictions",
    "sentence_entities",
    "seq2seq_target_loss",
    "topk_similar",
    "train_seq2seq",
]
