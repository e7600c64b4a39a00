"""Tests for kexue.textkit.losses.jose: spherical loss, Riemannian SGD, a tiny JoSE model (spec §2.10)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from kexue.textkit.losses import jose

F64 = torch.float64


def _unit(*shape: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(*shape, dtype=F64, generator=g), dim=-1)


def test_jose_loss_value_matches_formula() -> None:
    u, v, d = _unit(5, 4, seed=0), _unit(5, 4, seed=1), _unit(5, 4, seed=2)
    neg = _unit(5, 3, 4, seed=3)
    got = jose.jose_loss(u, v, d, neg, margin=0.15, reduction="none")
    want = torch.zeros(5, dtype=F64)
    for b in range(5):
        for j in range(3):
            cvu = F.cosine_similarity(v[b], u[b], dim=0)
            cdu = F.cosine_similarity(d[b], u[b], dim=0)
            cvn = F.cosine_similarity(v[b], neg[b, j], dim=0)
            cdn = F.cosine_similarity(d[b], neg[b, j], dim=0)
            want[b] += max(0.0, 0.15 - cvu - cdu + cvn + cdn)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(jose.jose_loss(u, v, d, neg), want.mean())
    torch.testing.assert_close(jose.jose_loss(u, v, d, neg, reduction="sum"), want.sum())
    # (B, D) negatives = one negative each
    torch.testing.assert_close(
        jose.jose_loss(u, v, d, neg[:, 0], reduction="none"),
        jose.jose_loss(u, v, d, neg[:, :1], reduction="none"),
    )


def test_zero_loss_and_gradient_once_margin_met() -> None:
    e = torch.eye(4, dtype=F64)
    u = e[0:1].clone().requires_grad_(True)
    v = F.normalize(e[0:1] + 0.1 * e[1:2], dim=1).requires_grad_(True)
    d = F.normalize(e[0:1] + 0.1 * e[2:3], dim=1).requires_grad_(True)
    neg = (-e[0:1]).clone().requires_grad_(True)  # far away: margin met by ~4
    loss = jose.jose_loss(u, v, d, neg)
    assert loss.item() == 0.0
    grads = torch.autograd.grad(loss, (u, v, d, neg))
    assert all(torch.equal(g, torch.zeros_like(g)) for g in grads)
    # exactly at the boundary the loss is 0 with zero gradient too (relu, not clamp)
    margin = (2 * (v * u).sum() - 0 - 0).item()  # cos(v,u) + cos(d,u) with d = v
    loss_b = jose.jose_loss(u, v, v, F.normalize(e[3:4], dim=1), margin=margin)
    assert abs(loss_b.item()) < 1e-15
    # and a violated margin gives a positive loss with non-zero gradients
    loss_v = jose.jose_loss(u, v, d, u.detach() * 1.0)
    assert loss_v.item() == pytest.approx(0.15)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), scale=st.sampled_from([1e-8, 1.0, 1e6]))
def test_tangent_orthogonal_and_factor_in_range(seed: int, scale: float) -> None:
    x = _unit(6, 5, seed=seed)
    g = torch.randn(6, 5, dtype=F64, generator=torch.Generator().manual_seed(seed + 1)) * scale
    g[0] = 3.0 * x[0] * scale  # pointing along +x: factor 2, tangent 0
    g[1] = -2.0 * x[1] * scale  # along -x: factor 0
    g[2] = 0.0  # no gradient: factor 1
    t = jose.sphere_tangent_grad(x, g)
    torch.testing.assert_close(
        (x * t).sum(-1), torch.zeros(6, dtype=F64), rtol=0, atol=1e-12 * scale
    )
    f = jose.sphere_step_factor(x, g)
    assert f.shape == (6, 1)
    assert ((f >= 0) & (f <= 2)).all()
    torch.testing.assert_close(f[:3, 0], torch.tensor([2.0, 0.0, 1.0], dtype=F64))
    cos = (x[3:] * g[3:]).sum(-1) / g[3:].norm(dim=-1)  # (F.cosine_similarity clamps tiny norms)
    torch.testing.assert_close(f[3:, 0], 1 + cos)
    new = jose.sphere_sgd_step(x, g, 0.1)
    torch.testing.assert_close(new.norm(dim=-1), torch.ones(6, dtype=F64))
    assert torch.equal(new[2], x[2])  # untouched without gradient


def test_sphere_step_closed_form() -> None:
    x = torch.tensor([[1.0, 0.0]], dtype=F64)
    g = torch.tensor([[1.0, -1.0]], dtype=F64)  # cos(x, g) = 1/sqrt2, tangent (0, -1)
    lr = 0.1
    factor = 1 + 1 / math.sqrt(2)
    want = F.normalize(torch.tensor([[1.0, lr * factor]], dtype=F64), dim=1)
    torch.testing.assert_close(jose.sphere_sgd_step(x, g, lr), want)


def test_riemannian_sgd_keeps_unit_norm_every_step_dense_and_sparse() -> None:
    g = torch.Generator().manual_seed(5)
    emb = torch.nn.Embedding(12, 6, sparse=True).double()
    dense = torch.nn.Parameter(torch.randn(12, 6, dtype=F64, generator=g))
    with torch.no_grad():
        emb.weight.copy_(dense)
    opt_s, opt_d = jose.RiemannianSGD(emb.parameters(), lr=0.3), jose.RiemannianSGD([dense], lr=0.3)
    opt_s.project_()
    opt_d.project_()
    target = _unit(6, seed=6)
    start = (dense.detach() @ target).mean().item()
    for _ in range(15):
        ids = torch.randint(0, 12, (4,), generator=g)
        for opt, table in ((opt_s, None), (opt_d, dense)):
            opt.zero_grad()
            rows = emb(ids) if table is None else table[ids]
            (-(rows @ target).sum()).backward()
            opt.step()
        torch.testing.assert_close(emb.weight.norm(dim=1), torch.ones(12, dtype=F64))
        torch.testing.assert_close(dense.norm(dim=1), torch.ones(12, dtype=F64))
    torch.testing.assert_close(emb.weight, dense)  # sparse path == dense path
    # maximising <x, target> on the sphere moves the rows towards target
    assert (dense.detach() @ target).mean().item() > start + 0.5


def test_planted_two_topic_corpus_same_topic_closer(one_thread: None) -> None:
    g = torch.Generator().manual_seed(7)
    n_docs, length = 40, 25
    docs = []
    for i in range(n_docs):
        base = 0 if i % 2 == 0 else 10  # topic A: words 0-9, topic B: words 10-19
        docs.append((base + torch.randint(0, 10, (length,), generator=g)).tolist())
    model = jose.JoSE(20, n_docs, dim=16, generator=g)
    history = model.fit(docs, epochs=3, window=2, lr=0.5, batch_size=256, generator=g)
    assert history[-1] < history[0]
    for p in model.parameters():
        torch.testing.assert_close(p.norm(dim=1), torch.ones(p.shape[0]))
    w = model.word.detach()
    sim = w @ w.T
    topic = torch.arange(20) // 10
    same = topic[:, None] == topic[None, :]
    off_diag = ~torch.eye(20, dtype=torch.bool)
    intra = sim[same & off_diag].mean().item()
    inter = sim[~same].mean().item()
    assert intra - inter > 0.5, (intra, inter)
    # every word's nearest other word is from its own topic
    nearest = sim.masked_fill(~off_diag, -2).argmax(1)
    assert torch.equal(topic[nearest], topic)
    docs_v = model.doc.detach()
    doc_topic = torch.arange(n_docs) % 2
    doc_sim = docs_v @ docs_v.T
    dsame = doc_topic[:, None] == doc_topic[None, :]
    assert doc_sim[dsame].mean() > doc_sim[~dsame].mean() + 0.3


def test_triples_and_bad_inputs() -> None:
    t = jose.JoSE.triples([[1, 2, 3]], window=1)
    assert t.tolist() == [[1, 2, 0], [2, 1, 0], [2, 3, 0], [3, 2, 0]]
    u = _unit(3, 4, seed=8)
    with pytest.raises(ValueError, match="context"):
        jose.jose_loss(u, u[:2], u, u)
    with pytest.raises(ValueError, match="negatives"):
        jose.jose_loss(u, u, u, _unit(3, 2, 5, seed=9))
    with pytest.raises(ValueError, match="reduction"):
        jose.jose_loss(u, u, u, u, reduction="avg")
    with pytest.raises(ValueError, match="margin"):
        jose.jose_loss(u, u, u, u, margin=-1.0)
    with pytest.raises(ValueError, match="lr"):
        jose.RiemannianSGD([torch.nn.Parameter(u)], lr=-1.0)
    with pytest.raises(ValueError, match="x and grad"):
        jose.sphere_tangent_grad(u, u[:2])
    model = jose.JoSE(5, 2, dim=4)
    with pytest.raises(ValueError, match="documents"):
        model.fit([[0, 1]])
    with pytest.raises(ValueError, match="word ids"):
        model.fit([[0, 7], [1, 2]])
    with pytest.raises(ValueError, match="window"):
        jose.JoSE.triples([[0, 1]], window=0)


@pytest.mark.parametrize("bad", [math.nan, math.inf])
@pytest.mark.parametrize("name", ["word", "context", "doc", "negatives"])
def test_jose_loss_rejects_non_finite_naming_argument_and_shape(name: str, bad: float) -> None:
    args = {"word": _unit(3, 4, seed=1), "context": _unit(3, 4, seed=2), "doc": _unit(3, 4, seed=3)}
    args["negatives"] = _unit(3, 2, 4, seed=4)
    args[name][1, -1] = bad
    shape = r"\(3, 2, 4\)" if name == "negatives" else r"\(3, 4\)"
    with pytest.raises(ValueError, match=rf"^{name} must be finite: .*shape {shape}"):
        jose.jose_loss(**args)


def test_sphere_ops_reject_non_finite() -> None:
    x = _unit(3, 4, seed=5)
    grad = torch.ones(3, 4, dtype=F64)
    grad[2, 0] = math.nan
    for fn in (jose.sphere_tangent_grad, jose.sphere_step_factor):
        with pytest.raises(ValueError, match=r"^grad must be finite: .*shape \(3, 4\)"):
            fn(x, grad)
    with pytest.raises(ValueError, match=r"^grad must be finite"):
        jose.sphere_sgd_step(x, grad, 0.1)


def test_model_loss_and_optimizer_step_sync_free(host_syncs) -> None:
    """JoSE.loss runs the trusted core on its own rows and RiemannianSGD the step core: a training
    step has no host sync (the public jose_loss on the same rows costs one)."""
    g = torch.Generator().manual_seed(0)
    model = jose.JoSE(6, 2, dim=4, generator=g)
    opt = jose.RiemannianSGD(model.parameters(), lr=0.1)
    ids = torch.tensor([0, 1, 2]), torch.tensor([1, 2, 3]), torch.tensor([0, 1, 1])
    neg = torch.tensor([[4, 5], [5, 4], [3, 0]])
    host_syncs.reset()
    opt.zero_grad()
    loss = model.loss(*ids, neg)
    loss.backward()
    opt.step()
    assert host_syncs.count == 0, host_syncs.names
    want = jose.jose_loss(
        model.word[ids[0]], model.context[ids[1]], model.doc[ids[2]], model.word[neg]
    )
    assert host_syncs.names == ["tolist"]
    torch.testing.assert_close(model.loss(*ids, neg), want, rtol=0, atol=0)
    with pytest.raises(ValueError, match="negatives must be integer ids"):
        model.loss(*ids, neg[:2])


def test_fit_syncs_once_per_epoch_not_per_step(host_syncs) -> None:
    """fit() sums the epoch loss on the device (before: ``loss.item()`` every step)."""
    docs = [[0, 1, 2, 3, 4, 5], [5, 4, 3, 2, 1, 0]]
    counts = []
    for epochs in (1, 3):
        model = jose.JoSE(6, 2, dim=4, generator=torch.Generator().manual_seed(0))
        host_syncs.reset()
        history = model.fit(
            docs, epochs=epochs, batch_size=4, window=2, generator=torch.Generator().manual_seed(1)
        )
        assert len(history) == epochs and all(math.isfinite(h) for h in history)
        counts.append(host_syncs.count)
    steps_per_epoch = math.ceil(len(jose.JoSE.triples(docs, window=2)) / 4)
    assert steps_per_epoch > 1
    assert counts[1] - counts[0] == 2  # one per extra epoch, whatever the steps per epoch
