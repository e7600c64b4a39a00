"""The BERT path on People's Daily shared by the textkit demo and the pretrain-then-fine-tune
benchmark (``python -m tools.bench.textkit.pretrained_qa``): a character WordPiece vocabulary, the
whole-word segmenter from kexue's own word discovery, and a small ``BertUniLM``.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import torch

__all__ = ["char_vocab", "discovered_segmenter", "small_bert"]


def char_vocab(texts: list[str], *, min_count: int = 2) -> list[str]:
    """The five BERT specials, then every character seen ≥ ``min_count`` times (most frequent
    first); the QA question words' characters always included."""
    from kexue.textkit.seq2seq.wordpiece import SPECIAL_TOKENS
    from kexue.textkit.tasks.qa_data import QA_QUESTIONS

    counts = Counter(c for t in texts for c in t if not c.isspace())
    chars = [c for c, n in counts.most_common() if n >= min_count]
    extra = [c for q in QA_QUESTIONS.values() for c in q if c not in chars]
    return list(dict.fromkeys([*SPECIAL_TOKENS, *chars, *extra]))


def discovered_segmenter(texts: list[str], *, min_count: int) -> tuple[Any, dict[str, Any]]:
    """``UnigramSegmenter(...).segment`` over the words ``discover_ngrams`` finds in ``texts``
    (plus every character), and facts about it."""
    from kexue.textkit.terms.discovery import discover_ngrams
    from kexue.textkit.terms.segment import UnigramSegmenter

    t0 = time.perf_counter()
    words = dict(discover_ngrams(texts, min_count=min_count))
    lexicon = dict(Counter(c for t in texts for c in t))
    lexicon.update(words)
    seg = UnigramSegmenter(lexicon)
    sample = [seg.segment(t) for t in texts[:2000]]
    multi = sum(len(w) > 1 for s in sample for w in s) / max(1, sum(len(s) for s in sample))
    facts = {
        "discovered_words": sum(len(w) > 1 for w in words),
        "seconds": time.perf_counter() - t0,
        "multi_char_word_share": multi,
        "example": " / ".join(sample[0]) if sample else "",
    }
    return seg.segment, facts


def small_bert(
    tok: Any, *, hidden: int, layers: int, heads: int, ffn: int, seed: int, dropout: float = 0.0
) -> Any:
    """A ``BertUniLM`` over ``tok``'s vocabulary (128 positions), seeded with ``seed``."""
    from kexue.textkit.seq2seq.bert import BertConfig, BertUniLM

    torch.manual_seed(seed)
    cfg = BertConfig(
        vocab_size=tok.vocab_size,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=ffn,
        max_position_embeddings=128,
        pad_token_id=tok.pad_id,
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
    )
    return BertUniLM(cfg)
