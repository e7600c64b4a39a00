"""NER entity scores (hand cases and seqeval parity) and SIGHAN-style CWS scores (hand cases)."""

from __future__ import annotations

import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kexue.textkit.tagging.metrics import PRF, cws_scores, entity_scores, span_scores, to_halfwidth

# ---------------------------------------------------------------- entity scores: hand cases


def test_entity_scores_hand_computed():
    gold = [
        ["B-PER", "I-PER", "O", "B-LOC", "O"],
        ["B-ORG", "I-ORG", "I-ORG", "O", "B-PER"],
    ]
    pred = [
        ["B-PER", "I-PER", "O", "B-LOC", "I-LOC"],  # PER right, LOC wrong boundary
        ["B-ORG", "I-ORG", "I-ORG", "O", "O"],  # ORG right, PER missed
    ]
    r = entity_scores(gold, pred)
    # PER: tp 1, pred 1, gold 2; LOC: tp 0, pred 1, gold 1; ORG: tp 1, pred 1, gold 1
    assert r.per_type["PER"] == PRF(1.0, 0.5, 2 / 3, 2, 1, 1)
    assert r.per_type["LOC"] == PRF(0.0, 0.0, 0.0, 1, 0, 1)
    assert r.per_type["ORG"] == PRF(1.0, 1.0, 1.0, 1, 1, 1)
    assert list(r.per_type) == ["LOC", "ORG", "PER"]
    assert r.micro.precision == pytest.approx(2 / 3) and r.micro.recall == pytest.approx(2 / 4)
    assert r.micro.f1 == pytest.approx(2 * (2 / 3) * 0.5 / (2 / 3 + 0.5))
    assert r.micro.support == 4
    assert r.macro.precision == pytest.approx((1 + 0 + 1) / 3)
    assert r.macro.recall == pytest.approx((0.5 + 0 + 1) / 3)
    assert r.macro.f1 == pytest.approx((2 / 3 + 0 + 1) / 3)
    table = r.to_table(digits=3)
    assert "PER" in table and "0.667" in table and table.splitlines()[-2].startswith("micro")


def test_strict_versus_conlleval_counts():
    gold = [["B-PER", "I-PER", "O"]]
    pred = [["I-PER", "I-PER", "O"]]  # opens an entity only under conlleval rules
    assert entity_scores(gold, pred).micro.f1 == 0.0
    assert entity_scores(gold, pred, mode="conlleval").micro.f1 == 1.0
    bioes = entity_scores([["B-X", "E-X"]], [["B-X", "I-X"]], scheme="BIOES")
    assert bioes.micro == PRF(0.0, 0.0, 0.0, 1, 0, 0)  # the unclosed prediction is dropped


def test_no_entities_and_span_scores():
    r = entity_scores([["O", "O"]], [["O", "O"]])
    assert r.micro == PRF(0.0, 0.0, 0.0, 0, 0, 0) and r.per_type == {}
    s = span_scores([[(0, 2, "A"), (0, 2, "A")]], [[(0, 2, "A"), (3, 4, "B")]])
    assert s.micro.tp == 1 and s.micro.predicted == 2 and s.micro.support == 1


# ---------------------------------------------------------------- entity scores vs seqeval


