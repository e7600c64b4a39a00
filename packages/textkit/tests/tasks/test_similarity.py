"""Tests for kexue.textkit.tasks.similarity: GRU encoder, AM-Softmax synonym model, retrieval (§2.9)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from kexue.textkit.tasks.similarity import (
    GRUSentenceEncoder,
    SentenceSimilarityModel,
    retrieval_topk_accuracy,
    topk_similar,
)


def _synonym_data(
    n_groups: int, per_group: int, g: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Group j = sentences holding its 3 key chars (ids 1 + 3j ..) in random order, mixed with
    2-4 filler chars shared by all groups; right-padded with 0."""
    filler0 = 1 + 3 * n_groups
    rows, groups = [], []
    for j in range(n_groups):
        for _ in range(per_group):
            keys = (1 + 3 * j + torch.randperm(3, generator=g)).tolist()
            n_fill = int(torch.randint(2, 5, (1,), generator=g))
            fill = (filler0 + torch.randint(0, 6, (n_fill,), generator=g)).tolist()
            seq = keys + fill
            order = torch.randperm(len(seq), generator=g).tolist()
            rows.append([seq[i] for i in order])
            groups.append(j)
    ids = torch.zeros(len(rows), 7, dtype=torch.long)
    for r, seq in enumerate(rows):
        ids[r, : len(seq)] = torch.tensor(seq)
    return ids, torch.tensor(groups)


def test_model_learns_tiny_synonym_task(one_thread: None) -> None:
    g = torch.Generator().manual_seed(0)
    n_groups = 8
    train_ids, train_groups = _synonym_data(n_groups, 16, g)
    test_ids, test_groups = _synonym_data(n_groups, 8, g)  # unseen sentences
    model = SentenceSimilarityModel(
        1 + 3 * n_groups + 6, n_groups, embed_dim=16, hidden_dim=32, generator=g
    )
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    model.eval()
    with torch.no_grad():
        before = retrieval_topk_accuracy(model.encode(test_ids), test_groups, ks=(1,))[1]
    model.train()
    first = None
    for _ in range(40):
        opt.zero_grad()
        loss = model.loss(train_ids, train_groups)
        first = loss.item() if first is None else first
        loss.backward()
        opt.step()
    assert loss.item() < 0.01 * first
    model.eval()
    with torch.no_grad():
        emb = model.encode(test_ids)
        acc = retrieval_topk_accuracy(emb, test_groups, ks=(1, 5))
        cls_acc = (model(test_ids).argmax(1) == test_groups).double().mean().item()
    assert acc[1] >= 0.95 and acc[5] >= acc[1]
    assert cls_acc >= 0.95
    assert before < 0.75  # the untrained encoder is far from it (about 0.55)
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(len(emb)))
    torch.testing.assert_close(model.classifier.weight.norm(dim=1), torch.ones(n_groups))


def test_encoder_padding_equals_unpadded() -> None:
    enc = GRUSentenceEncoder(10, embed_dim=5, hidden_dim=6)
    ids = torch.tensor([[3, 4, 5, 0, 0], [1, 2, 3, 4, 9], [7, 0, 0, 0, 0]])
    out = enc(ids)
    assert out.shape == (3, 6)
    for r, n in enumerate([3, 5, 1]):
        torch.testing.assert_close(out[r], enc(ids[r : r + 1, :n])[0], rtol=1e-5, atol=1e-6)
    # garbage beyond the length is impossible (pads define the length); bidirectional doubles H
    bi = GRUSentenceEncoder(10, embed_dim=5, hidden_dim=6, bidirectional=True)
    assert bi(ids).shape == (3, 12)
    with pytest.raises(ValueError, match="right-padded"):
        enc(torch.tensor([[0, 3, 4]]))
    with pytest.raises(ValueError, match="empty row"):
        enc(torch.tensor([[0, 0, 0], [1, 2, 0]]))
    with pytest.raises(ValueError, match="ids"):
        enc(torch.tensor([[1, 2, 10]]))
    with pytest.raises(ValueError, match="ids"):
        enc(torch.tensor([1, 2]))


