"""Domain-term ranking (spec §2.4, §4 word discovery items 6-7): score, filters, BFS, mining."""

from __future__ import annotations

import math
import random
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kexue.textkit.terms.domain import domain_scores, is_good_term, mine_domain_terms
from kexue.textkit.terms.expand import ExpandedTerm, cooccurrence_vectors, expand_seeds

# ---------------------------------------------------------------------------------------- score


def test_domain_scores_hand_computation() -> None:
    fd = {"电网": 30, "变压器": 10, "人民": 10}
    fg = {"人民": 100, "电网": 10, "北京": 90}
    # scale = 50 / 200 = 0.25: f_g' = 人民 25, 电网 2.5, 北京 22.5; union of 4 words:
    # m = (50 + 50) / 4 = 25, alpha = 50 / 100 = 0.5.
    expected = {
        "电网": (30 + 12.5) / (30 + 2.5 + 25),
        "变压器": (10 + 12.5) / (10 + 0 + 25),
        "人民": (10 + 12.5) / (10 + 25 + 25),
        "北京": (0 + 12.5) / (0 + 22.5 + 25),
    }
    got = domain_scores(fd, fg)
    assert [t.term for t in got] == sorted(expected, key=lambda w: -expected[w])
    for t in got:
        assert t.score == pytest.approx(expected[t.term], rel=1e-15, abs=0)
        assert t.domain_count == fd.get(t.term, 0)
        assert t.background_count == fg.get(t.term, 0)
    # An explicit scale replaces Σf_d/Σf_g; alpha and m follow it.
    got = {t.term: t.score for t in domain_scores(fd, fg, scale=1.0)}
    m, alpha = (50 + 200) / 4, 50 / 250
    assert got["电网"] == pytest.approx((30 + alpha * m) / (30 + 10 + m), rel=1e-15, abs=0)


def test_domain_scores_blog_compat_nan_ordering() -> None:
    fd = {"电网": 30, "变压器": 10, "人民": 10}
    fg = {"人民": 100, "电网": 10, "北京": 90}
    got = domain_scores(fd, fg, blog_compat=True)
    # Words missing from either corpus: NaN, sorted last (the domain-only 变压器 is lost).
    assert [t.term for t in got[:2]] == ["电网", "人民"]
    assert all(math.isnan(t.score) for t in got[2:])
    assert {t.term for t in got[2:]} == {"变压器", "北京"}
    # alpha and m over the intersection {电网, 人民}; rescaling over the whole maps (0.25).
    both = {"电网": (30, 2.5), "人民": (10, 25.0)}
    tot = sum(a + b for a, b in both.values())
    m, alpha = tot / 2, (30 + 10) / tot
    for t in got[:2]:
        a, b = both[t.term]
        assert t.score == pytest.approx((a + alpha * m) / (a + b + m), rel=1e-15, abs=0)
    # Default mode: the same domain-only word is finite and ranked.
    default = {t.term: t.score for t in domain_scores(fd, fg)}
    assert all(math.isfinite(s) for s in default.values())


counts_st = st.dictionaries(
    st.sampled_from([f"词{i}" for i in range(12)]), st.integers(1, 1000), min_size=1, max_size=12
)


@settings(max_examples=25, deadline=None)
@given(fd=counts_st, fg=counts_st)
def test_domain_scores_properties(fd: dict[str, int], fg: dict[str, int]) -> None:
    got = domain_scores(fd, fg)
    assert {t.term for t in got} == set(fd) | set(fg)
    scale = sum(fd.values()) / sum(fg.values())
    for t in got:
        assert 0.0 < t.score < 1.0
        # After rescaling alpha = 0.5: a word with f_d = f_g' scores 0.5.
        if fd.get(t.term, 0) == pytest.approx(scale * fg.get(t.term, 0), rel=1e-12):
            assert t.score == pytest.approx(0.5, abs=1e-12)
    scores = [t.score for t in got]
    assert scores == sorted(scores, reverse=True)


def test_equal_counts_score_exactly_half() -> None:
    fd = {"甲乙": 7, "丙丁": 3, "戊己": 10}
    fg = {"甲乙": 7, "丙丁": 5, "戊己": 8}  # equal totals: scale 1, alpha exactly 0.5
    got = {t.term: t.score for t in domain_scores(fd, fg)}
    assert got["甲乙"] == 0.5
    assert got["丙丁"] < 0.5 < got["戊己"]


