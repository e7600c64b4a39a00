"""Multi-passage voting: score properties, no-answer handling, extractive mode, via the decoder."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from kexue.textkit.seq2seq.voting import (
    PassageVoter,
    extractive_filter,
    ngram_continuations,
    vote_answer,
    vote_scores,
)

END = 0


@settings(max_examples=25, deadline=None)
@given(passages=st.integers(1, 5), seed=st.integers(0, 10_000))
def test_score_properties(passages: int, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    p = torch.rand(passages, 7, generator=g, dtype=torch.float64).softmax(-1)
    s = vote_scores(p)
    assert (s <= p.amax(0) + 1e-15).all() and (s >= 0).all()
    # one passage: p²/(p+1), monotone, so its ranking is preserved
    single = vote_scores(p[:1])
    torch.testing.assert_close(single, p[0] ** 2 / (p[0] + 1), atol=1e-15, rtol=0)
    assert torch.equal(single.argsort(), p[0].argsort())
    # an agreeing passage with the same p raises the score
    assert (vote_scores(torch.stack([p[0], p[0]])) > single).all()


def test_scores_hand_computed() -> None:
    p = torch.tensor([[0.5, 0.5, 0.0], [0.9, 0.0, 0.1]], dtype=torch.float64)
    expected = torch.tensor([(0.25 + 0.81) / 2.4, 0.25 / 1.5, 0.01 / 1.1], dtype=torch.float64)
    torch.testing.assert_close(vote_scores(p), expected, atol=1e-15, rtol=0)


def test_ngram_continuations_and_extractive_filter() -> None:
    passages = [[5, 6, 7], [6, 8]]
    assert ngram_continuations(passages, 1) == {(): {5, 6, 7, 8}}
    assert ngram_continuations(passages, 2) == {(5,): {6}, (6,): {7, 8}}
    probas = torch.full((1, 2, 9), 0.1, dtype=torch.float64)
    out = extractive_filter(probas, torch.tensor([[6], [7]]), passages, end_id=END)
    assert out[0, 0].nonzero().flatten().tolist() == [END, 7, 8]
    assert out[0, 1].nonzero().flatten().tolist() == [END]


def _table_predict(tables: dict[int, dict[tuple[int, ...], list[float]]], vocab: int):
    """Passage i's next-token distribution after prefix (dict lookup, default uniform)."""

    def predict(indices: list[int], output_ids: torch.Tensor) -> torch.Tensor:
        out = torch.full(
            (len(indices), output_ids.shape[0], vocab), 1.0 / vocab, dtype=torch.float64
        )
        for a, i in enumerate(indices):
            for r, prefix in enumerate(output_ids.tolist()):
                if tuple(prefix) in tables[i]:
                    out[a, r] = torch.tensor(tables[i][tuple(prefix)], dtype=torch.float64)
        return out

    return predict


def test_no_answer_handling() -> None:
    v = 4
    no = {(): [0.7, 0.1, 0.1, 0.1]}  # argmax end at step 0
    yes = {(): [0.1, 0.1, 0.2, 0.6], (3,): [0.8, 0.1, 0.05, 0.05]}
    # all passages say "no answer" -> empty answer
    assert (
        vote_answer(_table_predict({0: no, 1: no}, v), num_passages=2, end_id=END, maxlen=4) == []
    )
    # a no-answer passage is dropped: its strong vote for token 2 after step 0 does not count
    loud = {(): [0.5, 0.0, 0.45, 0.05], (3,): [0.0, 0.0, 1.0, 0.0]}
    answer = vote_answer(_table_predict({0: yes, 1: loud}, v), num_passages=2, end_id=END, maxlen=4)
    assert answer == [3]
    # the voter object: scores at step 0 are the vote of the answering passages only
    voter = PassageVoter(_table_predict({0: yes, 1: loud}, v), num_passages=2, end_id=END)
    scores, state = voter([torch.zeros(1, 1)], torch.zeros(1, 0, dtype=torch.long), None)
    p = torch.tensor([yes[()]], dtype=torch.float64)
    torch.testing.assert_close(scores[0], (p**2 / (p + 1))[0], atol=1e-15, rtol=0)
    assert state.alive == [0]


