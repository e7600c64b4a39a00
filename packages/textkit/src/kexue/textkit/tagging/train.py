"""Training and evaluation of character taggers: vocabulary, length-bucketed batches, Adam loop.

- :class:`CharVocab`: character ↔ id with PAD = 0 and UNK = 1, built from texts with a
  ``min_count``.
- :func:`encode_tagged` turns (text, tags) pairs into id sequences; :func:`length_bucketed_batches`
  groups sequences of similar length (shuffled chunks sorted by length, then the batch order
  shuffled), so little compute goes to padding; :func:`pad_batch` makes (ids, mask) tensors.
- :func:`train_tagger`: Adam with a linear learning-rate decay over the run, gradient clipping,
  an optional wall-clock budget ``max_seconds`` (the decay then follows whichever of steps and
  time is further along), reproducible from a ``torch.Generator`` (batch order and dropout).
- :func:`predict_tags`, :func:`evaluate_ner` (entity P/R/F1 per type, micro and macro, strict by
  default; :func:`kexue.textkit.metrics.entity_scores`) and :func:`evaluate_cws` (word P/R/F
  with OOV/IV recall; :func:`kexue.textkit.metrics.cws_scores`).

References:
    Kingma & Ba, "Adam", arXiv 1412.6980; https://kexue.fm/archives/6270 (the couplet tagger);
    spec §3.4 (evaluation conventions).
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor, nn

from ..data.batching import length_bucketed_batches, pad_batch
from ._checks import check_positive_int

__all__ = [
    "CharVocab",
    "TrainResult",
    "encode_tagged",
    "evaluate_cws",
    "evaluate_ner",
    "predict_tags",
    "train_tagger",
]

Pair = tuple[list[int], list[int]]  # (char ids, tag ids) of one sentence


class CharVocab:
    """Characters ↔ ids; id 0 is PAD, id 1 is UNK, then the characters.

    Arguments:
        chars: the characters in id order (ids 2, 3, …); each a single, distinct character.
        unk_char: what :meth:`decode` writes for UNK (default U+FFFD "�").

    ``len(vocab)`` counts PAD and UNK; ``encode`` maps unknown characters to UNK, so
    ``decode(encode(text)) == text`` exactly when every character of ``text`` is known.
    """

    PAD = 0
    UNK = 1

    def __init__(self, chars: Sequence[str], *, unk_char: str = "\ufffd") -> None:
        chars = list(chars)
        for c in chars:
            if not isinstance(c, str) or len(c) != 1:
                raise ValueError(f"chars must be single characters, got {c!r}")
        if len(set(chars)) != len(chars):
            raise ValueError("chars must be distinct")
        self.chars = chars
        self.unk_char = unk_char
        self._index = {c: i + 2 for i, c in enumerate(chars)}

    @classmethod
    def build(
        cls, texts: Iterable[str], *, min_count: int = 1, max_size: int | None = None
    ) -> CharVocab:
        """Vocabulary of the characters seen at least ``min_count`` times.

        Arguments:
            texts: the training texts.
            min_count: minimum count of a kept character (default 1).
            max_size: keep at most this many characters (PAD and UNK not included).

        Returns:
            A :class:`CharVocab`, characters ordered by count (descending), ties by code point.
        """
        if isinstance(min_count, bool) or not isinstance(min_count, int) or min_count < 1:
            raise ValueError(f"min_count must be a positive int, got {min_count!r}")
        if max_size is not None and max_size < 0:
            raise ValueError(f"max_size must be >= 0 or None, got {max_size!r}")
        counts: Counter[str] = Counter()
        for text in texts:
            if not isinstance(text, str):
                raise ValueError(f"texts must be strings, got {type(text).__name__}")
            counts.update(text)
        ranked = sorted(
            (c for c, n in counts.items() if n >= min_count), key=lambda c: (-counts[c], c)
        )
        return cls(ranked if max_size is None else ranked[:max_size])

    def __len__(self) -> int:
        return len(self.chars) + 2

    def __contains__(self, char: object) -> bool:
        return char in self._index

    def encode(self, text: str) -> list[int]:
        """Ids of the characters of ``text`` (UNK = 1 for unknown ones)."""
        get = self._index.get
        return [get(c, self.UNK) for c in text]

    def decode(self, ids: Iterable[int]) -> str:
        """Text of ``ids``; PAD is skipped, UNK becomes ``unk_char``."""
        out = []
        for i in ids:
            i = int(i)
            if i == self.PAD:
                continue
            if i == self.UNK:
                out.append(self.unk_char)
            elif 2 <= i < len(self):
                out.append(self.chars[i - 2])
            else:
                raise ValueError(f"ids must be in [0, {len(self)}), got {i}")
        return "".join(out)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able state (``CharVocab.from_dict`` restores it)."""
        return {"chars": "".join(self.chars), "unk_char": self.unk_char}

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> CharVocab:
        """Inverse of :meth:`to_dict`."""
        return cls(list(state["chars"]), unk_char=state.get("unk_char", "\ufffd"))


