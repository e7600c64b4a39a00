"""Word discovery and domain-term mining: numpy only, never imports torch.

- :mod:`.ngrams` — n-gram counting into mergeable ``NgramCounts`` tables (streaming, multiprocess).
- :mod:`.discovery` — nlp-zero's algorithm (``WordFinder``) and the n-gram algorithm (``discover_ngrams``).
- :mod:`.segment` — minimum-entropy unigram segmentation (``UnigramSegmenter``).
- :mod:`.domain` — the smoothed domain score and ``mine_domain_terms``.
- :mod:`.expand` — seed expansion over co-occurrence vectors.
- :mod:`.dask` — counting across the workers of a Dask cluster (extra ``dask``).
- :mod:`.cli` — the ``kexue-terms`` command line.
"""

from __future__ import annotations

from .dask import (
    count_ngrams_dask,
    file_byte_ranges,
)
from .discovery import (
    WordFinder,
    cohesive_ngrams,
    discover_ngrams,
    discover_ngrams_files,
)
from .domain import (
    DEFAULT_STOP_CHARS,
    TermScore,
    domain_scores,
    is_good_term,
    mine_domain_terms,
)
from .expand import (
    ExpandedTerm,
    cooccurrence_vectors,
    expand_seeds,
)
from .ngrams import (
    DEFAULT_FRAGMENT_PATTERN,
    NgramCounts,
    count_ngrams,
    count_ngrams_files,
    fragments,
)
from .segment import (
    UNKNOWN_CHAR_SCORE,
    UnigramSegmenter,
)

__all__ = [
    "DEFAULT_FRAGMENT_PATTERN",
    "DEFAULT_STOP_CHARS",
    "UNKNOWN_CHAR_SCORE",
    "ExpandedTerm",
    "NgramCounts",
    "TermScore",
    "UnigramSegmenter",
    "WordFinder",
    "cohesive_ngrams",
    "cooccurrence_vectors",
    "count_ngrams",
    "count_ngrams_dask",
    "count_ngrams_files",
    "discover_ngrams",
    "discover_ngrams_files",
    "domain_scores",
    "expand_seeds",
    "file_byte_ranges",
    "fragments",
    "is_good_term",
    "mine_domain_terms",
]
