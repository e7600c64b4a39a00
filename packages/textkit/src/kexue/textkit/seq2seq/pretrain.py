"""MLM (continued) pretraining of a :class:`~kexue.textkit.seq2seq.bert.BertUniLM`: a streaming
dataset over text files, a whole-word-masking collator and a training loop with a progress bar.

References: BERT arXiv:1810.04805; Chinese-BERT-wwm arXiv:1906.08101; spec §5 (recipes:
from scratch lr 1e-4 with warm-up, continued pretraining lr ≈ 2e-5).
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import IterableDataset, get_worker_info

from .mlm import mlm_loss, whole_word_mask, word_spans

__all__ = ["MLMLog", "TextFileStream", "WholeWordMaskCollator", "pretrain_mlm"]


class TextFileStream(IterableDataset):
    """Non-empty lines of text files, read lazily (files are never loaded whole).

    Arguments:
        paths: text files (UTF-8), read in order (split between ``DataLoader`` workers).
        min_chars: skip shorter lines (default 1).
        shuffle_buffer: shuffle through a buffer of this many lines (0 = file order).
        repeat: start again after the last file (an endless stream for step-capped training).
        seed: seed of the shuffle buffer.
    """

    def __init__(
        self,
        paths: Sequence[str | Path],
        *,
        min_chars: int = 1,
        shuffle_buffer: int = 0,
        repeat: bool = False,
        seed: int = 0,
    ) -> None:
        self.paths = [Path(p) for p in paths]
        if not self.paths:
            raise ValueError("paths is empty")
        missing = [str(p) for p in self.paths if not p.exists()]
        if missing:
            raise FileNotFoundError(f"paths do not exist: {missing[:3]}")
        self.min_chars, self.shuffle_buffer = min_chars, shuffle_buffer
        self.repeat, self.seed = repeat, seed

    def _lines(self) -> Iterator[str]:
        info = get_worker_info()
        paths = self.paths if info is None else self.paths[info.id :: info.num_workers]
        while True:
            for path in paths:
                with path.open(encoding="utf-8") as fh:
                    for line in fh:
                        line = line.strip()
                        if len(line) >= self.min_chars:
                            yield line
            if not self.repeat:
                return

    def __iter__(self) -> Iterator[str]:
        if self.shuffle_buffer <= 1:
            yield from self._lines()
            return
        rng = random.Random(self.seed)
        buf: list[str] = []
        for line in self._lines():
            if len(buf) < self.shuffle_buffer:
                buf.append(line)
                continue
            i = rng.randrange(len(buf))
            yield buf[i]
            buf[i] = line
        rng.shuffle(buf)
        yield from buf


class WholeWordMaskCollator:
    """Texts → a masked batch ``{"inputs", "labels", "mask"}`` (``[CLS] text [SEP]``, right pad).

    Arguments:
        tokenizer: a :class:`~kexue.textkit.seq2seq.wordpiece.WordPieceTokenizer`.
        segmenter: ``str -> words`` for whole-word masking (e.g. kexue's ``UnigramSegmenter``
            over a discovered lexicon); None = BERT's word pieces only (``##`` joins the
            previous token; every CJK character its own word).
        max_len: tokens per sequence, specials included (default 128).
        rate, policy, max_predictions, replace: as :func:`~kexue.textkit.seq2seq.mlm.whole_word_mask`.
        generator: randomness of the masking.

    Random replacements never draw ``[PAD]``, ``[CLS]``, ``[SEP]``, ``[MASK]`` or ``[UNK]``.
    """

    def __init__(
        self,
        tokenizer: Any,
        segmenter: Callable[[str], Sequence[str]] | None = None,
        *,
        max_len: int = 128,
        rate: float = 0.15,
        policy: str = "bernoulli",
        max_predictions: int | None = None,
        replace: tuple[float, float, float] = (0.8, 0.1, 0.1),
        generator: torch.Generator | None = None,
    ) -> None:
        if max_len < 3:
            raise ValueError(f"max_len must be >= 3, got {max_len}")
        self.tok, self.segmenter, self.max_len = tokenizer, segmenter, max_len
        self.options = dict(
            rate=rate, policy=policy, max_predictions=max_predictions, replace=replace
        )
        self.generator = generator
        special = {tokenizer.pad_id, tokenizer.bos_id, tokenizer.eos_id, tokenizer.unk_id}
        special.add(tokenizer.mask_id)
        self.random_ids = torch.tensor(
            [i for i in range(tokenizer.vocab_size) if i not in special], dtype=torch.long
        )

    def _words(self, text: str) -> tuple[list[int], list[int]]:
        ids, offsets = self.tok.encode_with_offsets(text)
        if self.segmenter is not None:
            words = word_spans(text, offsets, self.segmenter)
        else:
            words, w = [], -1
            for i in ids:
                if not self.tok.vocab[i].startswith("##") or w < 0:
                    w += 1
                words.append(w)
        n = self.max_len - 2
        return ids[:n], words[:n]

    def __call__(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        rows = [self._words(t) for t in texts]
        length = max(len(ids) for ids, _ in rows) + 2
        ids = torch.full((len(rows), length), self.tok.pad_id, dtype=torch.long)
        word_ids = torch.full((len(rows), length), -1, dtype=torch.long)
        for b, (t, w) in enumerate(rows):
            ids[b, : len(t) + 2] = torch.tensor([self.tok.bos_id, *t, self.tok.eos_id])
            word_ids[b, 1 : len(w) + 1] = torch.tensor(w, dtype=torch.long)
        mask = torch.zeros_like(ids, dtype=torch.bool)
        for b, (t, _) in enumerate(rows):
            mask[b, : len(t) + 2] = True
        inputs, labels = whole_word_mask(
            ids,
            word_ids,
            mask_id=self.tok.mask_id,
            vocab_size=self.tok.vocab_size,
            random_ids=self.random_ids,
            generator=self.generator,
            **self.options,  # type: ignore[arg-type]
        )
        return {"inputs": inputs, "labels": labels, "mask": mask}


@dataclass
class MLMLog:
    """Steps, wall seconds, the loss every ``log_every`` steps, and why training stopped."""

    steps: int = 0
    seconds: float = 0.0
    losses: list[float] = field(default_factory=list)
    stopped_by: str = "max_steps"


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.dim() < 2 or "LayerNorm" in name else decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def pretrain_mlm(
    model: nn.Module,
    batches: Iterable[dict[str, torch.Tensor]],
    *,
    lr: float = 1e-4,
    warmup_steps: int = 1000,
    max_steps: int = 100_000,
    max_seconds: float | None = None,
    weight_decay: float = 0.01,
    clip_norm: float | None = 1.0,
    log_every: int = 50,
    progress: bool = True,
) -> MLMLog:
    """(Continued) MLM pretraining: AdamW (no decay on LayerNorm and biases, as bert4keras),
    linear warm-up then linear decay to 0 at ``max_steps``, gradient clipping.

    Arguments:
        model: a :class:`~kexue.textkit.seq2seq.bert.BertUniLM` with its MLM head.
        batches: dicts with ``inputs``, ``labels``, ``mask`` (:class:`WholeWordMaskCollator`,
            e.g. through a ``DataLoader`` over :class:`TextFileStream`).
        lr: peak rate (default 1e-4, BERT from scratch; ≈ 2e-5 to continue a checkpoint).
        warmup_steps, max_steps: the schedule; training stops at ``max_steps`` or when the
            batches run out.
        max_seconds: optional wall-clock cap (checked after every step).
        weight_decay, clip_norm: AdamW decay and the gradient-norm clip (None = off).
        log_every: record the mean loss every this many steps.
        progress: a one-line progress bar on stderr.

    Returns:
        An :class:`MLMLog`; the model is left in eval mode.
    """
    opt = torch.optim.AdamW(_param_groups(model, weight_decay), lr=lr)

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        return max(0.0, (max_steps - step) / max(1, max_steps - warmup_steps))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    log, run = MLMLog(), 0.0
    t0 = time.perf_counter()
    model.train()
    for batch in batches:
        loss = mlm_loss(model, batch["inputs"], batch["labels"], key_padding_mask=batch["mask"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if clip_norm is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
        opt.step()
        sched.step()
        log.steps += 1
        value = float(loss.detach())
        run += value
        if log.steps % log_every == 0:
            log.losses.append(run / log_every)
            run = 0.0
        log.seconds = time.perf_counter() - t0
        if progress and (log.steps % 10 == 0 or log.steps == 1):
            rate = log.steps / max(log.seconds, 1e-9)
            print(
                f"\rMLM step {log.steps}/{max_steps} loss {value:.3f} {rate:.1f} it/s",
                end="",
                file=sys.stderr,
                flush=True,
            )
        if log.steps >= max_steps:
            break
        if max_seconds is not None and log.seconds >= max_seconds:
            log.stopped_by = "max_seconds"
            break
    else:
        log.stopped_by = "data"
    if progress:
        print(file=sys.stderr)
    model.eval()
    return log
