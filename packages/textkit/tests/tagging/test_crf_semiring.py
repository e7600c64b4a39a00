"""The one recursion under each semiring (kexue.textkit.tagging.crf._chain / .semiring) against
brute force, and the torch-struct identities between them."""

from __future__ import annotations

import pytest
import torch

from kexue.textkit.tagging.crf import LOG, MAX, KMax, crf_score
from kexue.textkit.tagging.crf._chain import backtrace, chain

F64 = torch.float64


def _problem(b, t, k, seed, lengths):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(b, t, k, generator=g, dtype=F64)
    a = torch.randn(k, k, generator=g, dtype=F64)
    s = torch.randn(k, generator=g, dtype=F64)
    e = torch.randn(k, generator=g, dtype=F64)
    mask = torch.arange(t) < torch.tensor(lengths)[:, None]
    return h * mask[..., None], a, s, e, mask


LENGTHS = [5, 1, 3, 4, 2]


@pytest.mark.parametrize("semiring", [LOG, MAX, KMax(1), KMax(4)], ids=repr)
def test_chain_total_equals_brute_force(semiring, crf_brute):
    h, a, s, e, mask = _problem(5, 5, 3, seed=0, lengths=LENGTHS)
    total, _, back = chain(semiring, h, mask, a, s, e, 5)
    assert len(back) == (4 if semiring.has_witness else 0)
    for i, length in enumerate(LENGTHS):
        _, scores = crf_brute(h[i], a, s, e, length)
        if semiring is LOG:
            want = torch.logsumexp(scores, 0)
        elif semiring is MAX:
            want = scores.max()
        else:
            r = semiring.ranks
            want = torch.cat(
                [scores.sort(descending=True).values, scores.new_full((r,), -torch.inf)]
            )
            want = want[:r]
        torch.testing.assert_close(total[i], want, rtol=0, atol=1e-12)


@pytest.mark.parametrize("k", [1, 3, 40])
def test_kmax_backtrace_gives_the_k_best_distinct_paths(k, crf_brute):
    h, a, s, e, mask = _problem(5, 5, 3, seed=1, lengths=LENGTHS)
    semiring = KMax(k)
    total, witness, back = chain(semiring, h, mask, a, s, e, 5)
    paths = backtrace(semiring, witness, back)  # (B, k, 5)
    for i, length in enumerate(LENGTHS):
        all_paths, scores = crf_brute(h[i], a, s, e, length)
        n = min(k, len(all_paths))
        got = paths[i, :n, :length]
        assert len({tuple(p) for p in got.tolist()}) == n
        rescored = crf_score(h[i : i + 1].expand(n, -1, -1)[:, :length], got, a, start=s, end=e)
        torch.testing.assert_close(rescored, total[i, :n], rtol=0, atol=1e-12)
        torch.testing.assert_close(total[i, :n], scores.topk(n).values, rtol=0, atol=1e-12)


def test_max_backtrace_equals_viterbi_by_autograd():
    """torch-struct's identity: the gradient of the max-semiring total with respect to the
    emissions is the one-hot of the best path (the max is piecewise linear)."""
    h, a, s, e, mask = _problem(5, 5, 4, seed=2, lengths=LENGTHS)
    h = h.requires_grad_(True)
    total, witness, back = chain(MAX, h, mask, a, s, e, 5)
    (grad,) = torch.autograd.grad(total.sum(), h)
    path = backtrace(MAX, witness, back)[:, 0]  # (B, 5)
    one_hot = torch.nn.functional.one_hot(path, 4).to(F64) * mask[..., None]
    torch.testing.assert_close(grad, one_hot, rtol=0, atol=0)


def test_log_dominates_max_and_kmax_one_is_max():
    h, a, s, e, mask = _problem(5, 5, 4, seed=3, lengths=LENGTHS)
    log_z = chain(LOG, h, mask, a, s, e, 5)[0]
    best, w_max, b_max = chain(MAX, h, mask, a, s, e, 5)
    best1, w_k, b_k = chain(KMax(1), h, mask, a, s, e, 5)
    assert (log_z >= best).all()
    torch.testing.assert_close(best1[:, 0], best, rtol=0, atol=0)
    assert torch.equal(backtrace(MAX, w_max, b_max), backtrace(KMax(1), w_k, b_k))


def test_kmax_rejects_bad_k():
    for k in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="k must"):
            KMax(k)  # type: ignore[arg-type]