def test_agreement_decides_and_extractive_mode() -> None:
    v = 6
    # passage 0 prefers 4 strongly, passages 1 and 2 agree on 5 -> the vote picks 5
    stop = [1.0] + [0.0] * 5
    t0 = {(): [0.0, 0.0, 0.0, 0.0, 0.6, 0.4], (4,): stop, (5,): stop, (5, 3): stop}
    t1 = {(): [0.0, 0.0, 0.0, 0.0, 0.4, 0.6], (5,): [0.2, 0.0, 0.0, 0.8, 0.0, 0.0], (4,): stop}
    t1[(5, 3)] = stop
    tables = {0: t0, 1: t1, 2: t1}
    # alone, passage 0 answers 4
    assert vote_answer(_table_predict({0: t0}, v), num_passages=1, end_id=END, maxlen=5) == [4]
    got = vote_answer(_table_predict(tables, v), num_passages=3, end_id=END, maxlen=5)
    assert got[0] == 5
    assert got == [5, 3]  # (5, 3) then end: the abstractive answer
    # extractive: passages contain "5" but never "5 3", so the answer stops after 5
    passages = [[4, 2], [5, 1], [2, 5]]
    ext = vote_answer(
        _table_predict(tables, v),
        num_passages=3,
        end_id=END,
        maxlen=5,
        extractive=True,
        passages=passages,
    )
    assert ext == [5]
    for n in range(1, len(ext) + 1):
        assert any(tuple(ext[:n]) == tuple(p[s : s + n]) for p in passages for s in range(len(p)))


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="probas"):
        vote_scores(torch.tensor([[-0.1, 1.1]]))
    with pytest.raises(ValueError, match="passages"):
        PassageVoter(lambda i, o: torch.zeros(1), num_passages=2, end_id=0, extractive=True)
    with pytest.raises(ValueError, match="end_id"):
        extractive_filter(torch.ones(1, 1, 3), torch.zeros(1, 0, dtype=torch.long), [[1]], end_id=3)
    voter = PassageVoter(lambda i, o: torch.ones(len(i), o.shape[0], 3), num_passages=2, end_id=5)
    with pytest.raises(ValueError, match="end_id"):
        voter([torch.zeros(1, 1)], torch.zeros(1, 0, dtype=torch.long), None)


def test_voting_through_a_unilm_model() -> None:
    from kexue.textkit.seq2seq.decoding import unilm_next_logits
    from kexue.textkit.seq2seq.transformer import UniLMTransformer
    from kexue.textkit.seq2seq.voting import unilm_passage_predict

    torch.manual_seed(0)
    model = UniLMTransformer(20, dim=16, depth=1, heads=2, max_len=32).double().eval()
    with torch.no_grad():
        model.token_embedding.weight.normal_(0, 1.0)
    g = torch.Generator().manual_seed(0)
    sources = torch.randint(3, 20, (3, 7), generator=g)
    lengths = torch.tensor([7, 5, 6])
    predict = unilm_passage_predict(model, sources, lengths)
    prefix = torch.tensor([[4, 5], [6, 7]])
    got = predict([2, 0], prefix)
    assert got.shape == (2, 2, 20)
    for a, i in enumerate([2, 0]):
        for r in range(2):
            alone = unilm_next_logits(
                model, sources[i : i + 1, : lengths[i]], lengths[i : i + 1], prefix[r : r + 1]
            )
            torch.testing.assert_close(got[a, r], alone[0].softmax(-1), atol=1e-10, rtol=1e-10)
    passages = [s[1:4].tolist() for s in sources]
    answer = vote_answer(
        predict, num_passages=3, end_id=1, maxlen=4, topk=2, extractive=True, passages=passages
    )
    for n in range(1, len(answer) + 1):
        assert any(
            tuple(answer[:n]) == tuple(p[s : s + n]) for p in passages for s in range(len(p))
        )
