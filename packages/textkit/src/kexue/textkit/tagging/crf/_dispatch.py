"""Which algorithm computes log Z and the Viterbi path: the semiring reference or a fast path.

Log-partition (``algorithm=`` of ``crf_log_partition``, ``crf_nll``, ``crf_marginals``, ``CRF``):

- ``"lse"``: the reference, :func:`~._chain.chain` under the log semiring (a logsumexp per
  step), differentiated by autograd (twice differentiable).
- ``"matmul"``: the scaled forward recursion in probability space with a hand-written β backward
  (:mod:`._scaled`); not twice differentiable.
- ``"auto"``: ``"matmul"`` unless the spread of the transitions (or of ``end``) exceeds 30 nats,
  where fp32 underflow in probability space could drop mass that matters (e.g. −1e4 forbidden
  transitions under ``constrain_training``); then ``"lse"``. The spread is read back with the
  entry's one input check, never on its own.

Viterbi (``algorithm=`` of ``viterbi_decode``):

- ``"max"``: the reference, the same recursion under the max semiring, back-pointers stored.
- ``"sorted"``: rows sorted by length, max-plus values only, back-pointers recomputed for the
  chosen tag in the backtrace (:mod:`._sorted_viterbi`); the default (``"auto"``), 1.9–2.3×
  faster than ``"max"`` on 2 CPU threads at B = 64, T = 128, K = 20 and B = 32, T = 512, K = 50
  (packages/textkit/BENCHMARKS.md): the reference pays for ``max`` with indices, the fast path
  runs ``amax`` forward and one (B, K) argmax per step back.

An unknown name raises with the list of valid ones; an explicit choice is always honoured.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .._checks import DeviceChecks
from ._chain import backtrace, chain
from ._scaled import scaled_log_partition
from ._sorted_viterbi import sorted_viterbi
from .semiring import LOG, MAX

__all__ = [
    "LOG_PARTITION_ALGORITHMS",
    "VITERBI_ALGORITHMS",
    "check_algorithm",
    "log_partition",
    "register_spread",
    "resolve",
    "viterbi",
]

LOG_PARTITION_ALGORITHMS = ("auto", "lse", "matmul")
VITERBI_ALGORITHMS = ("auto", "max", "sorted")
_AUTO_MAX_SPREAD = 30.0  # nats; see the module docstring ("auto")


def check_algorithm(algorithm: str, allowed: tuple[str, ...] = LOG_PARTITION_ALGORITHMS) -> str:
    """Return ``algorithm`` if it is one of ``allowed``, else raise ``ValueError``."""
    if algorithm not in allowed:
        raise ValueError(f"algorithm must be one of {allowed}, got {algorithm!r}")
    return algorithm


def register_spread(checks: DeviceChecks, algorithm: str, a: Tensor, end: Tensor | None) -> None:
    """For ``"auto"`` and ``"matmul"``, add the parameters' spread to the entry's one read-back
    (``"auto"`` chooses by it; ``"matmul"`` normalises every other step when it is small)."""
    if algorithm == "lse":
        return
    a = a.detach()
    spread = a.max() - a.min()
    if end is not None:
        spread = torch.maximum(spread, end.detach().max() - end.detach().min())
    checks.value("spread", spread)


def resolve(algorithm: str, facts: dict) -> str:
    """The log-partition algorithm to run, given the read-back ``facts``."""
    if algorithm != "auto":
        return algorithm
    return "matmul" if facts["spread"] <= _AUTO_MAX_SPREAD else "lse"


def log_partition(h: Tensor, mask: Tensor, a: Tensor, start: Tensor | None, end: Tensor | None,
                  steps: int, algorithm: str, shortest: int = 1,
                  spread: float | None = None) -> Tensor:  # fmt: skip
    """(B,) log Z by the resolved ``algorithm`` (``"lse"`` or ``"matmul"``); trusted inputs
    (``steps`` / ``shortest``: the longest / shortest length, ``spread``: the parameters'
    spread, all read back by the entry)."""
    with torch.autocast(h.device.type, enabled=False):
        if algorithm == "lse":
            return chain(LOG, h, mask, a, start, end, steps)[0]
        return scaled_log_partition(h, mask, a, start, end, steps, shortest, spread)


def viterbi(h: Tensor, mask: Tensor, a: Tensor, start: Tensor | None, end: Tensor | None,
            lengths: list[int], algorithm: str) -> tuple[Tensor, Tensor]:  # fmt: skip
    """Best paths (B, T) (0 at pads) and scores (B,); trusted inputs (``lengths`` on the host)."""
    with torch.no_grad(), torch.autocast(h.device.type, enabled=False):
        if algorithm in ("auto", "sorted"):
            return sorted_viterbi(h, mask, a, start, end, lengths)
        steps = max(lengths)
        best, witness, back = chain(MAX, h, mask, a, start, end, steps)
        path = backtrace(MAX, witness, back)[:, 0]  # (B, steps)
        tags = h.new_zeros(h.shape[:2], dtype=torch.long)
        tags[:, :steps] = path
        return tags, best
