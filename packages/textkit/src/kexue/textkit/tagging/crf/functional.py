"""Linear-chain CRF, functional core: path score, log-partition, NLL, marginals, Viterbi, n-best.

Conventions (spec §1, §2.1): emissions ``h`` are ``(B, T, K)`` (batch first); ``mask`` is a bool
``(B, T)`` right-padded prefix mask with ``mask[:, 0]`` all true (default: all true); ``tags`` are
long ``(B, T)`` (values at padded positions are ignored, so ``-100`` padding is fine); transitions
``A`` are ``(K, K)`` with ``A[i, j]`` the score of ``i → j``; ``start``/``end`` are optional ``(K,)``.
The score of a path ``y`` of length ``L`` is

    S(y) = start[y_1] + Σ_{t≤L} h_t[y_t] + Σ_{2≤t≤L} A[y_{t−1}, y_t] + end[y_L]

and ``log Z = logsumexp_y S(y)``; the NLL is ``log Z − S(y*)``. Values at padded positions never
matter (they are replaced by zeros with ``where``, so even NaN there is harmless). Half-precision
inputs are computed in fp32 with autocast disabled. Forbidden transitions are −1e4, never −inf.

Backends of the forward algorithm:

- ``"lse"``: the reference, α_t = logsumexp_i(α_{t−1}[i] + A[i, :]) + h_t, padded steps carry α;
  differentiated by autograd (so twice differentiable).
- ``"matmul"``: the scaled forward–backward in probability space (spec §2.1's matmul trick):
  p_t ∝ (p_{t−1} @ exp(A − max A)) ⊙ exp(h_t − max h_t), normalised every step, with the log
  normalisers summed afterwards; ``A − max A`` is clamped at −80 so ``exp`` never returns 0. A
  custom autograd function runs the β recursion in its backward pass and returns the exact
  gradients (marginals for ``h``, start and end, expected transition counts for ``A``): a handful
  of small ops per step instead of autograd through the whole loop. Not twice differentiable.
- ``"auto"``: ``matmul`` unless the spread of the transitions (or of ``end``) exceeds 30 nats,
  where fp32 underflow in probability space could drop mass that matters (e.g. −1e4 forbidden
  transitions under ``constrain_training``); then ``lse``. Measured on CPU, forward+backward,
  ``matmul`` is 4× (K = 20) to 12× (K = 50) faster than ``lse`` and 6–20× faster than
  pytorch-crf (packages/textkit/BENCHMARKS.md); its fp32 log Z is closer to the fp64 value than
  pytorch-crf's (normalised each step, so no large running sums).

References:
    - Su Jianlin, "简明条件随机场CRF介绍（附带纯Keras实现）": https://kexue.fm/archives/5542
    - Lafferty, McCallum, Pereira 2001, "Conditional Random Fields" (ICML).
    - Rabiner 1989, "A tutorial on hidden Markov models" (scaled forward–backward).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from ..constraints import constrained_scores

__all__ = [
    "crf_log_partition",
    "crf_marginals",
    "crf_nll",
    "crf_score",
    "viterbi_decode",
    "viterbi_nbest",
]

_BACKENDS = ("auto", "lse", "matmul")
_REDUCTIONS = ("none", "sum", "mean", "token_mean")
_AUTO_MAX_SPREAD = 30.0  # nats; see the module docstring ("auto")
_CLAMP = -80.0  # spec §2.1: A − max A ≥ −80 so exp(·) > 0 in fp32


# --------------------------------------------------------------------------------------------------
# Validation (public boundary) and preparation
# --------------------------------------------------------------------------------------------------


def _shape(t: Tensor) -> str:
    return str(tuple(t.shape))


def _prepare(
    emissions: Tensor,
    transitions: Tensor,
    mask: Tensor | None,
    start: Tensor | None,
    end: Tensor | None,
    tags: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor, Tensor | None, Tensor | None, Tensor | None]:
    """Validate; return (h zeroed at pads, A, mask (bool), start, end, tags with pads → 0)."""
    if not isinstance(emissions, Tensor) or emissions.dim() != 3:
        raise ValueError(f"emissions must be a (B, T, K) tensor, got shape {_shape(emissions)}")
    if not emissions.is_floating_point():
        raise ValueError(f"emissions must be floating point, got {emissions.dtype}")
    b, t, k = emissions.shape
    if b == 0 or t == 0 or k == 0:
        raise ValueError(f"emissions must be non-empty, got shape {_shape(emissions)}")
    if transitions.shape != (k, k):
        raise ValueError(
            f"transitions must be (K, K) = ({k}, {k}) for emissions {_shape(emissions)}, "
            f"got {_shape(transitions)}"
        )
    for name, vec in (("start", start), ("end", end)):
        if vec is not None and vec.shape != (k,):
            raise ValueError(f"{name} must be (K,) = ({k},), got {_shape(vec)}")
    if mask is None:
        mask = torch.ones(b, t, dtype=torch.bool, device=emissions.device)
    else:
        if mask.shape != (b, t):
            raise ValueError(
                f"mask shape {_shape(mask)} does not match emissions {_shape(emissions)} "
                "(expected (B, T))"
            )
        if mask.dtype != torch.bool:
            mask = mask != 0
        if not bool(mask[:, 0].all()):
            raise ValueError(
                "mask[:, 0] must be all True: empty sequences and left padding are not "
                "supported (pad on the right)"
            )
        if t > 1 and bool((mask[:, 1:] & ~mask[:, :-1]).any()):
            raise ValueError("mask must be a right-padded prefix mask (left padding or holes)")
    if tags is not None:
        if tags.shape != (b, t):
            raise ValueError(
                f"tags shape {_shape(tags)} does not match emissions {_shape(emissions)} "
                "(expected (B, T))"
            )
        if tags.dtype.is_floating_point or tags.dtype == torch.bool:
            raise ValueError(f"tags must be an integer tensor, got {tags.dtype}")
        tags = tags.long().masked_fill(~mask, 0)
        if bool(((tags < 0) | (tags >= k)).any()):
            raise ValueError(f"tags must lie in [0, {k}) at unmasked positions")
    dtype = torch.promote_types(emissions.dtype, torch.float32)
    h = torch.where(mask.unsqueeze(-1), emissions.to(dtype), 0.0)
    if not bool(torch.isfinite(h.sum())):  # one reduction; pads are already 0
        raise ValueError("emissions contain NaN or inf at unmasked positions")
    start = None if start is None else start.to(dtype)
    end = None if end is None else end.to(dtype)
    return h, transitions.to(dtype), mask, start, end, tags


def _reduce(values: Tensor, mask: Tensor, reduction: str) -> Tensor:
    if reduction == "none":
        return values
    if reduction == "sum":
        return values.sum()
    if reduction == "mean":
        return values.mean()
    return values.sum() / mask.sum()


# --------------------------------------------------------------------------------------------------
# Score and forward algorithm
# --------------------------------------------------------------------------------------------------


def _score(h: Tensor, tags: Tensor, mask: Tensor, a: Tensor, start: Tensor | None,
           end: Tensor | None) -> Tensor:  # fmt: skip
    emit = h.gather(2, tags.unsqueeze(-1)).squeeze(-1).sum(1)  # h is 0 at pads
    score = emit + torch.where(mask[:, 1:], a[tags[:, :-1], tags[:, 1:]], 0.0).sum(1)
    if start is not None:
        score = score + start[tags[:, 0]]
    if end is not None:
        last = mask.sum(1, keepdim=True) - 1
        score = score + end[tags.gather(1, last).squeeze(1)]
    return score


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
    h, a, mask, start, end, tags = _prepare(emissions, transitions, mask, start, end, tags)
    return _score(h, tags, mask, a, start, end)


def _log_partition_lse(h: Tensor, mask: Tensor, a: Tensor, start: Tensor | None,
                       end: Tensor | None, steps: int) -> Tensor:  # fmt: skip
    ht, mt = h.transpose(0, 1), mask.transpose(0, 1).unsqueeze(-1)
    alpha = ht[0] if start is None else ht[0] + start
    for t in range(1, steps):
        nxt = torch.logsumexp(alpha.unsqueeze(2) + a, dim=1) + ht[t]
        alpha = torch.where(mt[t], nxt, alpha)
    return torch.logsumexp(alpha if end is None else alpha + end, dim=1)


class _ScaledForwardBackward(torch.autograd.Function):
    """log Z by the scaled forward recursion; backward = the β recursion (exact gradients)."""

    @staticmethod
    def forward(ctx, h, mask, a, start, end, steps):  # type: ignore[override]
        b = h.shape[0]
        ht = h.transpose(0, 1)[:steps]  # (S, B, K)
        if start is not None:
            ht = torch.cat([(ht[0] + start).unsqueeze(0), ht[1:]])
        hmax = ht.amax(-1, keepdim=True)  # (S, B, 1)
        e = (ht - hmax).exp_()
        amax = a.max()
        ea = (a - amax).clamp_min(_CLAMP).exp_()
        p = torch.empty_like(e)
        s = torch.empty_like(hmax)
        torch.sum(e[0], -1, keepdim=True, out=s[0])
        torch.div(e[0], s[0], out=p[0])
        for t in range(1, steps):
            torch.mm(p[t - 1], ea, out=p[t])
            p[t].mul_(e[t])
            torch.sum(p[t], -1, keepdim=True, out=s[t])
            p[t].div_(s[t])
        last = mask.sum(1) - 1  # (B,)
        rows = torch.arange(b, device=h.device)
        offset = (hmax + s.log()).squeeze(-1).cumsum(0)[last, rows] + last.to(h.dtype) * amax
        p_last = p[last, rows]  # (B, K)
        if end is None:
            log_z = offset
            b_last = torch.ones_like(p_last)
        else:
            tail = torch.logsumexp(p_last.log() + end, -1)
            log_z = offset + tail
            b_last = (end - tail.unsqueeze(-1)).exp()
        e.div_(s)  # e'_t = e_t / s_t, what the backward recursion uses
        ctx.save_for_backward(mask, p, e, ea, b_last, last)
        ctx.flags = (start is not None, end is not None, h.shape)
        return log_z

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):  # type: ignore[override]
        mask, p, e, ea, b_last, last = ctx.saved_tensors
        has_start, has_end, shape = ctx.flags
        steps = p.shape[0]
        b, t_full, k = shape
        beta = torch.empty_like(p)
        beta[steps - 1] = b_last
        # stop (use b_last) at t ≥ L − 1, i.e. where the next step is padding
        stop = ~mask.transpose(0, 1)[1:steps].unsqueeze(-1)  # (S − 1, B, 1)
        ea_t = ea.t()
        tmp = torch.empty_like(b_last)
        for t in range(steps - 2, -1, -1):
            torch.mm(e[t + 1] * beta[t + 1], ea_t, out=tmp)
            torch.where(stop[t], b_last, tmp, out=beta[t])
        gamma = p * beta  # (S, B, K) marginals (garbage at pads, masked below)
        mt = mask.transpose(0, 1)[:steps].unsqueeze(-1)
        g = grad.to(p.dtype).unsqueeze(-1)  # (B, 1)
        grad_ht = torch.where(mt, gamma * g, 0.0)
        grad_h = grad_ht.new_zeros(t_full, b, k)
        grad_h[:steps] = grad_ht
        grad_h = grad_h.transpose(0, 1)
        grad_a = None
        if steps > 1:
            u = torch.where(mt[1:], p[:-1] * g, 0.0).reshape(-1, k)
            v = (e[1:] * beta[1:]).reshape(-1, k)
            grad_a = ea * (u.t() @ v)
        else:
            grad_a = torch.zeros_like(ea)
        grad_start = grad_ht[0].sum(0) if has_start else None
        rows = torch.arange(b, device=p.device)
        grad_end = grad_ht[last, rows].sum(0) if has_end else None
        return grad_h, None, grad_a, grad_start, grad_end, None


def _choose_backend(backend: str, a: Tensor, end: Tensor | None) -> str:
    if backend not in _BACKENDS:
        raise ValueError(f"backend must be one of {_BACKENDS}, got {backend!r}")
    if backend != "auto":
        return backend
    spread = a.detach().max() - a.detach().min()
    if end is not None:
        spread = torch.maximum(spread, end.detach().max() - end.detach().min())
    return "matmul" if float(spread) <= _AUTO_MAX_SPREAD else "lse"


def _log_partition(h: Tensor, mask: Tensor, a: Tensor, start: Tensor | None,
                   end: Tensor | None, backend: str) -> Tensor:  # fmt: skip
    backend = _choose_backend(backend, a, end)
    steps = int(mask.sum(1).max())
    with torch.autocast(h.device.type, enabled=False):
        if backend == "lse":
            return _log_partition_lse(h, mask, a, start, end, steps)
        return _ScaledForwardBackward.apply(h, mask, a, start, end, steps)


def crf_log_partition(
    emissions: Tensor,
    transitions: Tensor,
    *,
    mask: Tensor | None = None,
    start: Tensor | None = None,
    end: Tensor | None = None,
    backend: str = "auto",
) -> Tensor:
    """Log-partition log Z = logsumexp over all tag paths of S(y), per sequence.

    Arguments:
        emissions: (B, T, K) emission scores.
        transitions: (K, K) transition scores.
        mask: (B, T) bool right-padded prefix mask (default all true).
        start, end: optional (K,) start / end scores.
        backend: ``"auto"`` (default), ``"lse"`` or ``"matmul"`` (see the module docstring).

    Returns:
        (B,) log Z.

    References:
        https://kexue.fm/archives/5542 (forward recursion), spec §2.1 (matmul trick).
    """
    h, a, mask, start, end, _ = _prepare(emissions, transitions, mask, start, end)
    return _log_partition(h, mask, a, start, end, backend)


def crf_nll(
    emissions: Tensor,
    tags: Tensor,
    transitions: Tensor,
    *,
    mask: Tensor | None = None,
    start: Tensor | None = None,
    end: Tensor | None = None,
    reduction: str = "mean",
    backend: str = "auto",
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
        backend: forward-algorithm backend (see :func:`crf_log_partition`).

    Returns:
        The NLL, (B,) for ``"none"`` else a scalar.

    References:
        https://kexue.fm/archives/5542
    """
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    h, a, mask, start, end, tags = _prepare(emissions, transitions, mask, start, end, tags)
    nll = _log_partition(h, mask, a, start, end, backend) - _score(h, tags, mask, a, start, end)
    return _reduce(nll, mask, reduction)


