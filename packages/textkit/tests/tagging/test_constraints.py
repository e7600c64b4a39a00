"""Tests of kexue.textkit.tagging.constraints (AllenNLP semantics) and of constrained decoding."""

from __future__ import annotations

import pytest
import torch

from kexue.textkit.tagging.constraints import (
    FORBIDDEN_SCORE,
    Constraints,
    allowed_transitions,
    constrained_scores,
)
from kexue.textkit.tagging.crf.functional import viterbi_decode

BIO = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


def _pairs(c: Constraints, labels: list[str]) -> set[tuple[str, str]]:
    return {(labels[i], labels[j]) for i, j in c.allowed.nonzero().tolist()}


@pytest.mark.parametrize(
    ("scheme", "starts", "into", "inside"),
    [
        # BIO: a span starts with B (from anywhere); I continues B or I of its own type
        ("BIO", [1, 1, 0, 1, 0], ("O", "B-PER", "B-LOC"), ("I-PER", "I-PER", "I-LOC", "I-LOC")),
        # IOB1: I starts a span; B only separates two adjacent spans of one type
        ("IOB1", [1, 0, 1, 0, 1], ("O", "I-PER", "I-LOC"), ("B-PER", "B-PER", "B-LOC", "B-LOC")),
    ],
)
def test_bio_and_iob1(scheme, starts, into, inside):
    c = allowed_transitions(scheme, BIO)
    assert c.num_tags == 5
    assert c.allowed_start.tolist() == [bool(s) for s in starts]
    assert c.allowed_end.all()
    want = {(a, b) for a in BIO for b in into}
    want |= set(zip(("B-PER", "I-PER", "B-LOC", "I-LOC"), inside))
    assert _pairs(c, BIO) == want


def test_bioes_and_bioul_agree():
    bioes = ["O", "B-X", "I-X", "E-X", "S-X"]
    bioul = ["O", "B-X", "I-X", "L-X", "U-X"]
    c1, c2 = allowed_transitions("BIOES", bioes), allowed_transitions("BIOUL", bioul)
    for name in ("allowed_start", "allowed_end", "allowed"):
        assert torch.equal(getattr(c1, name), getattr(c2, name))
    assert c1.allowed_start.tolist() == [True, True, False, False, True]
    assert c1.allowed_end.tolist() == [True, False, False, True, True]
    want = {(a, b) for a in ("O", "E-X", "S-X") for b in ("O", "B-X", "S-X")}
    want |= {(a, b) for a in ("B-X", "I-X") for b in ("I-X", "E-X")}
    assert _pairs(c1, bioes) == want


def test_bmes():
    labels = ["B", "M", "E", "S"]
    c = allowed_transitions("BMES", labels)
    assert c.allowed_start.tolist() == [True, False, False, True]
    assert c.allowed_end.tolist() == [False, False, True, True]
    want = {("B", "M"), ("B", "E"), ("M", "M"), ("M", "E")}
    want |= {(a, b) for a in ("E", "S") for b in ("B", "S")}
    assert _pairs(c, labels) == want
    typed = allowed_transitions("BMES", ["B-n", "E-n", "B-v", "E-v"])
    assert not typed.allowed[0, 3] and typed.allowed[0, 1] and typed.allowed[1, 2]


def test_boundary_constraints_are_the_authors_starts_and_ends():
    c = Constraints.boundary(4, starts=[0], ends=[0, 3])
    assert c.allowed_start.tolist() == [True, False, False, False]
    assert c.allowed_end.tolist() == [True, False, False, True]
    assert c.allowed.all()
    assert Constraints.boundary(2).allowed_start.all()
    with pytest.raises(ValueError, match="starts"):
        Constraints.boundary(3, starts=[3])


@pytest.mark.parametrize(
    ("scheme", "labels"),
    [
        ("BIO", BIO),
        ("BIOES", ["O", "B-A", "I-A", "E-A", "S-A", "B-B", "I-B", "E-B", "S-B"]),
        ("BMES", ["B", "M", "E", "S"]),
    ],
)
def test_constrained_decodes_never_violate(scheme, labels):
    c = allowed_transitions(scheme, labels)
    k = len(labels)
    g = torch.Generator().manual_seed(0)
    h = 3 * torch.randn(200, 9, k, generator=g)
    a = torch.randn(k, k, generator=g)
    mask = torch.arange(9) < torch.randint(1, 10, (200,), generator=g)[:, None]
    free, _ = viterbi_decode(h, a, mask=mask)
    tags, _ = viterbi_decode(h, a, mask=mask, allowed_start=c.allowed_start,
                             allowed_end=c.allowed_end, allowed_transitions=c.allowed)  # fmt: skip
    lengths = mask.sum(1)
    last = tags.gather(1, (lengths - 1)[:, None])[:, 0]
    assert c.allowed_start[tags[:, 0]].all()
    assert c.allowed_end[last].all()
    bigram_ok = c.allowed[tags[:, :-1], tags[:, 1:]] | ~mask[:, 1:]
    assert bigram_ok.all()
    # the unconstrained decoder does violate them on these scores (so the test can fail)
    free_ok = c.allowed[free[:, :-1], free[:, 1:]] | ~mask[:, 1:]
    assert not (free_ok.all() and c.allowed_start[free[:, 0]].all())


def test_bad_inputs():
    with pytest.raises(ValueError, match="scheme"):
        allowed_transitions("BILOU2", BIO)
    with pytest.raises(ValueError, match="labels"):
        allowed_transitions("BIO", ["O", "E-PER"])
    with pytest.raises(ValueError, match="labels"):
        allowed_transitions("BMES", ["O", "B"])
    with pytest.raises(ValueError, match="labels"):
        allowed_transitions("BIO", [])
    with pytest.raises(ValueError, match="allowed_start"):
        Constraints(torch.ones(3, dtype=torch.bool), torch.ones(2, dtype=torch.bool),
                    torch.ones(2, 2, dtype=torch.bool))  # fmt: skip
    with pytest.raises(ValueError, match="allowed"):
        Constraints(torch.ones(2), torch.ones(2), torch.ones(2, 2))


def test_constrained_scores_replace_disallowed_entries_by_minus_1e4():
    a = torch.arange(4.0).reshape(2, 2)
    allowed = torch.tensor([[True, False], [True, True]])
    a2, s2, e2 = constrained_scores(
        a, None, torch.tensor([1.0, 2.0]),
        allowed_start=torch.tensor([False, True]), allowed_transitions=allowed,
    )  # fmt: skip
    assert a2.tolist() == [[0.0, FORBIDDEN_SCORE], [2.0, 3.0]]
    assert s2.tolist() == [FORBIDDEN_SCORE, 0.0]  # missing start → zeros
    assert e2.tolist() == [1.0, 2.0]  # no allowed_end: unchanged
    with pytest.raises(ValueError, match="allowed_end"):
        constrained_scores(a, allowed_end=torch.ones(3, dtype=torch.bool))
