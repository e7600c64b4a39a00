"""bert4keras's numpy ``ViterbiDecoder`` (on the max-semiring reference) against brute force."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from kexue.textkit.tagging import ViterbiDecoder


def brute_force(nodes, trans, starts=None, ends=None):
    t_len, k = nodes.shape
    best, best_path = -np.inf, None
    for path in itertools.product(range(k), repeat=t_len):
        if starts is not None and path[0] not in starts:
            continue
        if ends is not None and path[-1] not in ends:
            continue
        s = sum(nodes[t, y] for t, y in enumerate(path))
        s += sum(trans[a, b] for a, b in itertools.pairwise(path))
        if s > best:
            best, best_path = s, path
    return None if best_path is None else list(best_path)


@settings(max_examples=25, deadline=None)
@given(
    t_len=st.integers(1, 5),
    k=st.integers(1, 4),
    seed=st.integers(0, 2**31 - 1),
    constrain=st.booleans(),
)
def test_viterbi_matches_brute_force(t_len, k, seed, constrain):
    rng = np.random.default_rng(seed)
    nodes = rng.normal(size=(t_len, k))
    trans = rng.normal(size=(k, k))
    starts = ends = None
    if constrain:
        starts = sorted(set(rng.integers(0, k, size=2).tolist()))
        ends = sorted(set(rng.integers(0, k, size=2).tolist()))
    nodes_before = nodes.copy()
    expected = brute_force(nodes, trans, starts, ends)
    # a single step whose allowed starts and ends are disjoint admits no path at all
    assume(expected is not None)
    got = ViterbiDecoder(trans, starts, ends).decode(nodes)
    assert got.dtype == np.int64 and got.shape == (t_len,)
    assert got.tolist() == expected
    np.testing.assert_array_equal(nodes, nodes_before)  # bert4keras subtracts inf in place


def test_viterbi_hand_case_and_ties():
    # transitions forbid 1 → 1 strongly; emissions prefer 1 everywhere
    trans = np.array([[0.0, 0.0], [0.0, -10.0]])
    nodes = np.array([[0.0, 1.0], [0.0, 1.0], [0.0, 1.0]])
    assert ViterbiDecoder(trans).decode(nodes).tolist() == [1, 0, 1]
    assert ViterbiDecoder(trans, starts=[0]).decode(nodes).tolist() == [0, 1, 0]
    assert ViterbiDecoder(trans, starts=[0], ends=[0]).decode(nodes).tolist() == [0, 1, 0]
    assert ViterbiDecoder(trans, ends=[0]).decode(nodes[:1]).tolist() == [0]
    # all-equal scores: the lowest index wins
    assert ViterbiDecoder(np.zeros((3, 3))).decode(np.zeros((4, 3))).tolist() == [0, 0, 0, 0]


def test_viterbi_bad_inputs():
    with pytest.raises(ValueError, match="trans"):
        ViterbiDecoder(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="starts"):
        ViterbiDecoder(np.zeros((2, 2)), starts=[2])
    with pytest.raises(ValueError, match="ends"):
        ViterbiDecoder(np.zeros((2, 2)), ends=[])
    dec = ViterbiDecoder(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="nodes"):
        dec.decode(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="nodes"):
        dec.decode(np.zeros((0, 2)))
    with pytest.raises(ValueError, match="nodes"):
        dec.decode(np.array([[0.0, np.nan]]))
