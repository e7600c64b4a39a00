"""Tests of kexue.textkit.terms.segment: the unigram DP equals brute force over all segmentations."""

from __future__ import annotations

import itertools
import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kexue.textkit.terms.segment import UnigramSegmenter


def all_segmentations(s: str):  # 2^(n-1) ways
    n = len(s)
    for cuts in itertools.product([False, True], repeat=n - 1):
        words, start = [], 0
        for i, c in enumerate(cuts, 1):
            if c:
                words.append(s[start:i])
                start = i
        words.append(s[start:])
        yield words


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10**6), n=st.integers(1, 10))
def test_dp_equals_brute_force(seed: int, n: int) -> None:
    rng = random.Random(seed)
    alphabet = "甲乙丙丁"
    lexicon = {}
    for _ in range(rng.randint(1, 25)):
        w = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 4)))
        lexicon[w] = rng.uniform(0.5, 100.0)  # continuous counts: no ties
    seg = UnigramSegmenter(lexicon)
    s = "".join(rng.choice(alphabet) for _ in range(n))
    got = seg.segment(s)
    assert "".join(got) == s
    scored = [(seg.score(w), w) for w in all_segmentations(s)]
    top = max(sc for sc, _ in scored)
    assert seg.score(got) == pytest.approx(top, abs=1e-9)
    winners = [w for sc, w in scored if sc >= top - 1e-9]
    if len(winners) == 1:  # same multiset of words in another order ties exactly
        assert got == winners[0]


def test_scores_and_unknown_chars() -> None:
    seg = UnigramSegmenter({"中国": 3, "人民": 1})
    assert seg.scores["中国"] == pytest.approx(math.log(3 / 4))
    assert seg.segment("中国人民好") == ["中国", "人民", "好"]
    assert seg.score(["好"]) == -100.0
    assert seg.score(["国人"]) == -math.inf
    # separators are split off and kept as single-character tokens
    assert seg.segment("中国，人民！！") == ["中国", "，", "人民", "！", "！"]
    assert seg.segment("") == []
    assert seg.segment_many(["中国", "人民"]) == [["中国"], ["人民"]]


def test_prefers_unknown_chars_only_when_needed() -> None:
    seg = UnigramSegmenter({"ab": 1, "a": 1000, "b": 1000})
    assert seg.segment("ab") == ["a", "b"]  # 2·log(1000/2001) > log(1/2001)
    seg = UnigramSegmenter({"ab": 10})
    assert seg.segment("abc") == ["ab", "c"]


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="lexicon"):
        UnigramSegmenter({"a": 0})
    with pytest.raises(ValueError, match="text"):
        UnigramSegmenter({"a": 1}).segment(3)  # type: ignore[arg-type]


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10**6))
def test_segment_many_equals_segment(seed: int) -> None:
    # vectorised batch DP (hash lookups for words longer than 4, separators, ties) = scalar DP
    rng = random.Random(seed)
    lexicon = {}
    for _ in range(rng.randint(1, 30)):
        w = "".join(rng.choice("甲乙丙丁") for _ in range(rng.randint(1, 8)))
        lexicon[w] = rng.choice([1, 2, 3, rng.uniform(0.5, 9.0)])  # integer counts make ties
    seg = UnigramSegmenter(lexicon)
    texts = [
        "".join(rng.choice("甲乙丙丁戊，。 \n") for _ in range(rng.randint(0, 60)))
        for _ in range(rng.randint(0, 8))
    ]
    assert seg.segment_many(texts) == [seg.segment(t) for t in texts]