def _seqeval_report(gold, pred, scheme_name):
    metrics = pytest.importorskip("seqeval.metrics")
    kwargs = {}
    if scheme_name is not None:
        scheme = pytest.importorskip("seqeval.scheme")
        kwargs = {"mode": "strict", "scheme": getattr(scheme, scheme_name)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return metrics.classification_report(
            gold, pred, output_dict=True, zero_division=0, **kwargs
        )


@st.composite
def tag_corpora(draw, prefixes):
    labels = ["O"] + [f"{p}-{t}" for p in prefixes for t in ("PER", "LOC")]
    lens = draw(st.lists(st.integers(1, 8), min_size=1, max_size=5))
    gold = [draw(st.lists(st.sampled_from(labels), min_size=n, max_size=n)) for n in lens]
    pred = [draw(st.lists(st.sampled_from(labels), min_size=n, max_size=n)) for n in lens]
    return gold, pred


@pytest.mark.parametrize(
    ("scheme", "mode", "seqeval_scheme"),
    [
        ("BIO", "strict", "IOB2"),
        ("BIOES", "strict", "IOBES"),
        ("BIO", "conlleval", None),
        ("BIOES", "conlleval", None),
    ],
)
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_entity_scores_match_seqeval(scheme, mode, seqeval_scheme, data):
    gold, pred = data.draw(tag_corpora("BI" if scheme == "BIO" else "BIES"))
    ours = entity_scores(gold, pred, scheme=scheme, mode=mode)
    ref = _seqeval_report(gold, pred, seqeval_scheme)
    types = sorted(k for k in ref if k not in ("micro avg", "macro avg", "weighted avg"))
    assert list(ours.per_type) == types
    for t in types:
        got = ours.per_type[t]
        assert (got.precision, got.recall, got.f1) == pytest.approx(
            (ref[t]["precision"], ref[t]["recall"], ref[t]["f1-score"]), abs=1e-12
        )
        assert got.support == ref[t]["support"]
    if types:
        for ours_avg, name in [(ours.micro, "micro avg"), (ours.macro, "macro avg")]:
            want = ref[name]
            assert (ours_avg.precision, ours_avg.recall, ours_avg.f1) == pytest.approx(
                (want["precision"], want["recall"], want["f1-score"]), abs=1e-12
            )
            assert ours_avg.support == want["support"]


# ---------------------------------------------------------------- CWS


def test_cws_scores_hand_computed():
    gold = [["中国", "人民", "站起来", "了"], ["他", "来"]]
    pred = [["中国人民", "站", "起来", "了"], ["他", "来"]]
    r = cws_scores(gold, pred, train_words=["中国", "了", "站"])
    # spans: gold (0,2)(2,4)(4,7)(7,8) | (0,1)(1,2); pred (0,4)(4,5)(5,7)(7,8) | (0,1)(1,2)
    assert (r.gold_words, r.pred_words, r.correct) == (6, 6, 3)
    assert (r.precision, r.recall, r.f1) == pytest.approx((0.5, 0.5, 0.5))
    # OOV gold words: 人民, 站起来, 他, 来 (2 of 4 found); IV: 中国 (missed), 了 (found)
    assert r.oov_rate == pytest.approx(4 / 6)
    assert r.oov_recall == pytest.approx(0.5) and r.iv_recall == pytest.approx(0.5)
    assert "F MEASURE: 0.5000" in r.to_table()
    plain = cws_scores(gold, pred)
    assert plain.oov_recall is None and plain.iv_recall is None and plain.f1 == r.f1


def test_cws_scores_compare_offsets_not_bags_of_words():
    # the same words in another order spell the same text but share no span
    r = cws_scores([["ab", "a", "b"]], [["a", "b", "ab"]])
    assert r.correct == 0 and r.f1 == 0.0
    perfect = cws_scores([["ab", "c"]], [["ab", "c"]], train_words=["ab", "c"])
    assert perfect.f1 == 1.0 and perfect.iv_recall == 1.0 and perfect.oov_recall is None


def test_cws_full_width_normalisation():
    assert to_halfwidth("１２月ＡＢ！\u3000中") == "12月AB! 中"
    gold, pred = [["１２月", "好"]], [["１２", "月", "好"]]
    raw = cws_scores(gold, pred, train_words=["12月", "好"])
    assert raw.oov_rate == pytest.approx(0.5) and raw.oov_recall == 0.0
    norm = cws_scores(gold, pred, train_words=["12月", "好"], normalize_width=True)
    assert norm.oov_rate == 0.0 and norm.iv_recall == pytest.approx(0.5)
    assert norm.f1 == raw.f1 == pytest.approx(2 * (1 / 3) * (1 / 2) / (1 / 3 + 1 / 2))


# ---------------------------------------------------------------- bad input


def test_bad_inputs_raise_naming_the_argument():
    with pytest.raises(ValueError, match="gold and pred"):
        entity_scores([["O"]], [])
    with pytest.raises(ValueError, match="gold and pred: sequence 0"):
        entity_scores([["O", "O"]], [["O"]])
    with pytest.raises(ValueError, match="scheme"):
        entity_scores([["O"]], [["O"]], scheme="XYZ")
    with pytest.raises(ValueError, match="mode"):
        entity_scores([["O"]], [["O"]], mode="loose")
    with pytest.raises(ValueError, match="tags"):
        entity_scores([["S-PER"]], [["O"]], scheme="BIO")
    with pytest.raises(ValueError, match="sentence 0 spells different texts"):
        cws_scores([["ab"]], [["ac"]])
    with pytest.raises(ValueError, match="gold_words and pred_words"):
        cws_scores([["ab"]], ["ab"])
    with pytest.raises(ValueError, match="train_words"):
        cws_scores([["ab"]], [["ab"]], train_words="ab")
    with pytest.raises(ValueError, match="words"):
        cws_scores([["a", ""]], [["a"]])
