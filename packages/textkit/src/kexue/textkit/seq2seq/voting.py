"""Multi-passage answer voting for reading comprehension by generation (spec §2.7, post 7115).

Each passage ``i`` is encoded with the question ([CLS] p [SEP] q [SEP]) and gives a next-token
distribution ``p_i(v)``. The passages vote with

.. math:: \\mathrm{score}(v) = \\frac{\\sum_i p_i(v)^2}{\\sum_i p_i(v) + 1},

passed UNNORMALISED as "probas" to beam search (which takes its log). Properties: ``score ≤
max_i p_i``; for one passage it is ``p²/(p+1)``, increasing in ``p``, so that passage's ranking is
kept; a second passage agreeing with the same ``p`` raises it. At step 0 a passage whose most
probable first token is the end token ([SEP]) says "no answer" and is dropped; if all say so the
answer is empty. In extractive mode ``v`` keeps its probability only if ``prefix + v`` is an
n-gram (``n = step + 1``) of some remaining passage; the end token is always allowed.

References: https://kexue.fm/archives/7115 (seq2seq reading comprehension, voting); spec §2.7.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from .decoding.decoder import AutoRegressiveDecoder
from .decoding.unilm_logits import unilm_next_logits
from .transformer import UniLMTransformer

__all__ = [
    "PassageVoter",
    "extractive_filter",
    "ngram_continuations",
    "unilm_passage_predict",
    "vote_answer",
    "vote_scores",
]


def vote_scores(probas: Tensor, *, dim: int = 0) -> Tensor:
    """The author's vote ``Σ_i p_i² / (Σ_i p_i + 1)`` over the passage axis ``dim``.

    Arguments:
        probas: non-negative ``p_i(v)``, passages along ``dim`` (e.g. ``(P, V)`` or
            ``(P, N, V)``).
        dim: the passage axis (default 0).

    Returns:
        ``probas`` reduced over ``dim`` (unnormalised scores in ``[0, max_i p_i]``).

    References: https://kexue.fm/archives/7115; spec §2.7.
    """
    if probas.dim() == 0:
        raise ValueError("probas must have a passage axis")
    if bool((probas < 0).any()) or not bool(torch.isfinite(probas).all()):
        raise ValueError("probas must be finite and non-negative")
    return probas.square().sum(dim) / (probas.sum(dim) + 1)


def ngram_continuations(
    passages: Sequence[Sequence[int]], n: int
) -> dict[tuple[int, ...], set[int]]:
    """Map each (n−1)-token prefix of an n-gram of any passage to the tokens that follow it.

    Arguments:
        passages: token id sequences.
        n: n-gram order (≥ 1; ``n = 1`` maps ``()`` to every passage token).

    Returns:
        ``{prefix: {next tokens}}``.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    out: dict[tuple[int, ...], set[int]] = {}
    for ids in passages:
        ids = [int(i) for i in ids]
        for s in range(len(ids) - n + 1):
            out.setdefault(tuple(ids[s : s + n - 1]), set()).add(ids[s + n - 1])
    return out


def extractive_filter(
    probas: Tensor,
    output_ids: Tensor,
    passages: Sequence[Sequence[int]],
    *,
    end_id: int,
) -> Tensor:
    """Zero ``p(v)`` unless ``output_ids[r] + [v]`` is a contiguous n-gram of some passage.

    Arguments:
        probas: ``(..., N, V)`` scores (passage axes first, then rows).
        output_ids: ``(N, t)`` answer prefixes (``n = t + 1``).
        passages: the passages' token ids (passage text only, no question or specials).
        end_id: always allowed (an answer may stop anywhere).

    Returns:
        ``probas`` with non-extractive tokens zeroed.
    """
    n_rows, t = output_ids.shape
    if probas.shape[-2] != n_rows:
        raise ValueError(
            f"probas shape {tuple(probas.shape)} does not match output_ids {tuple(output_ids.shape)}"
        )
    if not 0 <= end_id < probas.shape[-1]:
        raise ValueError(f"end_id {end_id} outside the vocabulary [0, {probas.shape[-1]})")
    table = ngram_continuations(passages, t + 1)
    allowed = torch.zeros(n_rows, probas.shape[-1], dtype=torch.bool, device=probas.device)
    for r, prefix in enumerate(output_ids.tolist()):
        nxt = table.get(tuple(prefix), set())
        if nxt:
            allowed[r, list(nxt)] = True
    allowed[:, end_id] = True
    return probas * allowed


@dataclass
class _VoteState:
    step: int = 0
    alive: list[int] = field(default_factory=list)
    no_answer: bool = False


