"""Fixtures of the seq2seq tests.

``tiny_bert``: ``tiny_bert(vocab_size, *, hidden=16, layers=2, heads=2, ffn=32, positions=32,
jitter=0.0)`` builds a ``BertUniLM`` after ``torch.manual_seed(0)`` in eval mode; ``jitter``
adds ``jitter · N(0, 1)`` to every parameter (BERT's init leaves biases and LN at 0 / 1, which
hides mix-ups and makes decoding choices degenerate).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from kexue.textkit.seq2seq.bert import BertConfig, BertUniLM


def _tiny_bert(
    vocab_size: int,
    *,
    hidden: int = 16,
    layers: int = 2,
    heads: int = 2,
    ffn: int = 32,
    positions: int = 32,
    jitter: float = 0.0,
) -> BertUniLM:
    torch.manual_seed(0)
    sizes = dict(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads)
    cfg = BertConfig(
        vocab_size=vocab_size, intermediate_size=ffn, max_position_embeddings=positions, **sizes
    )
    model = BertUniLM(cfg).eval()
    if jitter:
        with torch.no_grad():
            for p in model.parameters():
                p.add_(jitter * torch.randn_like(p))
    return model


@pytest.fixture
def tiny_bert() -> Callable[..., BertUniLM]:
    """The factory described in the module docstring."""
    return _tiny_bert
