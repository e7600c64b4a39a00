"""Attention masks: hand-written matrices, the UniLM block construction, SDPA compatibility."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from kexue.textkit.seq2seq import masks


def _t(rows: list[str]) -> torch.Tensor:
    return torch.tensor([[c == "1" for c in r] for r in rows])


def test_causal_mask_hand_written() -> None:
    expected = _t(["1000", "1100", "1110", "1111"])
    assert torch.equal(masks.causal_mask(4), expected)


def test_unilm_mask_hand_written_with_padding() -> None:
    # [CLS] a [SEP] | x [SEP] | pad pad  -> segments 0 0 0 1 1 0 0
    segments = torch.tensor([[0, 0, 0, 1, 1, 0, 0]])
    valid = torch.tensor([[1, 1, 1, 1, 1, 0, 0]], dtype=torch.bool)
    expected = _t(
        [
            "1110000",  # source rows see the source only
            "1110000",
            "1110000",
            "1111000",  # target row 3 sees source + itself
            "1111100",  # target row 4 sees source + targets 3, 4
            "1111100",  # pad rows (segment 0, last c) see everything valid; harmless
            "1111100",
        ]
    )
    assert torch.equal(masks.unilm_mask(segments, key_padding_mask=valid)[0], expected)
    # without the key-padding mask the pads (same c as the last token) would be visible
    assert masks.unilm_mask(segments)[0, 4, 5].item()


def test_padding_and_prefix_masks_hand_written() -> None:
    assert torch.equal(masks.padding_mask(torch.tensor([3, 1]), 4), _t(["1110", "1000"]))
    got = masks.prefix_lm_mask(torch.tensor([2, 0]), 4)
    assert torch.equal(got[0], _t(["1100", "1100", "1110", "1111"]))
    assert torch.equal(got[1], masks.causal_mask(4))


@settings(max_examples=25, deadline=None)
@given(
    src=st.integers(1, 6),
    tgt=st.integers(0, 5),
    pad=st.integers(0, 3),
)
def test_unilm_mask_equals_block_construction(src: int, tgt: int, pad: int) -> None:
    n = src + tgt + pad
    segments = torch.tensor([[0] * src + [1] * tgt + [0] * pad])
    valid = torch.tensor([[True] * (src + tgt) + [False] * pad])
    got = masks.unilm_mask(segments, key_padding_mask=valid)[0]
    expected = torch.zeros(n, n, dtype=torch.bool)
    expected[:src, :src] = True  # source rows: source keys only
    for i in range(src, src + tgt):  # target row i: source ∪ target[<= i]
        expected[i, :src] = True
        expected[i, src : i + 1] = True
    for i in range(src + tgt, n):  # pad rows see all valid keys (their c is the last one)
        expected[i, : src + tgt] = True
    assert torch.equal(got, expected)
    assert not got[:, src + tgt :].any()  # pad keys are masked
    assert torch.equal(
        masks.prefix_lm_mask(torch.tensor([src]), n, key_padding_mask=valid)[0][: src + tgt],
        got[: src + tgt],
    )


def test_bool_and_additive_forms_agree_in_sdpa() -> None:
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 5, 4, generator=g) for _ in range(3))
    segments = torch.tensor([[0, 0, 1, 1, 1], [0, 0, 0, 1, 0]])
    valid = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]], dtype=torch.bool)
    m = masks.unilm_mask(segments, key_padding_mask=valid)
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=masks.sdpa_mask(m))
    for fill in ("min", "-inf"):
        bias = masks.attention_bias(masks.sdpa_mask(m), dtype=torch.float32, fill=fill)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        torch.testing.assert_close(out, ref, atol=1e-6, rtol=1e-6)
    bias = masks.attention_bias(m, dtype=torch.float16)
    assert bias.dtype == torch.float16
    assert torch.equal(bias == 0, m)
    assert torch.all(bias[~m] == torch.finfo(torch.float16).min)
    assert masks.attention_bias(m, fill="-1e4")[~m].eq(-1e4).all()
    assert masks.sdpa_mask(masks.causal_mask(3)).shape == (1, 1, 3, 3)
    assert masks.sdpa_mask(m).shape == (2, 1, 5, 5)


def test_bad_input() -> None:
    with pytest.raises(ValueError, match=r"attn_mask shape \(2, 4, 4\).*Lq = 5"):
        masks.check_attention_mask(
            torch.ones(2, 4, 4, dtype=torch.bool), batch=2, query_len=5, key_len=5
        )
    with pytest.raises(ValueError, match="key_padding_mask shape"):
        masks.unilm_mask(
            torch.zeros(2, 4, dtype=torch.long), key_padding_mask=torch.ones(2, 5, dtype=torch.bool)
        )
    with pytest.raises(ValueError, match="segments"):
        masks.unilm_mask(torch.zeros(2, 0, dtype=torch.long))
    with pytest.raises(ValueError, match="lengths"):
        masks.padding_mask(torch.tensor([0, 2]))
    with pytest.raises(ValueError, match="length"):
        masks.causal_mask(0)
    with pytest.raises(ValueError, match="prefix_lengths"):
        masks.prefix_lm_mask(torch.tensor([5]), 4)
    with pytest.raises(ValueError, match="fill"):
        masks.attention_bias(masks.causal_mask(2), fill="zero")
