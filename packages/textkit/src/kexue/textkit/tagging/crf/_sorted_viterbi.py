"""Fast path of Viterbi: rows sorted by length, back-pointers recomputed in the backtrace.

Step t only touches the sequences still running. The forward pass keeps the (T, B, K) max-plus
scores (no back-pointer tensor); the batched backtrace recomputes each back-pointer for the
chosen tag only, ``argmax_i scores[t−1, :, i] + A[i, tag_t]`` (a (B, K) op per step), so ties
go to the lowest index as in the max-semiring reference (:func:`~._chain.chain` under ``MAX``,
``algorithm="max"``), which it must match.

References:
    https://kexue.fm/archives/5542; kmkurn/pytorch-crf PR #16 (batched Viterbi).
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["sorted_viterbi"]

_KEEP = 0.75  # a segment ends when fewer than this share of its rows still run


def sorted_viterbi(h: Tensor, mask: Tensor, a: Tensor, start: Tensor | None, end: Tensor | None,
                   lengths: list[int]) -> tuple[Tensor, Tensor]:  # fmt: skip
    """Best paths (B, T) (0 at pads) and scores (B,); ``lengths`` are the host-side lengths."""
    b, t_full, k = h.shape
    dev, dtype = h.device, h.dtype
    order_host = sorted(range(b), key=lambda i: -lengths[i])  # stable: ties keep row order
    sorted_len = [lengths[i] for i in order_host]
    order = torch.tensor(order_host, device=dev)
    len_t = torch.tensor(sorted_len, device=dev)
    ht = h.transpose(0, 1)[:, order]  # (T, B, K), rows sorted by length
    steps = sorted_len[0]
    active, n = [], b  # active[t] = number of rows longer than t (sorted_len is descending)
    for t in range(steps):
        while sorted_len[n - 1] <= t:
            n -= 1
        active.append(n)
    scores = torch.zeros(steps, b, k, dtype=dtype, device=dev)
    torch.add(ht[0], 0.0 if start is None else start, out=scores[0])
    # segments [t0, t1) of steps that all run the first n = active[t0] rows; per-step views are
    # made by one unbind per segment (view ops dominate the loop at small K). A segment goes on
    # until fewer than _KEEP · n rows still run: rows that ended inside it are computed on past
    # their end (zero emissions, finite scores never read), fewer segments for ragged batches.
    segments, t0 = [], 1
    for t in range(2, steps + 1):
        if t == steps or active[t] < _KEEP * active[t0]:
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
    final = scores[len_t - 1, rows]
    if end is not None:
        final = final + end
    best_last = final.argmax(-1)  # argmax: ties → lowest index
    best_score = final.gather(1, best_last.unsqueeze(1)).squeeze(1)
    # every entry starts at its row's best last tag, so rows computed past their end only ever
    # index valid tags (their entries there are overwritten at their end, or masked out)
    path = best_last.expand(steps, b).clone()
    a_t = a.t().contiguous()  # (K_to, K_from)
    ending = [*active[1:], 0]  # rows [ending[t], active[t]) end at step t
    for t0, t1, n in reversed(segments):
        # back-pointer of the chosen tag only, tag_{t−1} = argmax_i scores[t−1, b, i] + A[i, tag_t[b]];
        # a row's tag at its last step is its best last tag, set just before it is used
        sc = scores[t0 - 1 : t1 - 1, :n].unbind(0)
        cur, prev = path[t0:t1, :n].unbind(0), path[t0 - 1 : t1 - 1, :n].unbind(0)
        for i in range(t1 - t0 - 1, -1, -1):
            lo, hi = ending[t0 + i], active[t0 + i]
            if lo < hi and t0 + i < steps - 1:  # the last step already holds best_last
                cur[i][lo:hi] = best_last[lo:hi]
            torch.argmax(sc[i] + a_t.index_select(0, cur[i]), -1, out=prev[i])
    if ending[0] < active[0] and steps > 1:  # rows of length 1
        path[0, ending[0] : active[0]] = best_last[ending[0] : active[0]]
    tags = torch.zeros(b, t_full, dtype=torch.long, device=dev)
    tags[order, :steps] = path.t()
    out_score = torch.empty_like(best_score)
    out_score[order] = best_score
    return tags, out_score
