"""HF-semantics decoding constraints: each equals transformers' LogitsProcessor on random scores,
and greedy / pooled-beam decoding of an exported tiny BERT equals ``BertLMHeadModel.generate``
token for token (spec §6, §8 parity 5)."""

from __future__ import annotations

import pytest
import torch

from kexue.textkit.seq2seq.bert import save_bert
from kexue.textkit.seq2seq.decoding import UniLMDecoder
from kexue.textkit.seq2seq.decoding.logits_process import (
    LogitsProcessors,
    ban_bad_words,
    ban_repeated_ngrams,
    min_new_tokens_mask,
    repetition_penalty,
)

pytestmark = pytest.mark.usefixtures("one_thread")
V = 30


def _scores_and_context(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    scores = torch.randn(4, V, generator=g) * 3
    scores[1, 5] = float("-inf")
    context = torch.randint(0, 8, (4, 9), generator=g)  # small id range: many repeats
    return scores, context


def test_processors_equal_transformers_logits_processors() -> None:
    lp = pytest.importorskip("transformers.generation.logits_process")
    scores, ctx = _scores_and_context()
    for theta in (1.3, 0.7):
        ref = lp.RepetitionPenaltyLogitsProcessor(theta)(ctx, scores.clone())
        assert torch.equal(repetition_penalty(scores, ctx, theta), ref)
    for n in (1, 2, 3):
        ref = lp.NoRepeatNGramLogitsProcessor(n)(ctx, scores.clone())
        assert torch.equal(ban_repeated_ngrams(scores, ctx, n), ref), n
    bad = [[3], [7], [ctx[0, -2].item(), ctx[0, -1].item(), 11], [ctx[2, -1].item(), 12], [1] * 20]
    ref = lp.NoBadWordsLogitsProcessor(bad, eos_token_id=7)(ctx, scores.clone())
    assert torch.equal(ban_bad_words(scores, ctx, bad, end_ids=[7]), ref)
    for new in (0, 2, 5):
        full = torch.cat((torch.zeros(4, 3, dtype=torch.long), ctx[:, :new]), dim=1)
        ref = lp.MinNewTokensLengthLogitsProcessor(3, 4, eos_token_id=[2, 9])(full, scores.clone())
        assert torch.equal(min_new_tokens_mask(scores, new, 4, [2, 9]), ref)
    # padding (valid=False) is never part of the context
    valid = torch.ones_like(ctx, dtype=torch.bool)
    valid[:, :4] = False
    got = repetition_penalty(scores, ctx, 1.5, valid)
    assert torch.equal(got, lp.RepetitionPenaltyLogitsProcessor(1.5)(ctx[:, 4:], scores.clone()))
    with pytest.raises(ValueError, match="context"):
        LogitsProcessors(context="prompt")


CASES = [
    dict(repetition_penalty=1.3, no_repeat_ngram_size=2, min_new_tokens=3, bad_words_ids=[[4]]),
    dict(repetition_penalty=2.0, no_repeat_ngram_size=3, min_new_tokens=6, bad_words_ids=[[9, 4]]),
    dict(repetition_penalty=0.7, no_repeat_ngram_size=1, bad_words_ids=[[5], [6, 6]]),
]


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES)
def test_greedy_and_pooled_beam_equal_hf_generate(tmp_path, case, tiny_bert) -> None:
    transformers = pytest.importorskip("transformers")
    model = tiny_bert(V, positions=48, jitter=0.3)
    save_bert(model, tmp_path)
    hf = transformers.BertLMHeadModel.from_pretrained(tmp_path, is_decoder=True).eval()
    end = 3
    prompts = [[2, 7, 8, 11, 7], [2, 13, 14]]
    procs = LogitsProcessors(**case, context="all")
    for prompt in prompts:
        src = torch.tensor([prompt])
        inputs = [src, torch.tensor([len(prompt)])]
        kw = dict(max_new_tokens=12, eos_token_id=end, pad_token_id=0, **case)
        with torch.no_grad():
            ref = hf.generate(src, do_sample=False, num_beams=1, **kw)[0, len(prompt) :]
            dec = UniLMDecoder(
                model, start_id=None, end_id=end, maxlen=12, seq2seq=False, processors=procs
            )
            got = dec.greedy(inputs)[0]
            assert got.tolist() == ref.tolist(), (case, prompt)
            beams = hf.generate(
                src,
                num_beams=3,
                num_return_sequences=2,
                length_penalty=1.0,
                early_stopping=False,
                **kw,
            )
            ours = dec.beam_search(inputs, 3, length_penalty=1.0, num_return_sequences=2)[0]
            for a, b in zip(ours, beams, strict=True):  # HF right-pads the shorter one with 0
                b = b[len(prompt) :].tolist()
                assert a.tolist() + [0] * (len(b) - len(a)) == b, (case, prompt)


SAMPLING = [(None, None, 1.0), (5, 0.9, 0.8), (None, 0.7, 1.3)]  # top-k, top-p, temperature


@pytest.mark.slow
@pytest.mark.parametrize("case", [{}, CASES[0]])
def test_sampling_with_num_return_sequences_equals_hf_generate(tmp_path, case, tiny_bert) -> None:
    """``random_sample(n, draw="all")`` draws from the same ``(B·n, V)`` matrices as HF's
    ``generate(do_sample=True, num_return_sequences=n)`` (finished rows keep drawing), so with the
    same global seed every sample equals HF's token for token, in HF's row order; the default
    ``draw="live"`` drops finished rows, which shifts later rows' draws (module ``sample``)."""
    transformers = pytest.importorskip("transformers")
    model = tiny_bert(V, positions=48, jitter=0.3)
    save_bert(model, tmp_path)
    hf = transformers.BertLMHeadModel.from_pretrained(tmp_path, is_decoder=True).eval()
    end, prompt = 5, [2, 7, 8, 11, 7]  # a frequent end id: rows finish at different steps
    inputs = [torch.tensor([prompt]), torch.tensor([len(prompt)])]
    procs = LogitsProcessors(**case, context="all") if case else None
    dec = UniLMDecoder(model, start_id=None, end_id=end, maxlen=12, seq2seq=False, processors=procs)
    lengths, live_differs = set(), False
    for topk, topp, temperature in SAMPLING:
        for seed in range(3):
            torch.manual_seed(seed)
            with torch.no_grad():
                ref = hf.generate(
                    inputs[0],
                    do_sample=True,
                    num_return_sequences=4,
                    max_new_tokens=12,
                    eos_token_id=end,
                    pad_token_id=0,
                    top_k=topk or 0,
                    top_p=topp or 1.0,
                    temperature=temperature,
                    **case,
                )
            want = [r[len(prompt) :].tolist() for r in ref]
            want = [r[: r.index(end) + 1] if end in r else r for r in want]  # drop HF's pads
            runs = {}
            for draw in ("all", "live"):
                torch.manual_seed(seed)
                got = dec.random_sample(
                    inputs, 4, topk=topk, topp=topp, temperature=temperature, draw=draw
                )
                runs[draw] = [g.tolist() for g in got[0]]
            assert runs["all"] == want, (case, topk, topp, temperature, seed)
            lengths |= {len(r) for r in want}
            live_differs |= sorted(runs["live"]) != sorted(want)
    assert len(lengths) > 3 and live_differs  # early-finished rows were exercised
