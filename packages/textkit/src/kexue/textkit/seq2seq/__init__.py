"""UniLM seq2seq: attention masks, Conditional LayerNorm, a Transformer with KV cache, sentencepiece,
decoding and multi-passage answer voting.

- :mod:`.masks` — UniLM / causal / prefix-LM / padding masks and SDPA biases.
- :mod:`.cln` — ``ConditionalLayerNorm``.
- :mod:`.transformer` — ``UniLMTransformer``, ``KVCache``, ``seq2seq_loss``.
- :mod:`.tokenizer` — ``SentencePieceTokenizer``, training with a lexicon.
- :mod:`.decoding` — decoders and the top-k / top-p filters of next-token probabilities.
- :mod:`.voting` — answer voting across passages.
- :mod:`.wordpiece` — ``WordPieceTokenizer``: BERT WordPiece through ``tokenizers`` with offsets,
  ``compat="bert4keras"``, simplified vocabularies.
- :mod:`.mlm` — Chinese whole-word masking on segmenter words, the MLM loss.
- :mod:`.pretrain` — streaming text files, the masking collator, the MLM training loop.
- :mod:`.bert` — pretrained BERT-family checkpoints: ``BertUniLM`` (HF names, post-LN, MLM
  head, UniLM masks, KV cache, CLN), ``load_bert`` / ``save_bert`` (HF folders in and out).
"""

from __future__ import annotations

from .bert import (
    BertConfig,
    BertUniLM,
    LoadReport,
    load_bert,
    save_bert,
)
from .cln import (
    ConditionalLayerNorm,
)
from .decoding import (
    AutoRegressiveDecoder,
    LogitsProcessors,
    UniLMDecoder,
    top_k_filter,
    top_p_filter,
    unilm_next_logits,
)
from .masks import (
    attention_bias,
    causal_mask,
    check_attention_mask,
    padding_mask,
    prefix_lm_mask,
    sdpa_mask,
    unilm_mask,
)
from .mlm import mlm_loss, whole_word_mask, word_spans
from .pretrain import MLMLog, TextFileStream, WholeWordMaskCollator, pretrain_mlm
from .tokenizer import (
    SentencePieceTokenizer,
    train_spm_with_lexicon,
)
from .transformer import (
    KVCache,
    UniLMTransformer,
    seq2seq_loss,
)
from .voting import (
    PassageVoter,
    extractive_filter,
    ngram_continuations,
    unilm_passage_predict,
    vote_answer,
    vote_scores,
)
from .wordpiece import WordPieceTokenizer

__all__ = [
    "AutoRegressiveDecoder",
    "BertConfig",
    "BertUniLM",
    "ConditionalLayerNorm",
    "KVCache",
    "LoadReport",
    "LogitsProcessors",
    "MLMLog",
    "PassageVoter",
    "SentencePieceTokenizer",
    "TextFileStream",
    "UniLMDecoder",
    "UniLMTransformer",
    "WholeWordMaskCollator",
    "WordPieceTokenizer",
    "attention_bias",
    "causal_mask",
    "check_attention_mask",
    "extractive_filter",
    "load_bert",
    "mlm_loss",
    "ngram_continuations",
    "padding_mask",
    "prefix_lm_mask",
    "pretrain_mlm",
    "save_bert",
    "sdpa_mask",
    "seq2seq_loss",
    "top_k_filter",
    "top_p_filter",
    "train_spm_with_lexicon",
    "unilm_mask",
    "unilm_next_logits",
    "unilm_passage_predict",
    "vote_answer",
    "vote_scores",
    "whole_word_mask",
    "word_spans",
]
