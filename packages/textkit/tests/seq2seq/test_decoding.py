"""AutoRegressiveDecoder: brute force and a literal bert4keras-rule reference on toy Markov LMs,
greedy/top-k=1 equalities, filters, cached = uncached decoding of the UniLM model."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from kexue.textkit.seq2seq.decoding.decoder import AutoRegressiveDecoder, UniLMDecoder
from kexue.textkit.seq2seq.decoding.filters import top_k_filter, top_p_filter
from kexue.textkit.seq2seq.transformer import UniLMTransformer

START = 0


def _tables(
    items: int, v: int, seed: int, end: int | None = None, end_scale: float = 1.0
) -> torch.Tensor:
    """Per-item next-token tables P[item, last, next] (float64, rows sum to 1)."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(items, v, v, generator=g, dtype=torch.float64) * 2
    p = logits.softmax(-1)
    if end is not None:
        p[..., end] *= end_scale
        p = p / p.sum(-1, keepdim=True)
    return p


def _markov_predict(tables: torch.Tensor, log: list[int] | None = None):
    def predict(inputs, output_ids, states):
        if log is not None:
            log.append(output_ids.shape[0])
        return tables[inputs[0][:, 0], output_ids[:, -1]]

    return predict


def _ref_beam(
    p: torch.Tensor,
    *,
    maxlen: int,
    minlen: int,
    topk: int,
    end: int,
    min_ends: int,
    start: int = START,
) -> list[int]:
    """The bert4keras rule written out on Python lists (one input)."""
    v = p.shape[-1]
    beams: list[tuple[float, list[int]]] = [(0.0, [start])]
    k = topk
    for _ in range(maxlen):
        cands = []
        for s, ids in beams:
            row = p[ids[-1]]
            for tok in range(v):
                cands.append((s + math.log(float(row[tok]) + 1e-12), [*ids, tok]))
        cands.sort(key=lambda c: -c[0])
        beams = cands[:k]
        if len(beams[0][1]) >= minlen:
            fin = [ids[-1] == end and ids.count(end) >= min_ends for _, ids in beams]
            if fin[0]:
                return beams[0][1]
            k -= sum(fin)
            beams = [b for b, f in zip(beams, fin) if not f]
    return max(beams, key=lambda c: c[0])[1]


def test_vocabulary_wide_beam_equals_brute_force() -> None:
    v, horizon, end = 5, 4, 4
    tables = _tables(2, v, seed=0, end=end, end_scale=1e-6)  # the best path does not stop early
    dec = AutoRegressiveDecoder(
        start_id=START, end_id=end, maxlen=horizon, predict_fn=_markov_predict(tables)
    )
    got = dec.beam_search([torch.tensor([[0], [1]])], topk=v ** (horizon - 1))
    for item in range(2):
        best, best_score = None, -math.inf
        for seq in itertools.product(range(v), repeat=horizon):
            ids = [START, *seq]
            if end in seq:
                continue
            s = sum(math.log(float(tables[item, a, b]) + 1e-12) for a, b in itertools.pairwise(ids))
            if s > best_score:
                best, best_score = ids, s
        assert got[item].tolist() == best


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    topk=st.integers(1, 6),
    min_ends=st.integers(1, 2),
    minlen=st.integers(1, 4),
)
def test_beam_search_follows_the_bert4keras_rule(
    seed: int, topk: int, min_ends: int, minlen: int
) -> None:
    v, end, items = 5, 3, 3
    tables = _tables(items, v, seed=seed, end=end, end_scale=3.0)
    dec = AutoRegressiveDecoder(
        start_id=START, end_id=end, maxlen=6, minlen=minlen, predict_fn=_markov_predict(tables)
    )
    got = dec.beam_search([torch.arange(items)[:, None]], topk, min_ends=min_ends)
    for item in range(items):
        ref = _ref_beam(
            tables[item], maxlen=6, minlen=minlen, topk=topk, end=end, min_ends=min_ends
        )
        assert got[item].tolist() == ref


