"""The linear-chain CRF: the functional reference and the ``CRF`` module.

- :mod:`.functional` — ``crf_score``, ``crf_log_partition``, ``crf_nll``, ``crf_marginals``,
  ``viterbi_decode``, ``viterbi_nbest``: checked public entries over trusted cores.
- :mod:`.module` — :class:`CRF`, the ``nn.Module`` (parameters, constraints, pytorch-crf import).
"""

from __future__ import annotations

from .functional import (
    crf_log_partition,
    crf_marginals,
    crf_nll,
    crf_score,
    viterbi_decode,
    viterbi_nbest,
)
from .module import (
    CRF,
)

__all__ = [
    "CRF",
    "crf_log_partition",
    "crf_marginals",
    "crf_nll",
    "crf_score",
    "viterbi_decode",
    "viterbi_nbest",
]
