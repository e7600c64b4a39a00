"""bert4keras-style helpers: hand cases and no input mutation."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kexue.textkit.data.snippets import (
    sequence_padding,
    text_segmentate,
    truncate_sequences,
)

# ---------------------------------------------------------------- sequence_padding


def test_sequence_padding_post_pre_and_cut():
    batch = [[1, 2, 3], [4], []]
    np.testing.assert_array_equal(sequence_padding(batch), [[1, 2, 3], [4, 0, 0], [0, 0, 0]])
    np.testing.assert_array_equal(
        sequence_padding(batch, mode="pre", value=-1), [[1, 2, 3], [-1, -1, 4], [-1, -1, -1]]
    )
    # a given length cuts the head off longer inputs (both modes keep x[:length], as bert4keras)
    np.testing.assert_array_equal(sequence_padding(batch, length=2), [[1, 2], [4, 0], [0, 0]])
    np.testing.assert_array_equal(
        sequence_padding(batch, length=2, mode="pre"), [[1, 2], [0, 4], [0, 0]]
    )
    assert batch == [[1, 2, 3], [4], []]


def test_sequence_padding_trailing_dims_and_two_seq_dims():
    a = np.arange(6, dtype=np.float32).reshape(3, 2)
    b = np.ones((1, 2), dtype=np.float32)
    out = sequence_padding([a, b])
    assert out.shape == (2, 3, 2) and out.dtype == np.float32
    np.testing.assert_array_equal(out[1], [[1, 1], [0, 0], [0, 0]])
    # seq_dims=2: e.g. (L, L) attention biases, padded on both axes
    m1, m2 = np.ones((2, 2)), np.full((3, 1), 2.0)
    out2 = sequence_padding([m1, m2], seq_dims=2)
    assert out2.shape == (2, 3, 2)
    np.testing.assert_array_equal(out2[0], [[1, 1], [1, 1], [0, 0]])
    np.testing.assert_array_equal(out2[1], [[2, 0], [2, 0], [2, 0]])
    out3 = sequence_padding([m1, m2], length=[1, 3], seq_dims=2, mode="pre")
    np.testing.assert_array_equal(out3, [[[0, 1, 1]], [[0, 0, 2]]])


def test_sequence_padding_int_length_every_axis_and_value_cast_per_input():
    a, b = np.arange(6).reshape(2, 3), np.full((3, 1), 9)
    out = sequence_padding([a, b], length=2, seq_dims=2)
    np.testing.assert_array_equal(out, [[[0, 1], [3, 4]], [[9, 0], [9, 0]]])
    np.testing.assert_array_equal(out, sequence_padding([a, b], length=(2, 2), seq_dims=2))
    # np.pad casts the value to each input's dtype (bert4keras), then the stack promotes
    out = sequence_padding([np.array([1]), np.array([0.25, 0.75])], value=0.5)
    np.testing.assert_array_equal(out, [[1.0, 0.0], [0.25, 0.75]])


def test_sequence_padding_bad_inputs():
    with pytest.raises(ValueError, match="mode"):
        sequence_padding([[1]], mode="middle")
    with pytest.raises(ValueError, match="inputs"):
        sequence_padding([])
    with pytest.raises(ValueError, match="seq_dims"):
        sequence_padding([[1, 2]], seq_dims=2)
    with pytest.raises(ValueError, match="length"):
        sequence_padding([np.ones((2, 2))], length=[2], seq_dims=2)
    with pytest.raises(ValueError, match="inputs"):
        sequence_padding([np.ones((2, 3)), np.ones((2, 4))])


# ---------------------------------------------------------------- truncate_sequences


def test_truncate_sequences_longest_first_without_mutation():
    a, b = [1, 2, 3, 4], [5, 6, 7]
    before = copy.deepcopy((a, b))
    assert truncate_sequences(5, -1, a, b) == [[1, 2], [5, 6, 7]]  # ties cut the first
    assert truncate_sequences(5, [0, -1], a, b) == [[3, 4], [5, 6, 7]]
    assert truncate_sequences(3, -1, a, b) == [[1], [5, 6]]  # 4,3 → 3,3 → 2,3 → 2,2 → 1,2
    assert truncate_sequences(10, -1, a, b) == [[1, 2, 3, 4], [5, 6, 7]]
    assert (a, b) == before  # bert4keras pops from the caller's lists
    # empty sequences are kept, so the result always unpacks
    x, y = truncate_sequences(2, -1, (9, 8, 7), [])
    assert (x, y) == ([9, 8], [])
    # an interior position removes a contiguous block after it
    assert truncate_sequences(3, 1, list("abcde")) == [["a", "d", "e"]]


@settings(max_examples=25, deadline=None)
@given(
    lens=st.lists(st.integers(0, 8), min_size=1, max_size=4),
    maxlen=st.integers(0, 20),
    index=st.sampled_from([0, -1]),
)
def test_truncate_sequences_properties(lens, maxlen, index):
    seqs = [list(range(100 * k, 100 * k + n)) for k, n in enumerate(lens)]
    out = truncate_sequences(maxlen, index, *seqs)
    assert sum(map(len, out)) == min(maxlen, sum(lens))
    for s, o in zip(seqs, out, strict=True):
        # pops from one end keep a contiguous run from the other end
        assert o == (s[len(s) - len(o) :] if index == 0 else s[: len(o)])
    # longest-first: a sequence that was cut ends at most one shorter than the longest result
    longest = max(len(o) for o in out)
    for o, n in zip(out, lens, strict=True):
        if len(o) < n:
            assert len(o) >= longest - 1


def test_truncate_sequences_bad_inputs():
    with pytest.raises(ValueError, match="indices"):
        truncate_sequences(1, [0], [1, 2], [3])
    with pytest.raises(ValueError, match="maxlen"):
        truncate_sequences(-1, 0, [1])
    with pytest.raises(ValueError, match="indices"):
        truncate_sequences(0, 5, [1, 2])


# ---------------------------------------------------------------- text_segmentate


def test_text_segmentate_hand_cases():
    text = "今天天气很好。我们去公园玩吧！好的，走。"
    assert text_segmentate(text, 8, "。！，", "，") == [
        "今天天气很好。",
        "我们去公园玩吧！",
        "好的，走。",
    ]
    assert text_segmentate("a,b,c,d", 4, ",") == ["a,b,", "c,d"]
    # whitespace stripped per piece; a piece still too long is returned whole
    assert text_segmentate("  ab\ncd\nefghijk  ", 4) == ["ab", "cd", "efghijk"]
    assert text_segmentate("short", 10, "，") == ["short"]
    assert text_segmentate("，甲，", 10, "，", "，") == ["甲"]


@settings(max_examples=25, deadline=None)
@given(text=st.text(alphabet="甲乙丙。，", max_size=40), maxlen=st.integers(2, 12))
def test_text_segmentate_covers_the_text(text, maxlen):
    pieces = text_segmentate(text, maxlen, "。，")
    assert "".join(pieces) == text
    runs = [r for r in text.replace("，", "。").split("。")]
    # Every clause fits and none is empty: all pieces fit. (Empty clauses, e.g. "。。。", never
    # trigger a flush in bert4keras's rule, so such a run comes back whole even when too long.)
    if all(runs[:-1]) and all(len(r) + 1 <= maxlen - 1 for r in runs):
        assert all(len(p) <= maxlen for p in pieces)


def test_text_segmentate_bad_inputs():
    with pytest.raises(ValueError, match="maxlen"):
        text_segmentate("abc", 0)
    with pytest.raises(ValueError, match="text"):
        text_segmentate(None, 3)  # type: ignore[arg-type]
