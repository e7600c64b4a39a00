"""Fixtures of the tagging tests: ``crf_brute`` (the CRF's brute-force oracle) and ``count_syncs``.

``crf_brute(h, a, start, end, length) -> (paths (N, L), scores (N,))``: the score of every one of
the K^L tag paths of one sequence (emissions ``h`` (≥ L, K), transitions ``a`` (K, K), optional
``start`` / ``end`` (K,)), the oracle of the CRF tests (log Z = logsumexp, Viterbi = argmax,
n-best = top-k, marginals); keep K^L tiny.

``count_syncs``: the tagging tests count device→host syncs at the dispatcher.

``with count_syncs() as events: ...`` is :func:`kexue.testing.count_host_syncs` with
``dispatch=True``: it also sees boolean-mask indexing, ``masked_select`` and the syncs inside torch's
own functions (packing), which the Python-level ``host_syncs`` fixture of the other rooms does not.
With CUDA, the tests also count with ``torch.cuda.set_sync_debug_mode``. The counter itself (that it
sees every kind of sync) is tested once, in kexue-testing's ``tests/test_syncs.py``.
"""

import itertools
from functools import partial

import pytest
import torch

from kexue.testing import count_host_syncs


@pytest.fixture
def count_syncs():
    """``with count_syncs() as events: ...`` records the would-be synchronisations."""
    return partial(count_host_syncs, dispatch=True)


def _all_path_scores(h, a, start, end, length):
    k = h.shape[-1]
    paths = torch.tensor(list(itertools.product(range(k), repeat=length)))
    score = h[torch.arange(length), paths].sum(1)
    if length > 1:
        score = score + a[paths[:, :-1], paths[:, 1:]].sum(1)
    if start is not None:
        score = score + start[paths[:, 0]] + end[paths[:, -1]]
    return paths, score


@pytest.fixture(scope="session")
def crf_brute():
    """``crf_brute(h, a, start, end, length)``: all K^L paths and their scores (module docstring)."""
    return _all_path_scores
