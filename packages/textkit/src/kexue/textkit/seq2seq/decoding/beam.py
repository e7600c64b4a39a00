"""Batched beam search loops behind :meth:`AutoRegressiveDecoder.beam_search` (private).

Rows of all live beams of all batch items sit in one flat batch, grouped by item (``owner``) and,
inside an item, in descending score order. Every step the per-item top-k over (rows × vocab) is
taken in one padded ``topk``; inputs, states and output ids follow the chosen rows by index.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

if TYPE_CHECKING:  # type-only: decoder.py imports this module at run time, never the reverse
    from .decoder import AutoRegressiveDecoder

# Package-internal API: imported by decoder.py, not re-exported by kexue.textkit.seq2seq.decoding.
__all__ = ["apply_prefix_allowed", "beam_search_loop", "reorder"]


def reorder(obj: Any, index: Tensor) -> Any:
    """Select rows ``index`` of a state: tensors along dim 0, containers recursively, objects
    with a ``reorder(index)`` method (e.g. ``KVCache``) through it; anything else unchanged."""
    if obj is None:
        return None
    if isinstance(obj, Tensor):
        return obj.index_select(0, index)
    if hasattr(obj, "reorder"):
        return obj.reorder(index)
    if isinstance(obj, list):
        return [reorder(o, index) for o in obj]
    if isinstance(obj, tuple):
        return tuple(reorder(o, index) for o in obj)
    if isinstance(obj, dict):
        return {k: reorder(v, index) for k, v in obj.items()}
    return obj


def apply_prefix_allowed(
    scores: Tensor,
    owner: Tensor,
    output_ids: Tensor,
    prefix_allowed_fn: Callable[[int, Tensor], Sequence[int] | Tensor],
) -> Tensor:
    """Set scores of tokens not returned by ``prefix_allowed_fn(item, ids)`` to ``-inf``."""
    allowed = torch.zeros_like(scores, dtype=torch.bool)
    for r, item in enumerate(owner.tolist()):
        ok = prefix_allowed_fn(item, output_ids[r])
        ok = torch.as_tensor(ok, device=scores.device)
        if ok.dtype == torch.bool:
            allowed[r] = ok
        else:
            allowed[r, ok.long()] = True
    return scores.masked_fill(~allowed, float("-inf"))


def _select(
    cand: Tensor, owner: Tensor, num_items: int, k_per_item: Tensor, bad: Tensor, step: int
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Per-item top-k over (rows × V). Returns (values, origin rows, tokens, owners), grouped by
    item in descending score order; ``-inf`` candidates are never chosen. ``bad`` ``(N,)``: rows
    whose scores hold NaN or +inf, checked in the same host transfer as the sizes."""
    n, v = cand.shape
    counts = torch.bincount(owner, minlength=num_items)
    starts = torch.cumsum(counts, 0) - counts
    pos = torch.arange(n, device=cand.device) - starts[owner]
    r, k_max, any_bad = torch.stack((counts.max(), k_per_item.max(), bad.any().long())).tolist()
    if any_bad:
        row = int(bad.nonzero()[0, 0])  # error path only
        raise ValueError(
            f"predict returned an invalid next-token distribution at step {step}: row {row} "
            f"of shape {tuple(cand.shape)} holds NaN or +inf log-probabilities (a NaN or +inf "
            f"score, or a negative probability)"
        )
    padded = cand.new_full((num_items, r, v), float("-inf"))
    padded[owner, pos] = cand
    k = min(k_max, r * v)
    vals, idx = padded.view(num_items, r * v).topk(k, dim=1)
    rank = torch.arange(k, device=cand.device)
    keep = (rank[None, :] < k_per_item[:, None]) & torch.isfinite(vals)
    item, col = keep.nonzero(as_tuple=True)
    flat = idx[item, col]
    origin = starts[item] + torch.div(flat, v, rounding_mode="floor")
    return vals[item, col], origin, flat % v, item


