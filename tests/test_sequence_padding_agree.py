"""One meaning of ``sequence_padding`` across packages: keras-compat, textkit and bert4keras agree.

``kexue.keras_compat.sequence_padding`` and ``kexue.textkit.data.sequence_padding`` are separate
implementations (the packages do not depend on each other at runtime). This test pins them to each
other and to bert4keras's ``snippets.sequence_padding`` (master, 0.11.x), re-implemented below by
hand as the oracle:

- ``length=None``: the per-axis maximum over the inputs, on each of the first ``seq_dims`` axes;
  a sequence ``length`` gives one target per sequence axis.
- every input is cut to its head, ``x[:length_1, ..., :length_s]``, in both modes;
- it is then padded alone with ``np.pad(..., constant_values=value)``, so ``value`` is cast to that
  input's dtype, at the end (``"post"``) or the start (``"pre"``) of each sequence axis;
- the padded inputs are stacked with ``np.array`` (numpy's dtype promotion).

bert4keras master turns an int ``length`` into ``[length]`` and indexes it per sequence axis, so
``seq_dims > 1`` with an int raises ``IndexError`` there; both kexue functions give the int to every
sequence axis (what the scalar-length bert4keras versions did), i.e. ``length=(n,) * seq_dims``.
The oracle gets ``np.asarray(x)`` for every input. bert4keras slices the raw inputs: a tuple of
slices needs arrays when ``seq_dims > 1``, and a Python list cut to nothing forgets its dtype and
trailing shape (``[[0]]`` cut to length 0 pads a float64 ``[]``; ``[[[0]]]`` cut to 0 makes ``np.pad``
fail). Both kexue functions convert with ``np.asarray`` first, so the dtype and trailing shape are
the input's own in every case; ``test_list_inputs_cut_to_nothing_keep_their_dtype`` pins this one
deliberate difference.
"""

from __future__ import annotations

import numpy as np
import pytest

keras_compat = pytest.importorskip("kexue.keras_compat")
textkit_data = pytest.importorskip("kexue.textkit.data")
hypothesis = pytest.importorskip("hypothesis")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


def bert4keras_sequence_padding(inputs, length=None, value=0, seq_dims=1, mode="post"):
    """Hand-written re-implementation of bert4keras ``snippets.sequence_padding`` (master)."""
    if length is None:
        length = np.max([np.shape(x)[:seq_dims] for x in inputs], axis=0)
    elif not hasattr(length, "__getitem__"):
        length = [length]  # master: an int only covers axis 0 (IndexError below if seq_dims > 1)
    heads = tuple(slice(None, length[d]) for d in range(seq_dims))
    index = heads if seq_dims > 1 else heads[0]
    widths = [(0, 0)] * len(np.shape(inputs[0]))
    padded = []
    for x in inputs:
        x = x[index]
        for d in range(seq_dims):
            gap = length[d] - np.shape(x)[d]
            if mode == "post":
                widths[d] = (0, gap)
            elif mode == "pre":
                widths[d] = (gap, 0)
            else:
                raise ValueError('"mode" argument must be "post" or "pre".')
        padded.append(np.pad(x, widths, "constant", constant_values=value))
    return np.array(padded)


VALUES = st.one_of(st.integers(-5, 5), st.sampled_from([0.5, -1.25, 2.75]))
MODES = st.sampled_from(["post", "pre"])


def _entries(kind: str, draw):
    if kind == "int":
        return st.integers(-9, 9)
    if kind == "float":
        return st.sampled_from([0.25, -1.5, 3.0, 7.75])
    # mixed: each input is int or float on its own, so the stack promotes
    return st.integers(-9, 9) if draw(st.booleans()) else st.sampled_from([0.25, -1.5, 3.0])


@st.composite
def one_dim_batches(draw):
    """Ragged lists of lists: inputs (L_i,) or, with a feature axis, (L_i, F)."""
    kind = draw(st.sampled_from(["int", "float", "mixed"]))
    n = draw(st.integers(1, 5))
    features = draw(st.sampled_from([None, 1, 3]))
    inputs = []
    for _ in range(n):
        entries = _entries(kind, draw)
        size = draw(st.integers(1 if features else 0, 6))
        if features is None:
            inputs.append(draw(st.lists(entries, min_size=size, max_size=size)))
        else:
            row = st.lists(entries, min_size=features, max_size=features)
            inputs.append(draw(st.lists(row, min_size=size, max_size=size)))
    return inputs


