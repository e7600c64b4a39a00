"""Sequence labelling: tag schemes, transition constraints, the linear-chain CRF, char taggers,
their training loop and the entity / word-segmentation metrics.

- :mod:`.schemes` — BIO / IOB1 / BIOES / BIOUL / BMES spans ↔ tags, ``LabelSet``.
- :mod:`.constraints` — allowed transitions per scheme (AllenNLP semantics), author-style starts/ends.
- :mod:`.crf` — the CRF (one recursion over semirings, fast paths, the ``CRF`` module) and
  bert4keras's numpy ``ViterbiDecoder``.
- :mod:`.taggers` — gated-conv / BiLSTM encoders and ``SequenceTagger`` (CRF or softmax head).
- :mod:`.train` — ``CharVocab``, ``train_tagger``, ``evaluate_ner`` / ``evaluate_cws``.
- :mod:`.metrics` — ``entity_scores`` (strict / conlleval), ``cws_scores`` (P/R/F, OOV recall).
"""

from __future__ import annotations

from .constraints import (
    CONSTRAINT_SCHEMES,
    FORBIDDEN_SCORE,
    Constraints,
    allowed_transitions,
    constrained_scores,
)
from .crf import (
    CRF,
    ViterbiDecoder,
    crf_log_partition,
    crf_marginals,
    crf_nll,
    crf_score,
    viterbi_decode,
    viterbi_nbest,
)
from .metrics import (
    PRF,
    CWSReport,
    EntityReport,
    cws_scores,
    entity_scores,
    span_scores,
    to_halfwidth,
)
from .schemes import (
    TAG_SCHEMES,
    LabelSet,
    Span,
    bmes_to_words,
    ner_labels,
    normalize_scheme,
    spans_to_tags,
    tags_to_spans,
    words_to_bmes,
)
from .taggers import (
    BiLSTMEncoder,
    CharCNNEncoder,
    GatedConvBlock,
    SequenceTagger,
    bilstm_crf_tagger,
    cnn_crf_tagger,
)
from .train import (
    CharVocab,
    TrainResult,
    encode_tagged,
    evaluate_cws,
    evaluate_ner,
    predict_tags,
    train_tagger,
)

__all__ = [
    "CONSTRAINT_SCHEMES",
    "CRF",
    "FORBIDDEN_SCORE",
    "PRF",
    "TAG_SCHEMES",
    "BiLSTMEncoder",
    "CWSReport",
    "CharCNNEncoder",
    "CharVocab",
    "Constraints",
    "EntityReport",
    "GatedConvBlock",
    "LabelSet",
    "SequenceTagger",
    "Span",
    "TrainResult",
    "ViterbiDecoder",
    "allowed_transitions",
    "bilstm_crf_tagger",
    "bmes_to_words",
    "cnn_crf_tagger",
    "constrained_scores",
    "crf_log_partition",
    "crf_marginals",
    "crf_nll",
    "crf_score",
    "cws_scores",
    "encode_tagged",
    "entity_scores",
    "evaluate_cws",
    "evaluate_ner",
    "ner_labels",
    "normalize_scheme",
    "predict_tags",
    "span_scores",
    "spans_to_tags",
    "tags_to_spans",
    "to_halfwidth",
    "train_tagger",
    "viterbi_decode",
    "viterbi_nbest",
    "words_to_bmes",
]
