"""Masked-LM pretraining pieces: Chinese whole-word masking on real word boundaries, the MLM loss.

- :func:`word_spans` maps the words of any segmenter (``str -> list[str]``; e.g. kexue's
  ``UnigramSegmenter`` over a discovered lexicon, or jieba) onto tokenizer tokens through their
  character offsets: the word id of every token (−1 where none).
- :func:`whole_word_mask` chooses WORDS, then masks all their tokens together, each token
  independently → ``[MASK]`` 80 %, kept 10 %, a random id 10 % (BERT / Chinese-BERT-wwm).
  ``policy="bernoulli"`` picks each word with probability ``rate`` (bert4keras's
  ``pretraining/``); ``policy="budget"`` is Google's ``create_pretraining_data.py``: words in a
  random order until ``min(max_predictions, max(1, round(rate · n)))`` tokens, a word that would
  overflow the budget skipped.
- :func:`mlm_loss`: cross-entropy on the masked positions only (the MLM head runs on them alone).

References: BERT arXiv:1810.04805 (80/10/10); Chinese-BERT-wwm arXiv:1906.08101;
https://kexue.fm/archives/7764 (bert4keras pretraining); spec §5.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["IGNORE_INDEX", "mlm_loss", "whole_word_mask", "word_spans"]

IGNORE_INDEX = -100


def word_spans(
    text: str,
    offsets: Sequence[tuple[int, int]],
    segmenter: Callable[[str], Sequence[str]],
) -> list[int]:
    """Word id of every token: the segmenter word that holds the token's first character.

    Arguments:
        text: the text the tokens came from.
        offsets: ``(start, end)`` of each token in ``text`` (``WordPieceTokenizer.offsets``).
        segmenter: ``text -> words``; the words must appear in ``text`` in order (characters
            between them, e.g. dropped spaces, belong to no word).

    Returns:
        One id per token, ``0, 1, …`` in word order; −1 for a token outside every word.
        Tokens of one word (``##`` pieces, the characters of a Chinese word) share an id.
    """
    owner = [-1] * len(text)
    pos = 0
    for w, word in enumerate(segmenter(text)):
        if not word:
            continue
        at = text.find(word, pos)
        if at < 0:
            raise ValueError(f"segmenter word {word!r} not found in the text after index {pos}")
        owner[at : at + len(word)] = [w] * len(word)
        pos = at + len(word)
    ids = [owner[a] if a < len(owner) and b > a else -1 for a, b in offsets]
    # renumber 0, 1, ... so that ids are dense (a word split across no token disappears)
    dense: dict[int, int] = {}
    return [-1 if i < 0 else dense.setdefault(i, len(dense)) for i in ids]


def _choose_budget(
    word_ids: Tensor, rate: float, max_predictions: int | None, rng: random.Random
) -> Tensor:
    chosen = torch.zeros_like(word_ids, dtype=torch.bool)
    for b in range(word_ids.shape[0]):
        row = word_ids[b]
        n = int((row >= 0).sum())
        budget = max(1, round(rate * n))
        if max_predictions is not None:
            budget = min(budget, max_predictions)
        words = sorted(set(row[row >= 0].tolist()))
        rng.shuffle(words)
        taken = 0
        for w in words:
            size = int((row == w).sum())
            if taken + size > budget:
                continue
            chosen[b] |= row == w
            taken += size
            if taken >= budget:
                break
    return chosen


def whole_word_mask(
    ids: Tensor,
    word_ids: Tensor,
    *,
    mask_id: int,
    vocab_size: int,
    rate: float = 0.15,
    policy: str = "bernoulli",
    max_predictions: int | None = None,
    replace: tuple[float, float, float] = (0.8, 0.1, 0.1),
    random_ids: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """Whole-word masking (module docstring): returns ``(inputs, labels)``.

    Arguments:
        ids: ``(B, L)`` token ids.
        word_ids: ``(B, L)`` word id per token (:func:`word_spans`), −1 on specials, pads and
            anything never to be predicted.
        mask_id: the ``[MASK]`` id.
        vocab_size: ``V`` (random replacements are drawn from ``[0, V)``).
        rate: word-selection probability / token budget share (default 0.15).
        policy: ``"bernoulli"`` (default) or ``"budget"``.
        max_predictions: cap on masked tokens per row (``"budget"`` policy: Google's
            ``max_predictions_per_seq``; ``"bernoulli"``: the first ones in position order).
        replace: probabilities of ``[MASK]`` / unchanged / random id (default 0.8, 0.1, 0.1).
        random_ids: optional 1-D tensor of ids random replacements are drawn from (e.g. the
            vocabulary without specials); default every id.
        generator: source of randomness (the budget policy seeds a ``random.Random`` from it).

    Returns:
        ``inputs`` (``ids`` with the replacements) and ``labels`` (the original id on chosen
        positions, −100 elsewhere), both ``(B, L)`` long.
    """
    if ids.shape != word_ids.shape or ids.dim() != 2:
        raise ValueError(
            f"ids {tuple(ids.shape)} and word_ids {tuple(word_ids.shape)} must be the same (B, L)"
        )
    if not 0.0 < rate < 1.0:
        raise ValueError(f"rate must lie in (0, 1), got {rate}")
    if policy not in ("bernoulli", "budget"):
        raise ValueError(f"policy must be 'bernoulli' or 'budget', got {policy!r}")
    if len(replace) != 3 or min(replace) < 0 or abs(sum(replace) - 1.0) > 1e-6:
        raise ValueError(f"replace must be three probabilities summing to 1, got {replace}")
    dev = ids.device
    word_ids = word_ids.long()
    if policy == "budget":
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
        chosen = _choose_budget(word_ids.cpu(), rate, max_predictions, random.Random(seed)).to(dev)
    else:
        n_words = int(word_ids.max()) + 1 if word_ids.numel() else 0
        u = torch.rand(ids.shape[0], max(n_words, 1), generator=generator).to(dev)
        chosen = (word_ids >= 0) & (u.gather(1, word_ids.clamp(min=0)) < rate)
        if max_predictions is not None:
            chosen &= chosen.long().cumsum(1) <= max_predictions
    r = torch.rand(ids.shape, generator=generator).to(dev)
    to_mask = chosen & (r < replace[0])
    to_random = chosen & (r >= replace[0] + replace[1])
    pool = random_ids.to(dev) if random_ids is not None else None
    if pool is None:
        rnd = torch.randint(0, vocab_size, ids.shape, generator=generator).to(dev)
    else:
        rnd = pool[torch.randint(0, pool.numel(), ids.shape, generator=generator).to(dev)]
    inputs = torch.where(to_mask, torch.full_like(ids, mask_id), ids)
    inputs = torch.where(to_random, rnd, inputs)
    labels = torch.where(chosen, ids, torch.full_like(ids, IGNORE_INDEX))
    return inputs, labels


def mlm_loss(
    model: Any,
    inputs: Tensor,
    labels: Tensor,
    *,
    segments: Tensor | None = None,
    key_padding_mask: Tensor | None = None,
    cond: Tensor | None = None,
) -> Tensor:
    """Mean cross-entropy of the MLM logits at the labelled positions (``labels != -100``).

    The encoder runs bidirectionally; the MLM head (``dim × V`` per position) runs only on the
    labelled positions. Equal to ``F.cross_entropy(model(..., bidirectional=True), labels,
    ignore_index=-100)``.

    Arguments:
        model: a :class:`~kexue.textkit.seq2seq.bert.BertUniLM`.
        inputs: ``(B, L)`` masked ids (:func:`whole_word_mask`).
        labels: ``(B, L)`` targets, −100 where not predicted.
        segments, key_padding_mask, cond: as ``BertUniLM.forward_hidden``.
    """
    hidden = model.forward_hidden(
        inputs, segments, key_padding_mask=key_padding_mask, cond=cond, bidirectional=True
    )
    select = labels != IGNORE_INDEX
    c = None
    if cond is not None:
        c = cond[:, None].expand(*labels.shape, cond.shape[-1]) if cond.dim() == 2 else cond
        c = c[select]
    logits = model.logits(hidden[select], c)
    return F.cross_entropy(logits.float(), labels[select])