def encode_tagged(
    vocab: CharVocab,
    label_set: Any,
    texts: Sequence[str],
    tags: Sequence[Sequence[str]],
) -> list[Pair]:
    """(char ids, tag ids) per sentence, ready for :func:`train_tagger`.

    Arguments:
        vocab: the character vocabulary (unknown characters → UNK).
        label_set: a :class:`kexue.textkit.tagging.LabelSet` (tag string ↔ id).
        texts: N sentences.
        tags: N tag sequences, each as long as its text.

    Returns:
        N pairs ``(char ids, tag ids)``. Raises ValueError when a text and its tags differ in
        length or a text is empty.
    """
    if len(texts) != len(tags):
        raise ValueError(f"texts has {len(texts)} items but tags has {len(tags)}")
    out: list[Pair] = []
    for i, (text, seq) in enumerate(zip(texts, tags)):
        if len(text) != len(seq):
            raise ValueError(f"texts[{i}] has {len(text)} characters but tags[{i}] has {len(seq)}")
        if not text:
            raise ValueError(f"texts[{i}] is empty")
        out.append((vocab.encode(text), list(label_set.encode(list(seq)))))
    return out


@dataclass
class TrainResult:
    """What :func:`train_tagger` did.

    Attributes:
        steps: optimiser steps taken.
        epochs: passes over the training data (fractional when the budget stopped it).
        seconds: wall time of the loop (evaluation of ``dev`` included).
        stopped_by_time: whether ``max_seconds`` ended the run.
        losses: training loss of every step.
        epoch_losses: mean training loss of each (possibly partial) epoch.
        dev_losses: mean per-sequence NLL on ``dev`` after each epoch (empty without ``dev``).
    """

    steps: int = 0
    epochs: float = 0.0
    seconds: float = 0.0
    stopped_by_time: bool = False
    losses: list[float] = field(default_factory=list)
    epoch_losses: list[float] = field(default_factory=list)
    dev_losses: list[float] = field(default_factory=list)


def _check_pairs(name: str, pairs: Sequence[Pair]) -> None:
    if not len(pairs):
        raise ValueError(f"{name} must hold at least one (char ids, tag ids) pair")
    for i, (ids, tags) in enumerate(pairs):
        if len(ids) != len(tags) or not len(ids):
            raise ValueError(
                f"{name}[{i}] must pair equally long, non-empty id lists "
                f"(got {len(ids)} chars, {len(tags)} tags)"
            )


def _batch_tensors(pairs: Sequence[Pair], idx: Sequence[int]) -> tuple[Tensor, Tensor, Tensor]:
    ids, mask = pad_batch([pairs[i][0] for i in idx])
    tags, _ = pad_batch([pairs[i][1] for i in idx])
    return ids, tags, mask


@torch.no_grad()
def _mean_nll(model: nn.Module, pairs: Sequence[Pair], batch_size: int) -> float:
    was_training = model.training
    model.eval()
    total = 0.0
    for idx in length_bucketed_batches(
        [len(p[0]) for p in pairs], batch_size=batch_size, shuffle=False
    ):
        ids, tags, mask = _batch_tensors(pairs, idx)
        total += float(model.loss(ids, tags, mask, reduction="sum"))
    model.train(was_training)
    return total / len(pairs)


def _check_options(epochs: int, lr: float, batch_size: int, max_seconds: float | None,
                   lr_schedule: str, warmup_steps: int, grad_clip: float | None) -> None:  # fmt: skip
    """The checks of :func:`train_tagger`'s options (host values only)."""
    check_positive_int("epochs", epochs)
    check_positive_int("batch_size", batch_size)
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a positive finite number, got {lr!r}")
    if max_seconds is not None and not max_seconds > 0:
        raise ValueError(f"max_seconds must be > 0 or None, got {max_seconds!r}")
    if lr_schedule not in ("linear", "constant"):
        raise ValueError(f"lr_schedule must be 'linear' or 'constant', got {lr_schedule!r}")
    if warmup_steps < 0:
        raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps!r}")
    if grad_clip is not None and not grad_clip > 0:
        raise ValueError(f"grad_clip must be > 0 or None, got {grad_clip!r}")


