"""Tests for kexue.textkit.losses.sampled: NCE, NEG, sampled softmax and the noise sampler (spec §4)."""

from __future__ import annotations

import math
import re

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from kexue.textkit.losses import sampled

F64 = torch.float64


def _lbfgs(params: list[torch.Tensor], closure_loss, steps: int = 200) -> None:
    opt = torch.optim.LBFGS(
        params,
        lr=1.0,
        max_iter=steps,
        tolerance_grad=1e-12,
        tolerance_change=1e-14,
        line_search_fn="strong_wolfe",
    )

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = closure_loss()
        loss.backward()
        return loss

    opt.step(closure)


def _split_terms(fn, pos: torch.Tensor, log_q: torch.Tensor | None, **kw) -> tuple:
    """Per-row positive term sp(-l(x)) and negative term sp(l(x)) of a binary loss at x."""
    empty = pos.new_zeros(pos.shape[0], 0)
    if log_q is None:
        pos_term = fn(pos, empty, reduction="none", **kw)
        both = fn(pos, pos.unsqueeze(1), reduction="none", **kw)
    else:
        pos_term = fn(pos, empty, log_q, empty, reduction="none", **kw)
        both = fn(pos, pos.unsqueeze(1), log_q, log_q.unsqueeze(1), reduction="none", **kw)
    return pos_term, both - pos_term


# ----------------------------------------------------------------------------------------- NCE


@pytest.mark.parametrize("gamma_mode", ["none", "per_context"])
def test_nce_exact_expectation_recovers_log_p(gamma_mode: str) -> None:
    g = torch.Generator().manual_seed(0)
    n_ctx, V, k = 3, 5, 4
    p = torch.softmax(torch.randn(n_ctx, V, dtype=F64, generator=g) * 1.5, dim=1)
    q = torch.tensor([0.1, 0.15, 0.2, 0.22, 0.33], dtype=F64)
    log_q = q.log().repeat(n_ctx)
    table = torch.zeros(n_ctx, V, dtype=F64, requires_grad=True)
    gamma_c = torch.zeros(n_ctx, dtype=F64, requires_grad=True)
    params = [table, gamma_c] if gamma_mode == "per_context" else [table]

    def expected_loss() -> torch.Tensor:
        gamma = gamma_c.repeat_interleave(V) if gamma_mode == "per_context" else None
        pos_t, neg_t = _split_terms(sampled.nce_loss, table.reshape(-1), log_q, k=k, gamma=gamma)
        w_pos = p.reshape(-1)
        w_neg = k * q.repeat(n_ctx)
        return (w_pos * pos_t + w_neg * neg_t).sum()

    _lbfgs(params, expected_loss, steps=60)
    s = table.detach() - (gamma_c.detach()[:, None] if gamma_mode == "per_context" else 0.0)
    torch.testing.assert_close(s, p.log(), atol=1e-3, rtol=0)
    # not trivially: the uncorrected (NEG) optimum log p - log(k q) differs by > 0.1 everywhere
    assert (math.log(k) + q.log()).abs().min() > 0.1


def test_nce_uncorrected_equals_neg_and_gamma_shift() -> None:
    g = torch.Generator().manual_seed(1)
    pos = torch.randn(6, dtype=F64, generator=g)
    neg = torch.randn(6, 3, dtype=F64, generator=g)
    for red in ("mean", "sum", "none"):
        torch.testing.assert_close(
            sampled.nce_loss(pos, neg, None, None, correct=False, reduction=red),
            sampled.neg_sampling_loss(pos, neg, reduction=red),
            rtol=1e-12,
            atol=1e-12,
        )
    # the correction equals a shift of every logit by log(k q)
    lq_pos = torch.rand(6, dtype=F64, generator=g).log()
    lq_neg = torch.rand(3, dtype=F64, generator=g).log()  # shared negatives (k,)
    got = sampled.nce_loss(pos, neg, lq_pos, lq_neg, gamma=0.3, reduction="none")
    want = sampled.neg_sampling_loss(
        pos - 0.3 - math.log(3) - lq_pos, neg - 0.3 - math.log(3) - lq_neg, reduction="none"
    )
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    # closed form for one example
    x = sampled.nce_loss(
        torch.tensor([0.0], dtype=F64), torch.tensor([[0.0]], dtype=F64), None, None, correct=False
    )
    torch.testing.assert_close(x, torch.tensor(2 * math.log(2.0), dtype=F64))


