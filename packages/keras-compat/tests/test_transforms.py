"""Update and gradient transforms (spec §2.3, §2.4, §2.6–2.8, §3.1)."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from kexue.keras_compat.optim._chain import extend
from kexue.keras_compat.optim.transforms import (
    AGC,
    DeltaScale,
    GradClip,
    GradTransform,
    LayerAdaptation,
    LazyRows,
    Lookahead,
    WeightDecay,
)

LR, WD = 0.1, 0.2


def _mlp() -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 2)).double()


def _loss(model: nn.Module, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(8, 3, generator=g, dtype=torch.float64)
    return (model(x) ** 2).mean()


def _train(model, opt, steps=4):
    for i in range(steps):
        opt.zero_grad()
        _loss(model, i).backward()
        opt.step()


# ---------------------------------------------------------------- weight decay
def test_weight_decay_zero_grads_exact_shrink_and_exclusions_bitwise() -> None:
    model = _mlp()
    opt = torch.optim.SGD(model.named_parameters(), lr=LR)
    extend(opt, WeightDecay(WD, exclude=[r"bias$"]))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for _ in range(3):
        for p in model.parameters():
            p.grad = torch.zeros_like(p)
        opt.step()
    for n, p in model.named_parameters():
        if n.endswith("bias"):
            assert torch.equal(p, before[n])
        else:
            torch.testing.assert_close(p, before[n] * (1 - LR * WD) ** 3, rtol=1e-14, atol=0)


def test_weight_decay_on_adam_equals_adamw() -> None:
    a, b = _mlp(), _mlp()
    opt_a = torch.optim.Adam(a.parameters(), lr=LR)
    extend(opt_a, WeightDecay(WD))
    _train(a, opt_a)
    _train(b, torch.optim.AdamW(b.parameters(), lr=LR, weight_decay=WD))
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(pa, pb, rtol=1e-12, atol=1e-14)


# ---------------------------------------------------------------- layer adaptation
def test_layer_adaptation_update_norm_and_fallback_and_exclusion() -> None:
    model = _mlp()
    with torch.no_grad():
        model[2].bias.zero_()  # zero-norm parameter: plain update
    base = copy.deepcopy(model)
    opt = torch.optim.SGD(model.named_parameters(), lr=LR)
    extend(opt, LayerAdaptation(exclude=[r"^0\.bias$"]))
    old = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt.zero_grad()
    _loss(model).backward()
    opt.step()
    ref_opt = torch.optim.SGD(base.parameters(), lr=LR)
    _loss(base).backward()
    ref_opt.step()
    ref = dict(base.named_parameters())
    for n, p in model.named_parameters():
        if n in ("0.bias", "2.bias"):
            assert torch.equal(p, ref[n]), n  # excluded / zero norm: the plain update, bitwise
        else:
            got = torch.linalg.vector_norm(p - old[n])
            torch.testing.assert_close(
                got, LR * torch.linalg.vector_norm(old[n]), rtol=1e-12, atol=0
            )


def test_order_weight_decay_then_layer_adaptation_differs_from_reverse() -> None:
    results = []
    for order in ((WeightDecay(WD), LayerAdaptation()), (LayerAdaptation(), WeightDecay(WD))):
        model = _mlp()
        opt = torch.optim.SGD(model.parameters(), lr=LR)
        extend(opt, *order)
        _train(model, opt, steps=1)
        results.append(model[0].weight.detach().clone())
    # decay first: the trust ratio sees the decayed update, so ‖Δ‖ = lr‖x‖ still holds
    m0 = _mlp()[0].weight.detach()
    torch.testing.assert_close(
        torch.linalg.vector_norm(results[0] - m0),
        LR * torch.linalg.vector_norm(m0),
        rtol=1e-12,
        atol=0,
    )
    assert not torch.allclose(results[0], results[1])


# ---------------------------------------------------------------- Lookahead
def test_lookahead_k1_alpha1_equals_base() -> None:
    a, b = _mlp(), _mlp()
    opt_a = torch.optim.Adam(a.parameters(), lr=LR)
    extend(opt_a, Lookahead(k=1, alpha=1.0))
    _train(a, opt_a)
    _train(b, torch.optim.Adam(b.parameters(), lr=LR))
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(pa, pb, rtol=0, atol=0)


def test_lookahead_closed_form_no_shrink_at_first_sync() -> None:
    p = nn.Parameter(torch.tensor([1.0], dtype=torch.float64))
    opt = torch.optim.SGD([p], lr=0.1)
    la = Lookahead(k=2, alpha=0.5)
    extend(opt, la)
    for _ in range(2):
        p.grad = torch.ones_like(p)
        opt.step()
    # fast went 1 -> 0.8; slow started as a copy (1.0): 1 + 0.5·(0.8 − 1) = 0.9 (zero start: 0.4)
    torch.testing.assert_close(
        p.detach(), torch.tensor([0.9], dtype=torch.float64), rtol=0, atol=1e-15
    )
    assert la.state_dict()["step"] == 2
    torch.testing.assert_close(la.state_dict()["slow"][0], p.detach(), rtol=0, atol=0)


def test_lookahead_resume_mid_cycle_reproduces_uninterrupted_run() -> None:
    ref = _mlp()
    opt = torch.optim.Adam(ref.parameters(), lr=LR)
    extend(opt, Lookahead(k=3, alpha=0.5))
    _train(ref, opt, steps=7)

    first = _mlp()
    opt1 = torch.optim.Adam(first.parameters(), lr=LR)
    extend(opt1, Lookahead(k=3, alpha=0.5))
    for i in range(4):  # 4 = mid-cycle
        opt1.zero_grad()
        _loss(first, i).backward()
        opt1.step()
    ckpt = copy.deepcopy({"model": first.state_dict(), "opt": opt1.state_dict()})
    assert "lookahead" in ckpt["opt"]["kexue_chain"]  # slow weights travel with the optimizer

    resumed = _mlp()
    resumed.load_state_dict(ckpt["model"])
    opt2 = torch.optim.Adam(resumed.parameters(), lr=LR)
    la = Lookahead(k=3, alpha=0.5)
    extend(opt2, la)
    opt2.load_state_dict(ckpt["opt"])
    assert la.step == 4
    for i in range(4, 7):
        opt2.zero_grad()
        _loss(resumed, i).backward()
        opt2.step()
    for pa, pb in zip(ref.parameters(), resumed.parameters(), strict=True):
        torch.testing.assert_close(pa, pb, rtol=0, atol=0)


@pytest.mark.parametrize(("kwargs", "match"), [({"k": 0}, "k"), ({"alpha": 1.5}, "alpha")])
def test_lookahead_bad_input(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        Lookahead(**kwargs)


# ---------------------------------------------------------------- lazy rows
def test_lazy_rows() -> None:
    torch.manual_seed(0)
    emb, lin = nn.Embedding(6, 4).double(), nn.Linear(4, 1).double()
    model = nn.ModuleDict({"emb": emb, "lin": lin})
    dense = copy.deepcopy(model)
    idx = torch.tensor([0, 2, 2, 5])

    def loss(m):
        return m["lin"](m["emb"](idx)).pow(2).mean()

    opt = torch.optim.Adam(model.named_parameters(), lr=LR)
    extend(opt, LazyRows(include=[r"^emb\."]))
    before = emb.weight.detach().clone()
    loss(model).backward()
    opt.step()
    ref_opt = torch.optim.Adam(dense.parameters(), lr=LR)
    loss(dense).backward()
    ref_opt.step()
    untouched = torch.tensor([1, 3, 4])
    assert torch.equal(emb.weight[untouched], before[untouched])
    # rows with a gradient match dense Adam at step 1; dense Adam moved the others (weight kept)
    torch.testing.assert_close(emb.weight[idx], dense["emb"].weight[idx], rtol=0, atol=0)
    assert torch.equal(dense["emb"].weight[untouched], before[untouched])  # Adam: zero grad, m=0
    for n in ("weight", "bias"):
        assert torch.equal(getattr(lin, n), getattr(dense["lin"], n))


def test_lazy_rows_second_step_differs_from_dense_adam() -> None:
    # at step 2, Adam moves zero-grad rows through momentum; lazy rows keep them bitwise
    emb = nn.Embedding(4, 2).double()
    opt = torch.optim.Adam(emb.parameters(), lr=LR)
    extend(opt, LazyRows())
    emb(torch.tensor([0, 1])).sum().backward()
    opt.step()
    opt.zero_grad()
    kept = emb.weight[1].detach().clone()
    emb(torch.tensor([0])).sum().backward()
    opt.step()
    assert torch.equal(emb.weight[1], kept)
    assert opt.state[emb.weight]["exp_avg"][1].abs().sum() > 0  # moments still decay


# ---------------------------------------------------------------- gradient transforms
def _set_grads(model: nn.Module) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(5)
    grads = {}
    for n, p in model.named_parameters():
        p.grad = torch.randn(p.shape, generator=g, dtype=p.dtype) * 3
        grads[n] = p.grad.clone()
    return grads


def _clip_grads(scope: str, max_norm: float = 1.0):
    model = _mlp()
    opt = torch.optim.SGD(
        [
            {"params": list(model[0].parameters()), "param_names": ["0.weight", "0.bias"]},
            {"params": list(model[2].parameters()), "param_names": ["2.weight", "2.bias"]},
        ],
        lr=0.0,
    )
    clip = GradClip(max_norm, scope=scope)
    extend(opt, clip)
    raw = _set_grads(model)
    opt.step()
    return model, raw, clip


def _coef(norm: torch.Tensor, max_norm: float = 1.0) -> torch.Tensor:
    return (max_norm / (norm + 1e-6)).clamp(max=1.0)


def test_clip_scope_tensor() -> None:
    model, raw, clip = _clip_grads("tensor")
    for n, p in model.named_parameters():
        norm = torch.linalg.vector_norm(raw[n])
        torch.testing.assert_close(p.grad, raw[n] * _coef(norm), rtol=1e-12, atol=0)
        torch.testing.assert_close(clip.last_norms[n], norm, rtol=1e-12, atol=0)
        assert torch.linalg.vector_norm(p.grad) <= 1.0


def test_clip_scope_group() -> None:
    model, raw, _ = _clip_grads("group")
    for prefix in ("0.", "2."):
        names = [n for n in raw if n.startswith(prefix)]
        total = torch.linalg.vector_norm(torch.stack([raw[n].norm() for n in names]))
        for n in names:
            got = dict(model.named_parameters())[n].grad
            torch.testing.assert_close(got, raw[n] * _coef(total), rtol=1e-12, atol=0)


def test_clip_scope_global_equals_clip_grad_norm() -> None:
    model, raw, clip = _clip_grads("global")
    ref = _mlp()
    for n, p in ref.named_parameters():
        p.grad = raw[n].clone()
    total = torch.nn.utils.clip_grad_norm_(ref.parameters(), 1.0)
    torch.testing.assert_close(clip.last_total_norm, total, rtol=1e-12, atol=0)
    for p, q in zip(model.parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-12, atol=0)


def test_value_clip_and_unmatched_untouched() -> None:
    model = _mlp()
    opt = torch.optim.SGD(model.named_parameters(), lr=0.0)
    extend(opt, GradClip(max_value=0.5, exclude=[r"^2\."]))
    raw = _set_grads(model)
    opt.step()
    for n, p in model.named_parameters():
        if n.startswith("2."):
            assert torch.equal(p.grad, raw[n])
        else:
            assert torch.equal(p.grad, raw[n].clamp(-0.5, 0.5))


def test_agc_matches_timm_formula() -> None:
    model = _mlp()
    opt = torch.optim.SGD(model.named_parameters(), lr=0.0)
    extend(opt, AGC(0.05, include=[r"weight$"]))
    raw = _set_grads(model)
    opt.step()
    for n, p in model.named_parameters():
        if not n.endswith("weight"):
            assert torch.equal(p.grad, raw[n])
            continue
        pn = p.detach().norm(dim=1, keepdim=True).clamp(min=1e-3) * 0.05
        gn = raw[n].norm(dim=1, keepdim=True)
        expected = torch.where(gn < pn, raw[n], raw[n] * pn / gn.clamp(min=1e-6))
        torch.testing.assert_close(p.grad, expected, rtol=1e-12, atol=0)
        assert (p.grad.norm(dim=1) <= pn.squeeze(1) * (1 + 1e-9)).all()


def test_grad_transform_callable_and_bad_shape() -> None:
    model = _mlp()
    opt = torch.optim.SGD(model.named_parameters(), lr=0.0)
    extend(opt, GradTransform(lambda g: g.sign(), include=[r"^0\."]), GradTransform(torch.neg_))
    raw = _set_grads(model)
    opt.step()
    for n, p in model.named_parameters():
        want = -raw[n].sign() if n.startswith("0.") else -raw[n]
        assert torch.equal(p.grad, want)
    opt2 = torch.optim.SGD(model.parameters(), lr=0.0)
    extend(opt2, GradTransform(lambda g: g.sum()))
    with pytest.raises(ValueError, match="fn"):
        opt2.step()


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: GradClip(), "max_norm"),
        (lambda: GradClip(-1.0), "max_norm"),
        (lambda: GradClip(1.0, scope="layer"), "scope"),
        (lambda: GradClip(1.0, include=["("]), "include"),
        (lambda: AGC(0.0), "clip_factor"),
        (lambda: GradTransform(3), "fn"),
        (lambda: WeightDecay(float("nan")), "rate"),
        (lambda: LayerAdaptation(eps=0.0), "eps"),
        (lambda: DeltaScale([1.0]), "scales"),
        (lambda: DeltaScale({"a": 1.0}, match="glob"), "match"),
    ],
)
def test_bad_input(make, match) -> None:
    with pytest.raises(ValueError, match=match):
        make()


def test_patterns_need_names() -> None:
    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="names"):
        extend(opt, WeightDecay(0.1, exclude=["bias"]))
    extend(opt, WeightDecay(0.1, exclude=["bias"]), model=model)  # names from model=
