"""Tests for kexue.textkit.losses.margin: cosine classifier and margin softmax losses (spec §2.9, §4)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from kexue.textkit.losses import cosine, margin

F64 = torch.float64
KINDS = list(margin.MARGIN_LOSS_DEFAULTS)


def _cosines(b: int, c: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.empty(b, c, dtype=F64).uniform_(-0.95, 0.95, generator=g)


def test_defaults_from_the_papers() -> None:
    assert margin.MARGIN_LOSS_DEFAULTS["am"] == {"s": 30.0, "m": 0.35}
    assert margin.MARGIN_LOSS_DEFAULTS["cosface"] == {"s": 64.0, "m": 0.35}
    assert margin.MARGIN_LOSS_DEFAULTS["arcface"] == {"s": 64.0, "m": 0.5}


# each public loss function, by the MarginSoftmaxLoss kind it must equal at the defaults
_LOSSES = {
    "am": margin.am_softmax_loss,
    "cosface": margin.cosface_loss,
    "arcface": margin.arcface_loss,
    "sphereface": margin.sphereface_loss,
    "simpler_a": margin.simpler_a_softmax_loss,
}


@pytest.mark.parametrize("kind", sorted(_LOSSES))
def test_functions_equal_the_module_at_the_defaults(kind: str) -> None:
    cos = _cosines(4, 5, 0)
    t = torch.tensor([0, 1, 2, 3])
    torch.testing.assert_close(_LOSSES[kind](cos, t), margin.MarginSoftmaxLoss(kind)(cos, t))


@pytest.mark.parametrize("kind", KINDS)
def test_zero_margin_is_scaled_softmax_ce(kind: str) -> None:
    cos = _cosines(6, 7, 1)
    t = torch.tensor([0, 6, 3, 3, 1, 2])
    m0 = 1 if kind in ("sphereface", "simpler_a") else 0.0  # m = 1 is the identity for those
    got = margin.MarginSoftmaxLoss(kind, s=12.0, m=m0, reduction="none")(cos, t)
    torch.testing.assert_close(
        got, F.cross_entropy(12.0 * cos, t, reduction="none"), rtol=1e-12, atol=1e-12
    )


@pytest.mark.parametrize("kind", KINDS)
def test_sparse_and_dense_targets_agree(kind: str) -> None:
    cos = _cosines(5, 4, 2).requires_grad_(True)
    t = torch.tensor([3, 0, 1, 1, 2])
    dense = F.one_hot(t, 4).to(F64)
    loss_fn = margin.MarginSoftmaxLoss(kind, s=8.0, reduction="none")
    a = loss_fn(cos, t)
    b = loss_fn(cos, dense)
    torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    (ga,) = torch.autograd.grad(a.sum(), cos)
    (gb,) = torch.autograd.grad(b.sum(), cos)
    torch.testing.assert_close(ga, gb, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", ["am", "cosface", "arcface", "sphereface", "simpler_a"])
def test_positive_margin_strictly_larger(kind: str) -> None:
    cos = _cosines(8, 5, 3)
    t = torch.arange(8) % 5
    base = margin.MarginSoftmaxLoss(
        kind, s=10.0, m=1 if kind in ("sphereface", "simpler_a") else 0.0, reduction="none"
    )(cos, t)
    marg = margin.MarginSoftmaxLoss(kind, s=10.0, reduction="none")(cos, t)
    if kind == "simpler_a":  # psi = min(cos 4θ, cos θ): a margin only where cos 4θ < cos θ
        c_t = cos[torch.arange(8), t]
        active = (8 * c_t**4 - 8 * c_t**2 + 1) < c_t
        assert active.any() and (~active).any()
        assert (marg[active] > base[active]).all()
        torch.testing.assert_close(marg[~active], base[~active], rtol=1e-12, atol=0)
    else:
        assert (marg > base).all()


def test_closed_forms_at_known_angles() -> None:
    s = 10.0
    th_o = 1.2  # the other class, at a known angle
    for th_t, kind, m, psi in [
        (math.pi / 3, "am", 0.35, math.cos(math.pi / 3) - 0.35),
        (math.pi / 3, "cosface", 0.2, 0.5 - 0.2),
        (math.pi / 3, "arcface", 0.5, math.cos(math.pi / 3 + 0.5)),
        # θ + m > π: linear fallback cos θ − m·sin(π − m)
        (3.0, "arcface", 0.5, math.cos(3.0) - 0.5 * math.sin(math.pi - 0.5)),
        # k = floor(4·(π/3)/π) = 1: ψ = −cos(4π/3) − 2 = −1.5
        (math.pi / 3, "sphereface", 4, -1.5),
        (0.3, "sphereface", 4, math.cos(1.2)),  # k = 0
        (math.pi / 3, "simpler_a", 4, -0.5),  # min(cos 4π/3, cos π/3)
        (0.1, "simpler_a", 4, math.cos(0.4)),
        (2.0, "simpler_a", 2, min(math.cos(4.0), math.cos(2.0))),
    ]:
        cos = torch.tensor([[math.cos(th_t), math.cos(th_o)]], dtype=F64)
        got = margin.MarginSoftmaxLoss(kind, s=s, m=m)(cos, torch.tensor([0]))
        want = math.log1p(math.exp(s * math.cos(th_o) - s * psi))  # softplus(s cos_o - s psi)
        assert got.item() == pytest.approx(want, rel=1e-10), (kind, th_t)


def test_sphereface_psi_monotone_and_continuous() -> None:
    theta = torch.linspace(0, math.pi, 2001, dtype=F64)
    for m in (1, 2, 3, 4):
        logits = margin.margin_logits(
            theta.cos()[:, None], torch.zeros(2001, dtype=torch.long), kind="sphereface", s=1.0, m=m
        )[:, 0]
        diffs = logits[1:] - logits[:-1]
        assert (diffs < 0).all()  # strictly decreasing, no jumps upward
        assert diffs.abs().max() < 4 * m * math.pi / 2000  # continuous (Lipschitz ≈ m·… )
        assert logits[-1].item() == pytest.approx(-(2 * m - 1), abs=1e-9)


def test_arcface_finite_near_pi() -> None:
    for c in (-1.0, -1.0 + 1e-15, -0.9999999, 1.0, 1.0 - 1e-15):
        for dtype in (torch.float32, F64):
            cos = torch.tensor([[c, 0.3, -0.2]], dtype=dtype, requires_grad=True)
            loss = margin.arcface_loss(cos, torch.tensor([0]))
            (g,) = torch.autograd.grad(loss, cos)
            assert torch.isfinite(loss) and torch.isfinite(g).all(), (c, dtype)
    cos = torch.tensor([[-1.0, 0.0]], dtype=F64)
    want = math.log1p(math.exp(-64 * (-1.0 - 0.5 * math.sin(math.pi - 0.5))))
    assert margin.arcface_loss(cos, torch.tensor([0])).item() == pytest.approx(want, rel=1e-10)


def test_arcface_monotone_with_fallback_and_easy_margin() -> None:
    m = 0.5
    theta = torch.linspace(0, math.pi, 2001, dtype=F64)
    v = margin.margin_logits(
        theta.cos()[:, None], torch.zeros(2001, dtype=torch.long), kind="arcface", s=1.0
    )[:, 0]
    assert (v[1:] < v[:-1]).all()  # cos(θ + m) alone would rise again beyond θ = π − m
    step = margin.margin_logits(
        torch.tensor([[math.cos(math.pi - m - 1e-9)], [math.cos(math.pi - m)]], dtype=F64),
        torch.zeros(2, dtype=torch.long),
        kind="arcface",
        s=1.0,
    )[:, 0]
    # the standard fallback has a downward step of cos m + m sin m - 1 at θ = π − m
    assert (step[0] - step[1]).item() == pytest.approx(math.cos(m) + m * math.sin(m) - 1, abs=1e-6)
    cos = torch.tensor([[-0.3, 0.1], [0.4, 0.1]], dtype=F64)
    easy = margin.margin_logits(cos, torch.tensor([0, 0]), kind="arcface", s=1.0, easy_margin=True)
    assert easy[0, 0].item() == pytest.approx(-0.3)  # no margin where cos <= 0
    assert easy[1, 0].item() == pytest.approx(math.cos(math.acos(0.4) + 0.5))


def test_cosine_classifier_unit_norm_after_a_step() -> None:
    clf = cosine.CosineClassifier(6, 4, generator=torch.Generator().manual_seed(0)).double()
    torch.testing.assert_close(clf.weight.norm(dim=1), torch.ones(4, dtype=F64))
    raw_before = clf.parametrizations.weight.original.detach().clone()
    opt = torch.optim.SGD(clf.parameters(), lr=0.5)
    x = torch.randn(10, 6, dtype=F64, generator=torch.Generator().manual_seed(1))
    y = torch.arange(10) % 4
    cos = clf(x)
    assert cos.abs().max() <= 1 + 1e-12
    torch.testing.assert_close(cos, F.normalize(x, dim=1) @ clf.weight.T)
    margin.am_softmax_loss(cos, y).backward()
    opt.step()
    assert not torch.allclose(clf.parametrizations.weight.original, raw_before)
    torch.testing.assert_close(clf.weight.norm(dim=1), torch.ones(4, dtype=F64), rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="in_features"):
        clf(torch.zeros(2, 5, dtype=F64))


def test_cosine_classifier_learns_separable_classes(one_thread: None) -> None:
    g = torch.Generator().manual_seed(4)
    centers = torch.randn(5, 8, generator=g) * 3
    y = torch.randint(0, 5, (200,), generator=g)
    x = centers[y] + torch.randn(200, 8, generator=g)
    clf = cosine.CosineClassifier(8, 5, generator=g)
    opt = torch.optim.Adam(clf.parameters(), lr=0.05)
    for _ in range(100):
        opt.zero_grad()
        margin.am_softmax_loss(clf(x), y).backward()
        opt.step()
    acc = (clf(x).argmax(1) == y).double().mean().item()
    assert acc > 0.95


@settings(max_examples=20, deadline=None)
@given(
    b=st.integers(1, 6),
    c=st.integers(2, 7),
    kind=st.sampled_from(KINDS),
    red=st.sampled_from(["mean", "sum", "none"]),
)
def test_reductions_and_shapes(b: int, c: int, kind: str, red: str) -> None:
    cos = _cosines(b, c, b * 7 + c)
    t = torch.arange(b) % c
    none = margin.MarginSoftmaxLoss(kind, reduction="none")(cos, t)
    assert none.shape == (b,) and (none >= 0).all()
    want = {"none": none, "sum": none.sum(), "mean": none.mean()}[red]
    torch.testing.assert_close(margin.MarginSoftmaxLoss(kind, reduction=red)(cos, t), want)


def test_bad_inputs_raise() -> None:
    cos = _cosines(4, 3, 5)
    with pytest.raises(ValueError, match=r"target.*\(4, 1\)"):
        margin.am_softmax_loss(cos, torch.zeros(4, 1, dtype=torch.long))
    with pytest.raises(ValueError, match="target"):
        margin.am_softmax_loss(cos, torch.tensor([0, 1, 2, 3]))
    with pytest.raises(ValueError, match="dense target"):
        margin.am_softmax_loss(cos, torch.zeros(4, 4, dtype=F64))
    with pytest.raises(ValueError, match="dense target"):
        margin.am_softmax_loss(cos, torch.zeros(4, 3, dtype=F64))
    with pytest.raises(ValueError, match="cos"):
        margin.am_softmax_loss(cos[0], torch.tensor(0))
    with pytest.raises(ValueError, match="cos"):
        margin.am_softmax_loss(torch.full((4, 3), math.nan), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="m must be a positive integer"):
        margin.sphereface_loss(cos, torch.zeros(4, dtype=torch.long), m=2.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="m must lie"):
        margin.arcface_loss(cos, torch.zeros(4, dtype=torch.long), m=2.0)
    with pytest.raises(ValueError, match="kind"):
        margin.MarginSoftmaxLoss("nope")
    with pytest.raises(ValueError, match="reduction"):
        margin.am_softmax_loss(cos, torch.zeros(4, dtype=torch.long), reduction="avg")
    with pytest.raises(ValueError, match="s must"):
        margin.am_softmax_loss(cos, torch.zeros(4, dtype=torch.long), s=-1.0)


# ------------------------------------------------------------------- cosines outside [-1, 1]


@pytest.mark.parametrize("bad", [1.5, -1.5, 1 + 1e-5])
@pytest.mark.parametrize("kind", KINDS)
def test_cosines_outside_unit_interval_raise(kind: str, bad: float) -> None:
    cos = _cosines(4, 3, 6)
    cos[2, 1] = bad
    t = torch.tensor([0, 1, 2, 0])
    msg = r"^cos must hold cosines in \[-1, 1\] \(tolerance 1e-06 for torch.float64\).*\(4, 3\)"
    with pytest.raises(ValueError, match=msg):
        margin.MarginSoftmaxLoss(kind)(cos, t)
    with pytest.raises(ValueError, match=msg):
        margin.margin_logits(cos, t, kind=kind)
    with pytest.raises(ValueError, match=msg):
        margin.MarginSoftmaxLoss(kind)(cos, F.one_hot(t, 3).to(F64))  # dense targets too
    if kind in _LOSSES:
        with pytest.raises(ValueError, match=msg):
            _LOSSES[kind](cos, t)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_cosines_raise(bad: float) -> None:
    cos = _cosines(4, 3, 6)
    cos[0, 0] = bad
    with pytest.raises(ValueError, match=r"^cos must be finite: .*shape \(4, 3\)"):
        margin.arcface_loss(cos, torch.tensor([0, 1, 2, 0]))


@pytest.mark.parametrize(
    ("dtype", "tol"),
    [
        (torch.float64, 1e-6),
        (torch.float32, 1e-5),
        (torch.float16, 4 * 2.0**-10),
        (torch.bfloat16, 4 * 2.0**-7),
    ],
)
def test_rounding_tolerance_per_dtype(dtype: torch.dtype, tol: float) -> None:
    """Just inside the tolerance is accepted (and gives a finite loss); well past it raises."""
    t = torch.tensor([0, 1])
    inside = torch.tensor([[1.0, 0.0], [0.0, -1.0]], dtype=F64)
    inside[0, 0] += 0.75 * tol
    inside[1, 1] -= 0.75 * tol
    inside = inside.to(dtype)
    assert float(inside.max()) > 1.0 and float(inside.min()) < -1.0  # really past ±1
    for kind in KINDS:
        assert torch.isfinite(margin.MarginSoftmaxLoss(kind)(inside, t).float())
    outside = torch.tensor([[1.0 + 4 * tol, 0.0], [0.0, 0.0]], dtype=dtype)
    with pytest.raises(ValueError, match="cos must hold cosines"):
        margin.arcface_loss(outside, t)


def test_cosine_classifier_float32_output_is_accepted() -> None:
    """float32 cosines of identical directions (the worst rounding case) pass the check."""
    g = torch.Generator().manual_seed(3)
    clf = cosine.CosineClassifier(512, 64, generator=g)
    x = clf.weight.detach() * torch.rand(64, 1, generator=g) * 3  # each row on its class vector
    cos = clf(x)
    assert cos.dtype == torch.float32
    loss = margin.arcface_loss(cos, torch.arange(64))
    assert torch.isfinite(loss)


def test_target_range_checked() -> None:
    cos = _cosines(4, 3, 5)
    with pytest.raises(ValueError, match=r"target class ids must lie in \[0, 3\)"):
        margin.am_softmax_loss(cos, torch.tensor([0, 1, 3, 0]))
    with pytest.raises(ValueError, match=r"target class ids must lie in \[0, 3\)"):
        margin.am_softmax_loss(cos, torch.tensor([0, -1, 2, 0]))
    dense = torch.full((4, 3), 1 / 3, dtype=F64)
    dense[1] = torch.tensor([0.5, math.nan, 0.5])
    with pytest.raises(ValueError, match="dense target rows"):
        margin.am_softmax_loss(cos, dense)


# --------------------------------------------------------------------------- host-sync budget


@pytest.mark.parametrize("kind", ["am", "arcface", "sphereface"])
def test_one_training_step_costs_one_host_sync(kind: str, host_syncs) -> None:
    """CosineClassifier → MarginSoftmaxLoss → backward → SGD step: the loss checks cos and target
    in one fused transfer (before: 3, ``isfinite(cos).all()``, ``target.min()``, ``target.max()``)."""
    g = torch.Generator().manual_seed(0)
    clf = cosine.CosineClassifier(8, 5, generator=g)
    loss_fn = margin.MarginSoftmaxLoss(kind)
    opt = torch.optim.SGD(clf.parameters(), lr=0.1)
    x, t = torch.randn(6, 8, generator=g), torch.tensor([0, 1, 2, 3, 4, 0])
    host_syncs.reset()
    opt.zero_grad()
    loss = loss_fn(clf(x), t)
    loss.backward()
    opt.step()
    assert host_syncs.names == ["tolist"]
    host_syncs.reset()
    loss_fn(clf(x), F.one_hot(t, 5).float())  # dense target: also one
    assert host_syncs.names == ["tolist"]
    host_syncs.reset()
    loss_fn.forward_unchecked(clf(x), t)  # the trusted core: none
    assert host_syncs.count == 0
