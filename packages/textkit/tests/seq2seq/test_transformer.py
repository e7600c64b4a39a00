"""UniLMTransformer: the UniLM mask seen through the model, KV cache, CLN, seq2seq loss."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from kexue.textkit.seq2seq.masks import unilm_mask
from kexue.textkit.seq2seq.transformer import KVCache, UniLMTransformer, seq2seq_loss

V = 30


def _model(**kw: object) -> UniLMTransformer:
    torch.manual_seed(0)
    m = UniLMTransformer(V, dim=16, depth=2, heads=2, max_len=32, **kw).double().eval()
    with torch.no_grad():  # larger weights: every position clearly depends on what it sees
        for p in m.parameters():
            if p.dim() == 2:
                p.normal_(0, 0.3)
    return m


@pytest.mark.parametrize("positions", ["learned", "rotary"])
def test_unilm_visibility_through_the_model(positions: str) -> None:
    m = _model(positions=positions)
    g = torch.Generator().manual_seed(0)
    src, tgt = 4, 4
    tokens = torch.randint(0, V, (1, src + tgt), generator=g)
    segments = torch.tensor([[0] * src + [1] * tgt])
    base = m(tokens, segments)
    for j in range(src + tgt):  # perturb token j, see which positions' logits move
        t2 = tokens.clone()
        t2[0, j] = (t2[0, j] + 1) % V
        changed = (m(t2, segments) - base).abs().amax(-1)[0] > 1e-9
        if j < src:  # a source token is seen by every position (source bidirectional)
            assert changed.all(), (j, changed)
        else:  # a target token is seen only by itself and later targets
            expected = torch.arange(src + tgt) >= j
            assert torch.equal(changed, expected), (j, changed)


def test_padding_garbage_changes_nothing() -> None:
    m = _model()
    g = torch.Generator().manual_seed(1)
    tokens = torch.randint(0, V, (2, 7), generator=g)
    segments = torch.tensor([[0, 0, 0, 1, 1, 0, 0], [0, 0, 1, 1, 1, 1, 1]])
    valid = torch.tensor([[1, 1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1, 1]], dtype=torch.bool)
    out = m(tokens, segments, key_padding_mask=valid)
    garbage = tokens.clone()
    garbage[0, 5:] = torch.tensor([3, 9])
    out2 = m(garbage, segments, key_padding_mask=valid)
    torch.testing.assert_close(out2[:, :5], out[:, :5], atol=1e-12, rtol=0)
    torch.testing.assert_close(out2[1], out[1], atol=1e-12, rtol=0)
    # the row alone (no padding) gives the same logits
    alone = m(tokens[:1, :5], segments[:1, :5])
    torch.testing.assert_close(alone[0], out[0, :5], atol=1e-10, rtol=1e-10)
    # an explicit mask equal to the segment mask gives the same logits
    explicit = m(tokens, segments, attn_mask=unilm_mask(segments, key_padding_mask=valid))
    torch.testing.assert_close(explicit, out, atol=1e-12, rtol=0)


@pytest.mark.parametrize("positions", ["learned", "rotary"])
@pytest.mark.parametrize("cond_dim", [None, 3])
def test_kv_cache_equals_full_recomputation(positions: str, cond_dim: int | None) -> None:
    m = _model(positions=positions, cond_dim=cond_dim)
    if cond_dim is not None:
        with torch.no_grad():  # make the condition matter
            for mod in m.modules():
                if hasattr(mod, "gamma_dense"):
                    mod.gamma_dense.weight.normal_(0, 0.5)
    g = torch.Generator().manual_seed(2)
    cond = None if cond_dim is None else torch.randn(2, cond_dim, generator=g, dtype=torch.float64)
    src = torch.randint(0, V, (2, 5), generator=g)
    valid = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], dtype=torch.bool)
    lengths = valid.sum(1)
    gen = torch.randint(0, V, (2, 4), generator=g)
    cache = KVCache()
    steps = [m(src, torch.zeros_like(src), key_padding_mask=valid, cond=cond, cache=cache)]
    steps.append(m(gen[:, :2], torch.ones(2, 2, dtype=torch.long), cond=cond, cache=cache))
    for t in (2, 3):
        steps.append(
            m(gen[:, t : t + 1], torch.ones(2, 1, dtype=torch.long), cond=cond, cache=cache)
        )
    assert cache.length == 9 and torch.equal(cache.next_pos, lengths + 4)
    incremental = torch.cat(steps, dim=1)
    full = m(
        torch.cat((src, gen), 1),
        torch.cat((torch.zeros_like(src), torch.ones_like(gen)), 1),
        key_padding_mask=torch.cat((valid, torch.ones_like(gen, dtype=torch.bool)), 1),
        position_ids=torch.cat(
            (torch.arange(5).expand(2, 5), lengths[:, None] + torch.arange(4)), 1
        ),
        cond=cond,
    )
    torch.testing.assert_close(incremental[:, 5:], full[:, 5:], atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(incremental[0], full[0], atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("reserve", [0, 1, 8])
@pytest.mark.parametrize("grad", [False, True])
def test_kv_cache_buffers_grow_reorder_and_keep_autograd(reserve: int, grad: bool) -> None:
    """Keys are written in place into buffers with ``reserve`` spare steps (doubling when full;
    concatenated when they need gradients): any of them gives the uncached logits, also after
    :meth:`KVCache.reorder` with repeated rows."""
    m = _model()
    g = torch.Generator().manual_seed(5)
    seq = torch.randint(0, V, (2, 9), generator=g)
    segs = torch.tensor([[0, 0, 0, 1, 1, 1, 1, 1, 1]] * 2)
    cache = KVCache(reserve=reserve)
    with torch.set_grad_enabled(grad):
        steps = [m(seq[:, :3], segs[:, :3], cache=cache)]
        for t in range(3, 6):
            steps.append(m(seq[:, t : t + 1], segs[:, t : t + 1], cache=cache))
        index = torch.tensor([1, 1, 0])
        cache.reorder(index)
        for t in range(6, 9):
            steps.append(m(seq[index, t : t + 1], segs[index, t : t + 1], cache=cache))
    full = m(seq, segs)
    got = torch.cat(steps[:4], 1)
    torch.testing.assert_close(got, full[:, :6], atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(torch.cat(steps[4:], 1), full[index, 6:], atol=1e-10, rtol=1e-10)
    assert cache.length == 9 and all(k.shape == (3, 2, 9, 8) for k in cache.keys)
    assert got.requires_grad == grad
    if grad:
        got.sum().backward()  # no in-place write broke the graph
        assert m.blocks[0].qkv.weight.grad is not None


def test_bidirectional_equals_an_all_visible_mask() -> None:
    m = _model()
    tokens = torch.randint(0, V, (2, 6), generator=torch.Generator().manual_seed(8))
    valid = torch.tensor([[1] * 6, [1] * 4 + [0] * 2], dtype=torch.bool)
    got = m(tokens, key_padding_mask=valid, bidirectional=True)
    ref = m(tokens, key_padding_mask=valid, attn_mask=torch.ones(6, 6, dtype=torch.bool))
    torch.testing.assert_close(got, ref, atol=0, rtol=0)
    assert (got[:, 0] - m(tokens, key_padding_mask=valid)[:, 0]).abs().max() > 1e-3  # not causal


def test_cln_model_equals_plain_model_at_init() -> None:
    torch.manual_seed(3)
    plain = UniLMTransformer(V, dim=16, depth=2, heads=2, max_len=16).double().eval()
    torch.manual_seed(3)
    cond_model = (
        UniLMTransformer(V, dim=16, depth=2, heads=2, max_len=16, cond_dim=4).double().eval()
    )
    cond_model.load_state_dict(plain.state_dict(), strict=False)  # CLN maps stay zero
    tokens = torch.randint(0, V, (2, 6))
    ref = plain(tokens)
    for c in (torch.zeros(2, 4), torch.randn(2, 4) * 5):
        torch.testing.assert_close(cond_model(tokens, cond=c.double()), ref, atol=1e-12, rtol=0)
    assert plain.logits(torch.zeros(1, 16, dtype=torch.float64)).shape == (1, V)
    assert cond_model.token_embedding.weight is not None  # output layer is tied to it:
    h = torch.randn(3, 16, dtype=torch.float64)
    torch.testing.assert_close(
        plain.logits(h), h @ plain.token_embedding.weight.T, atol=1e-12, rtol=0
    )


def test_seq2seq_loss_matches_loop() -> None:
    g = torch.Generator().manual_seed(4)
    logits = torch.randn(2, 6, V, generator=g, dtype=torch.float64)
    tokens = torch.randint(0, V, (2, 6), generator=g)
    segments = torch.tensor([[0, 0, 1, 1, 1, 0], [0, 0, 0, 0, 1, 1]])
    total, count = 0.0, 0
    for b in range(2):
        for t in range(5):
            if segments[b, t + 1]:
                total += float(F.cross_entropy(logits[b, t], tokens[b, t + 1]))
                count += 1
    torch.testing.assert_close(
        seq2seq_loss(logits, tokens, segments).item(), total / count, atol=1e-12, rtol=0
    )


def test_bad_input() -> None:
    m = _model()
    tokens = torch.randint(0, V, (2, 5))
    with pytest.raises(ValueError, match=r"attn_mask shape \(2, 4, 4\).*Lq = 5"):
        m(tokens, attn_mask=torch.ones(2, 4, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="segments shape"):
        m(tokens, torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="empty source"):
        m(torch.zeros(2, 0, dtype=torch.long))
    with pytest.raises(ValueError, match="cond"):
        m(tokens, cond=torch.zeros(2, 3))
    with pytest.raises(ValueError, match="max_len"):
        m(torch.randint(0, V, (1, 40)))
    with pytest.raises(ValueError, match="vocab_size"):
        m(torch.full((1, 3), V))
    with pytest.raises(ValueError, match="segments has no target"):
        seq2seq_loss(torch.zeros(1, 3, V), torch.zeros(1, 3, dtype=torch.long), torch.zeros(1, 3))
    with pytest.raises(ValueError, match="positions"):
        UniLMTransformer(V, positions="alibi")


def test_left_padding_is_refused() -> None:
    m = _model()
    with pytest.raises(ValueError, match="key_padding_mask"):
        m(torch.ones(1, 3, dtype=torch.long), key_padding_mask=torch.tensor([[False, True, True]]))


@pytest.mark.parametrize("positions", ["learned", "rotary"])
def test_bfloat16_forward_and_cache(positions: str) -> None:
    torch.manual_seed(0)
    m = UniLMTransformer(V, dim=16, depth=1, heads=2, max_len=16, positions=positions, cond_dim=2)
    m = m.to(torch.bfloat16).eval()
    tokens = torch.randint(0, V, (2, 5))
    cond = torch.randn(2, 2, dtype=torch.bfloat16)
    full = m(tokens, cond=cond)
    cache = KVCache()
    inc = torch.cat(
        (m(tokens[:, :3], cond=cond, cache=cache), m(tokens[:, 3:], cond=cond, cache=cache)), 1
    )
    assert full.dtype == torch.bfloat16 and torch.isfinite(full).all()
    torch.testing.assert_close(inc.float(), full.float(), atol=0.1, rtol=0.05)