def _lr_scale(step: int, total_steps: int, elapsed: float, max_seconds: float | None,
              lr_schedule: str, warmup_steps: int) -> float:  # fmt: skip
    """``min(1, (step + 1)/warmup_steps)·(1 − progress)`` (``"linear"``) or the warm-up factor
    alone (``"constant"``); progress = max(step / total_steps, elapsed / max_seconds)."""
    progress = step / total_steps
    if max_seconds is not None:
        progress = max(progress, elapsed / max_seconds)
    scale = 1.0 if lr_schedule == "constant" else max(1.0 - progress, 0.0)
    if warmup_steps:
        scale *= min(1.0, (step + 1) / warmup_steps)
    return scale


def train_tagger(
    model: nn.Module,
    train: Sequence[Pair],
    dev: Sequence[Pair] | None = None,
    *,
    epochs: int = 3,
    lr: float = 3e-3,
    batch_size: int = 64,
    max_seconds: float | None = None,
    lr_schedule: Literal["linear", "constant"] = "linear",
    warmup_steps: int = 0,
    grad_clip: float | None = 5.0,
    weight_decay: float = 0.0,
    pool: int = 32,
    generator: torch.Generator | None = None,
    on_step: Callable[[int, float], None] | None = None,
) -> TrainResult:
    """Train ``model`` (anything with ``.loss(ids, tags, mask)``, e.g. a ``SequenceTagger``) with Adam.

    Each step takes one length-bucketed batch (:func:`length_bucketed_batches`) and minimises the
    batch-mean sequence NLL. Learning rate: ``lr·min(1, step/warmup_steps)·(1 − progress)`` with
    ``lr_schedule="linear"`` (default), where progress = max(step / total steps, elapsed /
    ``max_seconds``), or ``lr`` throughout with ``"constant"``. The run stops after ``epochs``
    passes or once ``max_seconds`` have elapsed (checked after every step).

    Arguments:
        model: the tagger; left in train mode.
        train: (char ids, tag ids) pairs (:func:`encode_tagged`).
        dev: optional pairs whose mean NLL is recorded after every epoch.
        epochs: passes over ``train`` (default 3).
        lr: Adam learning rate (default 3e-3).
        batch_size: sentences per batch (default 64).
        max_seconds: optional wall-clock budget for the loop.
        lr_schedule: ``"linear"`` decay to 0 (default) or ``"constant"``.
        warmup_steps: linear warm-up steps (default 0).
        grad_clip: max global gradient norm, or None (default 5.0).
        weight_decay: Adam L2 weight decay (default 0).
        pool: batches per length-sorted chunk (default 32).
        generator: seeds the batch order and (through a forked global RNG) dropout, so a run is
            reproducible; None uses the global RNG.
        on_step: optional ``callback(step, loss)`` after every step (progress bars).

    Returns:
        A :class:`TrainResult`.
    """
    _check_pairs("train", train)
    if dev is not None:
        _check_pairs("dev", dev)
    _check_options(epochs, lr, batch_size, max_seconds, lr_schedule, warmup_steps, grad_clip)
    if generator is None:
        generator = torch.Generator().manual_seed(int(torch.randint(2**62, (1,))))
    dropout_seed = int(torch.randint(2**62, (1,), generator=generator))
    lengths = [len(p[0]) for p in train]
    total_steps = epochs * math.ceil(len(train) / batch_size)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    result = TrainResult()
    model.train()
    t0 = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(dropout_seed)
        for epoch in range(epochs):
            batches = length_bucketed_batches(
                lengths, batch_size=batch_size, pool=pool, generator=generator
            )
            epoch_losses: list[float] = []
            for b, idx in enumerate(batches):
                elapsed = time.perf_counter() - t0
                scale = _lr_scale(result.steps, total_steps, elapsed, max_seconds, lr_schedule,
                                  warmup_steps)  # fmt: skip
                for group in opt.param_groups:
                    group["lr"] = lr * scale
                ids, tags, mask = _batch_tensors(train, idx)
                loss = model.loss(ids, tags, mask)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if grad_clip is not None:
                    nn.utils.clip_grad_norm_(params, grad_clip)
                opt.step()
                value = float(loss.detach())
                result.steps += 1
                result.losses.append(value)
                epoch_losses.append(value)
                if on_step is not None:
                    on_step(result.steps, value)
                if max_seconds is not None and time.perf_counter() - t0 >= max_seconds:
                    result.stopped_by_time = True
                    result.epochs = epoch + (b + 1) / len(batches)
                    break
            result.epoch_losses.append(sum(epoch_losses) / len(epoch_losses))
            if dev is not None:
                result.dev_losses.append(_mean_nll(model, dev, 4 * batch_size))
            if result.stopped_by_time:
                break
            result.epochs = float(epoch + 1)
    model.train()
    result.seconds = time.perf_counter() - t0
    return result