def crf_marginals(
    emissions: Tensor,
    transitions: Tensor,
    *,
    mask: Tensor | None = None,
    start: Tensor | None = None,
    end: Tensor | None = None,
) -> Tensor:
    """Unary marginals P(y_t = j) = ∂ log Z / ∂h_t[j] (forward–backward), 0 at padded positions.

    Computed by the backward pass of :func:`crf_log_partition` (``backend="auto"``); the result
    is detached (not differentiable).

    Arguments:
        emissions: (B, T, K); transitions: (K, K); mask: (B, T) bool (default all true);
        start, end: optional (K,).

    Returns:
        (B, T, K) marginals; each valid step sums to 1.

    References:
        https://kexue.fm/archives/5542; kmkurn/pytorch-crf#21, #36, #48 (requests).
    """
    h, a, mask, start, end, _ = _prepare(emissions, transitions, mask, start, end)
    with torch.enable_grad():
        h = h.detach().requires_grad_(True)
        log_z = _log_partition(h, mask, a.detach(), _detach(start), _detach(end), "auto")
        (grad,) = torch.autograd.grad(log_z.sum(), h)
    return grad


def _detach(v: Tensor | None) -> Tensor | None:
    return None if v is None else v.detach()


# --------------------------------------------------------------------------------------------------
# Viterbi
# --------------------------------------------------------------------------------------------------