@st.composite
def two_dim_batches(draw):
    """Ragged lists of matrices (L1_i, L2_i), each a list of equal-length lists."""
    kind = draw(st.sampled_from(["int", "float", "mixed"]))
    n = draw(st.integers(1, 4))
    inputs = []
    for _ in range(n):
        entries = _entries(kind, draw)
        rows, cols = draw(st.integers(1, 5)), draw(st.integers(1, 5))
        row = st.lists(entries, min_size=cols, max_size=cols)
        inputs.append(draw(st.lists(row, min_size=rows, max_size=rows)))
    return inputs


def _assert_same(a: np.ndarray, b: np.ndarray) -> None:
    assert isinstance(a, np.ndarray) and isinstance(b, np.ndarray)
    assert a.dtype == b.dtype and a.shape == b.shape
    np.testing.assert_array_equal(a, b)


def _both(inputs, **kwargs) -> np.ndarray:
    kc = keras_compat.sequence_padding(inputs, **kwargs)
    tk = textkit_data.sequence_padding(inputs, **kwargs)
    _assert_same(kc, tk)
    return kc


@settings(max_examples=300, deadline=None)
@given(
    inputs=one_dim_batches(),
    length=st.one_of(st.none(), st.integers(0, 7), st.tuples(st.integers(0, 7))),
    value=VALUES,
    mode=MODES,
)
def test_seq_dims_1_agree_with_each_other_and_bert4keras(inputs, length, value, mode) -> None:
    got = _both(inputs, length=length, value=value, seq_dims=1, mode=mode)
    arrays = [np.asarray(x) for x in inputs]
    _assert_same(got, bert4keras_sequence_padding(arrays, length, value, 1, mode))


@settings(max_examples=300, deadline=None)
@given(
    inputs=two_dim_batches(),
    length=st.one_of(st.none(), st.integers(0, 6), st.tuples(st.integers(0, 6), st.integers(0, 6))),
    value=VALUES,
    mode=MODES,
)
def test_seq_dims_2_agree_with_each_other_and_bert4keras(inputs, length, value, mode) -> None:
    got = _both(inputs, length=length, value=value, seq_dims=2, mode=mode)
    arrays = [np.asarray(x) for x in inputs]
    if isinstance(length, int):
        # bert4keras master cannot take an int here; kexue's meaning is (n, n)
        with pytest.raises(IndexError):
            bert4keras_sequence_padding(arrays, length, value, 2, mode)
        _assert_same(
            got, _both(inputs, length=(length, length), value=value, seq_dims=2, mode=mode)
        )
        length = (length, length)
    _assert_same(got, bert4keras_sequence_padding(arrays, length, value, 2, mode))


def test_worked_examples() -> None:
    # the cases where the two packages used to disagree, written out
    a, b = np.arange(6).reshape(2, 3), np.full((3, 1), 9)
    out = _both([a, b], length=2, seq_dims=2)
    np.testing.assert_array_equal(out, [[[0, 1], [3, 4]], [[9, 0], [9, 0]]])
    out = _both([[1, 2, 3], [4]], length=2, mode="pre")
    np.testing.assert_array_equal(out, [[1, 2], [0, 4]])  # the head is kept in "pre" too
    out = _both([np.array([1]), np.array([0.25, 0.75])], value=0.5)
    np.testing.assert_array_equal(out, [[1.0, 0.0], [0.25, 0.75]])  # value cast per input


def test_list_inputs_cut_to_nothing_keep_their_dtype() -> None:
    # bert4keras: [0][:0] is a bare [] that np.pad turns into float64; kexue keeps int64
    assert bert4keras_sequence_padding([[0]], 0).dtype == np.float64
    out = _both([[0]], length=0)
    assert out.shape == (1, 0) and out.dtype == np.asarray([0]).dtype
    out = _both([[[0]], [[1], [2]]], length=0)
    assert out.shape == (2, 0, 1)