@torch.no_grad()
def predict_tags(
    model: nn.Module,
    vocab: CharVocab,
    label_set: Any,
    texts: Sequence[str],
    *,
    batch_size: int = 256,
) -> list[list[str]]:
    """Predicted tag strings per text.

    Texts are batched by length, decoded with ``model.decode`` in eval mode (the previous mode is
    restored) and returned in the order of ``texts``; empty texts get empty tag lists.

    Arguments:
        model: a tagger with ``decode(ids, mask) -> (B, T)``.
        vocab: the training vocabulary.
        label_set: maps tag ids back to strings.
        texts: sentences to tag.
        batch_size: sentences per decoding batch (default 256).

    Returns:
        One tag list per text.
    """
    was_training = model.training
    model.eval()
    out: list[list[str]] = [[] for _ in texts]
    nonempty = [i for i, t in enumerate(texts) if len(t)]
    encoded = [vocab.encode(texts[i]) for i in nonempty]
    for idx in length_bucketed_batches(
        [len(e) for e in encoded], batch_size=batch_size, shuffle=False
    ):
        ids, mask = pad_batch([encoded[i] for i in idx])
        pred = model.decode(ids, mask)
        lengths = mask.sum(1).tolist()
        for row, i in enumerate(idx):
            out[nonempty[i]] = list(label_set.decode(pred[row, : lengths[row]].tolist()))
    model.train(was_training)
    return out


def evaluate_ner(
    model: nn.Module,
    vocab: CharVocab,
    label_set: Any,
    texts: Sequence[str],
    gold_tags: Sequence[Sequence[str]],
    *,
    scheme: str = "BIO",
    mode: str = "strict",
    batch_size: int = 256,
) -> Any:
    """Entity-level scores of ``model`` on ``texts`` against ``gold_tags`` (spec §3.4).

    Arguments:
        model, vocab, label_set, texts, batch_size: as in :func:`predict_tags`.
        gold_tags: the gold tag sequence of every text.
        scheme: tagging scheme of the labels (default "BIO").
        mode: "strict" (default; exact type and boundaries) or "conlleval".

    Returns:
        :class:`kexue.textkit.metrics.EntityReport` (``.micro``, ``.macro``, ``.per_type``).
    """
    from .metrics import entity_scores

    if len(texts) != len(gold_tags):
        raise ValueError(f"texts has {len(texts)} items but gold_tags has {len(gold_tags)}")
    pred = predict_tags(model, vocab, label_set, texts, batch_size=batch_size)
    return entity_scores([list(g) for g in gold_tags], pred, scheme=scheme, mode=mode)


def evaluate_cws(
    model: nn.Module,
    vocab: CharVocab,
    label_set: Any,
    texts: Sequence[str],
    gold_words: Sequence[Sequence[str]],
    *,
    train_words: Iterable[str] | None = None,
    batch_size: int = 256,
) -> Any:
    """Word-segmentation scores of a BMES ``model`` (SIGHAN semantics, spec §3.4).

    Arguments:
        model, vocab, label_set, texts, batch_size: as in :func:`predict_tags` (B/M/E/S labels);
            predicted tags become words with :func:`kexue.textkit.tagging.bmes_to_words`.
        gold_words: the gold words of every text.
        train_words: the in-vocabulary lexicon for OOV/IV recall (e.g. every word of the
            training split); None skips them.

    Returns:
        :class:`kexue.textkit.metrics.CWSReport` (precision, recall, f1, oov_recall, iv_recall).
    """
    from .metrics import cws_scores
    from .schemes import bmes_to_words

    if len(texts) != len(gold_words):
        raise ValueError(f"texts has {len(texts)} items but gold_words has {len(gold_words)}")
    pred = predict_tags(model, vocab, label_set, texts, batch_size=batch_size)
    pred_words = [bmes_to_words(text, tags) for text, tags in zip(texts, pred)]
    return cws_scores([list(w) for w in gold_words], pred_words, train_words=train_words)
