"""Tag schemes: hand cases, encode/decode round trips, and seqeval as the decoding oracle."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kexue.textkit.tagging import schemes

SCHEME_PREFIXES = {"BIO": "BI", "IOB1": "BI", "BIOES": "BIES", "BIOUL": "BILU", "BMES": "BMES"}


@st.composite
def span_sets(draw, types=("PER", "LOC", "")):
    """Random non-overlapping spans (possibly adjacent, possibly same type) and a length."""
    n = draw(st.integers(0, 12))
    spans, k = [], 0
    while k < n:
        if draw(st.booleans()):
            end = draw(st.integers(k + 1, n))
            spans.append((k, end, draw(st.sampled_from(types))))
            k = end
        else:
            k += 1
    return spans, n


def random_tags(draw, prefixes: str, types: str = "XY", max_len: int = 10) -> list[str]:
    labels = ["O"] + [f"{p}-{t}" for p in prefixes for t in types]
    return draw(st.lists(st.sampled_from(labels), max_size=max_len))


# ---------------------------------------------------------------- encode


def test_spans_to_tags_hand_cases():
    spans = [(0, 1, "PER"), (1, 4, "LOC"), (5, 7, "PER")]
    want = {
        "BIO": "B-PER B-LOC I-LOC I-LOC O B-PER I-PER O",
        "BIOES": "S-PER B-LOC I-LOC E-LOC O B-PER E-PER O",
        "BIOUL": "U-PER B-LOC I-LOC L-LOC O B-PER L-PER O",
        "bmes": "S-PER B-LOC M-LOC E-LOC O B-PER E-PER O",
    }
    for scheme, tags in want.items():
        assert schemes.spans_to_tags(spans, 8, scheme) == tags.split(), scheme
    # IOB1: B only where an entity touches a previous one of the same type
    assert schemes.spans_to_tags([(0, 2, "X"), (2, 3, "X"), (3, 4, "Y")], 5, "IOB1") == [
        "I-X", "I-X", "B-X", "I-Y", "O",
    ]  # fmt: skip
    # untyped spans give bare tags (word segmentation)
    assert schemes.spans_to_tags([(0, 2, ""), (2, 3, "")], 3, "BMES") == ["B", "E", "S"]
    assert schemes.spans_to_tags([], 0) == []


@settings(max_examples=25, deadline=None)
@given(
    data=span_sets(),
    scheme=st.sampled_from(schemes.TAG_SCHEMES),
    mode=st.sampled_from(["strict", "conlleval"]),
)
def test_round_trip_every_scheme_and_mode(data, scheme, mode):
    spans, n = data
    tags = schemes.spans_to_tags(spans, n, scheme)
    assert len(tags) == n
    assert schemes.tags_to_spans(tags, scheme, mode) == spans


# ---------------------------------------------------------------- decode: hand cases


def test_strict_and_conlleval_differ_on_ill_formed_bio():
    tags = ["I-PER", "I-PER", "O", "B-LOC", "I-ORG", "I-ORG", "B-PER"]
    assert schemes.tags_to_spans(tags, "BIO", "strict") == [(3, 4, "LOC"), (6, 7, "PER")]
    assert schemes.tags_to_spans(tags, "BIO", "conlleval") == [
        (0, 2, "PER"), (3, 4, "LOC"), (4, 6, "ORG"), (6, 7, "PER"),
    ]  # fmt: skip


def test_strict_bioes_drops_unclosed_entities():
    tags = ["B-PER", "I-PER", "O", "B-LOC", "E-LOC", "S-ORG", "B-X", "E-Y", "E-Y"]
    assert schemes.tags_to_spans(tags, "BIOES") == [(3, 5, "LOC"), (5, 6, "ORG")]
    assert schemes.tags_to_spans(tags, "BIOES", mode="conlleval") == [
        (0, 2, "PER"), (3, 5, "LOC"), (5, 6, "ORG"), (6, 7, "X"), (7, 8, "Y"), (8, 9, "Y"),
    ]  # fmt: skip
    # BMES strict: an M-run must be closed by E of the same type
    assert schemes.tags_to_spans(["B", "M", "E", "S", "B", "M", "S"], "BMES") == [
        (0, 3, ""), (3, 4, ""), (6, 7, ""),
    ]  # fmt: skip


def test_iob1_hand_cases():
    assert schemes.tags_to_spans(["I-X", "I-X", "B-X", "I-X", "O", "I-Y"], "IOB1") == [
        (0, 2, "X"), (2, 4, "X"), (5, 6, "Y"),
    ]  # fmt: skip
    # seqeval drops "B-X" when the next token is B of another type; we keep it (documented)
    assert schemes.tags_to_spans(["I-X", "B-X", "B-Y"], "IOB1") == [(0, 1, "X"), (1, 2, "X")]


# ---------------------------------------------------------------- decode vs seqeval


def _seqeval_strict(tags, scheme_cls):
    from seqeval.scheme import Tokens

    return sorted((e.start, e.end, e.tag) for e in Tokens(tags, scheme_cls).entities)


def _seqeval_conll(tags):
    from seqeval.metrics.sequence_labeling import get_entities

    return sorted((s, e + 1, t) for t, s, e in get_entities(list(tags)))


@pytest.mark.parametrize(
    ("scheme", "seqeval_name"), [("BIO", "IOB2"), ("BIOES", "IOBES"), ("BIOUL", "BILOU")]
)
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_decoding_matches_seqeval(scheme, seqeval_name, data):
    seqeval_scheme = pytest.importorskip("seqeval.scheme")
    tags = random_tags(data.draw, SCHEME_PREFIXES[scheme])
    want = _seqeval_strict(tags, getattr(seqeval_scheme, seqeval_name))
    assert schemes.tags_to_spans(tags, scheme, "strict") == want
    if scheme != "BIOUL":  # seqeval's default reads only B/I/E/S letters
        assert schemes.tags_to_spans(tags, scheme, "conlleval") == _seqeval_conll(tags)


def test_decoding_matches_seqeval_exhaustively_on_short_sequences():
    """Every BIO/BIOES sequence of length ≤ 3 over two types (BIOES: 9³ + 9² + 9 + 1)."""
    seqeval_scheme = pytest.importorskip("seqeval.scheme")
    import itertools

    for scheme, cls in [("BIO", seqeval_scheme.IOB2), ("BIOES", seqeval_scheme.IOBES)]:
        labels = ["O"] + [f"{p}-{t}" for p in SCHEME_PREFIXES[scheme] for t in "XY"]
        for n in range(4):
            for tags in itertools.product(labels, repeat=n):
                tags = list(tags)
                assert schemes.tags_to_spans(tags, scheme, "strict") == _seqeval_strict(tags, cls)
                assert schemes.tags_to_spans(tags, scheme, "conlleval") == _seqeval_conll(tags)


@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_iob1_strict_matches_seqeval_except_documented_case(data):
    seqeval_scheme = pytest.importorskip("seqeval.scheme")
    tags = random_tags(data.draw, "BI")
    quirk = any(a[0] == "B" and b[0] == "B" and a[2:] != b[2:] for a, b in itertools.pairwise(tags))
    if not quirk:
        assert schemes.tags_to_spans(tags, "IOB1") == _seqeval_strict(tags, seqeval_scheme.IOB1)
    # conlleval mode reads IOB1 like seqeval's default
    assert schemes.tags_to_spans(tags, "IOB1", "conlleval") == _seqeval_conll(tags)


@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_bmes_decodes_like_bioes(data):
    tags = random_tags(data.draw, "BMES")
    as_bioes = [t.replace("M-", "I-") for t in tags]
    for mode in ("strict", "conlleval"):
        assert schemes.tags_to_spans(tags, "BMES", mode) == schemes.tags_to_spans(
            as_bioes, "BIOES", mode
        )


# ---------------------------------------------------------------- words ↔ BMES


def test_words_bmes_round_trip_and_lenient_decoding():
    words = ["中华人民共和国", "今天", "成立", "了"]
    tags = schemes.words_to_bmes(words)
    assert tags == ["B", "M", "M", "M", "M", "M", "E", "B", "E", "B", "E", "S"]
    assert schemes.bmes_to_words("".join(words), tags) == words
    # lenient: M/E after E/S open a word, unclosed B closes at the next boundary, O acts as S
    assert schemes.bmes_to_words("abcdefg", ["M", "E", "B", "B", "S", "O", "E"]) == [
        "ab", "c", "d", "e", "f", "g",
    ]  # fmt: skip
    assert schemes.bmes_to_words(list("ab"), ["B-PER", "E-PER"]) == ["ab"]
    assert schemes.bmes_to_words("", []) == []


@settings(max_examples=25, deadline=None)
@given(words=st.lists(st.text(alphabet="甲乙丙丁", min_size=1, max_size=5), max_size=8))
def test_bmes_round_trip_property(words):
    tags = schemes.words_to_bmes(words)
    assert len(tags) == sum(map(len, words))
    assert schemes.bmes_to_words("".join(words), tags) == words


# ---------------------------------------------------------------- labels


def test_ner_labels_and_labelset():
    assert schemes.ner_labels(["PER", "LOC"]) == ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    assert schemes.ner_labels(["PER"], "BIOES") == ["O", "B-PER", "I-PER", "E-PER", "S-PER"]
    assert schemes.ner_labels([""], "BMES") == ["O", "B", "M", "E", "S"]
    ls = schemes.LabelSet(schemes.ner_labels(["PER", "LOC"]))
    assert len(ls) == 5 and ls.labels == ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    assert ls.encode(["B-LOC", "O", "I-PER"]) == [3, 0, 2]
    assert ls.decode([3, 0, 2]) == ["B-LOC", "O", "I-PER"]
    ls.labels.append("X")  # a copy: the set is unchanged
    assert len(ls) == 5 and "X" not in ls
    assert (
        schemes.LabelSet(["O", "B"]) == schemes.LabelSet(["O", "B"]) != schemes.LabelSet(["B", "O"])
    )


def test_normalize_scheme_aliases():
    assert [schemes.normalize_scheme(s) for s in ["iob2", "IOBES", "bilou", "BMES", "IOB1"]] == [
        "BIO", "BIOES", "BIOUL", "BMES", "IOB1",
    ]  # fmt: skip


# ---------------------------------------------------------------- bad input


def test_bad_inputs_raise_naming_the_argument():
    with pytest.raises(ValueError, match="scheme"):
        schemes.tags_to_spans(["O"], "IOE2")
    with pytest.raises(ValueError, match="mode"):
        schemes.tags_to_spans(["O"], "BIO", "lenient")
    with pytest.raises(ValueError, match="tags"):
        schemes.tags_to_spans(["E-PER"], "BIO")  # E not in BIO
    with pytest.raises(ValueError, match="tags"):
        schemes.tags_to_spans(["BPER"], "BIO")
    with pytest.raises(ValueError, match="spans"):
        schemes.spans_to_tags([(0, 2, "X"), (1, 3, "Y")], 4)
    with pytest.raises(ValueError, match="spans"):
        schemes.spans_to_tags([(2, 5, "X")], 4)
    with pytest.raises(ValueError, match="spans"):
        schemes.spans_to_tags([(2, 2, "X")], 4)
    with pytest.raises(ValueError, match="length"):
        schemes.spans_to_tags([], -1)
    with pytest.raises(ValueError, match="words"):
        schemes.words_to_bmes(["ab", ""])
    with pytest.raises(ValueError, match="chars and tags"):
        schemes.bmes_to_words("abc", ["S", "S"])
    with pytest.raises(ValueError, match="tags"):
        schemes.bmes_to_words("ab", ["B", "I"])
    with pytest.raises(ValueError, match="types"):
        schemes.ner_labels(["PER", "PER"])
    with pytest.raises(ValueError, match="labels"):
        schemes.LabelSet(["O", "O"])
    with pytest.raises(ValueError, match="tags"):
        schemes.LabelSet(["O"]).encode(["B-PER"])
    with pytest.raises(ValueError, match="ids"):
        schemes.LabelSet(["O"]).decode([1])