def test_domain_score_increases_with_domain_count() -> None:
    fg = {"电网": 40, "人民": 300, "北京": 200}
    prev = -1.0
    for c in [0, 1, 2, 5, 10, 50, 200, 1000]:
        fd = {"电网": c, "人民": 50, "北京": 30}
        score = next(t.score for t in domain_scores(fd, fg) if t.term == "电网")
        assert score > prev
        prev = score


def test_domain_scores_bad_input() -> None:
    with pytest.raises(ValueError, match="domain_counts"):
        domain_scores({}, {"a": 1})
    with pytest.raises(ValueError, match="domain_counts"):
        domain_scores({"a": -1}, {"a": 1})
    with pytest.raises(ValueError, match="background_counts"):
        domain_scores({"a": 1}, {"a": float("nan")})
    with pytest.raises(ValueError, match="background_counts"):
        domain_scores({"a": 1}, {})
    with pytest.raises(ValueError, match="scale"):
        domain_scores({"a": 1}, {"a": 1}, scale=0.0)
    with pytest.raises(ValueError, match="blog_compat"):
        domain_scores({"a": 1}, {"b": 1}, blog_compat=True)


# -------------------------------------------------------------------------------------- filters


@pytest.mark.parametrize(
    ("term", "basic", "strict"),
    [
        ("变压器", True, True),
        ("输电线路", True, True),
        ("电", False, False),  # too short
        ("220千伏", False, False),  # digits
        ("电网，", False, False),  # punctuation
        ("电 网", False, False),  # space
        ("的电网", False, False),  # stop character first
        ("电网了", False, False),  # stop character last
        ("GDP", True, False),  # strict wants a Han character
        ("电力市场", True, False),  # generic suffix
        ("考虑电网", True, False),  # prefix
        ("很高", True, False),  # degree character
        ("电力博士", True, False),  # degree word
        ("哈哈", True, False),  # repeated characters
        ("十万", True, False),  # two-character numeral
        ("进一步加强", True, False),
    ],
)
def test_is_good_term(term: str, basic: bool, strict: bool) -> None:
    assert is_good_term(term) is basic
    assert is_good_term(term, strict=True) is strict


def test_is_good_term_options() -> None:
    assert is_good_term("220千伏", allow_digits=True)
    assert not is_good_term("输电线路", max_length=3)
    assert is_good_term("电", min_length=1)
    assert is_good_term("的电网", stop_chars="")
    assert not is_good_term("", min_length=0)


# ------------------------------------------------------------------------------ seed expansion


def _circle(n: int, step_deg: float) -> tuple[list[str], np.ndarray]:
    ang = np.deg2rad(step_deg * np.arange(n))
    return [f"词语{i}" for i in range(n)], np.stack([np.cos(ang), np.sin(ang)], axis=1)


def test_expand_seeds_depth_threshold_on_a_circle() -> None:
    words, vecs = _circle(18, 20.0)  # neighbours at 20° (cos .940), 40° (.766), 60° (.5)
    got = expand_seeds(["词语0"], words, vecs, neighbours=4, term_filter=None)
    # Depth 0 threshold 0.6: exactly the words at ±20° and ±40°.
    first = {e.term for e in got if e.depth == 1}
    assert first == {"词语1", "词语2", "词语17", "词语16"}
    for e in got:
        thr = 0.6 + 0.4 * (1 - math.exp(-0.35 * (e.depth - 1)))
        assert e.threshold == pytest.approx(thr, abs=1e-12)
        assert e.similarity >= e.threshold  # never below its depth's threshold
    # The rising threshold stops the walk before it closes the circle: 180° is never reached.
    assert len(got) < 17 and "词语9" not in {e.term for e in got}
    # Accepted similarity equals the cosine to the word that found it: 20° or 40° steps.
    assert {round(e.similarity, 6) for e in got} <= {round(math.cos(math.radians(20)), 6),
                                                     round(math.cos(math.radians(40)), 6)}  # fmt: skip


@settings(max_examples=20, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    min_sim=st.floats(0.0, 0.9),
    decay=st.floats(0.0, 2.0),
)
def test_expand_seeds_never_below_threshold_and_terminates(
    seed: int, min_sim: float, decay: float
) -> None:
    rng = np.random.default_rng(seed)
    vecs = rng.standard_normal((60, 3))
    words = [f"词{i:02d}" for i in range(60)]
    unit = vecs / np.linalg.norm(vecs, axis=1, keepdims=True)
    got = expand_seeds(
        ["词00", "词01"], words, vecs, min_sim=min_sim, decay=decay, neighbours=10, term_filter=None
    )
    terms = [e.term for e in got]
    assert len(terms) == len(set(terms)) and not {"词00", "词01"} & set(terms)
    for e in got:
        thr = min_sim + (1.0 - min_sim) * (1 - math.exp(-decay * (e.depth - 1)))
        assert e.threshold == pytest.approx(thr, abs=1e-12)
        assert e.similarity >= thr - 1e-12
        # its similarity is the cosine to some word accepted (or seeded) one level up
        parents = (
            ["词00", "词01"] if e.depth == 1 else [x.term for x in got if x.depth == e.depth - 1]
        )
        cos = [float(unit[words.index(p)] @ unit[words.index(e.term)]) for p in parents]
        assert any(abs(c - e.similarity) < 1e-9 for c in cos)


