"""Linear-chain CRF, functional API: path score, log-partition, NLL, marginals, Viterbi, n-best.

Conventions (spec §1, §2.1): emissions ``h`` are ``(B, T, K)`` (batch first); ``mask`` is a bool
``(B, T)`` right-padded prefix mask with ``mask[:, 0]`` all true (default: all true); ``tags`` are
long ``(B, T)`` (values at padded positions are ignored, so ``-100`` padding is fine); transitions
``A`` are ``(K, K)`` with ``A[i, j]`` the score of ``i → j``; ``start``/``end`` are optional ``(K,)``.
The score of a path ``y`` of length ``L`` is

    S(y) = start[y_1] + Σ_{t≤L} h_t[y_t] + Σ_{2≤t≤L} A[y_{t−1}, y_t] + end[y_L]

and ``log Z = logsumexp_y S(y)``; the NLL is ``log Z − S(y*)``. Values at padded positions never
matter (they are replaced by zeros with ``where``, so even NaN there is harmless). Half-precision
inputs are computed in fp32 with autocast disabled. Forbidden transitions are −1e4, never −inf.

Every op here is a checked entry: it validates its inputs once (one device→host read-back for all
value checks, :mod:`._check`), then calls a trusted core. The dynamic program is written once over
semirings (:mod:`._chain`, :mod:`.semiring`): log → log Z (marginals by autograd), max → Viterbi,
k-max → n-best; ``algorithm=`` picks that reference or a fast path (:mod:`._dispatch`):
``"lse"`` / ``"matmul"`` / ``"auto"`` for log Z, ``"max"`` / ``"sorted"`` / ``"auto"`` for Viterbi.
Measured on CPU, forward+backward, ``matmul`` is 5× (K = 20) to 12× (K = 50) faster than ``lse``
(packages/textkit/BENCHMARKS.md); its fp32 log Z is closer to the fp64 value than pytorch-crf's.

References:
    - Su Jianlin, "简明条件随机场CRF介绍（附带纯Keras实现）": https://kexue.fm/archives/5542
    - Lafferty, McCallum, Pereira 2001, "Conditional Random Fields" (ICML).
    - Rush 2020, "Torch-Struct", arXiv 2002.00876 (one recursion, several semirings).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .._checks import DeviceChecks, check_positive_int, check_reduction, reduce
from ..constraints import constrained_scores
from ._chain import backtrace, chain
from ._check import Prepared, check_inputs
from ._dispatch import (
    LOG_PARTITION_ALGORITHMS,
    VITERBI_ALGORITHMS,
    check_algorithm,
    log_partition,
    register_spread,
    resolve,
    viterbi,
)
from .semiring import KMax

__all__ = [
    "crf_log_partition",
    "crf_marginals",
    "crf_nll",
    "crf_score",
    "viterbi_decode",
    "viterbi_nbest",
]


def _entry(emissions: Tensor, transitions: Tensor, mask: Tensor | None, start: Tensor | None,
           end: Tensor | None, tags: Tensor | None = None, *, algorithm: str | None = None,
           lengths: bool = False) -> tuple[Prepared, dict]:  # fmt: skip
    """Check once (one read-back); return the trusted inputs and the read-back facts."""
    checks = DeviceChecks()
    x = check_inputs(checks, emissions, transitions, mask, start, end, tags)
    if algorithm is not None:
        register_spread(checks, algorithm, x.a, x.end)
    register_lengths(checks, x.mask, per_row=lengths)
    return x, checks.read()


def register_lengths(checks: DeviceChecks, mask: Tensor, *, per_row: bool = False) -> None:
    """Read back the longest length as ``steps`` (and every row's as ``lengths``)."""
    lengths = mask.sum(1)
    if per_row:
        checks.vector("lengths", lengths)
    else:
        checks.value("steps", lengths.max())
        checks.value("shortest", lengths.min())


def steps_of(facts: dict) -> int:
    """The longest sequence length from the read-back facts."""
    return int(facts["steps"]) if "steps" in facts else max(facts["lengths"])


def shortest_of(facts: dict) -> int:
    """The shortest sequence length from the read-back facts."""
    return int(facts["shortest"]) if "shortest" in facts else min(facts["lengths"])


# --------------------------------------------------------------------------------------------------
# Trusted cores (inputs already checked; called by the module and the taggers)
# --------------------------------------------------------------------------------------------------


def score_core(h: Tensor, tags: Tensor, mask: Tensor, a: Tensor, start: Tensor | None,
               end: Tensor | None) -> Tensor:  # fmt: skip
    """(B,) S(y): vectorised gathers, no loop over T; ``h`` 0 and ``tags`` in range at pads."""
    emit = h.gather(2, tags.unsqueeze(-1)).squeeze(-1).sum(1)
    score = emit + torch.where(mask[:, 1:], a[tags[:, :-1], tags[:, 1:]], 0.0).sum(1)
    if start is not None:
        score = score + start[tags[:, 0]]
    if end is not None:
        last = mask.sum(1, keepdim=True) - 1
        score = score + end[tags.gather(1, last).squeeze(1)]
    return score


def log_z_core(x: Prepared, facts: dict, algorithm: str) -> Tensor:
    """(B,) log Z of checked inputs (``algorithm`` may still be ``"auto"``: resolved from
    ``facts``, which also give the longest / shortest length and the parameters' spread)."""
    return log_partition(x.h, x.mask, x.a, x.start, x.end, steps_of(facts),
                         resolve(algorithm, facts), shortest_of(facts), facts.get("spread"))  # fmt: skip


def nll_core(x: Prepared, facts: dict, algorithm: str, reduction: str) -> Tensor:
    """NLL of checked inputs (see :func:`log_z_core`)."""
    log_z = log_z_core(x, facts, algorithm)
    nll = log_z - score_core(x.h, x.tags, x.mask, x.a, x.start, x.end)
    return reduce(nll, x.mask, reduction)


def marginals_core(x: Prepared, facts: dict, algorithm: str) -> Tensor:
    """(B, T, K) ∂ Σ log Z / ∂h of checked inputs (detached)."""
    with torch.enable_grad():
        h = x.h.detach().requires_grad_(True)
        a, start, end = (None if v is None else v.detach() for v in (x.a, x.start, x.end))
        log_z = log_z_core(Prepared(h, x.mask, a, start, end, None), facts, algorithm)
        (grad,) = torch.autograd.grad(log_z.sum(), h)
    return grad


def nbest_core(x: Prepared, facts: dict, k: int, pad_tag: int) -> tuple[Tensor, Tensor]:
    """(B, k, T) tags and (B, k) scores under the k-max semiring; checked inputs."""
    semiring = KMax(k)
    steps = steps_of(facts)
    b, t_full, _ = x.h.shape
    with torch.no_grad(), torch.autocast(x.h.device.type, enabled=False):
        best, witness, back = chain(semiring, x.h, x.mask, x.a, x.start, x.end, steps)
        path = backtrace(semiring, witness, back)  # (B, k, steps)
        tags = torch.full((b, k, t_full), pad_tag, dtype=torch.long, device=x.h.device)
        tags[:, :, :steps] = torch.where(x.mask[:, None, :steps], path, pad_tag)
    return tags, best


# --------------------------------------------------------------------------------------------------
# Checked entries
# --------------------------------------------------------------------------------------------------


def crf_score(
    emissions: Tensor,
    tags: Tensor,
    transitions: Tensor,
    *,
    mask: Tensor | None = None,
    start: Tensor | None = None,
    end: Tensor | None = None,
) -> Tensor:
    """Score S(y) of the given tag paths (vectorised gathers, no loop over T).

    Arguments:
        emissions: (B, T, K) emission scores h.
        tags: (B, T) long gold tags (ignored at padded positions).
        transitions: (K, K), ``A[i, j]`` = score of i → j.
        mask: (B, T) bool right-padded prefix mask (default all true).
        start, end: optional (K,) start / end scores.

    Returns:
        (B,) path scores (fp32 for half inputs).

    References:
        https://kexue.fm/archives/5542
    """
    checks = DeviceChecks()
    x = check_inputs(checks, emissions, transitions, mask, start, end, tags)
    checks.read()
    return score_core(x.h, x.tags, x.mask, x.a, x.start, x.end)


def crf_log_partition(
    emissions: Tensor,
    transitions: Tensor,
    *,
    mask: Tensor | None = None,
    start: Tensor | None = None,
    end: Tensor | None = None,
    algorithm: str = "auto",
) -> Tensor:
    """Log-partition log Z = logsumexp over all tag paths of S(y), per sequence.

    Arguments:
        emissions: (B, T, K) emission scores.
        transitions: (K, K) transition scores.
        mask: (B, T) bool right-padded prefix mask (default all true).
        start, end: optional (K,) start / end scores.
        algorithm: ``"auto"`` (default), ``"lse"`` (the log-semiring reference) or ``"matmul"``
            (scaled forward, β backward); see :mod:`kexue.textkit.tagging.crf._dispatch`.

    Returns:
        (B,) log Z.

    References:
        https://kexue.fm/archives/5542 (forward recursion), spec §2.1 (matmul trick).
    """
    check_algorithm(algorithm, LOG_PARTITION_ALGORITHMS)
    x, facts = _entry(emissions, transitions, mask, start, end, algorithm=algorithm)
    return log_z_core(x, facts, algorithm)


def crf_nll(
    emissions: Tensor,
    tags: Tensor,
    transitions: Tensor,
    *,
    mask: Tensor | None = None,
    start: Tensor | None = None,
    end: Tensor | None = None,
    reduction: str = "mean",
    algorithm: str = "auto",
) -> Tensor:
    """Negative log-likelihood log Z − S(y*) of the gold paths (a loss, like the author's layer).

    pytorch-crf's ``CRF.forward`` returns the log-likelihood (its negation) with default
    reduction ``"sum"``; here the default is ``"mean"`` over sequences.

    Arguments:
        emissions: (B, T, K); tags: (B, T) long; transitions: (K, K).
        mask: (B, T) bool right-padded prefix mask (default all true).
        start, end: optional (K,) start / end scores.
        reduction: ``"none"`` (B,), ``"sum"``, ``"mean"`` (over sequences, default) or
            ``"token_mean"`` (sum / number of unmasked tokens), pytorch-crf's names.
        algorithm: log-partition algorithm (see :func:`crf_log_partition`).

    Returns:
        The NLL, (B,) for ``"none"`` else a scalar.

    References:
        https://kexue.fm/archives/5542
    """
    check_reduction(reduction)
    check_algorithm(algorithm, LOG_PARTITION_ALGORITHMS)
    x, facts = _entry(emissions, transitions, mask, start, end, tags, algorithm=algorithm)
    return nll_core(x, facts, algorithm, reduction)


def crf_marginals(
    emissions: Tensor,
    transitions: Tensor,
    *,
    mask: Tensor | None = None,
    start: Tensor | None = None,
    end: Tensor | None = None,
    algorithm: str = "auto",
) -> Tensor:
    """Unary marginals P(y_t = j) = ∂ log Z / ∂h_t[j] (forward–backward), 0 at padded positions.

    Computed by autograd through the log-semiring recursion (``"lse"``) or by the β recursion of
    ``"matmul"``; the result is detached (not differentiable).

    Arguments:
        emissions: (B, T, K); transitions: (K, K); mask: (B, T) bool (default all true);
        start, end: optional (K,); algorithm: as :func:`crf_log_partition`.

    Returns:
        (B, T, K) marginals; each valid step sums to 1.

    References:
        https://kexue.fm/archives/5542; kmkurn/pytorch-crf#21, #36, #48 (requests).
    """
    check_algorithm(algorithm, LOG_PARTITION_ALGORITHMS)
    x, facts = _entry(emissions, transitions, mask, start, end, algorithm=algorithm)
    return marginals_core(x, facts, algorithm)


def _constrained(x: Prepared, allowed_start: Tensor | None, allowed_end: Tensor | None,
                 allowed_transitions: Tensor | None) -> Prepared:  # fmt: skip
    a, start, end = constrained_scores(
        x.a, x.start, x.end, allowed_start=allowed_start, allowed_end=allowed_end,
        allowed_transitions=allowed_transitions,
    )  # fmt: skip
    return Prepared(h=x.h, mask=x.mask, a=a, start=start, end=end, tags=x.tags)


def viterbi_decode(
    emissions: Tensor,
    transitions: Tensor,
    *,
    mask: Tensor | None = None,
    start: Tensor | None = None,
    end: Tensor | None = None,
    allowed_start: Tensor | None = None,
    allowed_end: Tensor | None = None,
    allowed_transitions: Tensor | None = None,
    pad_tag: int = 0,
    algorithm: str = "auto",
) -> tuple[Tensor, Tensor]:
    """Batched Viterbi: the best path per sequence, as tensors (no Python lists).

    Ties go to the lowest index. Disallowed starts / ends / transitions (bool masks, e.g. from
    :func:`kexue.textkit.tagging.allowed_transitions`, or the author's ``starts``/``ends``)
    score −1e4 (a penalty, not −inf: a path is only forced to be allowed when scores stay well
    below 1e4).

    Arguments:
        emissions: (B, T, K); transitions: (K, K); mask: (B, T) bool (default all true).
        start, end: optional (K,) scores.
        allowed_start, allowed_end: optional (K,) bool; allowed_transitions: optional (K, K) bool.
        pad_tag: value written at padded positions (default 0).
        algorithm: ``"auto"`` (default, = ``"sorted"``), ``"max"`` (the max-semiring reference
            with stored back-pointers) or ``"sorted"`` (rows sorted by length, back-pointers
            recomputed for the chosen tag only).

    Returns:
        ``(tags (B, T) long, best_score (B,))``; ``best_score`` is the path score under the
        constrained parameters (equal to :func:`crf_score` for an allowed path).

    References:
        https://kexue.fm/archives/5542; kmkurn/pytorch-crf PR #16 (batched Viterbi).
    """
    check_algorithm(algorithm, VITERBI_ALGORITHMS)
    x, facts = _entry(emissions, transitions, mask, start, end, lengths=True)
    x = _constrained(x, allowed_start, allowed_end, allowed_transitions)
    return decode_core(x, facts, pad_tag, algorithm)


def decode_core(x: Prepared, facts: dict, pad_tag: int, algorithm: str = "auto"
                ) -> tuple[Tensor, Tensor]:  # fmt: skip
    """Viterbi of checked inputs (``facts`` holds the per-row ``lengths``)."""
    tags, best = viterbi(x.h, x.mask, x.a, x.start, x.end, facts["lengths"], algorithm)
    return torch.where(x.mask, tags, pad_tag), best


def viterbi_nbest(
    emissions: Tensor,
    transitions: Tensor,
    *,
    k: int,
    mask: Tensor | None = None,
    start: Tensor | None = None,
    end: Tensor | None = None,
    allowed_start: Tensor | None = None,
    allowed_end: Tensor | None = None,
    allowed_transitions: Tensor | None = None,
    pad_tag: int = 0,
) -> tuple[Tensor, Tensor]:
    """The k best paths per sequence: the recursion under the k-max semiring, (B, K, k) states.

    Arguments:
        emissions, transitions, mask, start, end, allowed_*, pad_tag: as :func:`viterbi_decode`.
        k: number of paths (≥ 1). When a sequence has fewer than k paths, the extra rows have
            score −inf and arbitrary tags.

    Returns:
        ``(tags (B, k, T) long, scores (B, k))``, best first.

    References:
        https://kexue.fm/archives/5542; bert4torch CRF ``decode(nbest=...)``; Rush 2020
        (k-max semiring).
    """
    check_positive_int("k", k)
    x, facts = _entry(emissions, transitions, mask, start, end)
    x = _constrained(x, allowed_start, allowed_end, allowed_transitions)
    return nbest_core(x, facts, k, pad_tag)
