"""The linear-chain CRF: one recursion over semirings, fast paths, the ``CRF`` module.

- :mod:`.functional` — ``crf_score``, ``crf_log_partition``, ``crf_nll``, ``crf_marginals``,
  ``viterbi_decode``, ``viterbi_nbest``: checked public entries over trusted cores.
- :mod:`.module` — :class:`CRF`, the ``nn.Module`` (parameters, constraints, pytorch-crf import).
- :mod:`.semiring` — the log, max and k-max semirings; :mod:`._chain` — the forward recursion
  written once over them (the reference) and the backtrace.
- :mod:`._scaled` (scaled forward + β backward) and :mod:`._sorted_viterbi` — fast paths, picked
  by :mod:`._dispatch` (``algorithm=``); :mod:`._check` — the one input check.
- :mod:`.numpy_viterbi` — bert4keras's numpy :class:`ViterbiDecoder`, on the max semiring.
"""

from __future__ import annotations

from . import functional
from .functional import *  # noqa: F403 - the checked entries, listed once in functional.__all__
from .module import (
    CRF,
)
from .numpy_viterbi import (
    ViterbiDecoder,
)
from .semiring import (
    LOG,
    MAX,
    KMax,
)

__all__ = [
    "CRF",
    "LOG",
    "MAX",
    "KMax",
    "ViterbiDecoder",
]
__all__ += functional.__all__