def test_expand_seeds_identical_vectors_all_accepted_once() -> None:
    vecs = np.ones((30, 4))
    words = [f"术语{i}" for i in range(30)]
    got = expand_seeds(["术语0"], words, vecs, neighbours=50, term_filter=None)
    assert sorted(e.term for e in got) == sorted(words[1:])
    assert all(e.depth == 1 for e in got)
    assert len(expand_seeds(["术语0"], words, vecs, max_accept=5, term_filter=None)) == 5


def test_expand_seeds_filter_offsets_and_bad_input() -> None:
    words, vecs = _circle(18, 20.0)
    got = expand_seeds(["词语0"], words, vecs, term_filter=lambda w: w != "词语1", neighbours=4)
    assert "词语1" not in {e.term for e in got} and "词语2" in {e.term for e in got}
    # The default filter (is_good_term) rejects these names: they contain digits.
    assert expand_seeds(["词语0"], words, vecs) == []
    # A centre offset pointing at 90° turns the first query towards the words near 45°.
    shifted = expand_seeds(
        ["词语0"], words, vecs, center=np.array([0.0, 2.0]), neighbours=2, term_filter=None
    )
    assert {e.term for e in shifted if e.depth == 1} == {"词语4", "词语3"}
    with pytest.raises(ValueError, match="seeds"):
        expand_seeds(["未知"], words, vecs)
    with pytest.raises(ValueError, match="vectors"):
        expand_seeds(["词语0"], words, vecs[:5])
    with pytest.raises(ValueError, match="center"):
        expand_seeds(["词语0"], words, vecs, center=np.zeros(3))
    with pytest.raises(ValueError, match="min_sim"):
        expand_seeds(["词语0"], words, vecs, min_sim=0.9, max_sim=0.5)


def _topic_docs(n: int = 300, seed: int = 0) -> list[list[str]]:
    rng = random.Random(seed)
    topics = [["电网", "变压器", "输电", "电压", "线路"], ["球队", "比赛", "进球", "教练", "联赛"]]
    common = ["我们", "今年", "进行", "工作", "重要"]
    docs = []
    for _ in range(n):
        t = topics[rng.randrange(2)]
        docs.append([rng.choice(t if rng.random() < 0.7 else common) for _ in range(12)])
    return docs


def test_cooccurrence_vectors_separate_topics() -> None:
    words, vecs = cooccurrence_vectors(_topic_docs(), window=3, dim=6, seed=0)
    assert vecs.shape == (15, 6) and vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, rtol=0, atol=1e-5)
    v = {w: vecs[i].astype(np.float64) for i, w in enumerate(words)}
    power = ["电网", "变压器", "输电", "电压", "线路"]
    sport = ["球队", "比赛", "进球", "教练", "联赛"]
    within = np.mean([v[a] @ v[b] for a in power for b in power if a != b])
    across = np.mean([v[a] @ v[b] for a in power for b in sport])
    assert within > 0.5 and across < 0.1
    # The randomized range finder equals the dense eigendecomposition here (15 <= 2·dim + 20).
    words2, vecs2 = cooccurrence_vectors(_topic_docs(), window=3, dim=6, seed=1)
    assert words2 == words
    gram = vecs.astype(np.float64) @ vecs.T
    np.testing.assert_allclose(gram, vecs2.astype(np.float64) @ vecs2.T, rtol=0, atol=1e-5)


def _brute_force_vectors(
    docs: list[list[str]], words: list[str], window: int, dim: int
) -> np.ndarray:
    """Loop-built weighted co-occurrences, PPMI, dense eigh, U·sqrt(lambda), unit rows."""
    idx = {w: i for i, w in enumerate(words)}
    c = np.zeros((len(words), len(words)))
    for doc in docs:
        ids = [idx[w] for w in doc if w in idx]
        for p, i in enumerate(ids):
            for k in range(1, window + 1):
                if p + k < len(ids):
                    c[i, ids[p + k]] += (window - k + 1) / window
                    c[ids[p + k], i] += (window - k + 1) / window
    r = c.sum(1)
    with np.errstate(divide="ignore"):
        ppmi = np.maximum(np.log(c * c.sum() / np.outer(r, r)), 0.0)
    lam, vec = np.linalg.eigh(ppmi)
    top = np.argsort(-lam)[:dim]
    emb = vec[:, top] * np.sqrt(np.maximum(lam[top], 0))
    return emb / np.linalg.norm(emb, axis=1, keepdims=True)


