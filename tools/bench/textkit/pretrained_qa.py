"""People's Daily QA, pretrain then fine-tune (issue 15): whole-word-masked MLM pretraining of a
small BERT (``BertUniLM``) on PD-199801 raw text, then UniLM fine-tuning on the QA task of
``python -m tools.bench.textkit.seq2seq`` at the same fine-tuning budget: the from-scratch baseline's 5159 steps of 32 examples
(its 360 s on a less loaded machine), capped here by ``--qa-seconds`` of wall time.

    python -m tools.bench.textkit.pretrained_qa [--pretrain-seconds 600] [--ft-steps 5159] [--qa-seconds 900]
        [--scratch] [--json out.json]

Data and QA set-up are those of the seq2seq benchmark (``load_peoples_daily(max_len=64)``,
paragraph split seed 0, balanced QA examples, ``MAX_LENS``, 1200 held-out sentences, 200
paragraph questions). Differences: a character-level WordPiece vocabulary (every training
character seen ≥ 2 times, plus the five BERT specials) instead of sentencepiece, and a post-LN
BERT instead of the pre-LN ``UniLMTransformer``. Whole words for the masking come from kexue's
own word discovery (``discover_ngrams``, n-gram algorithm) and ``UnigramSegmenter`` on the
training sentences only. ``--scratch`` fine-tunes the same model without pretraining (the
ablation); ``--save DIR`` writes the pretrained checkpoint (``save_bert``) and ``--init DIR``
continues pretraining from one (``load_bert``; a new sentence order); ``--save-finetuned DIR``
writes the fine-tuned model and ``--evaluate DIR`` only evaluates such a folder. Paragraph
questions are answered four ways: the vote (abstractive, as ``tasks.paragraph_vote_answer``), the
vote in bert4keras's extractive mode (``vote_extractive``: answers restricted to passage n-grams,
the mode of its reading-comprehension example), and the two no-vote baselines (first / best).
Prints one JSON line (and writes ``--json``).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from kexue.textkit.data.peoples_daily import load_peoples_daily
from kexue.textkit.seq2seq.bert import BertUniLM, load_bert, save_bert
from kexue.textkit.seq2seq.pretrain import TextFileStream, WholeWordMaskCollator, pretrain_mlm
from kexue.textkit.seq2seq.wordpiece import WordPieceTokenizer
from kexue.textkit.tasks.generation import train_seq2seq
from kexue.textkit.tasks.qa_data import NO_ANSWER
from tools.bench._common import load_average, machine_line, versions
from tools.bench.textkit.seq2seq import _evaluate_qa, qa_parser
from tools.workloads.textkit_bert import char_vocab, discovered_segmenter, small_bert
from tools.workloads.textkit_qa import encode_qa_items, qa_examples

MODEL_OPTIONS = ("hidden", "layers", "heads", "ffn", "seed", "dropout")  # small_bert's keywords


def build_model(tok: WordPieceTokenizer, args: argparse.Namespace) -> BertUniLM:
    return small_bert(tok, **{k: getattr(args, k) for k in MODEL_OPTIONS})


def _budget(lr: float, warmup: int, steps: int, seconds: float) -> dict[str, Any]:
    """The schedule keywords ``pretrain_mlm`` and ``train_seq2seq`` share."""
    return {"lr": lr, "warmup_steps": warmup, "max_steps": steps, "max_seconds": seconds}


def _log_facts(log: Any) -> dict[str, Any]:
    """Steps, wall time, what stopped it and the first/last loss of a training log."""
    first, last = (log.losses[0], log.losses[-1]) if log.losses else (None, None)
    facts = {"steps": log.steps, "seconds": log.seconds, "stopped_by": log.stopped_by}
    return facts | {"loss_first": first, "loss_last": last}


def pretrain(
    model: BertUniLM, tok: WordPieceTokenizer, texts: list[str], args: argparse.Namespace
) -> dict[str, Any]:
    seg, seg_facts = discovered_segmenter(texts, min_count=args.wwm_min_count)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pd_train.txt"
        path.write_text("\n".join(texts) + "\n", encoding="utf-8")
        seed = args.seed + (args.init is not None)
        stream = TextFileStream([path], repeat=True, shuffle_buffer=20_000, seed=seed)
        coll = WholeWordMaskCollator(
            tok, seg, max_len=66, generator=torch.Generator().manual_seed(args.seed)
        )
        loader = torch.utils.data.DataLoader(stream, batch_size=args.pt_batch, collate_fn=coll)
        budget = _budget(args.pt_lr, args.pt_warmup, args.pt_steps, args.pretrain_seconds)
        log = pretrain_mlm(model, loader, log_every=50, progress=True, **budget)
    return {
        "segmenter": seg_facts,
        **_log_facts(log),
        "sequences": log.steps * args.pt_batch,
        "losses_every_50": [round(x, 3) for x in log.losses[:: max(1, len(log.losses) // 20)]],
    }


def _parser() -> argparse.ArgumentParser:
    ap = qa_parser(__doc__, qa_seconds=900.0)
    ap.add_argument("--pretrain-seconds", type=float, default=600.0)
    ap.add_argument("--pt-steps", type=int, default=3000, help="schedule length (decay to 0)")
    ap.add_argument("--pt-batch", type=int, default=64)
    ap.add_argument("--pt-lr", type=float, default=1e-3)
    ap.add_argument("--pt-warmup", type=int, default=300)
    ap.add_argument("--wwm-min-count", type=int, default=16)
    ap.add_argument(
        "--ft-steps", type=int, default=5159, help="the from-scratch baseline's 5159 × 32 examples"
    )
    ap.add_argument("--ft-lr", type=float, default=5e-4)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--ffn", type=int, default=512)
    ap.add_argument("--dropout", type=float, default=0.0)
    ap.add_argument("--scratch", action="store_true", help="no pretraining (the ablation)")
    ap.add_argument("--save", type=Path, default=None, help="save_bert the pretrained model here")
    ap.add_argument("--init", type=Path, default=None, help="continue from a --save folder")
    ap.add_argument(
        "--save-finetuned", type=Path, default=None, help="save_bert the fine-tuned model here"
    )
    ap.add_argument(
        "--evaluate",
        type=Path,
        default=None,
        help="only evaluate a --save-finetuned folder (no pretraining, no fine-tuning)",
    )
    return ap


def main() -> None:
    args = _parser().parse_args()
    torch.set_num_threads(args.threads)
    t_start = time.perf_counter()
    out: dict[str, Any] = {
        "command": "python -m tools.bench.textkit.pretrained_qa " + " ".join(sys.argv[1:]),
        "machine": machine_line(threads=args.threads),
        "load_at_start": load_average(),
        "versions": versions("torch", "tokenizers", "snownlp"),
        "args": vars(args)
        | {
            k: str(getattr(args, k)) for k in ("json", "save", "init", "save_finetuned", "evaluate")
        },
    }
    data = load_peoples_daily(max_len=64)
    texts = [s.chars for s in data["train"]]
    qa = qa_examples(data, seed=args.seed, eval_n=args.eval_sentences, no_answer_ratio=1.0)
    if args.evaluate is not None:
        model, _ = load_bert(args.evaluate)
        tok = WordPieceTokenizer.from_pretrained(args.evaluate)
        out.update(_evaluate_qa(model.eval(), tok, data, qa.test, args, extractive=True))
        print(json.dumps(out, ensure_ascii=False))
        return
    if args.init is not None:  # continued pretraining of a saved checkpoint
        model, report = load_bert(args.init)
        tok = WordPieceTokenizer.from_pretrained(args.init)
        out["init"] = {"path": str(args.init), "missing": report.missing}
    else:
        tok = WordPieceTokenizer(char_vocab(texts))
        model = build_model(tok, args)
    out["vocab_size"] = tok.vocab_size
    out["params"] = model.num_parameters()
    print(f"vocab {tok.vocab_size}, params {model.num_parameters()}", file=sys.stderr)
    if not args.scratch:
        random.Random(args.seed + (args.init is not None)).shuffle(texts)  # new order
        out["pretrain"] = pretrain(model, tok, texts, args)
        print(f"pretrain: {out['pretrain']}", file=sys.stderr)
        if args.save is not None:
            save_bert(model, args.save, tok)
    items = encode_qa_items(tok, qa.train)
    log = train_seq2seq(
        model,
        items,
        pad_id=tok.pad_id,
        batch_size=args.batch,
        generator=torch.Generator().manual_seed(args.seed),
        **_budget(args.ft_lr, 100, args.ft_steps, args.qa_seconds),
    )
    out["finetune"] = {
        "train_examples": len(qa.train),
        "train_answerable": sum(e.answer != NO_ANSWER for e in qa.train),
        "examples_seen": log.examples,
        **_log_facts(log),
    }
    print(f"finetune: {out['finetune']}", file=sys.stderr)
    if args.save_finetuned is not None:
        save_bert(model, args.save_finetuned, tok)
    out.update(_evaluate_qa(model, tok, data, qa.test, args, extractive=True))
    out["total_seconds"] = time.perf_counter() - t_start
    out["load_at_end"] = load_average()
    text = json.dumps(out, ensure_ascii=False)
    if args.json is not None:
        args.json.write_text(json.dumps(out, ensure_ascii=False, indent=1), encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