def test_finished_beams_are_dropped_and_k_shrinks() -> None:
    # Tokens 0, 1, 2 (= start), 3 (= end). Step 0: [end] is a non-best top-3 beam -> dropped,
    # k = 2; step 1: [1, end] is second best -> dropped, k = 1; the best beam never ends.
    start, end = 2, 3
    p = torch.tensor(
        [[0.6, 0.1, 0.0, 0.3], [0.2, 0.2, 0.0, 0.6], [0.5, 0.3, 0.0, 0.2], [0.25] * 4],
        dtype=torch.float64,
    )
    seen: list[int] = []
    dec = AutoRegressiveDecoder(
        start_id=start, end_id=end, maxlen=4, predict_fn=_markov_predict(p[None], seen)
    )
    out = dec.beam_search([torch.zeros(1, 1, dtype=torch.long)], 3)[0]
    assert seen == [1, 2, 1, 1]
    assert out.tolist() == [start, 0, 0, 0, 0]
    assert out.tolist() == _ref_beam(
        p, maxlen=4, minlen=1, topk=3, end=end, min_ends=1, start=start
    )


def test_min_ends_needs_two_end_tokens() -> None:
    v, end = 4, 2
    p = torch.full((v, v), 0.05, dtype=torch.float64)
    p[:, end] = 0.85  # end is always the most probable next token
    for min_ends, method in itertools.product((1, 2, 3), ("beam", "greedy")):
        dec = AutoRegressiveDecoder(
            start_id=START, end_id=end, maxlen=8, predict_fn=_markov_predict(p[None])
        )
        x = [torch.zeros(1, 1, dtype=torch.long)]
        out = (
            dec.beam_search(x, 2, min_ends=min_ends)[0]
            if method == "beam"
            else dec.greedy(x, min_ends=min_ends)[0]
        )
        assert out.tolist() == [START] + [end] * min_ends


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_topk1_beam_and_sampling_equal_greedy(seed: int) -> None:
    v, end, items = 6, 5, 4
    tables = _tables(items, v, seed=seed, end=end, end_scale=2.0)
    dec = AutoRegressiveDecoder(
        start_id=START, end_id=end, maxlen=7, minlen=2, predict_fn=_markov_predict(tables)
    )
    x = [torch.arange(items)[:, None]]
    greedy = dec.greedy(x)
    beam = dec.beam_search(x, 1)
    sample = dec.random_sample(x, 3, topk=1, generator=torch.Generator().manual_seed(seed))
    for item in range(items):
        assert beam[item].tolist() == greedy[item].tolist()
        assert [s.tolist() for s in sample[item]] == [greedy[item].tolist()] * 3


def test_top_p_keeps_the_minimal_mass_set() -> None:
    p = torch.tensor([[0.05, 0.5, 0.15, 0.3]])
    torch.testing.assert_close(top_p_filter(p, 0.7), torch.tensor([[0.0, 0.625, 0.0, 0.375]]))
    torch.testing.assert_close(top_p_filter(p, 0.8), torch.tensor([[0.0, 0.625, 0.0, 0.375]]))
    torch.testing.assert_close(top_p_filter(p, 0.81), torch.tensor([[0.0, 0.5, 0.15, 0.3]]) / 0.95)
    torch.testing.assert_close(top_p_filter(p, 0.1), torch.tensor([[0.0, 1.0, 0.0, 0.0]]))
    g = torch.Generator().manual_seed(0)
    probs = torch.rand(50, 12, generator=g, dtype=torch.float64).softmax(-1)
    for q in (0.3, 0.6, 0.9):
        kept = top_p_filter(probs, q) > 0
        mass = (probs * kept).sum(-1)
        smallest = torch.where(kept, probs, torch.inf).amin(-1)
        assert (mass >= q - 1e-12).all() and (mass - smallest < q).all()  # minimal
    torch.testing.assert_close(top_k_filter(p, 2), torch.tensor([[0.0, 0.625, 0.0, 0.375]]))


def test_random_sample_is_seeded_and_respects_topk() -> None:
    v, end = 6, 5
    tables = _tables(2, v, seed=3, end=end, end_scale=3.0)
    dec = AutoRegressiveDecoder(
        start_id=START, end_id=end, maxlen=5, predict_fn=_markov_predict(tables)
    )
    x = [torch.arange(2)[:, None]]
    a = dec.random_sample(x, 8, topk=2, topp=0.95, generator=torch.Generator().manual_seed(7))
    b = dec.random_sample(x, 8, topk=2, topp=0.95, generator=torch.Generator().manual_seed(7))
    assert [[s.tolist() for s in r] for r in a] == [[s.tolist() for s in r] for r in b]
    for item in range(2):
        assert len(a[item]) == 8
        for s in a[item]:
            for prev, tok in zip(s[:-1].tolist(), s[1:].tolist()):
                assert tok in tables[item, prev].topk(2).indices.tolist()
            assert s[-1] == end or len(s) == 6