def test_neg_exact_expectation_gives_shifted_pmi() -> None:
    g = torch.Generator().manual_seed(2)
    counts = torch.randint(1, 30, (4, 6), generator=g).to(F64)
    p_wc = counts / counts.sum()
    p_w = p_wc.sum(1, keepdim=True)
    p_c = p_wc.sum(0, keepdim=True)  # unigram noise over contexts (power 1)
    k = 5
    pmi = (p_wc / (p_w * p_c)).log()
    x = torch.zeros(4, 6, dtype=F64, requires_grad=True)

    def expected_loss() -> torch.Tensor:
        pos_t, neg_t = _split_terms(sampled.neg_sampling_loss, x.reshape(-1), None)
        return (p_wc.reshape(-1) * pos_t + (k * p_w * p_c).reshape(-1) * neg_t).sum()

    _lbfgs([x], expected_loss)
    torch.testing.assert_close(x.detach(), pmi - math.log(k), atol=1e-6, rtol=0)

    # factorised form u_w . v_c (dim 4 = rank of a 4 x 6 matrix, so the optimum is reachable)
    u = (0.1 * torch.randn(4, 4, dtype=F64, generator=g)).requires_grad_(True)
    v = (0.1 * torch.randn(6, 4, dtype=F64, generator=g)).requires_grad_(True)

    def expected_loss_uv() -> torch.Tensor:
        pos_t, neg_t = _split_terms(sampled.neg_sampling_loss, (u @ v.T).reshape(-1), None)
        return (p_wc.reshape(-1) * pos_t + (k * p_w * p_c).reshape(-1) * neg_t).sum()

    _lbfgs([u, v], expected_loss_uv, steps=2000)
    torch.testing.assert_close((u @ v.T).detach(), pmi - math.log(k), atol=1e-3, rtol=0)


# ------------------------------------------------------------------------------------- sampler

_CHI2_CRIT_DF9_P001 = 27.877  # chi-square 0.999 quantile, 9 degrees of freedom


def _chi2(obs: torch.Tensor, probs: torch.Tensor) -> float:
    exp = probs * obs.sum()
    return float(((obs - exp) ** 2 / exp).sum())


def test_sampler_chi2_matches_count_power() -> None:
    counts = torch.tensor([1, 3, 7, 20, 50, 120, 300, 800, 2000, 5000], dtype=F64)
    sampler = sampled.NoiseSampler(counts)
    want = counts**0.75 / (counts**0.75).sum()
    torch.testing.assert_close(sampler.probs, want, rtol=1e-12, atol=0)
    draws = sampler.sample(1_000_000, generator=torch.Generator().manual_seed(3))
    assert draws.dtype == torch.int64 and draws.shape == (1_000_000,)
    obs = torch.bincount(draws, minlength=10).to(F64)
    assert _chi2(obs, want) < _CHI2_CRIT_DF9_P001
    # the test has power: the plain unigram (power=1) is rejected by a wide margin
    unigram = counts / counts.sum()
    assert _chi2(obs, unigram) > 100 * _CHI2_CRIT_DF9_P001
    torch.testing.assert_close(sampler.log_q(torch.arange(10)), want.log())


def test_sampler_power_zero_uniform_and_zero_counts() -> None:
    counts = torch.tensor([5.0, 0.0, 1.0, 100.0, 2.0, 7.0, 9.0, 1.0, 3.0, 4.0])
    uni = sampled.NoiseSampler(counts, power=0.0)
    torch.testing.assert_close(uni.probs, torch.full((10,), 0.1, dtype=F64))
    draws = uni.sample((1000, 1000), generator=torch.Generator().manual_seed(4))
    assert draws.shape == (1000, 1000)
    obs = torch.bincount(draws.reshape(-1), minlength=10).to(F64)
    assert _chi2(obs, uni.probs) < _CHI2_CRIT_DF9_P001
    # with power > 0 a zero count is never drawn and has log q = -inf
    s = sampled.NoiseSampler(counts, power=1.0)
    draws = s.sample(200_000, generator=torch.Generator().manual_seed(5))
    assert int((draws == 1).sum()) == 0
    assert s.log_q(torch.tensor([1])).item() == -math.inf