def _viterbi(h: Tensor, mask: Tensor, a: Tensor, start: Tensor | None,
             end: Tensor | None) -> tuple[Tensor, Tensor]:  # fmt: skip
    """Viterbi on rows sorted by length: step t only touches the rows still running."""
    b, t_full, k = h.shape
    dev, dtype = h.device, h.dtype
    lengths = mask.sum(1)
    order = torch.argsort(lengths, descending=True, stable=True)
    lengths = lengths[order]
    ht = h.transpose(0, 1)[:, order]  # (T, B, K), rows sorted by length
    steps = int(lengths[0])
    active = (lengths.unsqueeze(0) > torch.arange(steps, device=dev).unsqueeze(1)).sum(1).tolist()
    scores = torch.zeros(steps, b, k, dtype=dtype, device=dev)
    torch.add(ht[0], 0.0 if start is None else start, out=scores[0])
    # segments [t0, t1) of steps with the same number n of running rows; per-step views are made
    # by one unbind per segment (view ops dominate the loop at small K)
    segments, t0 = [], 1
    for t in range(2, steps + 1):
        if t == steps or active[t] != active[t0]:
            segments.append((t0, t, active[t0]))
            t0 = t
    a_3 = a.unsqueeze(1)  # (K_from, 1, K_to)
    buf = torch.empty(k * b * k, dtype=dtype, device=dev)
    for t0, t1, n in segments:  # max-plus values only; back-pointers are recomputed below
        x = buf[: k * n * k].view(k, n, k)
        prev = scores[t0 - 1 : t1 - 1, :n].permute(0, 2, 1).unsqueeze(-1).unbind(0)
        for p, e, o in zip(prev, ht[t0:t1, :n].unbind(0), scores[t0:t1, :n].unbind(0)):
            torch.add(p, a_3, out=x)  # (K_from, n, K_to)
            torch.add(torch.amax(x, 0), e, out=o)  # amax over the outer dim
    rows = torch.arange(b, device=dev)
    final = scores[lengths - 1, rows]
    if end is not None:
        final = final + end
    best_last = final.argmax(-1)  # argmax: ties → lowest index
    best_score = final.gather(1, best_last.unsqueeze(1)).squeeze(1)
    path = torch.empty(steps, b, dtype=torch.long, device=dev)
    path[steps - 1] = best_last
    a_t = a.t().contiguous()  # (K_to, K_from)
    for t0, t1, n in reversed(segments):
        # rows [0, n) run through step t: back-pointer of the chosen tag only,
        # tag_{t−1} = argmax_i scores[t−1, b, i] + A[i, tag_t[b]]
        sc = scores[t0 - 1 : t1 - 1, :n].unbind(0)
        cur, prev = path[t0:t1, :n].unbind(0), path[t0 - 1 : t1 - 1, :n].unbind(0)
        for i in range(t1 - t0 - 1, -1, -1):
            torch.argmax(sc[i] + a_t.index_select(0, cur[i]), -1, out=prev[i])
        m = active[t0 - 1]  # rows [n, m) end at step t0 − 1
        if m > n:
            path[t0 - 1, n:m] = best_last[n:m]
    tags = torch.zeros(b, t_full, dtype=torch.long, device=dev)
    tags[order, :steps] = path.t()
    out_score = torch.empty_like(best_score)
    out_score[order] = best_score
    return tags, out_score


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
) -> tuple[Tensor, Tensor]:
    """Batched Viterbi: the best path per sequence, as tensors (no ``.item()``, no Python lists).

    Rows are sorted by length so that step t only touches the sequences still running. The
    forward pass keeps the (T, B, K) max-plus scores (no back-pointer tensor); the batched
    backtrace recomputes each back-pointer for the chosen tag only, ``argmax_i scores[t−1, :, i] +
    A[i, tag_t]`` (a (B, K) op per step), so ties go to the lowest index.
    Disallowed starts / ends / transitions (bool masks, e.g. from
    :func:`kexue.textkit.constraints.allowed_transitions`, or the author's ``starts``/``ends``)
    score −1e4 (a penalty, not −inf: a path is only forced to be allowed when scores stay well
    below 1e4).

    Arguments:
        emissions: (B, T, K); transitions: (K, K); mask: (B, T) bool (default all true).
        start, end: optional (K,) scores.
        allowed_start, allowed_end: optional (K,) bool; allowed_transitions: optional (K, K) bool.
        pad_tag: value written at padded positions (default 0).

    Returns:
        ``(tags (B, T) long, best_score (B,))``; ``best_score`` is the path score under the
        constrained parameters (equal to :func:`crf_score` for an allowed path).

    References:
        https://kexue.fm/archives/5542; kmkurn/pytorch-crf PR #16 (batched Viterbi).
    """
    h, a, mask, start, end, _ = _prepare(emissions, transitions, mask, start, end)
    a, start, end = constrained_scores(
        a, start, end, allowed_start=allowed_start, allowed_end=allowed_end,
        allowed_transitions=allowed_transitions,
    )  # fmt: skip
    with torch.no_grad(), torch.autocast(h.device.type, enabled=False):
        tags, best_score = _viterbi(h, mask, a, start, end)
        tags = torch.where(mask, tags, pad_tag)
    return tags, best_score


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
    """The k best paths per sequence (list Viterbi with (B, K, k) buffers and ``topk``).

    Arguments:
        emissions, transitions, mask, start, end, allowed_*, pad_tag: as :func:`viterbi_decode`.
        k: number of paths (≥ 1). When a sequence has fewer than k paths, the extra rows have
            score −inf and arbitrary tags.

    Returns:
        ``(tags (B, k, T) long, scores (B, k))``, best first.

    References:
        https://kexue.fm/archives/5542; bert4torch CRF ``decode(nbest=...)``.
    """
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    h, a, mask, start, end, _ = _prepare(emissions, transitions, mask, start, end)
    a, start, end = constrained_scores(
        a, start, end, allowed_start=allowed_start, allowed_end=allowed_end,
        allowed_transitions=allowed_transitions,
    )  # fmt: skip
    with torch.no_grad(), torch.autocast(h.device.type, enabled=False):
        b, t_full, n = h.shape
        dev = h.device
        steps = int(mask.sum(1).max())
        ht, mt = h.transpose(0, 1), mask.transpose(0, 1)[:, :, None, None]
        score = torch.full((b, n, k), float("-inf"), dtype=h.dtype, device=dev)
        score[:, :, 0] = ht[0] if start is None else ht[0] + start
        ident = (torch.arange(n, device=dev)[:, None] * k + torch.arange(k, device=dev)).expand(
            b, n, k
        )
        a4 = a.t()[None, :, :, None]  # (1, K_to, K_from, 1)
        back = []
        for t in range(1, steps):
            cand = (score.unsqueeze(1) + a4).reshape(b, n, n * k)  # (B, K_to, K_from·k)
            vals, idx = cand.topk(k, dim=-1)
            score = torch.where(mt[t], vals + ht[t].unsqueeze(-1), score)
            back.append(torch.where(mt[t], idx, ident))
        final = score if end is None else score + end.unsqueeze(-1)
        best, flat = final.reshape(b, n * k).topk(k, dim=-1)  # (B, k)
        tag, rank = flat // k, flat % k
        path = [tag]
        for bp in reversed(back):
            flat = bp.reshape(b, n * k).gather(1, tag * k + rank)
            tag, rank = flat // k, flat % k
            path.append(tag)
        path = torch.stack(path[::-1], dim=-1)  # (B, k, steps)
        tags = torch.full((b, k, t_full), pad_tag, dtype=torch.long, device=dev)
        tags[:, :, :steps] = torch.where(mask[:, None, :steps], path, pad_tag)
    return tags, best
