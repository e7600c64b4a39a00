"""Tests for kexue.textkit.seq2seq.decoding.filters: input checks of top-k / top-p (nucleus) filters.

Their values are tested with the decoders in test_decoding.py.
"""

from __future__ import annotations

import math

import pytest
import torch

from kexue.textkit.seq2seq.decoding import filters
from kexue.textkit.seq2seq.decoding.filters import top_k_filter, top_p_filter

FILTERS = [(top_k_filter, 2), (top_p_filter, 0.9)]


def test_all_declares_the_two_filters() -> None:
    assert filters.__all__ == ["top_k_filter", "top_p_filter"]


@pytest.mark.parametrize(("fn", "arg"), FILTERS)
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_probas_raise_naming_row_and_shape(fn, arg, bad: float) -> None:
    p = torch.tensor([[0.2, 0.3, 0.5], [0.1, 0.2, 0.7], [0.6, 0.4, 0.0]])
    p[1, 2] = bad
    with pytest.raises(
        ValueError, match=r"^probas must be finite: row 1 of probas \(shape \(3, 3\)\) holds NaN"
    ):
        fn(p, arg)


@pytest.mark.parametrize(("fn", "arg"), FILTERS)
def test_softmax_of_an_all_minus_inf_row_is_reported(fn, arg) -> None:
    logits = torch.tensor([[0.0, -math.inf, 1.0], [-math.inf, -math.inf, -math.inf]])
    with pytest.raises(ValueError, match=r"row 1 of probas .* logits that are all -inf gives NaN"):
        fn(logits.softmax(-1), arg)


@pytest.mark.parametrize(("fn", "arg"), FILTERS)
def test_zero_mass_and_negative_rows_raise(fn, arg) -> None:
    p = torch.tensor([[0.2, 0.8], [0.0, 0.0]])
    with pytest.raises(ValueError, match=r"^probas rows need positive mass: row 1 .* all zero"):
        fn(p, arg)
    with pytest.raises(ValueError, match=r"^probas must be non-negative .* row \(1, 0\)"):
        fn(torch.tensor([[[0.2, 0.8]], [[1.5, -0.5]]]), arg)
    with pytest.raises(ValueError, match=r"^probas must be finite: probas \(shape \(2,\)\)"):
        fn(torch.tensor([math.nan, 1.0]), arg)
    with pytest.raises(ValueError, match="floating"):
        fn(torch.tensor([[1, 2]]), arg)
    with pytest.raises(TypeError, match="probas"):
        fn([[0.5, 0.5]], arg)


@pytest.mark.parametrize(("fn", "arg"), FILTERS)
def test_masked_tokens_at_zero_stay_zero(fn, arg) -> None:
    logits = torch.tensor([[2.0, -math.inf, 1.0, 0.5], [-math.inf, -math.inf, 0.0, -math.inf]])
    out = fn(logits.softmax(-1), arg)
    assert (out[logits == -math.inf] == 0).all()
    torch.testing.assert_close(out.sum(-1), torch.ones(2))
    assert out[1, 2] == 1.0


def test_parameter_checks() -> None:
    p = torch.tensor([[0.5, 0.5]])
    for k in (0, 1.5, "2"):
        with pytest.raises(ValueError, match="topk must be an int >= 1"):
            top_k_filter(p, k)  # type: ignore[arg-type]
    for q in (0.0, 1.5, math.nan):
        with pytest.raises(ValueError, match=r"topp must lie in \(0, 1\]"):
            top_p_filter(p, q)


@pytest.mark.parametrize(("fn", "arg"), FILTERS)
def test_one_host_sync_per_call_and_none_in_the_core(fn, arg, host_syncs) -> None:
    p = torch.rand(5, 7, generator=torch.Generator().manual_seed(0)).softmax(-1)
    host_syncs.reset()
    out = fn(p, arg)
    assert host_syncs.names == ["tolist"]
    core = filters._top_k_core if fn is top_k_filter else filters._top_p_core
    host_syncs.reset()
    got = core(p, arg)
    assert host_syncs.count == 0
    torch.testing.assert_close(got, out, rtol=0, atol=0)
