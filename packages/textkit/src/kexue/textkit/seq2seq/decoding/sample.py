"""The sampling loop behind :meth:`AutoRegressiveDecoder.random_sample` (private).

Every input is replicated ``n`` times after the first step (rows grouped per input, as HF's
``repeat_interleave``); each step filters the next-token distribution (top-k, then top-p,
renormalised) and draws one token per row with ``torch.multinomial``. ``draw="live"`` (default,
bert4keras) drops finished rows from the batch. ``draw="all"`` keeps drawing a (discarded) token
for finished rows, so that every step's ``multinomial`` sees the same ``(B·n, V)`` matrix as HF
``generate(do_sample=True, num_return_sequences=n)``: torch's multinomial with one sample is
``argmax(p / q)`` with ``q ~ Exp(1)`` drawn for every entry of that matrix, so a row's draw
depends on its place in it. With the same seed and the same processed probabilities the samples
then equal HF's token for token.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from ._hook_check import _HookCheck
from .beam import reorder
from .filters import _invalid_rows, _top_k_core, _top_p_core

if TYPE_CHECKING:  # type-only: decoder.py imports this module at run time, never the reverse
    from .decoder import AutoRegressiveDecoder

# Package-internal API: imported by decoder.py, not re-exported by kexue.textkit.seq2seq.decoding.
__all__ = ["random_sample_loop"]


def _filtered(probas: Tensor, bad: Tensor, topk: int | None, topp: float | None) -> Tensor:
    safe = probas.masked_fill(bad[:, None], 1.0)  # bad rows: uniform until the step's check
    if topk is not None:
        safe = _top_k_core(safe, topk)
    if topp is not None:
        safe = _top_p_core(safe, topp)
    return safe


def random_sample_loop(
    dec: AutoRegressiveDecoder,
    inputs: list[Tensor],
    n: int,
    *,
    topk: int | None,
    topp: float | None,
    states: Any,
    temperature: float,
    min_ends: int,
    generator: torch.Generator | None,
    draw: str,
) -> list[list[Tensor]]:
    """``n`` samples per input (arguments checked by the caller; see the module docstring)."""
    b, device = inputs[0].shape[0], inputs[0].device
    owner = torch.arange(b, device=device)
    row = torch.arange(b * n, device=device)  # each live row's place among all B·n rows
    output_ids = dec.first_output_ids(b, device)
    end_ids = dec.end_ids_tensor(device)
    results: list[list[Tensor]] = [[] for _ in range(b)]
    finished: list[tuple[int, Tensor]] = []
    check = _HookCheck()
    for step in range(dec.maxlen):
        raw, states = dec.step_scores(inputs, output_ids, states, temperature, "probas")
        # validated in the step's one host sync below
        bad = _invalid_rows(raw)
        probas = raw / raw.sum(dim=-1, keepdim=True)
        if step == 0:  # replicate every input n times
            index = torch.arange(b, device=device).repeat_interleave(n)
            probas, owner, output_ids = probas[index], owner[index], output_ids[index]
            raw, bad = raw[index], bad[index]
            inputs = [x.index_select(0, index) for x in inputs]
            states = reorder(states, index)
        safe = _filtered(probas, bad, topk, topp)
        if draw == "all" and row.numel() < b * n:
            full = safe.new_ones(b * n, safe.shape[-1])
            full[row] = safe
            tokens = torch.multinomial(full, 1, generator=generator)[row]
        else:
            tokens = torch.multinomial(safe, 1, generator=generator)
        output_ids = torch.cat((output_ids, tokens), dim=1)
        if output_ids.shape[1] < dec.minlen:
            check.defer(bad, step)  # no host sync in this step
            continue
        is_end = torch.isin(tokens[:, 0], end_ids)
        done = is_end & (torch.isin(output_ids, end_ids).sum(1) >= min_ends)
        if check.with_done(bad, raw, step, done):  # the step's one host sync
            for r in done.nonzero(as_tuple=True)[0].tolist():
                results[int(owner[r])].append(output_ids[r])
                finished.append((int(row[r]), output_ids[r]))
            index = (~done).nonzero(as_tuple=True)[0]
            owner, output_ids, row = owner[index], output_ids[index], row[index]
            if index.numel() == 0:
                break
            inputs = [x.index_select(0, index) for x in inputs]
            states = reorder(states, index)
    check.finish(step)
    for r, item in enumerate(owner.tolist()):
        results[item].append(output_ids[r])
        finished.append((int(row[r]), output_ids[r]))
    if draw == "all":  # row order: sample j of input i is row i·n + j
        ordered = [seq for _, seq in sorted(finished, key=lambda t: t[0])]
        return [ordered[i * n : (i + 1) * n] for i in range(b)]
    return results
