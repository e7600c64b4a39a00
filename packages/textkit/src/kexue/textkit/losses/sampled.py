"""Sampling-based softmax surrogates: NCE, negative sampling, sampled softmax, and their noise.

All losses take *scores* that the caller has already computed (e.g. ``u_w · v_c`` for word2vec, or
``h · W[ids] + b[ids]`` for an output layer) together with log noise probabilities, so they work
for any model and any sampler. Sigmoid terms are written with ``softplus`` (``-log σ(t) = sp(-t)``).

Shapes (B = number of positive examples, k = negatives per example, S = sampled classes):

- ``nce_loss`` / ``neg_sampling_loss``: positives ``(B,)``, negatives ``(B, k)``.
- ``sampled_softmax_loss``: true logits ``(B,)``, sampled logits ``(B, S)``; the log-Q terms of
  the sampled classes may be shared, ``(S,)``, or per row, ``(B, S)``.

Reductions are ``"mean"`` (over the B examples), ``"sum"`` and ``"none"`` (``(B,)``).

Every input must be finite: NaN or ±inf in a score or log-probability raises ``ValueError`` naming
the argument and its shape (drop classes with ``accidental_hits``, never with −inf). The value
checks of one call are fused into a single device→host transfer.

"Sampled" here means sampled *classes* for a softmax surrogate; top-k / nucleus filtering of
next-token distributions for sampling text lives in :mod:`kexue.textkit.seq2seq.decoding.filters`.

References:
    - Su Jianlin, NCE post: https://kexue.fm/archives/5617
    - Gutmann & Hyvärinen 2010 (NCE, AISTATS); Mnih & Teh 2012, arXiv:1206.6426 (NCE for LMs).
    - Mikolov et al. 2013, arXiv:1310.4546 (negative sampling, unigram^0.75, sub-sampling).
    - Levy & Goldberg 2014 (NEG = shifted PMI factorisation, NeurIPS).
    - Bengio & Senécal 2008 (importance-sampled softmax); Jean et al. 2015, arXiv:1412.2007.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ._common import (
    _check_finite,
    _check_reduction,
    _check_tensor,
    _finite_check,
    _raise_on_flags,
    _reduce,
    _shape,
)

__all__ = [
    "NoiseSampler",
    "find_accidental_hits",
    "nce_loss",
    "neg_sampling_loss",
    "sampled_softmax_loss",
    "subsample_keep_prob",
]


def _check_pos_neg(pos: Tensor, neg: Tensor, pos_name: str, neg_name: str) -> None:
    _check_tensor(pos_name, pos, dim=1)
    _check_tensor(neg_name, neg, dim=2)
    if neg.shape[0] != pos.shape[0]:
        raise ValueError(
            f"{neg_name} must have shape (B, k) with B = len({pos_name}): "
            f"{pos_name} has shape {_shape(pos)}, {neg_name} has shape {_shape(neg)}"
        )


def _as_log_q_neg(log_q: Tensor, neg: Tensor, name: str, neg_name: str) -> Tensor:
    """Accept a per-row ``(B, k)`` or a shared ``(k,)`` log-probability; never broadcast otherwise."""
    _check_tensor(name, log_q)
    if log_q.dim() == 1 and log_q.shape[0] == neg.shape[1]:
        return log_q.unsqueeze(0).expand_as(neg)
    if log_q.shape != neg.shape:
        raise ValueError(
            f"{name} must have the shape of {neg_name} {_shape(neg)} or ({neg.shape[1]},) "
            f"(shared negatives), got {_shape(log_q)}"
        )
    return log_q


def _checked_log_q(
    log_q_pos: Tensor, log_q_neg: Tensor, pos: Tensor, neg: Tensor, pos_stem: str, neg_stem: str
) -> tuple[Tensor, list[tuple[Tensor, str]]]:
    """Check ``log_q_<pos_stem>`` ``(B,)`` and ``log_q_<neg_stem>`` against ``<stem>_logits``;
    return the negatives' log-probability as ``(B, k)`` and the finiteness checks of both."""
    pos_q_name, neg_q_name = f"log_q_{pos_stem}", f"log_q_{neg_stem}"
    _check_tensor(pos_q_name, log_q_pos)
    if log_q_pos.shape != pos.shape:
        raise ValueError(
            f"{pos_q_name} must have the shape of {pos_stem}_logits {_shape(pos)}, "
            f"got {_shape(log_q_pos)}"
        )
    lq_neg = _as_log_q_neg(log_q_neg, neg, neg_q_name, f"{neg_stem}_logits")
    return lq_neg, [_finite_check(pos_q_name, log_q_pos), _finite_check(neg_q_name, log_q_neg)]


