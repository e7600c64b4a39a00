"""Word discovery and domain-term mining: numpy only, never imports torch.

- :mod:`.ngrams` — n-gram counting into mergeable ``NgramCounts`` tables (in memory, or streamed
  from files with pruning; multiprocess). The table class and its ``.npz`` format (``save`` /
  ``load``, which rejects truncated, foreign or inconsistent files) live in ``._table``; the
  interrupt-safe worker processes in ``._workers``.
- :mod:`.discovery` — nlp-zero's algorithm (``WordFinder``) and the n-gram algorithm (``discover_ngrams``).
- :mod:`.segment` — minimum-entropy unigram segmentation (``UnigramSegmenter``).
- :mod:`.termfilter` — the candidate-term filter ``is_good_term`` (basic and strict rules).
- :mod:`.domain` — the smoothed domain score and ``mine_domain_terms``.
- :mod:`.expand` — seed expansion over co-occurrence vectors.
- :mod:`.dask` — counting across the workers of a Dask cluster (extra ``dask``).
- :mod:`.cli` — the ``kexue-terms`` command line (argument parsing and the commands); its input,
  output, path and signal handling in ``._cli_io``, atomic writes (temporary file in the target's
  folder, then ``os.replace``) in ``._atomic``, shared with ``NgramCounts.save``.

Names are imported lazily (PEP 562): ``import kexue.textkit.terms`` loads no submodule (and not
numpy), so ``kexue-terms --help`` stays fast; ``kexue.textkit.terms.WordFinder`` imports
:mod:`.discovery` on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_attributes

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from .dask import count_ngrams_dask, file_byte_ranges
    from .discovery import WordFinder, cohesive_ngrams, discover_ngrams, discover_ngrams_files
    from .domain import TermScore, domain_scores, mine_domain_terms
    from .expand import ExpandedTerm, cooccurrence_vectors, expand_seeds
    from .ngrams import (
        DEFAULT_FRAGMENT_PATTERN,
        NgramCounts,
        count_ngrams,
        count_ngrams_files,
        fragments,
    )
    from .segment import UNKNOWN_CHAR_SCORE, UnigramSegmenter
    from .termfilter import DEFAULT_STOP_CHARS, is_good_term

_SUBMODULES = ("cli", "dask", "discovery", "domain", "expand", "ngrams", "segment", "termfilter")

# public name -> the submodule that defines it
_NAMES = {
    "count_ngrams_dask": "dask",
    "file_byte_ranges": "dask",
    "WordFinder": "discovery",
    "cohesive_ngrams": "discovery",
    "discover_ngrams": "discovery",
    "discover_ngrams_files": "discovery",
    "DEFAULT_STOP_CHARS": "termfilter",
    "is_good_term": "termfilter",
    "TermScore": "domain",
    "domain_scores": "domain",
    "mine_domain_terms": "domain",
    "ExpandedTerm": "expand",
    "cooccurrence_vectors": "expand",
    "expand_seeds": "expand",
    "DEFAULT_FRAGMENT_PATTERN": "ngrams",
    "NgramCounts": "ngrams",
    "count_ngrams": "ngrams",
    "count_ngrams_files": "ngrams",
    "fragments": "ngrams",
    "UNKNOWN_CHAR_SCORE": "segment",
    "UnigramSegmenter": "segment",
}

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


__getattr__, __dir__ = lazy_attributes(globals(), _NAMES, _SUBMODULES)
