"""The People's Daily tagging set-up shared by the textkit demo and the tagging benchmark.

One copy of the two views of the corpus: NER (PER / LOC / ORG, BIO tags) and CWS (the PKU words as
BMES tags), their label sets and decoding constraints, the character vocabulary built on the
training split and the encoded (chars, tags) pairs that ``train_tagger`` reads. The demo
(``tools/demos/_textkit_tagging.py``) and the benchmark (``python -m tools.bench.textkit.tagging``)
differ in models, sizes and budgets only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["TYPES", "TaggingSet", "crf_kwargs", "encode_view", "view_labels"]

TYPES = ("PER", "LOC", "ORG")


@dataclass
class TaggingSet:
    """One view of the training split: vocabulary, labels, scheme and the encoded pairs."""

    vocab: Any
    labels: Any
    scheme: str
    pairs: list[Any]


def view_labels(view: str) -> tuple[Any, str, Callable[[Any], list[str]]]:
    """(label set, scheme, tags of a sentence) of the ``"ner"`` or ``"cws"`` view."""
    from kexue.textkit.tagging.schemes import LabelSet, ner_labels, words_to_bmes

    if view == "ner":
        return LabelSet(ner_labels(TYPES, scheme="BIO")), "BIO", lambda e: e.ner_tags
    if view == "cws":
        return LabelSet(["B", "M", "E", "S"]), "BMES", lambda e: words_to_bmes(e.words)
    raise ValueError(f"unknown view {view!r} (ner, cws)")


def encode_view(train: list[Any], view: str, *, min_count: int = 1) -> TaggingSet:
    """The ``view`` of ``train``: characters seen < ``min_count`` times map to UNK."""
    from kexue.textkit.tagging.train import CharVocab, encode_tagged

    labels, scheme, tags_of = view_labels(view)
    texts = [e.chars for e in train]
    vocab = CharVocab.build(texts, min_count=min_count)
    pairs = encode_tagged(vocab, labels, texts, [tags_of(e) for e in train])
    return TaggingSet(vocab, labels, scheme, pairs)


def crf_kwargs(data: TaggingSet) -> dict[str, Any]:
    """CRF keyword arguments that forbid the scheme's invalid transitions."""
    from kexue.textkit.tagging.constraints import allowed_transitions

    return {"constraints": allowed_transitions(data.scheme, data.labels.labels)}