def test_cooccurrence_vectors_randomized_matches_dense() -> None:
    rng = random.Random(3)
    topics = [[f"题{t}词{i:02d}" for i in range(20)] for t in range(6)]
    docs = [[rng.choice(t) for _ in range(20)] for t in rng.choices(topics, k=400)]
    words, vecs = cooccurrence_vectors(docs, window=2, dim=6, seed=0, min_count=1)
    assert len(words) == 120 > 2 * 6 + 20  # the randomized path ran
    ref = _brute_force_vectors(docs, words, window=2, dim=6)
    # Same top-6 subspace (6 topics: a clear spectral gap) up to rotation/sign: equal cosines.
    np.testing.assert_allclose(vecs @ vecs.T, ref @ ref.T, rtol=0, atol=1e-3)
    with pytest.raises(ValueError, match="docs"):
        cooccurrence_vectors([["a"]], min_count=1)
    with pytest.raises(ValueError, match="window"):
        cooccurrence_vectors(docs, window=0)
    with pytest.raises(ValueError, match="docs"):
        cooccurrence_vectors([["电网"], ["变压器"], ["电网"]], window=1, min_count=1)


def test_expanded_term_fields() -> None:
    e = ExpandedTerm("电网", 0.9, 1, 0.6)
    assert (e.term, e.similarity, e.depth, e.threshold) == ("电网", 0.9, 1, 0.6)


# ----------------------------------------------------------------------------------- mining

TERMS = ["变压器", "输电线路", "继电保护", "电网调度"]


def _planted_corpora(
    seed: int = 0, n_dom: int = 500, n_bg: int = 2000
) -> tuple[list[str], list[str]]:
    """Zipfian random 'words' over 400 Han characters, commas between words half the time; the
    domain plants one of TERMS in half of its sentences, the background in 0.5 %."""
    rng = random.Random(seed)
    pool = [chr(c) for c in range(0x4E00, 0x4E00 + 6000, 15)]
    words = sorted({"".join(rng.choices(pool, k=rng.choice([2, 2, 3]))) for _ in range(3000)})
    rng.shuffle(words)
    weights = [1.0 / (r + 1) for r in range(len(words))]

    def sentence(p_term: float) -> str:
        ws = rng.choices(words, weights, k=rng.randint(6, 12))
        if rng.random() < p_term:
            ws.insert(rng.randrange(len(ws) + 1), rng.choice(TERMS))
        return "".join(w + ("，" if rng.random() < 0.5 else "") for w in ws) + "。"

    return [sentence(0.5) for _ in range(n_dom)], [sentence(0.005) for _ in range(n_bg)]


@pytest.fixture(scope="module")
def corpora() -> tuple[list[str], list[str]]:
    return _planted_corpora()


def _occurrences(texts: list[str], word: str) -> int:
    """Overlapping substring count (brute force)."""
    return sum(sum(t.startswith(word, i) for i in range(len(t) - len(word) + 1)) for t in texts)


@pytest.mark.parametrize("counts", ["ngrams", "discovered"])
def test_mine_finds_planted_terms(corpora: tuple[list[str], list[str]], counts: str) -> None:
    dom, bg = corpora
    got = mine_domain_terms(dom, bg, algorithm="A", counts=counts, top=10)  # type: ignore[arg-type]
    assert {t.term for t in got[:4]} == set(TERMS)
    assert all(0.5 < t.score < 1.0 for t in got[:4]) and got[4].score < got[3].score


