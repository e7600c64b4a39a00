"""Autoregressive decoding: bert4keras-exact greedy / beam / sampling decoders and logit filters.

- :mod:`.decoder` — ``AutoRegressiveDecoder`` and the UniLM decoder (KV cache).
- :mod:`.beam` — the beam-search loop and cache reordering.
- :mod:`.filters` — ``top_k_filter`` / ``top_p_filter``.
"""

from __future__ import annotations

from .decoder import (
    AutoRegressiveDecoder,
    UniLMDecoder,
    top_k_filter,
    top_p_filter,
    unilm_next_logits,
)

__all__ = [
    "AutoRegressiveDecoder",
    "UniLMDecoder",
    "top_k_filter",
    "top_p_filter",
    "unilm_next_logits",
]