def test_draw_all_keeps_finished_rows_in_the_draw_and_returns_row_order() -> None:
    """``draw="all"``: each step's multinomial sees all B·n rows (finished ones get a discarded
    draw), so every row's samples equal the rows of a reference loop over the full matrix."""
    v, end, n, steps = 6, 5, 4, 5
    tables = _tables(2, v, seed=3, end=end, end_scale=3.0)
    dec = AutoRegressiveDecoder(
        start_id=START, end_id=end, maxlen=steps, predict_fn=_markov_predict(tables)
    )
    x = [torch.arange(2)[:, None]]
    got = dec.random_sample(x, n, generator=torch.Generator().manual_seed(7), draw="all")
    g = torch.Generator().manual_seed(7)
    rows = [[START] for _ in range(2 * n)]
    for _ in range(steps):  # reference: all rows drawn every step, as HF generate
        p = torch.stack([tables[r // n, ids[-1]] for r, ids in enumerate(rows)])
        tok = torch.multinomial(p, 1, generator=g)[:, 0].tolist()
        for ids, t in zip(rows, tok):
            if ids[-1] != end or len(ids) == 1:
                ids.append(t)
    want = [[ids[: ids.index(end, 1) + 1] if end in ids[1:] else ids for ids in rows]]
    assert [s.tolist() for r in got for s in r] == want[0]
    assert len({len(r) for r in want[0]}) > 1  # rows finished at different steps
    with pytest.raises(ValueError, match="draw"):
        dec.random_sample(x, 2, draw="some")


def test_temperature_rules() -> None:
    probas = torch.tensor([[0.6, 0.3, 0.1]], dtype=torch.float64)
    dec = AutoRegressiveDecoder(
        start_id=None, end_id=2, maxlen=2, predict_fn=lambda i, o, s: probas
    )
    got, _ = dec.step_scores(
        [torch.zeros(1, 1)], torch.zeros(1, 0, dtype=torch.long), None, 2.0, "probas"
    )
    torch.testing.assert_close(got, probas.sqrt() / probas.sqrt().sum())
    logits = torch.tensor([[1.0, 0.0, -1.0]], dtype=torch.float64)
    dec = AutoRegressiveDecoder(
        start_id=None, end_id=2, maxlen=2, rtype="logits", predict_fn=lambda i, o, s: logits
    )
    got, _ = dec.step_scores(
        [torch.zeros(1, 1)], torch.zeros(1, 0, dtype=torch.long), None, 0.5, "logits"
    )
    torch.testing.assert_close(got, torch.log((logits / 0.5).softmax(-1) + 1e-12))


def test_length_penalty_zero_pools_the_exact_best() -> None:
    # alpha = 0 with a vocabulary-wide beam: the best of ALL complete sequences (brute force),
    # where bert4keras's rule may have dropped a finished beam that was better.
    v, horizon, end = 4, 4, 3
    for seed in range(4):
        tables = _tables(1, v, seed=seed, end=end, end_scale=2.0)
        dec = AutoRegressiveDecoder(
            start_id=START, end_id=end, maxlen=horizon, predict_fn=_markov_predict(tables)
        )
        got = dec.beam_search(
            [torch.zeros(1, 1, dtype=torch.long)], v**horizon, length_penalty=0.0
        )[0]
        best, best_score = None, -math.inf
        for n in range(1, horizon + 1):
            for seq in itertools.product(range(v), repeat=n):
                if end in seq[:-1] or (n < horizon and seq[-1] != end):
                    continue
                ids = [START, *seq]
                s = sum(
                    math.log(float(tables[0, a, b]) + 1e-12) for a, b in itertools.pairwise(ids)
                )
                if s > best_score:
                    best, best_score = ids, s
        assert got.tolist() == best


def test_prefix_allowed_fn_restricts_tokens() -> None:
    tables = _tables(2, 6, seed=5)
    dec = AutoRegressiveDecoder(
        start_id=START, end_id=5, maxlen=5, predict_fn=_markov_predict(tables)
    )
    out = dec.beam_search(
        [torch.arange(2)[:, None]], 3, prefix_allowed_fn=lambda item, ids: [1 + item, 5]
    )
    for item in range(2):
        assert set(out[item][1:].tolist()) <= {1 + item, 5}


def _unilm_model(positions: str, cond_dim: int | None = None) -> UniLMTransformer:
    torch.manual_seed(0)
    m = UniLMTransformer(
        24, dim=16, depth=2, heads=2, max_len=32, positions=positions, cond_dim=cond_dim
    )
    m = m.double().eval()
    with torch.no_grad():
        for p in m.parameters():
            if p.dim() == 2:
                p.normal_(0, 0.4)
    return m


@pytest.mark.parametrize(
    ("positions", "seq2seq", "cond_dim"),
    [("learned", True, None), ("rotary", False, None), ("rotary", True, 3)],
)
def test_cached_equals_uncached_and_batched_equals_alone(
    positions: str, seq2seq: bool, cond_dim: int | None, one_thread: None
) -> None:
    m = _unilm_model(positions, cond_dim)
    g = torch.Generator().manual_seed(1)
    src = torch.randint(3, 24, (3, 6), generator=g)
    lengths = torch.tensor([6, 3, 1])
    inputs = [src, lengths]
    if cond_dim is not None:
        inputs.append(torch.randn(3, cond_dim, generator=g, dtype=torch.float64))
    outs = {}
    for use_cache in (True, False):
        dec = UniLMDecoder(m, start_id=1, end_id=2, maxlen=6, use_cache=use_cache, seq2seq=seq2seq)
        outs[use_cache] = (
            dec.greedy(inputs),
            dec.beam_search(inputs, 3),
            dec.random_sample(inputs, 2, topp=0.9, generator=torch.Generator().manual_seed(3)),
        )
    for a, b in zip(outs[True][:2], outs[False][:2]):
        assert [t.tolist() for t in a] == [t.tolist() for t in b]
    assert [[s.tolist() for s in r] for r in outs[True][2]] == [
        [s.tolist() for s in r] for r in outs[False][2]
    ]
    dec = UniLMDecoder(m, start_id=1, end_id=2, maxlen=6, seq2seq=seq2seq)
    for i in range(3):
        alone = [
            src[i : i + 1, : lengths[i]],
            lengths[i : i + 1],
            *[x[i : i + 1] for x in inputs[2:]],
        ]
        assert dec.beam_search(alone, 3)[0].tolist() == outs[True][1][i].tolist()
    assert len({tuple(t.tolist()) for t in outs[True][1]}) > 1  # the rows really differ


def test_bad_input() -> None:
    m = _unilm_model("learned")
    with pytest.raises(ValueError, match="end_id"):
        UniLMDecoder(m, start_id=1, end_id=24, maxlen=4)
    with pytest.raises(ValueError, match="end_id"):
        AutoRegressiveDecoder(start_id=None, end_id=-1, maxlen=3, vocab_size=5)
    dec = AutoRegressiveDecoder(
        start_id=None, end_id=9, maxlen=3, predict_fn=lambda i, o, s: torch.ones(o.shape[0], 5)
    )
    with pytest.raises(ValueError, match="end_id"):
        dec.greedy([torch.zeros(1, 1)])
    dec = UniLMDecoder(m, start_id=1, end_id=2, maxlen=4)
    with pytest.raises(ValueError, match="empty source"):
        dec.greedy([torch.zeros(1, 0, dtype=torch.long), torch.tensor([0])])
    with pytest.raises(ValueError, match="lengths"):
        dec.greedy([torch.zeros(1, 3, dtype=torch.long), torch.tensor([0])])
    with pytest.raises(ValueError, match="topk"):
        dec.beam_search([torch.zeros(1, 3, dtype=torch.long), torch.tensor([3])], 0)
    with pytest.raises(ValueError, match="maxlen"):
        AutoRegressiveDecoder(start_id=None, end_id=1, maxlen=0)
    with pytest.raises(ValueError, match="temperature"):
        dec.beam_search(
            [torch.zeros(1, 3, dtype=torch.long), torch.tensor([3])], 2, temperature=0.0
        )


class _CountingDecoder(AutoRegressiveDecoder):
    """bert4keras-style subclass: the state is a per-row tensor that must follow the rows."""

    def __init__(self, tables: torch.Tensor, **kw: object) -> None:
        super().__init__(**kw)
        self.tables = tables

    def predict(self, inputs, output_ids, states):
        if states is None:
            states = torch.zeros(output_ids.shape[0], dtype=torch.long)
        # the state of each row = number of its generated tokens so far: follows reorders
        assert torch.equal(states, torch.full_like(states, output_ids.shape[1] - 1))
        assert torch.equal(inputs[1][:, 0], inputs[0][:, 0] * 10)  # inputs follow their rows
        return self.tables[inputs[0][:, 0], output_ids[:, -1]], states + 1


def test_subclass_hook_with_row_states() -> None:
    tables = _tables(3, 5, seed=9, end=4, end_scale=3.0)
    dec = _CountingDecoder(tables, start_id=START, end_id=4, maxlen=6)
    x = [torch.arange(3)[:, None], torch.arange(3)[:, None] * 10]
    ref = AutoRegressiveDecoder(
        start_id=START, end_id=4, maxlen=6, predict_fn=_markov_predict(tables)
    )
    for a, b in zip(dec.beam_search(x, 3), ref.beam_search(x[:1], 3)):
        assert a.tolist() == b.tolist()
    got = dec.random_sample(x, 4, generator=torch.Generator().manual_seed(0))
    assert [len(r) for r in got] == [4, 4, 4]


def test_predict_hook_is_required_and_a_subclass_can_supply_it() -> None:
    v, end = 5, 4
    tables = _tables(1, v, seed=3, end=end, end_scale=1.0)
    bare = AutoRegressiveDecoder(start_id=START, end_id=end, maxlen=4)
    with pytest.raises(NotImplementedError, match="predict_fn"):
        bare.greedy([torch.tensor([[0]])])

    markov = _markov_predict(tables)

    class Markov(AutoRegressiveDecoder):
        def predict(self, inputs, output_ids, states):  # type: ignore[override]
            return markov(inputs, output_ids, states)

    by_fn = AutoRegressiveDecoder(start_id=START, end_id=end, maxlen=4, predict_fn=markov)
    by_subclass = Markov(start_id=START, end_id=end, maxlen=4)
    x = [torch.tensor([[0]])]
    assert by_subclass.greedy(x)[0].tolist() == by_fn.greedy(x)[0].tolist()


# ------------------------------------------------------- invalid hook output, host-sync budget


def _const_predict(scores: torch.Tensor):
    """Every row of every step gets the same (V,) scores."""
    return lambda inputs, output_ids, states: scores.expand(output_ids.shape[0], -1).clone()


def test_beam_search_rejects_nan_scores() -> None:
    x = [torch.zeros(2, 1, dtype=torch.long)]
    for rtype, scores in (
        ("probas", torch.tensor([0.5, math.nan, 0.5])),
        ("probas", torch.tensor([0.5, -0.1, 0.6])),
        ("logits", torch.tensor([0.0, math.inf, 1.0])),
        ("logits", torch.full((3,), -math.inf)),
    ):
        dec = AutoRegressiveDecoder(
            start_id=None, end_id=2, maxlen=3, rtype=rtype, predict_fn=_const_predict(scores)
        )
        with pytest.raises(
            ValueError, match=r"^predict returned an invalid .* step 0: row 0 .*NaN"
        ):
            dec.beam_search(x, 2)
    masked = torch.tensor([0.0, -math.inf, 1.0])  # a -inf logit is a forbidden token, not an error
    dec = AutoRegressiveDecoder(
        start_id=None, end_id=2, maxlen=3, rtype="logits", predict_fn=_const_predict(masked)
    )
    assert all(1 not in r.tolist() for r in dec.beam_search(x, 2))


@pytest.mark.parametrize("method", ["greedy", "random_sample"])
def test_invalid_hook_output_raises_instead_of_decoding_garbage(method: str) -> None:
    x = [torch.zeros(2, 1, dtype=torch.long)]
    cases = [
        ("probas", torch.tensor([0.5, math.nan, 0.5]), "holds NaN or inf"),
        ("probas", torch.tensor([0.5, -0.1, 0.6]), "negative probability"),
        ("probas", torch.tensor([0.0, 0.0, 0.0]), "no positive mass"),
        ("logits", torch.tensor([0.0, math.inf, 1.0]), "holds NaN or inf"),
        ("logits", torch.tensor([0.0, math.nan, 1.0]), "holds NaN or inf"),
        ("logits", torch.full((3,), -math.inf), "logits all -inf"),
    ]
    for rtype, scores, what in cases:
        dec = AutoRegressiveDecoder(
            start_id=None, end_id=2, maxlen=3, rtype=rtype, predict_fn=_const_predict(scores)
        )
        run = (
            (lambda d=dec: d.greedy(x))
            if method == "greedy"
            else (
                lambda d=dec: d.random_sample(x, 2, topk=2, topp=0.9, generator=torch.Generator())
            )
        )
        with pytest.raises(
            ValueError,
            match=rf"^predict returned an invalid next-token distribution at step 0: row 0 of shape .*{what}",
        ):
            run()


@pytest.mark.parametrize("method", ["greedy", "random_sample"])
def test_invalid_output_before_minlen_is_caught_at_the_next_sync(method: str) -> None:
    """Steps before minlen have no host sync: their flags wait on the device for the next one."""
    good = torch.tensor([0.2, 0.3, 0.5])

    def predict(inputs, output_ids, states):
        out = good.expand(output_ids.shape[0], -1).clone()
        if output_ids.shape[1] == 0:
            out[0, 1] = math.nan  # step 0 only
        return out

    x = [torch.zeros(2, 1, dtype=torch.long)]
    for minlen, maxlen, span in ((3, 5, r"\[0, 2\)"), (9, 2, r"\[0, 2\)")):
        dec = AutoRegressiveDecoder(
            start_id=None, end_id=2, maxlen=maxlen, minlen=minlen, predict_fn=predict
        )
        run = getattr(dec, method)
        with pytest.raises(
            ValueError, match=rf"invalid next-token distribution .* at a step in {span}"
        ):
            run(x) if method == "greedy" else run(x, 2, generator=torch.Generator())


def test_masked_logits_are_never_sampled() -> None:
    logits = torch.tensor([0.0, -math.inf, 0.5, -math.inf, 0.2])
    dec = AutoRegressiveDecoder(
        start_id=None, end_id=4, maxlen=6, rtype="logits", predict_fn=_const_predict(logits)
    )
    out = dec.random_sample(
        [torch.zeros(3, 1)], 20, topp=0.99, generator=torch.Generator().manual_seed(0)
    )
    tokens = torch.cat([s for item in out for s in item])
    assert not torch.isin(tokens, torch.tensor([1, 3])).any()


def _count_syncs(host_syncs, run) -> int:
    host_syncs.reset()
    run()
    return host_syncs.count


@pytest.mark.parametrize("method", ["greedy", "random_sample"])
def test_one_host_sync_per_decode_step(method: str, host_syncs) -> None:
    """A decode step costs one host sync (hook-output validity and "any row finished" fused),
    whatever filters run: the loop calls the filter cores, which never re-validate. The end
    token has probability 0, so no row finishes and every run takes maxlen steps."""
    v, end = 6, 5
    tables = _tables(2, v, seed=4, end=end, end_scale=0.0)
    x = [torch.arange(2)[:, None]]

    def run(maxlen: int, minlen: int = 1):
        dec = AutoRegressiveDecoder(
            start_id=START,
            end_id=end,
            maxlen=maxlen,
            minlen=minlen,
            predict_fn=_markov_predict(tables),
        )
        if method == "greedy":
            return lambda: dec.greedy(x)
        return lambda: dec.random_sample(
            x, 3, topk=3, topp=0.9, generator=torch.Generator().manual_seed(0)
        )

    short, long = _count_syncs(host_syncs, run(2)), _count_syncs(host_syncs, run(6))
    assert long - short == 4  # 4 more steps, 1 sync each
    # before minlen no step syncs: the validity flags wait for the end of the loop (one read)
    short, long = _count_syncs(host_syncs, run(2, 99)), _count_syncs(host_syncs, run(6, 99))
    assert long == short


def test_beam_step_sync_budget(host_syncs) -> None:
    """Beam search: the row sizes and the NaN check share one transfer (before: 2 for the sizes
    and no check); the per-step count is pinned so that a new sync shows up here."""
    v, end = 6, 5
    tables = _tables(2, v, seed=4, end=end, end_scale=0.0)
    x = [torch.arange(2)[:, None]]

    def run(maxlen: int):
        dec = AutoRegressiveDecoder(
            start_id=START, end_id=end, maxlen=maxlen, predict_fn=_markov_predict(tables)
        )
        return lambda: dec.beam_search(x, 3)

    short, long = _count_syncs(host_syncs, run(2)), _count_syncs(host_syncs, run(6))
    assert (long - short) / 4 == 6


def test_beam_module_imports_decoder_for_types_only() -> None:
    """decoder.py imports beam.py at run time; beam.py must not import decoder.py back (a cycle)."""
    import ast
    import inspect

    from kexue.textkit.seq2seq.decoding import beam

    tree = ast.parse(inspect.getsource(beam))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "decoder":
            guard = next(n for n in tree.body if isinstance(n, ast.If) and node in ast.walk(n))
            assert isinstance(guard.test, ast.Name) and guard.test.id == "TYPE_CHECKING"
    assert set(beam.__all__) == {"apply_prefix_allowed", "beam_search_loop", "reorder"}
    assert all(callable(getattr(beam, name)) for name in beam.__all__)