def test_sampler_generator_reproducible_and_unique_draws() -> None:
    s = sampled.NoiseSampler([1.0, 2.0, 3.0, 4.0])
    a = s.sample((3, 7), generator=torch.Generator().manual_seed(9))
    b = s.sample((3, 7), generator=torch.Generator().manual_seed(9))
    assert torch.equal(a, b) and a.shape == (3, 7)
    ids, log_big_q = s.sample_unique(6, generator=torch.Generator().manual_seed(1))
    assert torch.equal(ids, torch.unique(ids))
    q = s.probs[ids]
    torch.testing.assert_close(log_big_q, torch.log(1 - (1 - q) ** 6), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(s.log_expected_count(ids, 6), torch.log(6 * q))
    # tiny q, large m: the stable form keeps precision where 1-(1-q)^m would round
    tiny = sampled.NoiseSampler(torch.tensor([1e-14, 1.0]), power=1.0)
    got = tiny.log_expected_count(torch.tensor([0]), 3)
    torch.testing.assert_close(
        got, tiny.log_expected_count(torch.tensor([0]), 3, unique=True), rtol=1e-9, atol=0
    )


def test_sampler_inclusion_probability_empirical() -> None:
    s = sampled.NoiseSampler(torch.tensor([1.0, 4.0, 10.0, 30.0]), power=1.0)
    g = torch.Generator().manual_seed(7)
    m, trials = 3, 40_000
    draws = s.sample((trials, m), generator=g)
    incl = torch.stack([(draws == j).any(1).double().mean() for j in range(4)])
    want = s.log_expected_count(torch.arange(4), m, unique=True).exp()
    torch.testing.assert_close(incl, want, atol=0.01, rtol=0)


# ----------------------------------------------------------------------------- sampled softmax


def test_sampled_softmax_uniform_q_cancels() -> None:
    g = torch.Generator().manual_seed(10)
    t = torch.randn(5, dtype=F64, generator=g)
    s = torch.randn(5, 8, dtype=F64, generator=g)
    plain = sampled.sampled_softmax_loss(t, s, None, None, reduction="none")
    const = torch.full((8,), math.log(8 * 0.05), dtype=F64)
    corr = sampled.sampled_softmax_loss(
        t, s, torch.full((5,), const[0].item(), dtype=F64), const, reduction="none"
    )
    torch.testing.assert_close(corr, plain, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(
        plain,
        F.cross_entropy(
            torch.cat([t[:, None], s], 1), torch.zeros(5, dtype=torch.long), reduction="none"
        ),
    )


def test_sampled_softmax_all_classes_without_replacement_is_full_ce() -> None:
    g = torch.Generator().manual_seed(11)
    B, V = 6, 9
    logits = torch.randn(B, V, dtype=F64, generator=g, requires_grad=True)
    targets = torch.randint(0, V, (B,), generator=g)
    ids = torch.arange(V)  # every class drawn: inclusion probability Q = 1, log Q = 0
    hits = sampled.find_accidental_hits(targets, ids)
    assert torch.equal(hits.sum(1), torch.ones(B, dtype=torch.long))
    loss = sampled.sampled_softmax_loss(
        logits.gather(1, targets[:, None]).squeeze(1),
        logits[:, ids],
        torch.zeros(B, dtype=F64),
        torch.zeros(V, dtype=F64),
        accidental_hits=hits,
    )
    full = F.cross_entropy(logits, targets)
    torch.testing.assert_close(loss, full, rtol=1e-12, atol=1e-12)
    (ga,) = torch.autograd.grad(loss, logits)
    (gb,) = torch.autograd.grad(full, logits)
    torch.testing.assert_close(ga, gb, rtol=1e-12, atol=1e-12)


def test_accidental_hits_carry_no_mass_or_gradient() -> None:
    g = torch.Generator().manual_seed(12)
    t = torch.randn(4, generator=g)
    s = (torch.randn(4, 6, generator=g) * 3).requires_grad_(True)
    with torch.no_grad():
        s[2, 0] = 1e30  # a huge accidental hit must still be ignored
    hits = torch.zeros(4, 6, dtype=torch.bool)
    hits[0, 1] = hits[2, 0] = hits[2, 5] = True
    lq = torch.randn(6, generator=g)
    loss = sampled.sampled_softmax_loss(
        t, s, torch.zeros(4), lq, accidental_hits=hits, reduction="none"
    )
    assert torch.isfinite(loss).all()
    for b in range(4):
        keep = ~hits[b]
        want = sampled.sampled_softmax_loss(
            t[b : b + 1], s[b : b + 1, keep], torch.zeros(1), lq[keep], reduction="none"
        )
        torch.testing.assert_close(loss[b : b + 1], want)
    (grad,) = torch.autograd.grad(loss.sum(), s)
    assert torch.equal(grad[hits], torch.zeros(3))
    assert (grad[~hits] != 0).all()


@pytest.mark.parametrize("unique", [False, True])
def test_sampled_softmax_monte_carlo_gradient_approaches_full(unique: bool) -> None:
    g = torch.Generator().manual_seed(13)
    V, target, trials = 10, 3, 2000
    o = torch.randn(V, dtype=F64, generator=g) * 1.5
    sampler = sampled.NoiseSampler(torch.arange(1, V + 1, dtype=F64) ** 2)
    full = torch.softmax(o, 0)
    full[target] -= 1

    def mc_error(m: int, correct: bool) -> float:
        ids = sampler.sample((trials, m), generator=g)
        if unique:  # per-row de-duplication: duplicates masked like accidental hits
            ids, _ = ids.sort(1)
            dup = torch.zeros_like(ids, dtype=torch.bool)
            dup[:, 1:] = ids[:, 1:] == ids[:, :-1]
        else:
            dup = torch.zeros_like(ids, dtype=torch.bool)
        lq = sampler.log_expected_count(ids, m, unique=unique)
        ov = o.clone().requires_grad_(True)
        loss = sampled.sampled_softmax_loss(
            ov[target].expand(trials),
            ov[ids],
            torch.zeros(trials, dtype=F64) if correct else None,  # the target is always in: Q = 1
            lq if correct else None,
            accidental_hits=(ids == target) | dup,
        )
        (grad,) = torch.autograd.grad(loss, ov)
        return float((grad - full).abs().max())

    err_small, err_big = mc_error(50, True), mc_error(400, True)
    assert err_big < 0.03
    assert err_big < 0.5 * err_small
    # without the logQ correction the estimate is badly biased (with replacement: weighted by q;
    # de-duplicated: small sets miss the rare classes)
    assert mc_error(50 if not unique else 5, False) > 0.1


def test_find_accidental_hits_shapes() -> None:
    targets = torch.tensor([0, 2, 1])
    torch.testing.assert_close(
        sampled.find_accidental_hits(targets, torch.tensor([2, 0])),
        torch.tensor([[False, True], [True, False], [False, False]]),
    )
    per_row = torch.tensor([[0, 0], [1, 2], [2, 2]])
    assert sampled.find_accidental_hits(targets, per_row).tolist() == [
        [True, True],
        [False, True],
        [False, False],
    ]
    with pytest.raises(ValueError, match="sampled_ids"):
        sampled.find_accidental_hits(targets, torch.zeros(2, 2, dtype=torch.long))


# ---------------------------------------------------------------------------- sub-sampling


def test_subsample_keep_prob_formulas() -> None:
    f = torch.tensor([0.0, 1e-6, 1e-5, 4e-5, 1e-2], dtype=F64)
    keep = sampled.subsample_keep_prob(f)
    want = torch.tensor([1.0, 1.0, 1.0, 0.5, math.sqrt(1e-3)], dtype=F64)
    torch.testing.assert_close(keep, want, rtol=1e-12, atol=0)
    code = sampled.subsample_keep_prob(f, t=1e-5, formula="code")
    torch.testing.assert_close(code[3:], torch.tensor([0.75, math.sqrt(1e-3) + 1e-3], dtype=F64))
    with pytest.raises(ValueError, match="freqs"):
        sampled.subsample_keep_prob(torch.tensor([1.5]))
    with pytest.raises(ValueError, match="formula"):
        sampled.subsample_keep_prob(f, formula="x")


# ------------------------------------------------------------------------------- properties


@settings(max_examples=20, deadline=None)
@given(b=st.integers(1, 6), k=st.integers(1, 5), red=st.sampled_from(["mean", "sum", "none"]))
def test_reductions_consistent(b: int, k: int, red: str) -> None:
    g = torch.Generator().manual_seed(b * 10 + k)
    pos, neg = torch.randn(b, generator=g), torch.randn(b, k, generator=g)
    lq_p, lq_n = torch.randn(b, generator=g), torch.randn(b, k, generator=g)
    for fn, args in (
        (sampled.nce_loss, (pos, neg, lq_p, lq_n)),
        (sampled.neg_sampling_loss, (pos, neg)),
        (sampled.sampled_softmax_loss, (pos, neg, lq_p, lq_n)),
    ):
        none = fn(*args, reduction="none")
        assert none.shape == (b,) and (none >= 0).all()
        want = {"none": none, "sum": none.sum(), "mean": none.mean()}[red]
        torch.testing.assert_close(fn(*args, reduction=red), want)


# ------------------------------------------------------------------------------- bad input


def test_bad_inputs_raise() -> None:
    pos, neg = torch.zeros(4), torch.zeros(4, 3)
    with pytest.raises(ValueError, match="pos_logits"):
        sampled.neg_sampling_loss(torch.zeros(4, 1), neg)
    with pytest.raises(ValueError, match="neg_logits"):
        sampled.neg_sampling_loss(pos, torch.zeros(5, 3))
    with pytest.raises(ValueError, match="log_q_pos"):
        sampled.nce_loss(pos, neg, torch.zeros(4, 1), torch.zeros(4, 3))
    with pytest.raises(ValueError, match="log_q_neg"):
        sampled.nce_loss(pos, neg, torch.zeros(4), torch.zeros(4))
    with pytest.raises(ValueError, match="log_q_pos"):
        sampled.nce_loss(pos, neg, None, None)
    with pytest.raises(ValueError, match="gamma"):
        sampled.nce_loss(pos, neg, torch.zeros(4), torch.zeros(3), gamma=torch.zeros(4, 1))
    with pytest.raises(ValueError, match="reduction"):
        sampled.neg_sampling_loss(pos, neg, reduction="avg")
    with pytest.raises(ValueError, match="accidental_hits"):
        sampled.sampled_softmax_loss(pos, neg, None, None, accidental_hits=torch.zeros(4, 2).bool())
    with pytest.raises(ValueError, match="log_q_sampled"):
        sampled.sampled_softmax_loss(pos, neg, torch.zeros(4), None)
    with pytest.raises(ValueError, match="counts"):
        sampled.NoiseSampler(torch.tensor([1.0, -1.0]))
    with pytest.raises(ValueError, match="counts"):
        sampled.NoiseSampler(torch.zeros(3, 2))
    with pytest.raises(ValueError, match="ids"):
        sampled.NoiseSampler([1.0, 2.0]).log_q(torch.tensor([2]))
    with pytest.raises(ValueError, match="power"):
        sampled.NoiseSampler([1.0, 2.0], power=-1.0)


# ------------------------------------------------------------------------- non-finite input

_ARGS = ("pos_logits", "neg_logits", "log_q_pos", "log_q_neg")


def _binary_args(b: int = 4, k: int = 3) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(11)
    return {
        "pos_logits": torch.randn(b, generator=g),
        "neg_logits": torch.randn(b, k, generator=g),
        "log_q_pos": -torch.rand(b, generator=g) - 1,
        "log_q_neg": -torch.rand(b, k, generator=g) - 1,
    }


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("name", _ARGS)
def test_nce_and_neg_reject_non_finite_naming_argument_and_shape(name: str, bad: float) -> None:
    args = _binary_args()
    args[name] = args[name].clone()
    args[name].view(-1)[1] = bad
    shape = re.escape(str(tuple(args[name].shape)))
    with pytest.raises(ValueError, match=rf"^{name} must be finite: .*shape {shape}"):
        sampled.nce_loss(*(args[a] for a in _ARGS))
    if name in ("pos_logits", "neg_logits"):
        with pytest.raises(ValueError, match=rf"^{name} must be finite: .*shape {shape}"):
            sampled.neg_sampling_loss(args["pos_logits"], args["neg_logits"])
        with pytest.raises(ValueError, match=rf"^{name} must be finite"):
            sampled.nce_loss(args["pos_logits"], args["neg_logits"], None, None, correct=False)


def test_nce_rejects_non_finite_gamma_and_shared_log_q() -> None:
    args = _binary_args()
    with pytest.raises(ValueError, match=r"^gamma must be finite: .*shape \(4,\)"):
        sampled.nce_loss(*(args[a] for a in _ARGS), gamma=torch.tensor([0.0, math.nan, 0.0, 0.0]))
    with pytest.raises(ValueError, match=r"^gamma must be finite: .*shape \(\)"):
        sampled.nce_loss(*(args[a] for a in _ARGS), gamma=math.inf)
    with pytest.raises(ValueError, match=r"^log_q_neg must be finite: .*shape \(3,\)"):
        sampled.nce_loss(
            args["pos_logits"],
            args["neg_logits"],
            args["log_q_pos"],
            torch.tensor([0.0, -math.inf, 0.0]),
        )


@pytest.mark.parametrize("name", ["true_logits", "sampled_logits", "log_q_true", "log_q_sampled"])
def test_sampled_softmax_rejects_nan_naming_argument_and_shape(name: str) -> None:
    a = _binary_args()
    args = dict(zip(("true_logits", "sampled_logits", "log_q_true", "log_q_sampled"), a.values()))
    args["log_q_true"] = torch.zeros(4)
    args[name] = args[name].clone()
    args[name].view(-1)[-1] = math.nan
    shape = re.escape(str(tuple(args[name].shape)))
    with pytest.raises(ValueError, match=rf"^{name} must be finite: .*shape {shape}"):
        sampled.sampled_softmax_loss(*args.values())


def test_freqs_and_counts_checks() -> None:
    with pytest.raises(ValueError, match=r"^freqs must be finite: .*shape \(2,\)"):
        sampled.subsample_keep_prob(torch.tensor([0.1, math.nan]))
    with pytest.raises(ValueError, match=r"^freqs must be relative frequencies in \[0, 1\]"):
        sampled.subsample_keep_prob(torch.tensor([0.1, 1.5]))
    with pytest.raises(ValueError, match=r"^counts must be finite"):
        sampled.NoiseSampler(torch.tensor([1.0, math.inf]))


def test_every_loss_call_costs_one_host_sync(host_syncs) -> None:
    """All value checks of one call are fused into one device→host transfer (before: NEG 0 and
    no check at all, NCE / sampled softmax 0; the checks added here cost one in all)."""
    args = _binary_args()
    pos, neg, lq_p, lq_n = (args[a].requires_grad_(a.endswith("logits")) for a in _ARGS)
    host_syncs.reset()
    sampled.neg_sampling_loss(pos, neg).backward()
    assert host_syncs.names == ["tolist"]
    host_syncs.reset()
    sampled.nce_loss(pos, neg, lq_p, lq_n[0], gamma=torch.zeros(4)).backward()
    assert host_syncs.names == ["tolist"]
    host_syncs.reset()
    hits = torch.zeros(4, 3, dtype=torch.bool)
    sampled.sampled_softmax_loss(pos, neg, torch.zeros(4), lq_n, accidental_hits=hits).backward()
    assert host_syncs.names == ["tolist"]
