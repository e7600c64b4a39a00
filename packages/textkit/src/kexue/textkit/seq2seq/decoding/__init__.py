"""Autoregressive decoding: bert4keras-exact greedy / beam-search / random-sampling decoders, and
the top-k / top-p (nucleus) filters of next-token probabilities used when sampling.

- :mod:`.decoder` — ``AutoRegressiveDecoder`` and the UniLM decoder (KV cache).
- :mod:`.beam` — the beam-search loop and cache reordering (private helpers).
- :mod:`.filters` — ``top_k_filter`` / ``top_p_filter``.
- :mod:`.unilm_logits` — ``unilm_next_logits`` (full recomputation, the cache's reference).
- :mod:`.logits_process` — opt-in HF ``generate`` constraints (``LogitsProcessors``: repetition
  penalty, no-repeat n-grams, bad words, min new tokens).

(The sampled-softmax / NCE training losses are in :mod:`kexue.textkit.losses.sampled`.)
"""

from __future__ import annotations

from .decoder import AutoRegressiveDecoder, UniLMDecoder
from .filters import top_k_filter, top_p_filter
from .logits_process import LogitsProcessors
from .unilm_logits import unilm_next_logits

__all__ = [
    "AutoRegressiveDecoder",
    "LogitsProcessors",
    "UniLMDecoder",
    "top_k_filter",
    "top_p_filter",
    "unilm_next_logits",
]
