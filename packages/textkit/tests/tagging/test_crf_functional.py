"""Tests of kexue.textkit.tagging.crf.functional against brute-force enumeration (spec §4 "CRF")."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from kexue.textkit.tagging.crf import functional as crf

F64 = torch.float64
ALGORITHMS = ("lse", "matmul", "auto")
VITERBI = ("max", "sorted", "auto")


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _problem(b, t, k, *, seed=0, start_end=True, dtype=F64, lengths=None):
    g = _gen(seed)
    h = torch.randn(b, t, k, generator=g, dtype=dtype)
    a = torch.randn(k, k, generator=g, dtype=dtype)
    s = torch.randn(k, generator=g, dtype=dtype) if start_end else None
    e = torch.randn(k, generator=g, dtype=dtype) if start_end else None
    if lengths is None:
        lengths = torch.randint(1, t + 1, (b,), generator=g)
        lengths[0] = t
    else:
        lengths = torch.as_tensor(lengths)
    mask = torch.arange(t) < lengths[:, None]
    return h, a, s, e, mask


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("start_end", [True, False])
def test_log_partition_equals_brute_force(algorithm, start_end, crf_brute):
    h, a, s, e, mask = _problem(6, 5, 4, start_end=start_end, lengths=[5, 1, 3, 4, 2, 5])
    log_z = crf.crf_log_partition(h, a, mask=mask, start=s, end=e, algorithm=algorithm)
    for i, length in enumerate(mask.sum(1).tolist()):
        _, scores = crf_brute(h[i], a, s, e, length)
        assert abs(log_z[i].item() - torch.logsumexp(scores, 0).item()) < 1e-10


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_probabilities_of_all_paths_sum_to_one(algorithm, crf_brute):
    h, a, s, e, _ = _problem(1, 4, 3)
    paths, _ = crf_brute(h[0], a, s, e, 4)
    hs = h.expand(len(paths), -1, -1)
    nll = crf.crf_nll(hs, paths, a, start=s, end=e, reduction="none", algorithm=algorithm)
    assert abs(torch.exp(-nll).sum().item() - 1.0) < 1e-10


def test_score_equals_brute_force_and_ignores_pad_tags(crf_brute):
    h, a, s, e, mask = _problem(5, 5, 3, seed=1)
    tags = torch.randint(0, 3, (5, 5), generator=_gen(2))
    tags_pad = tags.masked_fill(~mask, -100)  # ignore-index padding is fine
    score = crf.crf_score(h, tags_pad, a, mask=mask, start=s, end=e)
    for i, length in enumerate(mask.sum(1).tolist()):
        paths, scores = crf_brute(h[i], a, s, e, length)
        idx = (paths == tags[i, :length]).all(1).nonzero().item()
        assert abs(score[i].item() - scores[idx].item()) < 1e-12


@pytest.mark.parametrize("algorithm", VITERBI)
@pytest.mark.parametrize("start_end", [True, False])
def test_viterbi_equals_brute_force_argmax(start_end, algorithm, crf_brute):
    h, a, s, e, mask = _problem(8, 5, 4, seed=3, start_end=start_end)
    tags, best = crf.viterbi_decode(h, a, mask=mask, start=s, end=e, pad_tag=7, algorithm=algorithm)
    for i, length in enumerate(mask.sum(1).tolist()):
        paths, scores = crf_brute(h[i], a, s, e, length)
        j = scores.argmax()
        assert tags[i, :length].tolist() == paths[j].tolist()
        assert (tags[i, length:] == 7).all()
        assert abs(best[i].item() - scores[j].item()) < 1e-10
    again = crf.crf_score(h, tags, a, mask=mask, start=s, end=e)
    torch.testing.assert_close(again, best, rtol=0, atol=1e-10)


@pytest.mark.parametrize("algorithm", VITERBI)
def test_viterbi_ties_go_to_lowest_index(algorithm):
    h = torch.zeros(2, 3, 3, dtype=F64)
    a = torch.zeros(3, 3, dtype=F64)
    tags, best = crf.viterbi_decode(h, a, algorithm=algorithm)
    assert tags.tolist() == [[0, 0, 0], [0, 0, 0]]
    assert best.tolist() == [0.0, 0.0]


def test_nbest_equals_brute_force_top_k(crf_brute):
    h, a, s, e, mask = _problem(4, 4, 3, seed=4, lengths=[4, 3, 1, 2])
    k = 5
    tags, scores = crf.viterbi_nbest(h, a, k=k, mask=mask, start=s, end=e, pad_tag=9)
    assert tags.shape == (4, k, 4) and scores.shape == (4, k)
    for i, length in enumerate(mask.sum(1).tolist()):
        paths, brute = crf_brute(h[i], a, s, e, length)
        n = min(k, len(paths))
        top = brute.topk(n)
        torch.testing.assert_close(scores[i, :n], top.values, rtol=0, atol=1e-10)
        got = {tuple(p) for p in tags[i, :n, :length].tolist()}
        assert got == {tuple(paths[j].tolist()) for j in top.indices}  # k distinct best paths
        assert (tags[i, :, length:] == 9).all()
        if n < k:  # fewer paths than k: the rest score −inf
            assert torch.isneginf(scores[i, n:]).all()
    one, best = crf.viterbi_decode(h, a, mask=mask, start=s, end=e, pad_tag=9)
    assert torch.equal(tags[:, 0], one)
    torch.testing.assert_close(scores[:, 0], best)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_padding_garbage_changes_nothing(algorithm):
    h, a, s, e, mask = _problem(5, 6, 4, seed=5)
    garbage = torch.where(
        mask[..., None], h, 1e4 * torch.randn(h.shape, generator=_gen(6), dtype=F64)
    )
    tags = torch.randint(0, 4, (5, 6), generator=_gen(7))
    kw = {"mask": mask, "start": s, "end": e}
    for x in (garbage, garbage.masked_fill(~mask[..., None], float("nan"))):
        torch.testing.assert_close(
            crf.crf_nll(x, tags, a, reduction="none", algorithm=algorithm, **kw),
            crf.crf_nll(h, tags, a, reduction="none", algorithm=algorithm, **kw),
            rtol=0, atol=1e-10,
        )  # fmt: skip
        assert torch.equal(crf.viterbi_decode(x, a, **kw)[0], crf.viterbi_decode(h, a, **kw)[0])
        torch.testing.assert_close(crf.crf_marginals(x, a, **kw), crf.crf_marginals(h, a, **kw))
    # batched = per sample
    log_z = crf.crf_log_partition(h, a, algorithm=algorithm, **kw)
    dec = crf.viterbi_decode(h, a, **kw)[0]
    for i, length in enumerate(mask.sum(1).tolist()):
        one = crf.crf_log_partition(h[i : i + 1, :length], a, start=s, end=e, algorithm=algorithm)
        assert abs(one.item() - log_z[i].item()) < 1e-10
        d = crf.viterbi_decode(h[i : i + 1, :length], a, start=s, end=e)[0]
        assert d[0].tolist() == dec[i, :length].tolist()


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_shift_invariance(algorithm):
    h, a, s, e, mask = _problem(3, 5, 4, seed=8, lengths=[5, 4, 2])
    tags = torch.randint(0, 4, (3, 5), generator=_gen(9))
    kw = {"mask": mask, "start": s, "end": e}
    log_z = crf.crf_log_partition(h, a, algorithm=algorithm, **kw)
    score = crf.crf_score(h, tags, a, **kw)
    c = 2.5
    h2 = h.clone()
    h2[:, 1] += c  # step 1 is valid in every row
    torch.testing.assert_close(crf.crf_log_partition(h2, a, algorithm=algorithm, **kw), log_z + c)
    torch.testing.assert_close(crf.crf_score(h2, tags, a, **kw), score + c)
    lengths = mask.sum(1).to(F64)
    torch.testing.assert_close(
        crf.crf_log_partition(h, a + c, algorithm=algorithm, **kw), log_z + c * (lengths - 1)
    )
    torch.testing.assert_close(crf.crf_score(h, tags, a + c, **kw), score + c * (lengths - 1))


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("start_end", [True, False])
def test_marginals_equal_brute_force(start_end, algorithm, crf_brute):
    h, a, s, e, mask = _problem(4, 4, 3, seed=10, start_end=start_end)
    marg = crf.crf_marginals(h, a, mask=mask, start=s, end=e, algorithm=algorithm)
    assert (marg >= 0).all()
    lengths = mask.sum(1).tolist()
    for i, length in enumerate(lengths):
        paths, scores = crf_brute(h[i], a, s, e, length)
        p = torch.softmax(scores, 0)
        want = torch.zeros(length, 3, dtype=F64)
        for t in range(length):
            want[t].index_add_(0, paths[:, t], p)
        torch.testing.assert_close(marg[i, :length], want, rtol=0, atol=1e-10)
        torch.testing.assert_close(marg[i, :length].sum(-1), torch.ones(length, dtype=F64))
        assert (marg[i, length:] == 0).all()


@pytest.mark.parametrize("algorithm", ["lse", "matmul"])
def test_gradcheck(algorithm):
    h, a, s, e, mask = _problem(3, 4, 3, seed=11, lengths=[4, 1, 3])
    tags = torch.randint(0, 3, (3, 4), generator=_gen(12))
    inputs = tuple(x.clone().requires_grad_(True) for x in (h, a, s, e))

    def fn(h, a, s, e):
        return crf.crf_nll(
            h, tags, a, mask=mask, start=s, end=e, reduction="none", algorithm=algorithm
        )

    assert torch.autograd.gradcheck(fn, inputs)


@pytest.mark.parametrize(
    "lengths", [None, [30] * 8, [30, 21, 25, 30, 22, 28, 21, 29]], ids=["random", "full", "long"]
)
@pytest.mark.parametrize(("dtype", "tol"), [(torch.float32, 1e-4), (F64, 1e-9)])
def test_matmul_matches_lse(dtype, tol, lengths):
    """Rows ending all through the β loop (random), none (full), only late ones (long: before
    the shortest row ends, the β recursion skips the end handling)."""
    h, a, s, e, mask = _problem(8, 30, 6, seed=13, dtype=dtype, lengths=lengths)
    tags = torch.randint(0, 6, (8, 30), generator=_gen(14))
    out = {}
    for algorithm in ("lse", "matmul"):
        xs = [x.clone().requires_grad_(True) for x in (h, a, s, e)]
        nll = crf.crf_nll(xs[0], tags, xs[1], mask=mask, start=xs[2], end=xs[3], algorithm=algorithm,
                      reduction="sum")  # fmt: skip
        nll.backward()
        out[algorithm] = [nll.detach()] + [x.grad for x in xs]
    for x, y in zip(out["lse"], out["matmul"]):
        torch.testing.assert_close(y, x, rtol=tol, atol=tol)


@pytest.mark.parametrize("scale", [1.0, 15.0])
def test_matmul_normalises_every_step_when_the_spread_is_wide(scale):
    """Transitions spread over > 30 nats (scale 15): "matmul" normalises at every step (the
    every-other-step schedule is only safe below 30 nats) and still matches the reference."""
    h, a, s, e, mask = _problem(6, 20, 5, seed=29, lengths=[20, 19, 7, 1, 12, 20])
    a = a * scale
    assert (a.max() - a.min() > 30) == (scale > 1)
    tags = torch.randint(0, 5, (6, 20), generator=_gen(30))
    grads = {}
    for algorithm in ("lse", "matmul"):
        xs = [x.clone().requires_grad_(True) for x in (h, a, s, e)]
        nll = crf.crf_nll(xs[0], tags, xs[1], mask=mask, start=xs[2], end=xs[3], reduction="sum",
                      algorithm=algorithm)  # fmt: skip
        nll.backward()
        grads[algorithm] = [nll.detach()] + [x.grad for x in xs]
    for x, y in zip(grads["lse"], grads["matmul"], strict=True):
        torch.testing.assert_close(y, x, rtol=1e-9, atol=1e-9)


def test_auto_uses_lse_when_transitions_are_forbidden(crf_brute):
    """−1e4 transitions (constrained training) are exact under "auto" even with huge emissions."""
    h, a, s, e, mask = _problem(4, 5, 4, seed=15, lengths=[5, 4, 3, 1])
    a = a.clone()
    a[0, 1] = a[2, 3] = -1e4
    h = h * 100
    got = crf.crf_log_partition(h, a, mask=mask, start=s, end=e, algorithm="auto")
    ref = crf.crf_log_partition(h, a, mask=mask, start=s, end=e, algorithm="lse")
    assert torch.equal(got, ref)
    for i, length in enumerate(mask.sum(1).tolist()):
        _, scores = crf_brute(h[i], a, s, e, length)
        assert abs(got[i].item() - torch.logsumexp(scores, 0).item()) < 1e-9


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_large_emissions_stay_finite(algorithm, dtype):
    h, a, s, e, mask = _problem(4, 12, 5, seed=16, dtype=dtype)
    h = (h * 1e3).requires_grad_(True)
    tags = torch.randint(0, 5, (4, 12), generator=_gen(17))
    nll = crf.crf_nll(h, tags, a, mask=mask, start=s, end=e, algorithm=algorithm, reduction="sum")
    nll.backward()
    assert torch.isfinite(nll) and torch.isfinite(h.grad).all()
    assert nll.item() >= -1e-3 * abs(nll.item()) - 1e-3  # NLL ≥ 0 up to rounding
    log_z = crf.crf_log_partition(
        h.double(), a.double(), mask=mask, start=s.double(), end=e.double()
    )
    ref = crf.crf_log_partition(h.double(), a.double(), mask=mask, start=s.double(), end=e.double(),
                            algorithm="lse")  # fmt: skip
    torch.testing.assert_close(log_z, ref, rtol=1e-6, atol=0)


def test_length_one_sequences():
    h, a, s, e, _ = _problem(3, 1, 4, seed=18)
    for algorithm in ALGORITHMS:
        log_z = crf.crf_log_partition(h, a, start=s, end=e, algorithm=algorithm)
        torch.testing.assert_close(log_z, torch.logsumexp(h[:, 0] + s + e, -1))
    tags, best = crf.viterbi_decode(h, a, start=s, end=e)
    assert tags[:, 0].tolist() == (h[:, 0] + s + e).argmax(-1).tolist()
    torch.testing.assert_close(best, (h[:, 0] + s + e).amax(-1))
    marg = crf.crf_marginals(h, a, start=s, end=e)
    torch.testing.assert_close(marg[:, 0], torch.softmax(h[:, 0] + s + e, -1))


def test_constrained_viterbi_equals_brute_force_over_allowed_paths(crf_brute):
    h, a, s, e, mask = _problem(6, 5, 4, seed=19)
    g = _gen(20)
    allowed = torch.rand(4, 4, generator=g) > 0.3
    allowed[:, 0] = allowed[0, :] = True  # 0 → 0 → … is always possible
    a_start = torch.tensor([True, False, True, False])
    a_end = torch.tensor([True, True, False, False])
    tags, best = crf.viterbi_decode(h, a, mask=mask, start=s, end=e, allowed_start=a_start,
                                allowed_end=a_end, allowed_transitions=allowed)  # fmt: skip
    for i, length in enumerate(mask.sum(1).tolist()):
        paths, scores = crf_brute(h[i], a, s, e, length)
        ok = a_start[paths[:, 0]] & a_end[paths[:, -1]]
        if length > 1:
            ok &= allowed[paths[:, :-1], paths[:, 1:]].all(1)
        j = torch.where(ok, scores, -torch.inf).argmax()
        assert tags[i, :length].tolist() == paths[j].tolist()
        assert abs(best[i].item() - scores[j].item()) < 1e-10
    nb, _ = crf.viterbi_nbest(h, a, k=3, mask=mask, start=s, end=e, allowed_start=a_start,
                          allowed_end=a_end, allowed_transitions=allowed)  # fmt: skip
    assert torch.equal(nb[:, 0], tags)


def test_reductions():
    h, a, s, e, mask = _problem(4, 6, 3, seed=21)
    tags = torch.randint(0, 3, (4, 6), generator=_gen(22))
    kw = {"mask": mask, "start": s, "end": e}
    none = crf.crf_nll(h, tags, a, reduction="none", **kw)
    assert none.shape == (4,) and (none > 0).all()
    torch.testing.assert_close(crf.crf_nll(h, tags, a, reduction="sum", **kw), none.sum())
    torch.testing.assert_close(crf.crf_nll(h, tags, a, reduction="mean", **kw), none.mean())
    torch.testing.assert_close(
        crf.crf_nll(h, tags, a, reduction="token_mean", **kw), none.sum() / mask.sum()
    )
    torch.testing.assert_close(
        none,
        crf.crf_log_partition(h, a, **kw) - crf.crf_score(h, tags, a, **kw),
        rtol=0,
        atol=1e-12,
    )


def test_half_precision_inputs_compute_in_fp32():
    h, a, s, e, mask = _problem(2, 5, 3, seed=23, dtype=torch.float32)
    out = crf.crf_log_partition(h.bfloat16(), a, mask=mask, start=s, end=e)
    assert out.dtype == torch.float32
    ref = crf.crf_log_partition(h.bfloat16().float(), a, mask=mask, start=s, end=e)
    torch.testing.assert_close(out, ref)


def test_bad_inputs_raise_clear_errors():
    h, a, s, e, mask = _problem(2, 4, 3, seed=24)
    tags = torch.zeros(2, 4, dtype=torch.long)
    with pytest.raises(ValueError, match="tags"):
        crf.crf_nll(h, torch.full((2, 4), 3), a)
    with pytest.raises(ValueError, match="tags"):
        crf.crf_score(h, torch.full((2, 4), -1), a)
    with pytest.raises(ValueError, match=r"tags shape \(2, 3\).*\(2, 4, 3\)"):
        crf.crf_nll(h, tags[:, :3], a)
    with pytest.raises(ValueError, match=r"mask shape \(2, 3\).*\(2, 4, 3\)"):
        crf.crf_log_partition(h, a, mask=mask[:, :3])
    with pytest.raises(ValueError, match=r"mask shape \(2, 4, 1\)"):
        crf.viterbi_decode(h, a, mask=mask[..., None])
    left = torch.tensor([[False, True, True, True], [True, True, True, True]])
    with pytest.raises(ValueError, match="mask"):
        crf.crf_log_partition(h, a, mask=left)
    empty = torch.tensor([[False] * 4, [True] * 4])
    with pytest.raises(ValueError, match="mask"):
        crf.viterbi_decode(h, a, mask=empty)
    holes = torch.tensor([[True, False, True, False], [True] * 4])
    with pytest.raises(ValueError, match="mask"):
        crf.crf_nll(h, tags, a, mask=holes)
    with pytest.raises(ValueError, match="transitions"):
        crf.crf_log_partition(h, a[:2])
    with pytest.raises(ValueError, match="start"):
        crf.crf_log_partition(h, a, start=s[:2])
    with pytest.raises(ValueError, match="end"):
        crf.crf_log_partition(h, a, start=s, end=e[:, None])
    with pytest.raises(ValueError, match="emissions"):
        crf.crf_log_partition(h[0], a)
    bad = h.clone()
    bad[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        crf.crf_log_partition(bad, a)
    with pytest.raises(ValueError, match="reduction"):
        crf.crf_nll(h, tags, a, reduction="avg")
    with pytest.raises(ValueError, match="algorithm"):
        crf.crf_log_partition(h, a, algorithm="triton")
    with pytest.raises(ValueError, match="k must"):
        crf.viterbi_nbest(h, a, k=0)
    with pytest.raises(ValueError, match="algorithm"):
        crf.viterbi_decode(h, a, algorithm="lse")
    with pytest.raises(ValueError, match=r"emissions must be a \(B, T, K\) tensor"):
        crf.crf_nll(h[0, 0], tags, a)
    with pytest.raises(ValueError, match=r"emissions must be floating point"):
        crf.crf_log_partition(tags[..., None], a[:1, :1])
    with pytest.raises(ValueError, match=r"tags must be an integer tensor"):
        crf.crf_score(h, tags.double(), a)
    with pytest.raises(ValueError, match="allowed_transitions"):
        crf.viterbi_decode(h, a, allowed_transitions=torch.ones(2, 2, dtype=torch.bool))


@settings(max_examples=25, deadline=None)
@given(
    b=st.integers(1, 3),
    t=st.integers(1, 5),
    k=st.integers(1, 3),
    seed=st.integers(0, 2**16),
    start_end=st.booleans(),
)
def test_random_shapes_against_brute_force(b, t, k, seed, start_end, crf_brute):
    h, a, s, e, mask = _problem(b, t, k, seed=seed, start_end=start_end)
    log_z = {
        be: crf.crf_log_partition(h, a, mask=mask, start=s, end=e, algorithm=be)
        for be in ALGORITHMS
    }
    decoded = {
        al: crf.viterbi_decode(h, a, mask=mask, start=s, end=e, algorithm=al) for al in VITERBI
    }
    for i, length in enumerate(mask.sum(1).tolist()):
        paths, scores = crf_brute(h[i], a, s, e, length)
        for be in ALGORITHMS:
            assert abs(log_z[be][i].item() - torch.logsumexp(scores, 0).item()) < 1e-10
        for tags, best in decoded.values():
            assert abs(best[i].item() - scores.max().item()) < 1e-10
            assert tags[i, :length].tolist() == paths[scores.argmax()].tolist()


def test_viterbi_matches_the_independent_nbest_recursion_on_a_ragged_batch():
    """Length-sorted segments (the fast path) vs the max and 1-max semiring references."""
    h, a, s, e, mask = _problem(40, 30, 6, seed=25, dtype=torch.float32)
    lengths = mask.sum(1)
    assert len(set(lengths.tolist())) > 10  # many segments, repeated lengths, unsorted rows
    tags, best = crf.viterbi_decode(h, a, mask=mask, start=s, end=e, pad_tag=-1)
    nb, nb_best = crf.viterbi_nbest(h, a, k=1, mask=mask, start=s, end=e, pad_tag=-1)
    assert torch.equal(tags, nb[:, 0])
    torch.testing.assert_close(best, nb_best[:, 0])
    ref, ref_best = crf.viterbi_decode(h, a, mask=mask, start=s, end=e, pad_tag=-1, algorithm="max")
    assert torch.equal(tags, ref)
    torch.testing.assert_close(best, ref_best)
    torch.testing.assert_close(best, crf.crf_score(h, tags, a, mask=mask, start=s, end=e))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("name", ["transitions", "start", "end"])
def test_non_finite_parameters_are_named(name, bad):
    h, a, s, e, mask = _problem(2, 4, 3, seed=26)
    params = {"transitions": a.clone(), "start": s.clone(), "end": e.clone()}
    params[name].view(-1)[1] = bad
    a2, s2, e2 = params["transitions"], params["start"], params["end"]
    tags = torch.zeros(2, 4, dtype=torch.long)
    calls = (
        lambda: crf.crf_nll(h, tags, a2, mask=mask, start=s2, end=e2),
        lambda: crf.crf_log_partition(h, a2, mask=mask, start=s2, end=e2, algorithm="lse"),
        lambda: crf.crf_score(h, tags, a2, mask=mask, start=s2, end=e2),
        lambda: crf.crf_marginals(h, a2, mask=mask, start=s2, end=e2),
        lambda: crf.viterbi_decode(h, a2, mask=mask, start=s2, end=e2),
        lambda: crf.viterbi_nbest(h, a2, k=2, mask=mask, start=s2, end=e2),
    )
    for call in calls:
        with pytest.raises(ValueError, match=rf"^{name} contains NaN or inf$"):
            call()


def test_every_check_is_one_read_back(count_syncs):
    """All value checks (mask, tags, finiteness of h, A, start, end), the longest length and the
    "auto" spread come back in one synchronisation; a bad value is still reported."""
    h, a, s, e, mask = _problem(5, 7, 4, seed=27, dtype=torch.float32)
    tags = torch.randint(0, 4, (5, 7), generator=_gen(28))
    h.requires_grad_(True)
    kw = {"mask": mask, "start": s, "end": e}
    for call in (
        lambda: crf.crf_nll(h, tags, a, **kw).backward(),
        lambda: crf.crf_nll(h, tags, a, algorithm="lse", **kw).backward(),
        lambda: crf.crf_log_partition(h, a, **kw),
        lambda: crf.crf_marginals(h, a, **kw),
        lambda: crf.viterbi_decode(h, a, **kw),
        lambda: crf.viterbi_decode(h, a, algorithm="max", **kw),
        lambda: crf.viterbi_nbest(h, a, k=3, **kw),
    ):
        with count_syncs() as events:
            call()
        assert len(events) == 1, events
    bad = tags.clone()
    bad[0, 0] = 4
    with count_syncs() as events, pytest.raises(ValueError, match="tags must lie"):
        crf.crf_nll(h, bad, a, **kw)
    assert len(events) == 1, events


@pytest.mark.parametrize("seed", [31, 32])
def test_sorted_viterbi_equals_the_reference_at_bench_shape(seed):
    """B = 64, T = 128, K = 20, lengths uniform in [32, 128] and some of length 1: the fast
    path's coarse segments (rows computed past their end) decode exactly as the max semiring."""
    g = _gen(seed)
    h = torch.randn(64, 128, 20, generator=g)
    a, s, e = (torch.randn(*shape, generator=g) for shape in ((20, 20), (20,), (20,)))
    lengths = torch.randint(32, 129, (64,), generator=g)
    lengths[::9] = 1
    mask = torch.arange(128) < lengths[:, None]
    kw = {"mask": mask, "start": s, "end": e, "pad_tag": -1}
    fast, fast_best = crf.viterbi_decode(h, a, algorithm="sorted", **kw)
    ref, ref_best = crf.viterbi_decode(h, a, algorithm="max", **kw)
    assert torch.equal(fast, ref)
    torch.testing.assert_close(fast_best, ref_best, rtol=0, atol=0)