def test_mine_ngram_counts_equal_brute_force(corpora: tuple[list[str], list[str]]) -> None:
    dom, bg = corpora
    got = mine_domain_terms(dom, bg, algorithm="A", top=None, term_filter=None, min_count=5)
    from kexue.textkit.terms.discovery import WordFinder

    cand = {
        w for w, c in WordFinder(min_proba=1e-6, min_pmi=0.5).train(dom).words.items() if c >= 5
    }
    assert {t.term for t in got} == cand
    short = [t for t in got if len(t.term) <= 4]
    assert len(short) > 40
    for t in short[:: max(1, len(short) // 40)]:
        assert t.domain_count == _occurrences(dom, t.term)
        assert t.background_count == _occurrences(bg, t.term)
    # Scores are domain_scores over the candidates with the character-total scale.
    fd = {t.term: t.domain_count for t in got}
    fg = {t.term: t.background_count for t in got}
    chars = [
        sum(len(f) for t in x for f in re.split(r"[^\u4e00-\u9fa5a-zA-Z0-9 ]+", t))
        for x in (dom, bg)
    ]
    ref = domain_scores(fd, fg, scale=chars[0] / chars[1])
    assert [(t.term, t.score) for t in got] == [(t.term, t.score) for t in ref]


def test_mine_background_kinds_agree(tmp_path: Path, corpora: tuple[list[str], list[str]]) -> None:
    from kexue.textkit.terms.discovery import WordFinder
    from kexue.textkit.terms.ngrams import count_ngrams

    dom, bg = corpora
    ref = mine_domain_terms(dom, bg, top=20)
    table = count_ngrams(bg, order=4)
    assert mine_domain_terms(dom, table, top=20) == ref
    table.save(tmp_path / "bg.npz")
    assert mine_domain_terms(dom, tmp_path / "bg.npz", top=20) == ref
    assert mine_domain_terms(dom, str(tmp_path / "bg.npz"), top=20) == ref
    # A word-count mapping means discovered counts, as background texts with counts="discovered".
    lexicon = WordFinder(min_proba=1e-6, min_pmi=0.5).train(bg).words
    disc = mine_domain_terms(dom, bg, counts="discovered", top=20)
    assert mine_domain_terms(dom, lexicon, top=20) == disc
    with pytest.raises(ValueError, match="counts"):
        mine_domain_terms(dom, lexicon, counts="ngrams")
    with pytest.raises(ValueError, match="counts"):
        mine_domain_terms(dom, table, counts="discovered")


def test_mine_blog_compat_drops_domain_only_terms(corpora: tuple[list[str], list[str]]) -> None:
    dom, bg = corpora
    got = mine_domain_terms(dom, bg, counts="discovered", blog_compat=True, top=None)
    nan_at = next(i for i, t in enumerate(got) if math.isnan(t.score))
    assert all(math.isnan(t.score) for t in got[nan_at:])
    tail = {t.term for t in got[nan_at:]}
    # Planted terms absent from the background lexicon are NaN and sorted last.
    assert tail == {t.term for t in got if t.background_count == 0}
    assert {"变压器", "电网调度"} <= tail


def test_mine_algorithm_b_and_bad_input(corpora: tuple[list[str], list[str]]) -> None:
    from kexue.textkit.terms.discovery import discover_ngrams

    dom, bg = corpora
    opts = {"min_pmi": (0, 0.5, 1, 1.5)}
    got = mine_domain_terms(dom, bg, algorithm="B", discovery_options=opts, top=None, min_count=5)
    cand = discover_ngrams(dom, min_count=5, **opts)
    assert {t.term for t in got} == {w for w in cand if is_good_term(w)}
    assert {"变压器", "输电线路", "继电保护"} <= {t.term for t in got[:5]}
    with pytest.raises(ValueError, match="algorithm"):
        mine_domain_terms(dom, bg, algorithm="C")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="domain_texts"):
        mine_domain_terms(["", ""], bg)
    with pytest.raises(ValueError, match="background"):
        mine_domain_terms(dom, ["", ""])
    with pytest.raises(ValueError, match="top"):
        mine_domain_terms(dom, bg, top=0)


def test_mine_with_seed_expansion(corpora: tuple[list[str], list[str]]) -> None:
    from kexue.textkit.terms.discovery import WordFinder
    from kexue.textkit.terms.segment import UnigramSegmenter

    dom, bg = corpora
    options = {"dim": 16, "min_sim": 0.5, "window": 3}
    got = mine_domain_terms(dom, bg, seeds=["变压器"], expansion_options=options, top=None)
    full = mine_domain_terms(dom, bg, top=None)
    lexicon = WordFinder(min_proba=1e-6, min_pmi=0.5).train(dom).words  # all, not only >= 5
    docs = [[w for w in d if w not in "，。"] for d in UnigramSegmenter(lexicon).segment_many(dom)]
    words, vecs = cooccurrence_vectors(docs, dim=16, window=3)
    accepted = {e.term for e in expand_seeds(["变压器"], words, vecs, min_sim=0.5)}
    assert accepted  # the toy corpus does expand
    assert [t.term for t in got] == [t.term for t in full if t.term in accepted | {"变压器"}]
    assert got[0].term in TERMS