def beam_search_loop(
    dec: AutoRegressiveDecoder,
    inputs: list[Tensor],
    topk: int,
    *,
    states: Any,
    temperature: float,
    min_ends: int,
    length_penalty: float | None,
    prefix_allowed_fn: Callable[[int, Tensor], Sequence[int] | Tensor] | None,
    num_return: int = 1,
) -> list[Tensor] | list[list[Tensor]]:
    """See :meth:`AutoRegressiveDecoder.beam_search`; ``num_return > 1`` (pooled mode only)
    returns the best ``num_return`` hypotheses of each item, best first."""
    if num_return > 1 and (length_penalty is None or num_return > topk):
        raise ValueError(
            f"num_return_sequences={num_return} needs length_penalty (pooled hypotheses) and "
            f"<= topk={topk}"
        )
    b = inputs[0].shape[0]
    device = inputs[0].device
    owner = torch.arange(b, device=device)  # item of each live row
    output_ids = dec.first_output_ids(b, device)
    scores = torch.zeros(b, device=device)
    results: list[Tensor | None] = [None] * b
    pool: list[list[tuple[float, Tensor]]] = [[] for _ in range(b)]  # length_penalty mode
    k_item = torch.full((b,), topk, dtype=torch.long, device=device)
    end_ids = dec.end_ids_tensor(device)
    for step in range(dec.maxlen):
        logp, states = dec.step_scores(inputs, output_ids, states, temperature, "logits")
        if prefix_allowed_fn is not None:
            logp = apply_prefix_allowed(logp, owner, output_ids, prefix_allowed_fn)
        # NaN or +inf in a row (the row max propagates both); -inf is a forbidden token
        bad = ~(logp.amax(-1) < float("inf"))
        cand = scores[:, None].to(logp.dtype) + logp
        scores, origin, tokens, owner = _select(cand, owner, b, k_item, bad, step)
        output_ids = torch.cat((output_ids[origin], tokens[:, None]), dim=1)
        inputs = [x.index_select(0, origin) for x in inputs]
        states = reorder(states, origin)
        is_end = torch.isin(output_ids[:, -1], end_ids)
        end_counts = torch.isin(output_ids, end_ids).sum(1)
        finished = is_end & (end_counts >= min_ends)
        done_items: list[int] = []
        if output_ids.shape[1] >= dec.minlen:
            if length_penalty is None:
                keep = _bert4keras_finish(owner, scores, output_ids, finished, results, done_items)
            else:
                gen_len = step + 1
                keep = _pool_finish(
                    owner,
                    scores,
                    output_ids,
                    finished,
                    pool,
                    results,
                    done_items,
                    gen_len,
                    length_penalty,
                    num_return,
                )
            if not bool(keep.all()):
                if length_penalty is None:  # k shrinks by the finished beams dropped
                    k_item = k_item - torch.bincount(owner[~keep], minlength=b)
                index = keep.nonzero(as_tuple=True)[0]
                owner, scores, output_ids = owner[index], scores[index], output_ids[index]
                inputs = [x.index_select(0, index) for x in inputs]
                states = reorder(states, index)
        if owner.numel() == 0:
            break
    # maxlen reached: the best live beam (or, with a length penalty, the best of pool ∪ live)
    for item in owner.unique().tolist():
        rows = (owner == item).nonzero(as_tuple=True)[0]
        if length_penalty is None:
            best = rows[scores[rows].argmax()]
            results[item] = output_ids[best]
        else:
            gen_len = output_ids.shape[1] - dec.first_len
            for r in rows.tolist():
                pool[item].append(
                    (float(scores[r]) / max(gen_len, 1) ** length_penalty, output_ids[r])
                )
    empty = dec.first_output_ids(1, device)[0]  # every candidate was forbidden (prefix hook)
    if length_penalty is not None:
        ranked = [[ids for _, ids in sorted(p, key=lambda t: -t[0])] for p in pool]
        if num_return > 1:
            return [r[:num_return] or [empty] for r in ranked]
        for item in range(b):
            if results[item] is None and ranked[item]:
                results[item] = ranked[item][0]
    return [empty if r is None else r for r in results]


def _bert4keras_finish(
    owner: Tensor,
    scores: Tensor,
    output_ids: Tensor,
    finished: Tensor,
    results: list[Tensor | None],
    done_items: list[int],
) -> Tensor:
    """bert4keras rule: if an item's best beam is finished return it at once, else drop its
    finished beams (k shrinks). Returns the keep mask over rows."""
    keep = ~finished
    n_items = len(results)
    counts = torch.bincount(owner, minlength=n_items)
    starts = torch.cumsum(counts, 0) - counts
    present = counts > 0
    best_rows = starts[present]  # rows are sorted by score inside an item: the first is the best
    items = present.nonzero(as_tuple=True)[0]
    best_done = finished[best_rows]
    for item, row in zip(items[best_done].tolist(), best_rows[best_done].tolist()):
        results[item] = output_ids[row]
        done_items.append(item)
    if done_items:
        keep &= ~torch.isin(owner, torch.tensor(done_items, device=owner.device))
    return keep


def _pool_finish(
    owner: Tensor,
    scores: Tensor,
    output_ids: Tensor,
    finished: Tensor,
    pool: list[list[tuple[float, Tensor]]],
    results: list[Tensor | None],
    done_items: list[int],
    gen_len: int,
    alpha: float,
    num_return: int = 1,
) -> Tensor:
    """Length-penalty mode: finished beams go to a per-item pool scored score/len^alpha; an item
    stops when its ``num_return``-th best pooled score is >= its best live beam's normalised
    score (HF's ``early_stopping=False`` test) or no live beam is left."""
    norm = gen_len**alpha
    for r in finished.nonzero(as_tuple=True)[0].tolist():
        pool[int(owner[r])].append((float(scores[r]) / norm, output_ids[r]))
    keep = ~finished
    for item in owner.unique().tolist():
        if len(pool[item]) < num_return and bool((keep & (owner == item)).any()):
            continue
        if not pool[item]:
            continue
        live = keep & (owner == item)
        nth = sorted((p[0] for p in pool[item]), reverse=True)[min(num_return, len(pool[item])) - 1]
        if not bool(live.any()) or nth >= float(scores[live].max()) / norm:
            results[item] = max(pool[item], key=lambda t: t[0])[1]
            done_items.append(item)
            keep &= owner != item
    return keep
