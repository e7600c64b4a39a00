"""Training and generation for the People's Daily seq2seq tasks (QA by generation, CLN LM).

Builds on :mod:`kexue.textkit.tasks.qa_data` (examples, encoding, collate) and the UniLM model of
:mod:`kexue.textkit.seq2seq.transformer`:

- :func:`train_seq2seq`: AdamW on the UniLM loss (spec §2.5, :func:`seq2seq_target_loss`) with
  length-bucketed batches, a step and a wall-clock budget; a language model is the special case
  "source = ``[CLS]`` only".
- :func:`generate_answers`: batched greedy answers with the KV cache, and their probability
  (evaluation and voting live in :mod:`kexue.textkit.tasks.qa_evaluation`).
- :func:`sample_sentences`: conditional (CLN) or unconditioned nucleus sampling of sentences;
  :func:`condition_hit_rates` scores them against their entity-type conditions.

References:
    - Su Jianlin, seq2seq reading comprehension and voting: https://kexue.fm/archives/7115
    - Su Jianlin, Conditional LayerNorm: https://kexue.fm/archives/7124
    - UniLM: Dong et al. 2019, arXiv:1905.03197.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.batching import length_bucketed_batches
from ..seq2seq.decoding.decoder import UniLMDecoder
from ..seq2seq.transformer import KVCache, seq2seq_loss
from ._types import TokenizerLike
from .qa_data import Seq2SeqBatch, collate_seq2seq

__all__ = [
    "TrainLog",
    "condition_hit_rates",
    "generate_answers",
    "sample_sentences",
    "seq2seq_target_loss",
    "train_seq2seq",
]

Item = tuple[Sequence[int], Sequence[int]]


@dataclass
class TrainLog:
    """What :func:`train_seq2seq` did: steps, examples seen, wall time and the loss trace.

    Arguments:
        steps: optimiser steps taken.
        examples: training examples seen (with repetition across epochs).
        seconds: wall time of the loop.
        losses: mean loss of every ``log_every`` steps.
        stopped_by: ``"max_steps"`` or ``"max_seconds"``.
    """

    steps: int = 0
    examples: int = 0
    seconds: float = 0.0
    losses: list[float] = field(default_factory=list)
    stopped_by: str = "max_steps"


def seq2seq_target_loss(model: nn.Module, batch: Seq2SeqBatch) -> Tensor:
    """The UniLM loss of spec §2.5, computing output logits at target positions only.

    Equal to ``seq2seq_loss(model(tokens, segments, ...), tokens, segments)`` for 0/1 segments,
    but the tied output layer (``dim × V`` per position, most of a small model's cost) runs only
    where ``segments[:, 1:] == 1``. Models without ``forward_hidden``/``logits`` fall back to
    the full logits.

    Arguments:
        model: a :class:`~kexue.textkit.seq2seq.transformer.UniLMTransformer`.
        batch: a :class:`~kexue.textkit.tasks.qa_data.Seq2SeqBatch` with 0/1 segments.

    Returns:
        The scalar mean cross-entropy over target tokens.
    """
    kwargs = {"key_padding_mask": batch.mask, "cond": batch.cond}
    if not (hasattr(model, "forward_hidden") and hasattr(model, "logits")):
        return seq2seq_loss(
            model(batch.tokens, batch.segments, **kwargs), batch.tokens, batch.segments
        )
    hidden = model.forward_hidden(batch.tokens, batch.segments, **kwargs)
    select = batch.segments[:, 1:] > 0
    if not bool(select.any()):
        raise ValueError("segments has no target token (sum of segments[:, 1:] is 0)")
    logits = model.logits(hidden[:, :-1][select])
    return F.cross_entropy(logits.float(), batch.tokens[:, 1:][select])


def train_seq2seq(
    model: nn.Module,
    items: Sequence[Item],
    *,
    pad_id: int,
    cond: Sequence[Sequence[float]] | None = None,
    batch_size: int = 64,
    lr: float = 1e-3,
    weight_decay: float = 0.01,
    warmup_steps: int = 50,
    max_steps: int = 10_000,
    max_seconds: float | None = None,
    clip_norm: float | None = 1.0,
    log_every: int = 50,
    generator: torch.Generator | None = None,
    callback: Callable[[int, float], None] | None = None,
) -> TrainLog:
    """Train a UniLM model on ``(ids, segments)`` items with the seq2seq loss (spec §2.5).

    AdamW with a linear warm-up then constant rate; gradient-norm clipping; batches from
    :func:`length_bucketed_batches`, a new permutation every epoch. Stops after ``max_steps``
    steps or once ``max_seconds`` of wall time have passed (checked after each step), whichever
    comes first. The model is left in eval mode.

    Arguments:
        model: a :class:`~kexue.textkit.seq2seq.transformer.UniLMTransformer` (or anything with its
            ``forward(tokens, segments, *, key_padding_mask, cond)`` signature).
        items: ``(ids, segments)`` pairs (:func:`~kexue.textkit.tasks.qa_data.encode_seq2seq`).
            A language model: ``[CLS]`` with segment 0 then the sentence and ``[SEP]`` with
            segment 1.
        pad_id: padding id.
        cond: optional condition per item (for ``cond_dim`` models).
        batch_size: items per step (default 64).
        lr: peak learning rate (default 1e-3, design decision for small pre-LN models).
        weight_decay: AdamW weight decay (default 0.01).
        warmup_steps: linear warm-up steps (default 50).
        max_steps: step budget (default 10 000).
        max_seconds: wall-clock budget in seconds (default None = no limit).
        clip_norm: gradient-norm clip (default 1.0; None = off).
        log_every: steps per entry of :attr:`TrainLog.losses` (default 50).
        generator: seeds the batch order.
        callback: called as ``callback(step, loss)`` after every step (progress bars).

    Returns:
        A :class:`TrainLog`.
    """
    if not items:
        raise ValueError("items must not be empty")
    if cond is not None and len(cond) != len(items):
        raise ValueError(f"cond must have one row per item, got {len(cond)} for {len(items)}")
    if max_steps < 1:
        raise ValueError(f"max_steps must be >= 1, got {max_steps}")
    if max_seconds is not None and not max_seconds > 0:
        raise ValueError(f"max_seconds must be > 0 or None, got {max_seconds}")
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / max(warmup_steps, 1))
    )
    lengths = [len(ids) for ids, _ in items]
    log = TrainLog()
    window: list[float] = []
    model.train()
    t0 = time.perf_counter()
    done = False
    while not done:
        for idx in length_bucketed_batches(lengths, batch_size=batch_size, generator=generator):
            batch = collate_seq2seq(
                [items[i] for i in idx],
                pad_id=pad_id,
                cond=None if cond is None else [cond[i] for i in idx],
            )
            loss = seq2seq_target_loss(model, batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if clip_norm is not None:
                nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
            opt.step()
            sched.step()
            value = float(loss.detach())
            if not math.isfinite(value):
                raise FloatingPointError(f"training loss became {value} at step {log.steps + 1}")
            log.steps += 1
            log.examples += len(idx)
            window.append(value)
            if len(window) == log_every:
                log.losses.append(sum(window) / len(window))
                window.clear()
            if callback is not None:
                callback(log.steps, value)
            if log.steps >= max_steps:
                done = True
            elif max_seconds is not None and time.perf_counter() - t0 >= max_seconds:
                done, log.stopped_by = True, "max_seconds"
            if done:
                break
    if window:
        log.losses.append(sum(window) / len(window))
    log.seconds = time.perf_counter() - t0
    model.eval()
    return log


@torch.no_grad()
def generate_answers(
    model: nn.Module,
    prompts: Sequence[Sequence[int]],
    *,
    pad_id: int,
    end_id: int,
    max_new_tokens: int = 16,
    batch_size: int = 128,
    cond: Sequence[Sequence[float]] | None = None,
) -> list[tuple[list[int], float]]:
    """Greedy continuation of each prompt as a target segment, batched, with the KV cache.

    Each prompt (``[CLS] passage [SEP] question [SEP]``, segment 0) is run once; then the argmax
    token is fed back with segment 1 until ``end_id`` or ``max_new_tokens``. Prompts are grouped
    by length; right padding is masked (``key_padding_mask``) and the cache continues every row
    from its own length.

    Arguments:
        model: a :class:`~kexue.textkit.seq2seq.transformer.UniLMTransformer` (``forward_hidden`` and
            ``logits`` are used; eval mode is set here).
        prompts: token ids of each prompt, segment 0 throughout.
        pad_id: padding id.
        end_id: the closing ``[SEP]``.
        max_new_tokens: longest answer, the end token included (default 16).
        batch_size: prompts per forward (default 128).
        cond: optional condition per prompt (CLN models).

    Returns:
        Per prompt ``(answer_ids, probability)``: the ids before ``end_id`` and the product of
        the chosen tokens' probabilities, end token included (0 < p ≤ 1). An answer cut by
        ``max_new_tokens`` keeps every generated id.
    """
    if not prompts or any(len(p) == 0 for p in prompts):
        raise ValueError("prompts must be non-empty sequences of ids")
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    if cond is not None and len(cond) != len(prompts):
        raise ValueError(f"cond must have one row per prompt, got {len(cond)} for {len(prompts)}")
    model.eval()
    device = next(model.parameters()).device
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    out: list[tuple[list[int], float]] = [([], 0.0)] * len(prompts)
    for a in range(0, len(order), batch_size):
        idx = order[a : a + batch_size]
        batch = collate_seq2seq(
            [(prompts[i], [0] * len(prompts[i])) for i in idx],
            pad_id=pad_id,
            cond=None if cond is None else [cond[i] for i in idx],
        )
        tokens, mask = batch.tokens.to(device), batch.mask.to(device)
        c = None if batch.cond is None else batch.cond.to(device)
        cache = KVCache()
        hidden = model.forward_hidden(
            tokens, batch.segments.to(device), key_padding_mask=mask, cond=c, cache=cache
        )  # output logits only where needed: each row's last prompt token
        last = model.logits(hidden[torch.arange(len(idx), device=device), mask.sum(1) - 1])
        b = len(idx)
        logp = torch.zeros(b, device=device)
        finished = torch.zeros(b, dtype=torch.bool, device=device)
        seqs: list[list[int]] = [[] for _ in range(b)]
        ones = torch.ones(b, 1, dtype=torch.long, device=device)
        for _ in range(max_new_tokens):
            lp = torch.log_softmax(last.float(), dim=-1)
            best, tok = lp.max(dim=-1)
            logp = torch.where(finished, logp, logp + best)
            for r in (~finished).nonzero().flatten().tolist():
                if int(tok[r]) != end_id:
                    seqs[r].append(int(tok[r]))
            finished = finished | (tok == end_id)
            if bool(finished.all()):
                break
            feed = torch.where(finished, torch.full_like(tok, end_id), tok)[:, None]
            h = model.forward_hidden(feed, ones, key_padding_mask=ones.bool(), cond=c, cache=cache)
            last = model.logits(h[:, -1])
        for r, i in enumerate(idx):
            out[i] = (seqs[r], float(logp[r].exp()))
    return out


@torch.no_grad()
def sample_sentences(
    model: nn.Module,
    tokenizer: TokenizerLike,
    *,
    n: int,
    cond: Sequence[float] | None = None,
    topp: float | None = 0.9,
    topk: int | None = None,
    temperature: float = 1.0,
    maxlen: int = 64,
    generator: torch.Generator | None = None,
) -> list[str]:
    """``n`` sentences from a language model in UniLM form (``[CLS]`` source, sentence target).

    Runs :meth:`kexue.textkit.seq2seq.decoding.UniLMDecoder.random_sample` (bert4keras order: top-k, then
    nucleus) from the one-token source ``[CLS]``, with the condition ``cond`` for a CLN model
    (post 7124 samples with top-p). Unfinished samples (``maxlen`` reached) are kept.

    Arguments:
        model: a :class:`~kexue.textkit.seq2seq.transformer.UniLMTransformer` trained on
            ``[CLS] sentence [SEP]`` items (segment 1 on the sentence).
        tokenizer: with ``decode``, ``bos_id`` ([CLS]) and ``eos_id`` ([SEP]).
        n: number of samples.
        cond: the condition vector (required iff the model has ``cond_dim``).
        topp: nucleus mass (default 0.9; None = off).
        topk: top-k filter (default None).
        temperature: softmax temperature (default 1).
        maxlen: most tokens per sample (default 64).
        generator: source of randomness.

    Returns:
        The decoded sentences.

    References: https://kexue.fm/archives/7124.
    """

    model.eval()
    device = next(model.parameters()).device
    decoder = UniLMDecoder(model, start_id=None, end_id=tokenizer.eos_id, maxlen=maxlen)
    inputs = [
        torch.full((1, 1), tokenizer.bos_id, dtype=torch.long, device=device),
        torch.ones(1, dtype=torch.long, device=device),
    ]
    if cond is not None:
        inputs.append(torch.as_tensor([list(cond)], dtype=torch.float32, device=device))
    out = decoder.random_sample(
        inputs, n, topk=topk, topp=topp, temperature=temperature, generator=generator
    )[0]
    return [tokenizer.decode(ids.tolist()) for ids in out]


def condition_hit_rates(
    presence: Sequence[Sequence[bool]], conds: Sequence[Sequence[float]]
) -> dict[str, float]:
    """How well generated sentences follow their entity-type conditions.

    Arguments:
        presence: per sentence, whether each type occurs (e.g. ``EntityLexicon.types_in``).
        conds: per sentence, the requested 0/1 vector (same type order).

    Returns:
        ``requested``: share of requested (bit 1) types that occur; ``unrequested_absent``:
        share of bit-0 types that do not occur; ``exact``: share of sentences whose presence
        vector equals the condition (``nan`` where a share has no cases).
    """
    if len(presence) != len(conds):
        raise ValueError(
            f"presence and conds must have equal lengths, got {len(presence)} and {len(conds)}"
        )
    req = [bool(p) for pres, c in zip(presence, conds) for p, b in zip(pres, c, strict=True) if b]
    unreq = [
        not p for pres, c in zip(presence, conds) for p, b in zip(pres, c, strict=True) if not b
    ]
    exact = [
        all(bool(p) == bool(b) for p, b in zip(pres, c, strict=True))
        for pres, c in zip(presence, conds)
    ]

    def share(xs: list[bool]) -> float:
        return sum(xs) / len(xs) if xs else float("nan")

    return {"requested": share(req), "unrequested_absent": share(unreq), "exact": share(exact)}