class NoiseSampler:
    """Noise distribution q ∝ count^power over V classes, with exact sampling and log q.

    q(i) = count_i^power / Σ_j count_j^power. ``power=0.75`` is word2vec's choice [paper,
    Mikolov et al. 2013], ``power=1`` the unigram, ``power=0`` the uniform distribution over all V
    classes (zero counts included). Sampling is inverse-CDF on a cached float64 cumulative table
    (``torch.searchsorted``): exact, O(log V) per draw, any V (``torch.multinomial`` is limited to
    2^24 categories) and reproducible with a ``torch.Generator``. Classes with q = 0 are never drawn.

    Arguments:
        counts: ``(V,)`` non-negative finite counts (tensor or sequence), not all zero.
        power: exponent applied to the counts (default 0.75 [paper]).
        device: where the tables (and samples) live; defaults to the device of ``counts``.

    Returns:
        A sampler with ``.probs`` ``(V,)`` float64, ``.sample(shape, generator=)``, ``.log_q(ids)``,
        ``.sample_unique(num_draws, generator=)`` and ``.log_expected_count(ids, num_draws,
        unique=)``.

    References:
        Mikolov et al. 2013, arXiv:1310.4546; https://kexue.fm/archives/5617
    """

    def __init__(
        self,
        counts: Tensor | Sequence[float],
        *,
        power: float = 0.75,
        device: torch.device | str | None = None,
    ) -> None:
        c = torch.as_tensor(counts)
        if c.dim() != 1 or c.numel() == 0:
            raise ValueError(f"counts must be a non-empty 1-D (V,) tensor, got shape {_shape(c)}")
        c = c.to(device=device if device is not None else c.device, dtype=torch.float64)
        _raise_on_flags(
            [
                _finite_check("counts", c),
                ((c >= 0).all(), f"counts must be non-negative (shape {_shape(c)})"),
            ]
        )
        if not math.isfinite(power) or power < 0:
            raise ValueError(f"power must be a finite number >= 0, got {power}")
        weights = torch.ones_like(c) if power == 0 else c.pow(power)
        total = weights.sum()
        if not bool(total > 0):
            raise ValueError("counts must not be all zero")
        self.power = float(power)
        self.probs: Tensor = weights / total
        cdf = torch.cumsum(self.probs, 0)
        cdf[-1] = 1.0
        self._cdf = cdf
        self._log_probs = self.probs.log()

    @property
    def num_classes(self) -> int:
        """V, the number of classes."""
        return int(self.probs.shape[0])

    @property
    def device(self) -> torch.device:
        """Device of the cached tables and of the samples."""
        return self.probs.device

    def sample(
        self, shape: int | Sequence[int], *, generator: torch.Generator | None = None
    ) -> Tensor:
        """Draw i.i.d. class ids from q (with replacement).

        Arguments:
            shape: output shape (an int or a sequence of ints).
            generator: optional ``torch.Generator`` on ``self.device``.

        Returns:
            ``int64`` tensor of the given shape with values in ``[0, V)``.
        """
        size = (shape,) if isinstance(shape, int) else tuple(shape)
        if any(int(s) < 0 for s in size):
            raise ValueError(f"shape must be non-negative, got {size}")
        u = torch.rand(size, dtype=torch.float64, device=self.device, generator=generator)
        ids = torch.searchsorted(self._cdf, u.reshape(-1), right=True)
        return ids.clamp_(max=self.num_classes - 1).reshape(size)

    def sample_unique(
        self, num_draws: int, *, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """Draw ``num_draws`` ids with replacement and keep the distinct ones (sorted).

        The inclusion probability of class j is Q(j) = 1 − (1 − q(j))^m (m = ``num_draws``),
        which :meth:`log_expected_count` returns with ``unique=True``.

        Returns:
            ``(ids, log_Q)``: distinct ids ``(S,)`` (S ≤ m) and their log inclusion probabilities.
        """
        if num_draws < 1:
            raise ValueError(f"num_draws must be >= 1, got {num_draws}")
        ids = torch.unique(self.sample(num_draws, generator=generator))
        return ids, self.log_expected_count(ids, num_draws, unique=True)

    def _check_ids(self, ids: Tensor) -> None:
        if not isinstance(ids, Tensor) or ids.dtype not in (torch.int64, torch.int32):
            raise ValueError("ids must be an int64/int32 tensor of class ids")
        if ids.numel():
            in_range = ((ids >= 0) & (ids < self.num_classes)).all()
            _raise_on_flags(
                [(in_range, f"ids must lie in [0, {self.num_classes}), got values out of range")]
            )

    def log_q(self, ids: Tensor) -> Tensor:
        """log q(ids) in float64 (``-inf`` for classes of zero probability), shape of ``ids``."""
        self._check_ids(ids)
        return self._log_probs[ids.to(self.device, torch.int64)]

    def log_expected_count(self, ids: Tensor, num_draws: int, *, unique: bool = False) -> Tensor:
        """log Q(ids) for the logQ correction of sampled softmax.

        Q(j) = m·q(j) for m draws with replacement (expected count; ``unique=False``), or
        Q(j) = 1 − (1 − q(j))^m for the de-duplicated set of :meth:`sample_unique`, computed as
        ``log(-expm1(m·log1p(-q)))`` so that small q and large m stay accurate.
        """
        self._check_ids(ids)
        if num_draws < 1:
            raise ValueError(f"num_draws must be >= 1, got {num_draws}")
        q = self.probs[ids.to(self.device, torch.int64)]
        if not unique:
            return math.log(num_draws) + q.log()
        return torch.log(-torch.expm1(num_draws * torch.log1p(-q)))


def nce_loss(
    pos_logits: Tensor,
    neg_logits: Tensor,
    log_q_pos: Tensor | None,
    log_q_neg: Tensor | None,
    *,
    k: int | None = None,
    correct: bool = True,
    gamma: Tensor | float | None = None,
    reduction: str = "mean",
) -> Tensor:
    """Noise-contrastive estimation loss with the log(k·q) correction.

    With s = G − γ and ℓ(x) = s(x, c) − log(k·q(x)) (``correct=True``):
    L = −log σ(ℓ(x⁺)) − Σ_j log σ(−ℓ(x⁻_j)) = sp(−ℓ⁺) + Σ_j sp(ℓ⁻_j).
    At the optimum s(x, c) = log p(x | c): the model is self-normalised. ``correct=False`` drops
    the log(k·q) term and is then exactly :func:`neg_sampling_loss` of G − γ.

    Arguments:
        pos_logits: G(x⁺, c), shape ``(B,)``.
        neg_logits: G(x⁻_j, c), shape ``(B, k)`` (k may be 0: positive term only).
        log_q_pos: log q(x⁺), ``(B,)``; may be ``None`` only when ``correct=False``.
        log_q_neg: log q(x⁻_j), ``(B, k)`` or shared ``(k,)``; ``None`` only when ``correct=False``.
        k: the k of log(k·q); default the number of negatives ``neg_logits.shape[1]`` (pass it to
            use a different k, e.g. when computing expectations exactly).
        correct: subtract log(k·q) (NCE) or not (NEG).
        gamma: None (γ = 0, Mnih & Teh's fixed Z = 1), a float, a scalar tensor (learned, global)
            or a ``(B,)`` tensor (per-context, e.g. a learned ``γ_c`` gathered by context).
        reduction: ``"mean" | "sum" | "none"`` over the B examples.

    Returns:
        The loss, a scalar or ``(B,)``.

    References:
        Gutmann & Hyvärinen 2010; Mnih & Teh 2012, arXiv:1206.6426;
        https://kexue.fm/archives/5617 (γ learned; γ − log U acts as log Z).
    """
    _check_reduction(reduction)
    _check_pos_neg(pos_logits, neg_logits, "pos_logits", "neg_logits")
    if k is None:
        k = int(neg_logits.shape[1])
    if k < 1:
        raise ValueError(f"k must be >= 1 (set it explicitly when neg_logits is empty), got {k}")
    checks = [
        _finite_check("pos_logits", pos_logits),
        _finite_check("neg_logits", neg_logits),
    ]
    s_pos, s_neg = pos_logits, neg_logits
    if gamma is not None:
        g = torch.as_tensor(gamma, dtype=pos_logits.dtype, device=pos_logits.device)
        if g.dim() == 0:
            s_pos, s_neg = s_pos - g, s_neg - g
        elif g.shape == pos_logits.shape:
            s_pos, s_neg = s_pos - g, s_neg - g.unsqueeze(1)
        else:
            raise ValueError(
                f"gamma must be a scalar or have the shape of pos_logits {_shape(pos_logits)}, "
                f"got {_shape(g)}"
            )
        checks.append(_finite_check("gamma", g))
    if correct:
        if log_q_pos is None or log_q_neg is None:
            raise ValueError("log_q_pos and log_q_neg are required when correct=True")
        lq_neg, finite = _checked_log_q(log_q_pos, log_q_neg, pos_logits, neg_logits, "pos", "neg")
        checks += finite
        log_k = math.log(k)
        s_pos = s_pos - (log_k + log_q_pos.to(s_pos.dtype))
        s_neg = s_neg - (log_k + lq_neg.to(s_neg.dtype))
    _raise_on_flags(checks)  # one host sync for every value check above
    return _reduce(_binary_logistic_core(s_pos, s_neg), reduction)


def neg_sampling_loss(pos_logits: Tensor, neg_logits: Tensor, *, reduction: str = "mean") -> Tensor:
    """word2vec negative-sampling loss: L = −log σ(s⁺) − Σ_j log σ(−s⁻_j).

    No log(k·q) term: the optimum is s(x, c) = log p(x | c) − log(k·q(x)), i.e. PMI − log k for
    unigram noise [Levy & Goldberg 2014]. k = 1 with uniform noise is the author's form (post 5617).

    Arguments:
        pos_logits: scores of the positive pairs, ``(B,)``.
        neg_logits: scores of the negatives, ``(B, k)``.
        reduction: ``"mean" | "sum" | "none"`` over the B examples.

    Returns:
        The loss, a scalar or ``(B,)``.

    References:
        Mikolov et al. 2013, arXiv:1310.4546; https://kexue.fm/archives/5617
    """
    _check_reduction(reduction)
    _check_pos_neg(pos_logits, neg_logits, "pos_logits", "neg_logits")
    _check_finite(pos_logits=pos_logits, neg_logits=neg_logits)
    return _reduce(_binary_logistic_core(pos_logits, neg_logits), reduction)


def _binary_logistic_core(s_pos: Tensor, s_neg: Tensor) -> Tensor:
    """Trusted core of NCE / NEG: sp(−s⁺) + Σ_j sp(s⁻_j) per row, ``(B,)``."""
    return F.softplus(-s_pos) + F.softplus(s_neg).sum(dim=1)


def find_accidental_hits(targets: Tensor, sampled_ids: Tensor) -> Tensor:
    """Mask of sampled classes equal to the row's target: ``(B, S)`` bool.

    Arguments:
        targets: ``(B,)`` int64 target ids.
        sampled_ids: ``(S,)`` shared or ``(B, S)`` per-row sampled ids.

    Returns:
        ``(B, S)`` bool, True where ``sampled_ids`` equals the row's target; pass it as
        ``accidental_hits`` to :func:`sampled_softmax_loss`.

    References:
        Jean et al. 2015, arXiv:1412.2007 (removal of accidental hits).
    """
    if targets.dim() != 1:
        raise ValueError(f"targets must be 1-D (B,), got shape {_shape(targets)}")
    if sampled_ids.dim() == 1:
        return sampled_ids.unsqueeze(0) == targets.unsqueeze(1)
    if sampled_ids.dim() == 2 and sampled_ids.shape[0] == targets.shape[0]:
        return sampled_ids == targets.unsqueeze(1)
    raise ValueError(
        f"sampled_ids must be (S,) or (B, S) with B = len(targets): targets {_shape(targets)}, "
        f"sampled_ids {_shape(sampled_ids)}"
    )


def sampled_softmax_loss(
    true_logits: Tensor,
    sampled_logits: Tensor,
    log_q_true: Tensor | None,
    log_q_sampled: Tensor | None,
    *,
    accidental_hits: Tensor | None = None,
    reduction: str = "mean",
) -> Tensor:
    """Sampled softmax cross-entropy with the logQ correction and accidental-hit removal.

    Logits over {target} ∪ S are o_j − log Q(j) with the target at index 0, and the loss is the
    cross-entropy at index 0. Q(j) is the expected count m·q(j) for m draws with replacement or the
    inclusion probability 1 − (1 − q(j))^m for de-duplicated draws
    (:meth:`NoiseSampler.log_expected_count`). Accidental hits (sampled j equal to the target) are
    set to the dtype's most negative finite value with ``masked_fill``, so they carry exactly zero
    probability and zero gradient (never −inf, never −inf·0). A constant log Q cancels.

    Which log Q for the target? The target is always in the candidate set, so its inclusion
    probability is 1: with accidental hits removed, ``log_q_true = 0`` makes
    e^{o_t} + Σ_{j∈S} e^{o_j}/Q(j) an unbiased estimate of the full normaliser, and the loss
    converges to the full cross-entropy as the number of draws grows (tested). Passing
    ``log_q_true = log Q(target)`` (TensorFlow's convention) is also accepted; it down-weights
    the target's own mass and is not consistent when hits are removed.

    Arguments:
        true_logits: o_target, ``(B,)``.
        sampled_logits: o_j for the sampled classes, ``(B, S)``.
        log_q_true: log Q(target), ``(B,)`` (zeros recommended, see above), or ``None`` (no
            correction at all).
        log_q_sampled: log Q(j), ``(B, S)`` or shared ``(S,)``, or ``None`` (no correction).
        accidental_hits: optional ``(B, S)`` bool mask (see :func:`find_accidental_hits`).
        reduction: ``"mean" | "sum" | "none"`` over the B examples.

    Returns:
        The loss, a scalar or ``(B,)``.

    References:
        Bengio & Senécal 2008; Jean et al. 2015, arXiv:1412.2007.
    """
    _check_reduction(reduction)
    _check_pos_neg(true_logits, sampled_logits, "true_logits", "sampled_logits")
    if (log_q_true is None) != (log_q_sampled is None):
        raise ValueError("log_q_true and log_q_sampled must both be given or both be None")
    checks = [
        _finite_check("true_logits", true_logits),
        _finite_check("sampled_logits", sampled_logits),
    ]
    t, s = true_logits, sampled_logits
    if log_q_true is not None and log_q_sampled is not None:
        lq_s, finite = _checked_log_q(
            log_q_true, log_q_sampled, true_logits, sampled_logits, "true", "sampled"
        )
        checks += finite
        t = t - log_q_true.to(t.dtype)
        s = s - lq_s.to(s.dtype)
    if accidental_hits is not None:
        if (
            not isinstance(accidental_hits, Tensor)
            or accidental_hits.dtype != torch.bool
            or accidental_hits.shape != sampled_logits.shape
        ):
            raise ValueError(
                f"accidental_hits must be a bool tensor of shape {_shape(sampled_logits)} "
                f"(sampled_logits), got {getattr(accidental_hits, 'dtype', '')} "
                f"{_shape(accidental_hits)}"
            )
    _raise_on_flags(checks)  # one host sync for every value check above
    return _reduce(_sampled_softmax_core(t, s, accidental_hits), reduction)


def _sampled_softmax_core(t: Tensor, s: Tensor, accidental_hits: Tensor | None) -> Tensor:
    """Trusted core: CE at index 0 of ``[t, s]`` with hits at the most negative finite value."""
    if accidental_hits is not None:
        s = s.masked_fill(accidental_hits, torch.finfo(s.dtype).min)
    logits = torch.cat([t.unsqueeze(1), s], dim=1)
    return torch.logsumexp(logits, dim=1) - t


def subsample_keep_prob(freqs: Tensor, *, t: float = 1e-5, formula: str = "paper") -> Tensor:
    """Probability of keeping a token in word2vec's frequent-word sub-sampling.

    ``formula="paper"``: keep = min(1, √(t/f)) (discard 1 − √(t/f) [paper, Mikolov et al. 2013]).
    ``formula="code"``: keep = min(1, √(t/f) + t/f), the expression of the word2vec C code
    ((√(f/t) + 1)·t/f) [unverified: recalled from word2vec.c]. f = 0 gives keep = 1.

    Arguments:
        freqs: relative frequencies f ∈ [0, 1] (count / total tokens), any shape.
        t: threshold (default 1e-5 [paper]; JoSE's run.sh uses 1e-3).
        formula: ``"paper"`` or ``"code"``.

    Returns:
        Keep probabilities in (0, 1], same shape and dtype as ``freqs``.
    """
    _check_tensor("freqs", freqs)
    _raise_on_flags(
        [
            _finite_check("freqs", freqs),
            (
                ((freqs >= 0) & (freqs <= 1)).all(),
                f"freqs must be relative frequencies in [0, 1] (shape {_shape(freqs)})",
            ),
        ]
    )
    if not t > 0:
        raise ValueError(f"t must be > 0, got {t}")
    if formula not in ("paper", "code"):
        raise ValueError(f"formula must be 'paper' or 'code', got {formula!r}")
    ratio = t / freqs.clamp_min(torch.finfo(freqs.dtype).tiny)
    keep = ratio.sqrt() if formula == "paper" else ratio.sqrt() + ratio
    return torch.where(freqs > 0, keep.clamp(max=1.0), torch.ones_like(keep))
