"""Tests of kexue.textkit.tagging.taggers: gated conv block, CNN / BiLSTM encoders, CRF and softmax heads."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from kexue.textkit.tagging import taggers

HEADS = ["crf", "softmax"]


pytestmark = pytest.mark.usefixtures("one_thread")


def _batch(gen: torch.Generator, lengths: list[int], vocab: int = 30) -> tuple[torch.Tensor, ...]:
    t = max(lengths)
    ids = torch.randint(2, vocab, (len(lengths), t), generator=gen)
    mask = torch.arange(t).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)
    return ids.masked_fill(~mask, 0), mask


def _encoders(vocab: int = 30) -> list[torch.nn.Module]:
    return [
        taggers.CharCNNEncoder(vocab, dim=16, num_blocks=3, dropout=0.25),
        taggers.BiLSTMEncoder(vocab, dim=12, hidden=8, dropout=0.25),
    ]


# ------------------------------------------------------------------------------------------------
# GatedConvBlock
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dilation", [1, 2, 3])
def test_gated_block_matches_formula(dilation: int) -> None:
    """y_t = x_t·σ(a_t) + b_t·(1 − σ(a_t)), (a, b) = Σ_j W_j x_{t+(j−1)δ} + bias (zero outside)."""
    gen = torch.Generator().manual_seed(1)
    d, t = 4, 9
    block = taggers.GatedConvBlock(d, kernel_size=3, dilation=dilation)
    x = torch.randn(2, t, d, generator=gen)
    y = block(x)
    w, bias = block.conv.weight, block.conv.bias  # (2d, d, 3), (2d,)
    expected = torch.empty_like(x)
    for i in range(t):
        o = bias.clone()
        for j in range(3):
            s = i + (j - 1) * dilation
            if 0 <= s < t:
                o = o + x[:, s] @ w[:, :, j].T
        g = torch.sigmoid(o[:, :d])
        expected[:, i] = x[:, i] * g + o[:, d:] * (1 - g)
    torch.testing.assert_close(y, expected, atol=1e-6, rtol=1e-5)


def test_gate_forced_to_one_is_identity() -> None:
    gen = torch.Generator().manual_seed(2)
    d = 8
    block = taggers.GatedConvBlock(d, kernel_size=3, dilation=2)
    with torch.no_grad():
        block.conv.weight[:d].zero_()
        block.conv.bias[:d].fill_(1e4)  # σ(1e4) = 1 exactly in fp32
    x = torch.randn(3, 11, d, generator=gen)
    assert torch.equal(block(x), x)
    mask = torch.arange(11).unsqueeze(0) < torch.tensor([[11], [5], [1]])
    assert torch.equal(block(x, mask), x * mask.unsqueeze(-1))


def test_gated_block_pads_never_reach_real_steps() -> None:
    gen = torch.Generator().manual_seed(3)
    d = 6
    block = taggers.GatedConvBlock(d, kernel_size=5, dilation=2)
    mask = torch.arange(10).unsqueeze(0) < torch.tensor([[10], [4], [7]])
    x = torch.randn(3, 10, d, generator=gen)
    junk = torch.where(mask.unsqueeze(-1), x, 1e3 * torch.randn(3, 10, d, generator=gen))
    y1, y2 = block(x, mask), block(junk, mask)
    assert torch.equal(y1, y2)
    assert torch.all(y1[~mask] == 0)
    # row 1 alone (T = 4) equals its padded row
    torch.testing.assert_close(block(x[1:2, :4]), y1[1:2, :4], atol=1e-6, rtol=1e-5)


@settings(max_examples=20, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 9), min_size=1, max_size=4),
    kernel=st.sampled_from([1, 3, 5]),
    dilation=st.integers(1, 3),
    seed=st.integers(0, 2**16),
)
def test_gated_block_batch_equals_each_sequence_alone(
    lengths: list[int], kernel: int, dilation: int, seed: int
) -> None:
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    block = taggers.GatedConvBlock(3, kernel_size=kernel, dilation=dilation)
    t = max(lengths)
    mask = torch.arange(t).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)
    x = torch.randn(len(lengths), t, 3, generator=gen)
    y = block(x, mask)
    for i, n in enumerate(lengths):
        torch.testing.assert_close(block(x[i : i + 1, :n])[0], y[i, :n], atol=1e-6, rtol=1e-5)
        assert torch.all(y[i, n:] == 0)


# ------------------------------------------------------------------------------------------------
# Encoders and tagger
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("kind", ["cnn", "bilstm"])
def test_tagger_shapes(kind: str, head: str) -> None:
    gen = torch.Generator().manual_seed(4)
    ids, mask = _batch(gen, [7, 3, 5])
    build = taggers.cnn_crf_tagger if kind == "cnn" else taggers.bilstm_crf_tagger
    model = build(30, 5, dim=16, head=head).eval()
    feats = model.encoder(ids, mask)
    width = 16 if kind == "cnn" else 256
    assert feats.shape == (3, 7, width)
    assert model(ids, mask).shape == (3, 7, 5)
    tags = model.decode(ids, mask)
    assert tags.shape == (3, 7) and tags.dtype == torch.long
    assert torch.all(tags[~mask] == 0) and int(tags.max()) < 5
    assert model.loss(ids, tags, mask).shape == ()
    assert model.loss(ids, tags, mask, reduction="none").shape == (3,)


@pytest.mark.parametrize("index", [0, 1])
def test_encoder_padding_never_leaks(index: int) -> None:
    """Real outputs are the same with junk ids at pads, and for each sentence alone."""
    gen = torch.Generator().manual_seed(5)
    encoder = _encoders()[index].eval()
    lengths = [9, 4, 1, 6]
    ids, mask = _batch(gen, lengths)
    junk = torch.where(mask, ids, torch.randint(0, 30, ids.shape, generator=gen))
    out, out_junk = encoder(ids, mask), encoder(junk, mask)
    torch.testing.assert_close(out[mask], out_junk[mask], atol=1e-6, rtol=1e-5)
    assert torch.all(out[~mask] == 0)
    for i, n in enumerate(lengths):
        alone = encoder(ids[i : i + 1, :n])
        torch.testing.assert_close(alone[0], out[i, :n], atol=1e-5, rtol=1e-4)


def test_cnn_receptive_field() -> None:
    """∂out_t/∂emb_s ≠ 0 exactly when |t − s| ≤ (kernel − 1)/2 · Σ dilations."""
    encoder = taggers.CharCNNEncoder(20, dim=8, num_blocks=3, dilations=[1, 2, 4], dropout=0.0)
    assert encoder.receptive_field == 15
    t = 31
    ids = torch.full((1, t), 3)
    emb = encoder.embedding(ids).detach().requires_grad_(True)
    h = emb
    mask = torch.ones(1, t, dtype=torch.bool)
    for block in encoder.blocks:
        h = block(h, mask)
    h[0, 15].sum().backward()
    reach = emb.grad[0].abs().sum(-1) > 0
    assert reach.nonzero().flatten().tolist() == list(range(15 - 7, 15 + 8))


@pytest.mark.parametrize("head", HEADS)
def test_loss_ignores_pads_and_matches_alone(head: str) -> None:
    gen = torch.Generator().manual_seed(6)
    model = taggers.cnn_crf_tagger(30, 4, dim=16, num_blocks=2, head=head).eval()
    lengths = [8, 3, 5]
    ids, mask = _batch(gen, lengths)
    tags = torch.randint(0, 4, ids.shape, generator=gen)
    junk_ids = torch.where(mask, ids, torch.randint(0, 30, ids.shape, generator=gen))
    junk_tags = torch.where(mask, tags, torch.full_like(tags, 99))  # out of range at pads is fine
    per_seq = model.loss(ids, tags, mask, reduction="none")
    torch.testing.assert_close(
        model.loss(junk_ids, junk_tags, mask, reduction="none"), per_seq, atol=1e-5, rtol=1e-5
    )
    for i, n in enumerate(lengths):
        alone = model.loss(ids[i : i + 1, :n], tags[i : i + 1, :n], reduction="none")
        torch.testing.assert_close(alone[0], per_seq[i], atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(model.loss(ids, tags, mask, reduction="sum"), per_seq.sum())
    torch.testing.assert_close(model.loss(ids, tags, mask), per_seq.mean())
    torch.testing.assert_close(
        model.loss(ids, tags, mask, reduction="token_mean"), per_seq.sum() / sum(lengths)
    )


def test_softmax_loss_closed_form() -> None:
    gen = torch.Generator().manual_seed(7)
    model = taggers.cnn_crf_tagger(30, 4, dim=16, num_blocks=2, head="softmax").eval()
    ids, mask = _batch(gen, [6, 2])
    tags = torch.randint(0, 4, ids.shape, generator=gen)
    logp = F.log_softmax(model(ids, mask), -1)
    expected = torch.stack(
        [-sum(logp[b, t, tags[b, t]] for t in range(int(mask[b].sum()))) for b in range(2)]
    )
    torch.testing.assert_close(model.loss(ids, tags, mask, reduction="none"), expected)
    assert torch.equal(model.decode(ids, mask), logp.argmax(-1).masked_fill(~mask, 0))


def test_crf_head_decodes_with_its_crf() -> None:
    gen = torch.Generator().manual_seed(8)
    model = taggers.bilstm_crf_tagger(30, 5, dim=8, hidden=8).eval()
    ids, mask = _batch(gen, [5, 4])
    expected = model.crf.decode(model(ids, mask), mask)
    assert torch.equal(model.decode(ids, mask), expected)


def test_gradients_reach_every_parameter() -> None:
    gen = torch.Generator().manual_seed(9)
    for model in (
        taggers.cnn_crf_tagger(30, 4, dim=8),
        taggers.bilstm_crf_tagger(30, 4, dim=8, hidden=4),
    ):
        ids, mask = _batch(gen, [6, 4])
        tags = torch.randint(0, 4, ids.shape, generator=gen)
        model.loss(ids, tags, mask).backward()
        for name, p in model.named_parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all(), name


# ------------------------------------------------------------------------------------------------
# Validation
# ------------------------------------------------------------------------------------------------


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="kernel_size"):
        taggers.GatedConvBlock(8, kernel_size=4)
    with pytest.raises(ValueError, match="dilation"):
        taggers.GatedConvBlock(8, dilation=0)
    with pytest.raises(ValueError, match="dropout"):
        taggers.GatedConvBlock(8, dropout=1.0)
    with pytest.raises(ValueError, match="dilations"):
        taggers.CharCNNEncoder(10, num_blocks=3, dilations=[1, 2])
    with pytest.raises(ValueError, match="padding_idx"):
        taggers.BiLSTMEncoder(10, padding_idx=10)
    with pytest.raises(ValueError, match="head"):
        taggers.cnn_crf_tagger(10, 3, head="mlp")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="crf_kwargs"):
        taggers.cnn_crf_tagger(10, 3, head="softmax", crf_kwargs={"use_start_end": False})
    with pytest.raises(ValueError, match="output_dim"):
        taggers.SequenceTagger(torch.nn.Identity(), 3)
    with pytest.raises(ValueError, match="num_tags"):
        taggers.cnn_crf_tagger(10, 0)


def test_bad_inputs_are_named() -> None:
    model = taggers.cnn_crf_tagger(10, 3, dim=8, head="softmax")
    ids = torch.tensor([[2, 3, 4], [5, 6, 0]])
    mask = torch.tensor([[True, True, True], [True, True, False]])
    tags = torch.zeros_like(ids)
    with pytest.raises(ValueError, match="mask shape"):
        model.loss(ids, tags, mask[:, :2])
    with pytest.raises(ValueError, match="right padding"):
        model.decode(ids, torch.tensor([[True, True, True], [False, True, True]]))
    with pytest.raises(ValueError, match="prefix mask"):
        model.decode(ids, torch.tensor([[True, True, True], [True, False, True]]))
    with pytest.raises(ValueError, match="bool"):
        model.decode(ids, mask.long())
    with pytest.raises(ValueError, match="char_ids"):
        model.decode(ids[0])
    with pytest.raises(ValueError, match="tags shape"):
        model.loss(ids, tags[:, :2], mask)
    with pytest.raises(ValueError, match="tags must be in"):
        model.loss(ids, tags + 3, mask)
    with pytest.raises(ValueError, match="reduction"):
        model.loss(ids, tags, mask, reduction="avg")
    with pytest.raises(ValueError, match="x must be"):
        taggers.GatedConvBlock(4)(torch.zeros(2, 3, 5))
    crf_model = taggers.cnn_crf_tagger(10, 3, dim=8)
    with pytest.raises(ValueError, match="B = 0"):
        crf_model.loss(ids[:0], tags[:0], mask[:0])
    with pytest.raises(ValueError, match="tags must be in"):
        crf_model.loss(ids, tags - 1, mask)


# ------------------------------------------------------------------------------------------------
# Synchronisation budget: one checked entry, trusted cores
# ------------------------------------------------------------------------------------------------

SYNC_BUDGET = 2  # device→host synchronisations per training step (SequenceTagger.loss + backward)


def _step_inputs(gen: torch.Generator) -> tuple[torch.Tensor, ...]:
    ids, mask = _batch(gen, [9, 5, 3, 7])
    tags = torch.randint(0, 4, ids.shape, generator=gen)
    return ids, tags, mask


@pytest.mark.parametrize("head", HEADS)
def test_cnn_tagger_training_step_syncs_once(count_syncs, head: str) -> None:
    gen = torch.Generator().manual_seed(20)
    model = taggers.cnn_crf_tagger(30, 4, dim=8, num_blocks=2, head=head)
    ids, tags, mask = _step_inputs(gen)
    with count_syncs() as events:
        model.loss(ids, tags, mask).backward()
    assert len(events) == 1 <= SYNC_BUDGET, events  # the one fused read-back of every check
    # control: the same step through each layer's checked public entry (the old layering:
    # the tagger's check, the encoder's, the CRF's) exceeds the budget
    model.zero_grad()
    with count_syncs() as control:
        emissions = model.emission(model.encoder(ids, mask))  # encoder.forward checks
        if model.crf is not None:
            loss = model.crf(emissions, tags, mask)  # CRF.forward checks
        else:
            loss = F.cross_entropy(emissions[mask], tags[mask])  # boolean-mask gathers
        model.loss(ids, tags, mask) + loss  # the tagger's own check
    assert len(control) > SYNC_BUDGET, control


def test_bilstm_tagger_adds_only_torchs_packing_syncs(count_syncs) -> None:
    """The BiLSTM packs its sequences; torch's pack/pad read a few values themselves (the batch
    sizes, which live on the host, and the unsorted indices). Ours: the lengths come with the
    one check, so the step costs exactly one more than torch's packing alone."""
    gen = torch.Generator().manual_seed(21)
    model = taggers.bilstm_crf_tagger(30, 4, dim=8, hidden=4)
    ids, tags, mask = _step_inputs(gen)
    lengths = mask.sum(1).tolist()
    with count_syncs() as packing:
        x = model.encoder.embedding(ids)
        packed = torch.nn.utils.rnn.pack_padded_sequence(
            x, torch.tensor(lengths), batch_first=True, enforce_sorted=False
        )
        torch.nn.utils.rnn.pad_packed_sequence(
            model.encoder.lstm(packed)[0], batch_first=True, total_length=ids.shape[1]
        )
    with count_syncs() as events:
        model.loss(ids, tags, mask).backward()
    assert len(events) == 1 + len(packing), (events, packing)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_training_step_syncs_once() -> None:
    import warnings

    gen = torch.Generator().manual_seed(22)
    ids, tags, mask = (x.cuda() for x in _step_inputs(gen))
    model = taggers.cnn_crf_tagger(30, 4, dim=8, num_blocks=2).cuda()
    model.loss(ids, tags, mask).backward()  # warm-up (lazy CUDA initialisation)
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            model.loss(ids, tags, mask).backward()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    syncs = [w for w in caught if "synchroniz" in str(w.message)]
    assert 1 <= len(syncs) <= SYNC_BUDGET, [str(w.message) for w in syncs]
