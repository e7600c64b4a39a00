"""kexue-textkit: Chinese NLP parts from Su Jianlin's *Scientific Spaces* (kexue.fm), on PyTorch and numpy.

The package is a set of rooms, one per capability; no import crosses between them except through
``data`` (shared helpers) and ``tasks`` (applications built on the others):

- :mod:`kexue.textkit.tagging` — tag schemes, constraints, the linear-chain CRF, char CNN-CRF /
  BiLSTM-CRF taggers, their training loop, entity and word-segmentation metrics.
- :mod:`kexue.textkit.terms` — word discovery and domain-term mining, numpy only (never imports
  torch); the ``kexue-terms`` command line.
- :mod:`kexue.textkit.seq2seq` — UniLM masks, Conditional LayerNorm, a Transformer with KV cache,
  sentencepiece, bert4keras-exact decoding, answer voting.
- :mod:`kexue.textkit.losses` — NCE, negative sampling, sampled softmax; AM-Softmax, CosFace,
  ArcFace, SphereFace; JoSE.
- :mod:`kexue.textkit.data` — the People's Daily 1998-01 loader, length-bucketed batches, padding.
- :mod:`kexue.textkit.tasks` — applications (People's Daily QA / conditional generation, the GRU
  sentence-similarity model): importable, not re-exported here.

Everything is imported lazily (PEP 562): ``import kexue.textkit`` costs nothing, and
``kexue.textkit.CRF`` imports only the tagging room. The headline names below are shortcuts; every
other name lives in its room (``from kexue.textkit.tagging import entity_scores``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .__about__ import __version__
from ._lazy import lazy_attributes

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from . import data, losses, seq2seq, tagging, tasks, terms
    from .data.peoples_daily import load_peoples_daily
    from .losses.margin import am_softmax_loss
    from .losses.sampled import sampled_softmax_loss
    from .seq2seq.cln import ConditionalLayerNorm
    from .seq2seq.decoding.decoder import UniLMDecoder
    from .seq2seq.masks import unilm_mask
    from .seq2seq.transformer import UniLMTransformer
    from .tagging.crf.module import CRF
    from .tagging.metrics import entity_scores
    from .tagging.taggers import SequenceTagger, cnn_crf_tagger
    from .terms.discovery import WordFinder, discover_ngrams
    from .terms.domain import mine_domain_terms
    from .terms.ngrams import NgramCounts

SUBPACKAGES = ("tagging", "terms", "seq2seq", "losses", "data", "tasks")

# headline name -> the room that defines it
_HEADLINES = {
    "CRF": "tagging",
    "SequenceTagger": "tagging",
    "cnn_crf_tagger": "tagging",
    "entity_scores": "tagging",
    "NgramCounts": "terms",
    "WordFinder": "terms",
    "discover_ngrams": "terms",
    "mine_domain_terms": "terms",
    "UniLMTransformer": "seq2seq",
    "UniLMDecoder": "seq2seq",
    "ConditionalLayerNorm": "seq2seq",
    "unilm_mask": "seq2seq",
    "sampled_softmax_loss": "losses",
    "am_softmax_loss": "losses",
    "load_peoples_daily": "data",
}

__all__ = [
    "CRF",
    "ConditionalLayerNorm",
    "NgramCounts",
    "SequenceTagger",
    "UniLMDecoder",
    "UniLMTransformer",
    "WordFinder",
    "__version__",
    "am_softmax_loss",
    "cnn_crf_tagger",
    "data",
    "discover_ngrams",
    "entity_scores",
    "load_peoples_daily",
    "losses",
    "mine_domain_terms",
    "sampled_softmax_loss",
    "seq2seq",
    "tagging",
    "tasks",
    "terms",
    "unilm_mask",
]


__getattr__, __dir__ = lazy_attributes(globals(), _HEADLINES, SUBPACKAGES)