class PassageVoter:
    """A decoder ``predict`` hook that votes over several passages (spec §2.7).

    Arguments:
        passage_predict: ``(passage_indices, output_ids (N, t)) -> probas (len(indices), N, V)``,
            the next-token distribution of every listed passage for every answer prefix.
        num_passages: number of passages ``P`` of the question.
        end_id: the end token ([SEP]); an argmax end token at step 0 means "no answer".
        extractive: restrict answers to passage n-grams (needs ``passages``).
        passages: passage token ids for the extractive mode.
        answer_offset: leading tokens of ``output_ids`` that are not part of the answer (1 if the
            decoder has a ``start_id``; default 0).

    Use with ``AutoRegressiveDecoder(start_id=None, end_id=end_id, maxlen=..., rtype="probas",
    predict_fn=PassageVoter(...))`` and ``beam_search([torch.zeros(1, 1)], topk)`` (one question),
    or simply :func:`vote_answer`.

    References: https://kexue.fm/archives/7115.
    """

    def __init__(
        self,
        passage_predict: Callable[[list[int], Tensor], Tensor],
        *,
        num_passages: int,
        end_id: int,
        extractive: bool = False,
        passages: Sequence[Sequence[int]] | None = None,
        answer_offset: int = 0,
    ) -> None:
        if num_passages < 1:
            raise ValueError(f"num_passages must be >= 1, got {num_passages}")
        if extractive and (passages is None or len(passages) != num_passages):
            raise ValueError("extractive=True needs passages: one token list per passage")
        self.passage_predict = passage_predict
        self.num_passages, self.end_id = num_passages, end_id
        self.extractive, self.passages = extractive, passages
        self.answer_offset = answer_offset

    def __call__(
        self, inputs: list[Tensor], output_ids: Tensor, states: Any
    ) -> tuple[Tensor, _VoteState]:
        """Vote scores ``(N, V)`` for the rows' next token, and the updated state."""
        state = states if isinstance(states, _VoteState) else _VoteState()
        if state.step == 0:
            state.alive = list(range(self.num_passages))
        probas = self.passage_predict(list(state.alive), output_ids)
        n = output_ids.shape[0]
        if probas.dim() != 3 or probas.shape[:2] != (len(state.alive), n):
            raise ValueError(
                f"passage_predict returned shape {tuple(probas.shape)}, expected "
                f"({len(state.alive)}, {n}, V)"
            )
        if not 0 <= self.end_id < probas.shape[-1]:
            raise ValueError(f"end_id {self.end_id} outside the vocabulary [0, {probas.shape[-1]})")
        if state.step == 0:
            answers = probas[:, 0].argmax(dim=-1) != self.end_id
            if not bool(answers.any()):
                state.no_answer, state.alive = True, []
                scores = torch.zeros(n, probas.shape[-1], dtype=probas.dtype, device=probas.device)
                scores[:, self.end_id] = 1.0
                state.step += 1
                return scores, state
            keep = answers.nonzero(as_tuple=True)[0]
            state.alive = [state.alive[i] for i in keep.tolist()]
            probas = probas[keep]
        if self.extractive:
            assert self.passages is not None
            probas = extractive_filter(
                probas,
                output_ids[:, self.answer_offset :],
                [self.passages[i] for i in state.alive],
                end_id=self.end_id,
            )
        state.step += 1
        return vote_scores(probas, dim=0), state


def vote_answer(
    passage_predict: Callable[[list[int], Tensor], Tensor],
    *,
    num_passages: int,
    end_id: int,
    maxlen: int,
    topk: int = 1,
    extractive: bool = False,
    passages: Sequence[Sequence[int]] | None = None,
    min_ends: int = 1,
) -> list[int]:
    """Answer one question by beam search over the passages' vote; ``[]`` = no answer.

    Arguments:
        passage_predict, num_passages, end_id, extractive, passages: see :class:`PassageVoter`.
        maxlen: longest answer (tokens, end token included).
        topk: beam width (the post uses 1 for speed).
        min_ends: as :meth:`AutoRegressiveDecoder.beam_search`.

    Returns:
        The answer token ids without the closing end token.
    """
    voter = PassageVoter(
        passage_predict,
        num_passages=num_passages,
        end_id=end_id,
        extractive=extractive,
        passages=passages,
    )
    decoder = AutoRegressiveDecoder(
        start_id=None, end_id=end_id, maxlen=maxlen, rtype="probas", predict_fn=voter
    )
    ids = decoder.beam_search([torch.zeros(1, 1, dtype=torch.long)], topk, min_ends=min_ends)[0]
    out = [int(i) for i in ids.tolist()]
    return out[:-1] if out and out[-1] == end_id else out


def unilm_passage_predict(
    model: UniLMTransformer,
    sources: Tensor,
    lengths: Tensor,
    *,
    cond: Tensor | None = None,
) -> Callable[[list[int], Tensor], Tensor]:
    """A ``passage_predict`` for :class:`PassageVoter` running a UniLM model on every passage.

    Arguments:
        model: a seq2seq-trained :class:`~kexue.textkit.seq2seq.transformer.UniLMTransformer`.
        sources: ``(P, L)`` right-padded ``[CLS] passage [SEP] question [SEP]`` token ids.
        lengths: ``(P,)`` their lengths.
        cond: optional CLN condition ``(P, d_c)``.

    Returns:
        ``predict(indices, output_ids (N, t)) -> (len(indices), N, V)`` softmax probabilities of
        the answer's next token (segment 1) for every listed passage and row, recomputed in full.
    """
    if sources.dim() != 2 or lengths.shape != sources.shape[:1]:
        raise ValueError(
            f"sources must be (P, L) and lengths (P,), got {tuple(sources.shape)} and "
            f"{tuple(lengths.shape)}"
        )

    def predict(indices: list[int], output_ids: Tensor) -> Tensor:
        idx = torch.tensor(indices, dtype=torch.long, device=sources.device)
        p, n = len(indices), output_ids.shape[0]
        logits = unilm_next_logits(
            model,
            sources[idx].repeat_interleave(n, 0),
            lengths[idx].repeat_interleave(n, 0),
            output_ids.repeat(p, 1),
            cond=None if cond is None else cond[idx].repeat_interleave(n, 0),
        )
        if logits.dtype in (torch.float16, torch.bfloat16):
            logits = logits.float()
        return logits.softmax(-1).view(p, n, -1)

    return predict
