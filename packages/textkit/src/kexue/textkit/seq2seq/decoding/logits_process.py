"""Opt-in decoding constraints with HF ``generate`` semantics (spec §6): repetition penalty,
no-repeat n-grams, bad words and a minimum number of new tokens.

Off by default, so bert4keras results are unchanged. Each is a function of the next-token scores
``(N, V)`` and the context ids, equal to the HF ``LogitsProcessor`` of the same name
(transformers 5.25 ``generation/logits_process.py``) on the same inputs; :class:`LogitsProcessors`
bundles them in HF's order (penalty → n-gram → bad words → min new tokens) for
:class:`~kexue.textkit.seq2seq.decoding.AutoRegressiveDecoder` (``processors=``).

Domain, as HF: greedy and sampling process the raw logits (before temperature, top-k, top-p);
beam search processes log-softmax scores. A ``rtype="probas"`` hook's probabilities are processed
as ``log(p + 1e-12)``.

References: CTRL arXiv:1909.05858 (repetition penalty); https://kexue.fm/archives/7115 (the
bert4keras decoder these extend).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = [
    "LogitsProcessors",
    "ban_bad_words",
    "ban_repeated_ngrams",
    "min_new_tokens_mask",
    "repetition_penalty",
]

NEG_INF = float("-inf")


def repetition_penalty(
    scores: Tensor, context: Tensor, theta: float, valid: Tensor | None = None
) -> Tensor:
    """Every id present in ``context`` (once, whatever its count): ``s < 0 → s·θ``, else ``s/θ``.

    Arguments:
        scores: ``(N, V)`` scores.
        context: ``(N, T)`` ids.
        theta: the penalty θ > 0 (> 1 lowers repeated tokens).
        valid: optional ``(N, T)`` bool, False on padding (never penalised).
    """
    if not theta > 0:
        raise ValueError(f"repetition_penalty must be > 0, got {theta}")
    if context.shape[1] == 0:
        return scores
    weight = (
        torch.ones_like(context, dtype=scores.dtype) if valid is None else valid.to(scores.dtype)
    )
    present = torch.zeros_like(scores).scatter_add_(1, context, weight) > 0
    return torch.where(present, torch.where(scores < 0, scores * theta, scores / theta), scores)


def _rows(context: Tensor, valid: Tensor | None) -> list[list[int]]:
    if valid is None:
        return context.tolist()
    return [
        [t for t, ok in zip(r, v, strict=True) if ok]
        for r, v in zip(context.tolist(), valid.tolist(), strict=True)
    ]


def ban_repeated_ngrams(
    scores: Tensor, context: Tensor, n: int, valid: Tensor | None = None
) -> Tensor:
    """HF ``NoRepeatNGramLogitsProcessor``: every earlier window whose first ``n − 1`` tokens
    equal the last ``n − 1`` tokens bans its ``n``-th token (``n = 1`` bans every seen token)."""
    if n < 1:
        raise ValueError(f"no_repeat_ngram_size must be >= 1, got {n}")
    out = scores.clone()
    for r, row in enumerate(_rows(context, valid)):
        t = len(row)
        if t + 1 < n:
            continue
        tail = tuple(row[t - n + 1 :]) if n > 1 else ()
        banned = {row[i + n - 1] for i in range(t - n + 1) if tuple(row[i : i + n - 1]) == tail}
        if banned:
            out[r, list(banned)] = NEG_INF
    return out


def ban_bad_words(
    scores: Tensor,
    context: Tensor,
    bad_words_ids: Sequence[Sequence[int]],
    end_ids: Sequence[int] = (),
    valid: Tensor | None = None,
) -> Tensor:
    """HF ``NoBadWordsLogitsProcessor``: ``[w]`` always −∞ (except an entry equal to an end id);
    ``[p₁ … p_k, w]``: ``w`` −∞ when the context ends with ``p`` (longer prefixes are ignored)."""
    words = [list(map(int, w)) for w in bad_words_ids if len(w) > 0]
    words = [w for w in words if not (len(w) == 1 and w[0] in set(end_ids))]
    out = scores.clone()
    static = [w[0] for w in words if len(w) == 1]
    if static:
        out[:, static] = NEG_INF
    multi = [w for w in words if len(w) > 1]
    if multi:
        for r, row in enumerate(_rows(context, valid)):
            for w in multi:
                k = len(w) - 1
                if k <= len(row) and row[len(row) - k :] == w[:-1]:
                    out[r, w[-1]] = NEG_INF
    return out


def min_new_tokens_mask(
    scores: Tensor, new_tokens: int, minimum: int, end_ids: Sequence[int]
) -> Tensor:
    """HF ``MinNewTokensLengthLogitsProcessor``: end ids −∞ while fewer than ``minimum`` tokens
    have been generated (``new_tokens``, the start token not counted)."""
    if new_tokens >= minimum:
        return scores
    out = scores.clone()
    out[:, list(end_ids)] = NEG_INF
    return out


@dataclass
class LogitsProcessors:
    """The opt-in HF constraints, applied in HF's order (module docstring).

    Arguments:
        repetition_penalty: θ (None = off).
        no_repeat_ngram_size: n (None = off).
        bad_words_ids: token sequences never to complete (None = off).
        min_new_tokens: end ids forbidden until this many tokens are generated (None = off).
        context: ``"output"`` (default: the generated ids, start token included — the UniLM
            source is a separate segment, as an HF encoder's input) or ``"all"`` (source +
            output, as HF decoder-only models; needs a decoder that knows its source, e.g.
            ``UniLMDecoder``).
    """

    repetition_penalty: float | None = None
    no_repeat_ngram_size: int | None = None
    bad_words_ids: Sequence[Sequence[int]] | None = None
    min_new_tokens: int | None = None
    context: str = "output"

    def __post_init__(self) -> None:
        if self.context not in ("output", "all"):
            raise ValueError(f"context must be 'output' or 'all', got {self.context!r}")
        if self.repetition_penalty is not None and not self.repetition_penalty > 0:
            raise ValueError(f"repetition_penalty must be > 0, got {self.repetition_penalty}")
        if self.no_repeat_ngram_size is not None and self.no_repeat_ngram_size < 1:
            raise ValueError(f"no_repeat_ngram_size must be >= 1, got {self.no_repeat_ngram_size}")
        if self.min_new_tokens is not None and self.min_new_tokens < 0:
            raise ValueError(f"min_new_tokens must be >= 0, got {self.min_new_tokens}")

    def __call__(
        self,
        scores: Tensor,
        context: Tensor,
        valid: Tensor | None,
        new_tokens: int,
        end_ids: Sequence[int],
    ) -> Tensor:
        """Apply every configured constraint to ``scores`` ``(N, V)``."""
        if self.repetition_penalty is not None:
            scores = repetition_penalty(scores, context, self.repetition_penalty, valid)
        if self.no_repeat_ngram_size is not None:
            scores = ban_repeated_ngrams(scores, context, self.no_repeat_ngram_size, valid)
        if self.bad_words_ids:
            scores = ban_bad_words(scores, context, self.bad_words_ids, end_ids, valid)
        if self.min_new_tokens:
            scores = min_new_tokens_mask(scores, new_tokens, self.min_new_tokens, end_ids)
        return scores

    def apply(
        self,
        scores: Tensor,
        output_ids: Tensor,
        prefix: tuple[Tensor, Tensor] | None,
        first_len: int,
        end_ids: Sequence[int],
    ) -> Tensor:
        """The decoder's call: the context is ``output_ids`` (``"output"``) or ``prefix`` (the
        source ids and their validity) followed by them (``"all"``)."""
        ctx, valid = output_ids, None
        if self.context == "all":
            if prefix is None:
                raise ValueError("processors context='all' needs a decoder that knows its source")
            ctx = torch.cat((prefix[0], output_ids), dim=1)
            valid = torch.cat((prefix[1], torch.ones_like(output_ids, dtype=torch.bool)), dim=1)
        return self(scores, ctx, valid, output_ids.shape[1] - first_len, end_ids)