@settings(max_examples=20, deadline=None)
@given(q=st.integers(1, 6), n=st.integers(2, 9), d=st.integers(1, 4), seed=st.integers(0, 999))
def test_topk_similar_equals_brute_force(q: int, n: int, d: int, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    queries = torch.randn(q, d, dtype=torch.float64, generator=g)
    keys = torch.randn(n, d, dtype=torch.float64, generator=g)
    k = min(3, n)
    scores, idx = topk_similar(queries, keys, k=k, chunk_size=2)
    cos = F.normalize(queries, dim=1) @ F.normalize(keys, dim=1).T
    want, _ = cos.sort(dim=1, descending=True)
    torch.testing.assert_close(scores, want[:, :k], rtol=0, atol=1e-12)
    torch.testing.assert_close(cos.gather(1, idx), scores, rtol=0, atol=1e-12)
    assert all(len(set(r)) == k for r in idx.tolist())


def test_topk_ties_go_to_lowest_index() -> None:
    keys = torch.tensor([[0.0, 1.0], [1.0, 0.0], [0.0, 2.0], [2.0, 0.0], [1.0, 0.0]])
    scores, idx = topk_similar(torch.tensor([[1.0, 0.0], [0.0, 3.0]]), keys, k=3)
    assert idx.tolist() == [[1, 3, 4], [0, 2, 1]]
    torch.testing.assert_close(scores, torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]]))


def test_topk_exclude_self_and_accuracy() -> None:
    emb = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9], [-1.0, 0.0]])
    _, idx = topk_similar(emb, emb, k=1, exclude_self=True)
    assert idx[:, 0].tolist() == [1, 0, 3, 2, 2]
    acc = retrieval_topk_accuracy(emb, torch.tensor([0, 0, 1, 1, 0]), ks=(1, 4))
    assert acc == {1: pytest.approx(0.8), 4: pytest.approx(1.0)}
    with pytest.raises(ValueError, match="k must"):
        topk_similar(emb, emb, k=5, exclude_self=True)
    with pytest.raises(ValueError, match="queries"):
        topk_similar(emb, emb[:, :1], k=1)
    with pytest.raises(ValueError, match="exclude_self"):
        topk_similar(emb[:2], emb, k=1, exclude_self=True)
    with pytest.raises(ValueError, match="groups"):
        retrieval_topk_accuracy(emb, torch.zeros(5, 1, dtype=torch.long))


def test_training_step_costs_one_host_sync(host_syncs) -> None:
    """ids and groups are validated together with the host copy of the lengths that
    pack_padded_sequence needs, in one transfer; the loss then runs its trusted core.
    (Before: 8 — ids.min, ids.max, torch.equal, lengths == 0, lengths.cpu() in the encoder,
    then isfinite(cos), target.min, target.max in the loss; 9 counted here with nn.GRU's.)"""
    g = torch.Generator().manual_seed(0)
    ids, groups = _synonym_data(3, 4, g)
    model = SentenceSimilarityModel(1 + 9 + 6, 3, embed_dim=8, hidden_dim=8, generator=g)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    host_syncs.reset()
    opt.zero_grad()
    loss = model.loss(ids, groups)
    loss.backward()
    opt.step()
    # "__int__" is nn.GRU reading batch_sizes[0] of the PackedSequence, a CPU tensor by
    # construction (pack_padded_sequence keeps batch_sizes on the host): not a device sync.
    assert host_syncs.names == ["tolist", "__int__"]
    host_syncs.reset()
    model(ids)
    assert host_syncs.names == ["tolist", "__int__"]
    # the trusted path gives the value of the checked public one
    with torch.no_grad():
        want = model.loss_fn(model(ids), groups)
        torch.testing.assert_close(model.loss(ids, groups), want, rtol=0, atol=0)


def test_loss_checks_groups() -> None:
    model = SentenceSimilarityModel(10, 3, embed_dim=4, hidden_dim=4)
    ids = torch.tensor([[1, 2, 0], [3, 0, 0]])
    with pytest.raises(ValueError, match=r"groups must lie in \[0, 3\)"):
        model.loss(ids, torch.tensor([0, 3]))
    with pytest.raises(ValueError, match=r"groups must lie in \[0, 3\)"):
        model.loss(ids, torch.tensor([-1, 0]))
    with pytest.raises(ValueError, match=r"groups must have shape \(B,\)"):
        model.loss(ids, torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="groups must be an int64"):
        model.loss(ids, torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="right-padded"):  # ids errors come first
        model.loss(torch.tensor([[0, 1, 2], [3, 0, 0]]), torch.tensor([0, 3]))
    assert model.encoder.lengths(ids).tolist() == [2, 1]
