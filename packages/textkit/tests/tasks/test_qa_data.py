"""Tests of the People's Daily seq2seq task pieces: kexue.textkit.tasks.qa_data (examples, encoding,
collate, EM, lexicon), kexue.textkit.tasks.generation (training, greedy answers, sampling) and
kexue.textkit.tasks.qa_evaluation (EM, paragraph answers by voting and without)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from kexue.textkit.seq2seq.decoding.decoder import UniLMDecoder
from kexue.textkit.seq2seq.transformer import UniLMTransformer, seq2seq_loss
from kexue.textkit.tasks import generation, qa_data, qa_evaluation


@dataclass
class _Sent:
    chars: str
    ner_tags: list[str]
    paragraph: int


def _tagged(parts: list[tuple[str, str | None]], paragraph: int) -> _Sent:
    """A sentence from (text, type or None) pieces."""
    chars, tags = "", []
    for text, typ in parts:
        chars += text
        if typ is None:
            tags += ["O"] * len(text)
        else:
            tags += [f"B-{typ}"] + [f"I-{typ}"] * (len(text) - 1)
    return _Sent(chars, tags, paragraph)


# Paragraph 0: three sentences; paragraph 1: one sentence without entities.
PARAGRAPHS = [
    _tagged(
        [
            ("江泽民", "PER"),
            ("在", None),
            ("北京", "LOC"),
            ("会见", None),
            ("李鹏", "PER"),
            ("。", None),
        ],
        0,
    ),
    _tagged(
        [
            ("新华社", "ORG"),
            ("报道", None),
            ("李鹏", "PER"),
            ("到", None),
            ("上海", "LOC"),
            ("。", None),
        ],
        0,
    ),
    _tagged([("李鹏", "PER"), ("访问", None), ("上海", "LOC"), ("。", None)], 0),
    _tagged([("今天", None), ("天气", None), ("很好", None), ("。", None)], 1),
]


def test_sentence_entities_in_order():
    s = PARAGRAPHS[1]
    assert qa_data.sentence_entities(s.chars, s.ner_tags) == [
        ("ORG", "新华社"),
        ("PER", "李鹏"),
        ("LOC", "上海"),
    ]
    with pytest.raises(ValueError, match="chars and tags"):
        qa_data.sentence_entities("ab", ["O"])


def test_build_qa_examples_natural_mix():
    exs = qa_data.build_qa_examples(PARAGRAPHS, no_answer_ratio=None)
    assert len(exs) == 4 * 3
    got = [(e.sentence, e.entity_type, e.answer) for e in exs]
    assert got == [
        (0, "PER", "江泽民"),  # the FIRST PER, not 李鹏
        (0, "LOC", "北京"),
        (0, "ORG", qa_data.NO_ANSWER),
        (1, "PER", "李鹏"),
        (1, "LOC", "上海"),
        (1, "ORG", "新华社"),
        (2, "PER", "李鹏"),
        (2, "LOC", "上海"),
        (2, "ORG", qa_data.NO_ANSWER),
        (0, "PER", qa_data.NO_ANSWER),
        (0, "LOC", qa_data.NO_ANSWER),
        (0, "ORG", qa_data.NO_ANSWER),
    ]
    assert [e.paragraph for e in exs] == [0] * 9 + [1] * 3
    assert all(e.question == qa_data.QA_QUESTIONS[e.entity_type] for e in exs)
    assert exs[0].passage == "江泽民在北京会见李鹏。"


def test_build_qa_examples_balanced_per_type():
    exs = qa_data.build_qa_examples(
        PARAGRAPHS, no_answer_ratio=1.0, generator=torch.Generator().manual_seed(3)
    )
    for typ, n_pos in (("PER", 3), ("LOC", 3), ("ORG", 1)):
        of_type = [e for e in exs if e.entity_type == typ]
        pos = [e for e in of_type if e.answer != qa_data.NO_ANSWER]
        neg = [e for e in of_type if e.answer == qa_data.NO_ANSWER]
        assert len(pos) == n_pos
        # PER/LOC have only one unanswerable sentence; ORG has three, one is kept.
        assert len(neg) == 1
    # ratio 0 keeps no unanswerable example
    exs0 = qa_data.build_qa_examples(PARAGRAPHS, no_answer_ratio=0.0)
    assert all(e.answer != qa_data.NO_ANSWER for e in exs0) and len(exs0) == 7
    # deterministic for a seed
    again = qa_data.build_qa_examples(
        PARAGRAPHS, no_answer_ratio=1.0, generator=torch.Generator().manual_seed(3)
    )
    assert again == exs


def test_build_qa_examples_bad_input():
    with pytest.raises(ValueError, match="types"):
        qa_data.build_qa_examples(PARAGRAPHS, types=("MISC",))
    with pytest.raises(ValueError, match="no_answer_ratio"):
        qa_data.build_qa_examples(PARAGRAPHS, no_answer_ratio=-1.0)


def test_build_paragraph_questions_most_frequent():
    qs = qa_data.build_paragraph_questions(PARAGRAPHS)
    assert [(q.paragraph, q.entity_type, q.answer) for q in qs] == [
        (0, "PER", "李鹏"),  # 3 mentions vs 1 for 江泽民 (who comes first)
        (0, "LOC", "上海"),  # 2 mentions vs 1
        (0, "ORG", "新华社"),
        (1, "PER", qa_data.NO_ANSWER),
        (1, "LOC", qa_data.NO_ANSWER),
        (1, "ORG", qa_data.NO_ANSWER),
    ]
    assert qs[0].entities == ("江泽民", "李鹏")
    assert qs[0].passages == tuple(s.chars for s in PARAGRAPHS[:3])
    assert qs[3].entities == ()
    # ties go to the earliest first mention
    tie = qa_data.build_paragraph_questions([PARAGRAPHS[0]], types=("PER",))
    assert tie[0].answer == "江泽民"


def test_encode_seq2seq_layout():
    vocab = {ch: i + 10 for i, ch in enumerate("江泽民北京人名无答案")}

    def enc(text: str) -> list[int]:
        return [vocab[c] for c in text]

    ids, segs = qa_data.encode_seq2seq(enc, ("北京", "人名"), "江泽民", cls_id=2, sep_id=3)
    v = [vocab[c] for c in "北京人名江泽民"]
    assert ids == [2, v[0], v[1], 3, v[2], v[3], 3, v[4], v[5], v[6], 3]
    assert segs == [0] * 7 + [1] * 4
    prompt, psegs = qa_data.encode_seq2seq(enc, ("北京", "人名"), None, cls_id=2, sep_id=3)
    assert prompt == ids[:7] and psegs == [0] * 7
    cut, csegs = qa_data.encode_seq2seq(
        enc, ("北京", "人名"), "江泽民", cls_id=2, sep_id=3, max_lens=(1, 2, 2)
    )
    assert cut == [2, vocab["北"], 3, vocab["人"], vocab["名"], 3, vocab["江"], vocab["泽"], 3]
    assert csegs == [0] * 6 + [1] * 3
    with pytest.raises(ValueError, match="max_lens"):
        qa_data.encode_seq2seq(enc, ("北京",), "江", cls_id=2, sep_id=3, max_lens=(1,))
    lm, lsegs = qa_data.encode_seq2seq(enc, (), "北京", cls_id=2, sep_id=3)
    assert lm == [2, v[0], v[1], 3] and lsegs == [0, 1, 1, 1]
    with pytest.raises(ValueError, match="source"):
        qa_data.encode_seq2seq(enc, (), None, cls_id=2, sep_id=3)


def test_collate_shapes_segments_padding():
    items = [([2, 5, 3, 7, 3], [0, 0, 0, 1, 1]), ([2, 5, 6, 3, 8, 9, 3], [0, 0, 0, 0, 1, 1, 1])]
    b = qa_data.collate_seq2seq(items, pad_id=0, cond=[[1.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
    assert b.tokens.shape == b.segments.shape == b.mask.shape == (2, 7)
    torch.testing.assert_close(
        b.tokens, torch.tensor([[2, 5, 3, 7, 3, 0, 0], [2, 5, 6, 3, 8, 9, 3]])
    )
    torch.testing.assert_close(
        b.segments, torch.tensor([[0, 0, 0, 1, 1, 0, 0], [0, 0, 0, 0, 1, 1, 1]])
    )
    assert b.mask.tolist() == [[True] * 5 + [False] * 2, [True] * 7]
    assert b.cond is not None and b.cond.shape == (2, 3) and b.cond.dtype == torch.float32
    assert qa_data.collate_seq2seq(items, pad_id=0).cond is None
    with pytest.raises(ValueError, match="items"):
        qa_data.collate_seq2seq([([1, 2], [0])], pad_id=0)
    with pytest.raises(ValueError, match="items"):
        qa_data.collate_seq2seq([], pad_id=0)
    with pytest.raises(ValueError, match="cond"):
        qa_data.collate_seq2seq(items, pad_id=0, cond=[[1.0]])


def test_exact_match_normalisation():
    assert qa_data.normalize_answer("\u2581江 泽民 ") == "江泽民"
    assert qa_data.qa_exact_match(
        ["江泽民", "▁北京", "无答案"], ["江泽民", "北京", "上海"]
    ) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="predictions"):
        qa_data.qa_exact_match(["a"], [])


def test_entity_lexicon_and_type_vector():
    lex = qa_data.EntityLexicon(PARAGRAPHS)
    assert lex.entries["PER"] == {"江泽民", "李鹏"}
    assert lex.types_in("昨天李鹏在北京。") == (True, True, False)
    assert lex.find("新华社北京电", "ORG") == "新华社"
    assert lex.find("没有", "LOC") is None
    assert qa_data.EntityLexicon(PARAGRAPHS, min_count=2).entries["PER"] == {"李鹏"}
    s = PARAGRAPHS[0]
    assert qa_data.entity_type_vector(s.chars, s.ner_tags) == [1.0, 1.0, 0.0]
    assert qa_data.entity_type_vector(s.chars, s.ner_tags, types=("ORG", "PER")) == [0.0, 1.0]


def test_encode_qa_no_answer_is_empty_target():
    vocab = {ch: i + 10 for i, ch in enumerate("江泽民北京人名")}

    def enc(text: str) -> list[int]:
        return [vocab[c] for c in text]

    ids, segs = qa_data.encode_qa(enc, "北京", "人名", qa_data.NO_ANSWER, cls_id=2, sep_id=3)
    assert ids == [2, vocab["北"], vocab["京"], 3, vocab["人"], vocab["名"], 3, 3]
    assert segs == [0] * 7 + [1]
    prompt, _ = qa_data.encode_qa(enc, "北京", "人名", cls_id=2, sep_id=3)
    assert prompt == ids[:7]
    assert qa_data.decode_answer("") == qa_data.NO_ANSWER == qa_data.decode_answer(" \u2581")
    assert qa_data.decode_answer("江 泽民") == "江泽民"
    with pytest.raises(ValueError, match="max_lens"):
        qa_data.encode_qa(enc, "北京", "人名", cls_id=2, sep_id=3, max_lens=(4, 4))


# ------------------------------------------------------------------------------------------------
# Tiny models: a character tokenizer and hand-made QA data
# ------------------------------------------------------------------------------------------------


class _CharTokenizer:
    """pad 0, unk 1, bos ([CLS]) 2, eos ([SEP]) 3, then one id per character."""

    pad_id, unk_id, bos_id, eos_id = 0, 1, 2, 3

    def __init__(self, texts: list[str]) -> None:
        chars = sorted({c for t in texts for c in t})
        self.ids = {c: i + 4 for i, c in enumerate(chars)}
        self.chars = {i: c for c, i in self.ids.items()}
        self.vocab_size = len(chars) + 4

    def encode(self, text: str) -> list[int]:
        return [self.ids.get(c, self.unk_id) for c in text]

    def decode(self, ids) -> str:
        return "".join(self.chars.get(int(i), "") for i in ids)


QA = [
    qa_data.QAExample("江泽民在北京会见李鹏。", "人名", "江泽民", "PER"),
    qa_data.QAExample("江泽民在北京会见李鹏。", "地名", "北京", "LOC"),
    qa_data.QAExample("新华社报道李鹏到上海。", "机构名", "新华社", "ORG"),
    qa_data.QAExample("新华社报道李鹏到上海。", "人名", "李鹏", "PER"),
    qa_data.QAExample("今天天气很好。", "人名", qa_data.NO_ANSWER, "PER"),
    qa_data.QAExample("今天天气很好。", "地名", qa_data.NO_ANSWER, "LOC"),
]
TOK = _CharTokenizer([e.passage + e.question + e.answer for e in QA])


def _items(examples=QA, tok=TOK):
    return [
        qa_data.encode_qa(
            tok.encode, e.passage, e.question, e.answer, cls_id=tok.bos_id, sep_id=tok.eos_id
        )
        for e in examples
    ]


def _tiny_model(vocab: int, **kw) -> UniLMTransformer:
    torch.manual_seed(0)
    return UniLMTransformer(vocab, dim=32, depth=1, heads=2, max_len=64, **kw)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def qa_model() -> UniLMTransformer:
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = _tiny_model(TOK.vocab_size)
    log = generation.train_seq2seq(
        model,
        _items(),
        pad_id=0,
        batch_size=6,
        lr=1e-2,
        warmup_steps=1,
        max_steps=50,
        log_every=10,
        generator=torch.Generator().manual_seed(0),
    )
    torch.set_num_threads(old)
    assert log.steps == 50 and log.stopped_by == "max_steps" and log.examples == 300
    assert log.losses[-1] < 0.2 < 1.0 < log.losses[0]
    return model


def test_target_loss_equals_full_seq2seq_loss():
    model = _tiny_model(TOK.vocab_size)
    batch = qa_data.collate_seq2seq(_items(), pad_id=0)
    full = seq2seq_loss(
        model(batch.tokens, batch.segments, key_padding_mask=batch.mask),
        batch.tokens,
        batch.segments,
    )
    torch.testing.assert_close(
        generation.seq2seq_target_loss(model, batch), full, rtol=1e-5, atol=1e-6
    )
    # CLN model: the condition reaches the loss
    cmodel = _tiny_model(TOK.vocab_size, cond_dim=3)
    cbatch = qa_data.collate_seq2seq(_items(), pad_id=0, cond=[[1.0, 0.0, 1.0]] * 6)
    logits = cmodel(cbatch.tokens, cbatch.segments, key_padding_mask=cbatch.mask, cond=cbatch.cond)
    torch.testing.assert_close(
        generation.seq2seq_target_loss(cmodel, cbatch),
        seq2seq_loss(logits, cbatch.tokens, cbatch.segments),
        rtol=1e-5,
        atol=1e-6,
    )


def test_train_seq2seq_bad_input_and_time_budget():
    model = _tiny_model(TOK.vocab_size)
    with pytest.raises(ValueError, match="items"):
        generation.train_seq2seq(model, [], pad_id=0)
    with pytest.raises(ValueError, match="cond"):
        generation.train_seq2seq(model, _items(), pad_id=0, cond=[[1.0]])
    with pytest.raises(ValueError, match="max_seconds"):
        generation.train_seq2seq(model, _items(), pad_id=0, max_seconds=0.0)
    log = generation.train_seq2seq(model, _items(), pad_id=0, batch_size=2, max_seconds=1e-6)
    assert log.steps == 1 and log.stopped_by == "max_seconds" and not model.training


def test_tiny_model_overfits_qa_to_em_1(qa_model):
    report = qa_evaluation.evaluate_qa(qa_model, TOK, QA)
    assert report.predictions == [e.answer for e in QA]
    assert report.em == 1.0 and report.em_answerable == 1.0 and report.em_no_answer == 1.0
    assert report.per_type == {"PER": 1.0, "LOC": 1.0, "ORG": 1.0} and report.count == 6


def test_generate_answers_matches_decoder_and_full_probability(qa_model):
    prompts = [
        qa_data.encode_qa(TOK.encode, e.passage, e.question, cls_id=2, sep_id=3)[0] for e in QA
    ]
    got = generation.generate_answers(qa_model, prompts, pad_id=0, end_id=3, batch_size=4)
    src = qa_data.collate_seq2seq([(p, [0] * len(p)) for p in prompts], pad_id=0)
    dec = UniLMDecoder(qa_model, start_id=None, end_id=3, maxlen=17)
    ref = dec.greedy([src.tokens, src.mask.sum(1)])
    for (ids, prob), r, prompt in zip(got, ref, prompts):
        assert [*ids, 3] == r.tolist()
        # probability by one uncached forward over prompt + answer + [SEP]
        seq = torch.tensor([prompt + ids + [3]])
        segs = torch.tensor([[0] * len(prompt) + [1] * (len(ids) + 1)])
        with torch.no_grad():
            lp = torch.log_softmax(qa_model(seq, segs), -1)[0]
        steps = range(len(prompt) - 1, seq.shape[1] - 1)
        want = float(sum(lp[t, seq[0, t + 1]] for t in steps).exp())
        assert prob == pytest.approx(want, rel=1e-4)
    with pytest.raises(ValueError, match="prompts"):
        generation.generate_answers(qa_model, [[]], pad_id=0, end_id=3)


def test_answer_questions_unseen_passage_is_valid_text(qa_model):
    out = qa_evaluation.answer_questions(
        qa_model, TOK, [("李鹏在北京。", "人名")], max_lens=(64, 8, 4)
    )
    ((ans, prob),) = out
    assert isinstance(ans, str) and ans and 0.0 < prob <= 1.0
    assert qa_evaluation.answer_questions(qa_model, TOK, []) == []


def test_paragraph_vote_drops_no_answer_passages(qa_model):
    # the no-answer sentence says [SEP] first and is dropped; the other one decides
    assert (
        qa_evaluation.paragraph_vote_answer(
            qa_model, TOK, ["今天天气很好。", "江泽民在北京会见李鹏。"], "人名"
        )
        == "江泽民"
    )
    assert (
        qa_evaluation.paragraph_vote_answer(qa_model, TOK, ["今天天气很好。"], "地名")
        == qa_data.NO_ANSWER
    )
    assert (
        qa_evaluation.paragraph_vote_answer(qa_model, TOK, ["新华社报道李鹏到上海。"], "机构名")
        == "新华社"
    )
    with pytest.raises(ValueError, match="passages"):
        qa_evaluation.paragraph_vote_answer(qa_model, TOK, [], "人名")


def test_evaluate_paragraph_qa_all_methods(qa_model):
    qs = [
        qa_data.ParagraphQuestion(
            0,
            "PER",
            "人名",
            ("今天天气很好。", "江泽民在北京会见李鹏。"),
            "江泽民",
            ("江泽民", "李鹏"),
        ),
        qa_data.ParagraphQuestion(1, "LOC", "地名", ("今天天气很好。",), qa_data.NO_ANSWER, ()),
        qa_data.ParagraphQuestion(
            2, "PER", "人名", ("新华社报道李鹏到上海。",), "江泽民", ("江泽民", "李鹏")
        ),
    ]
    rep = qa_evaluation.evaluate_paragraph_qa(qa_model, TOK, qs)
    for m in ("vote", "first", "best"):
        assert rep.predictions[m] == ["江泽民", qa_data.NO_ANSWER, "李鹏"]
        assert rep.em[m] == pytest.approx(2 / 3) and rep.em_any[m] == 1.0
    assert rep.count == 3
    with pytest.raises(ValueError, match="methods"):
        qa_evaluation.evaluate_paragraph_qa(qa_model, TOK, qs, methods=("mean",))


def test_combine_sentence_answers_and_scores():
    answers = [(qa_data.NO_ANSWER, 0.9), ("李鹏", 0.4), ("江泽民", 0.7), ("北京", 0.7)]
    assert qa_evaluation.combine_sentence_answers(answers, method="first") == "李鹏"
    assert (
        qa_evaluation.combine_sentence_answers(answers, method="best") == "江泽民"
    )  # tie → earliest
    assert (
        qa_evaluation.combine_sentence_answers([(qa_data.NO_ANSWER, 0.2)], method="best")
        == qa_data.NO_ANSWER
    )
    with pytest.raises(ValueError, match="method"):
        qa_evaluation.combine_sentence_answers(answers, method="vote")
    qs = qa_data.build_paragraph_questions(PARAGRAPHS)  # gold: 李鹏 上海 新华社 无答案 ×3
    preds = {"a": ["江泽民", "上海", "新华社", qa_data.NO_ANSWER, "北京", ""]}
    em, em_any = qa_evaluation.score_paragraph_predictions(preds, qs)
    assert em["a"] == pytest.approx(4 / 6)  # 江泽民 is not the most frequent; 北京 is wrong
    assert em_any["a"] == pytest.approx(5 / 6)  # 江泽民 is a PER of paragraph 0
    with pytest.raises(ValueError, match="predictions"):
        qa_evaluation.score_paragraph_predictions({"a": ["x"]}, qs)


def test_sample_sentences_seeded_and_conditional():
    sents = ["江泽民在北京。", "今天天气很好。"]
    tok = _CharTokenizer(sents)
    items = [qa_data.encode_seq2seq(tok.encode, (), s, cls_id=2, sep_id=3) for s in sents]
    model = _tiny_model(tok.vocab_size, cond_dim=3)
    generation.train_seq2seq(
        model,
        items,
        pad_id=0,
        cond=[[1.0, 1.0, 0.0], [0.0, 0.0, 0.0]],
        batch_size=2,
        lr=1e-2,
        warmup_steps=1,
        max_steps=120,
        generator=torch.Generator().manual_seed(0),
    )
    a = generation.sample_sentences(
        model, tok, n=4, cond=[1.0, 1.0, 0.0], generator=torch.Generator().manual_seed(5)
    )
    b = generation.sample_sentences(
        model, tok, n=4, cond=[1.0, 1.0, 0.0], generator=torch.Generator().manual_seed(5)
    )
    assert a == b and a == [sents[0]] * 4  # the condition selects the sentence
    assert (
        generation.sample_sentences(model, tok, n=3, cond=[0.0, 0.0, 0.0], topp=0.5)
        == [sents[1]] * 3
    )


def test_condition_hit_rates():
    presence = [(True, False, False), (True, True, False), (False, False, False)]
    conds = [(1, 0, 0), (1, 0, 1), (0, 0, 0)]
    rates = generation.condition_hit_rates(presence, conds)
    assert rates["requested"] == pytest.approx(2 / 3)  # PER, PER present; ORG missing
    assert rates["unrequested_absent"] == pytest.approx(5 / 6)  # LOC in sentence 2
    assert rates["exact"] == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="presence"):
        generation.condition_hit_rates(presence, conds[:2])
