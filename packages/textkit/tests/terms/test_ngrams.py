"""Tests of kexue.textkit.terms.ngrams: exact counts vs a Counter, merging, pruning, I/O, streaming."""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kexue.textkit.terms.ngrams import NgramCounts, count_ngrams, count_ngrams_files, fragments

ALPHABET = "甲乙丙丁戊ab1 ,。\n"


def brute(texts: list[str], order: int, pattern: str | None = None) -> dict[str, int]:
    ref: Counter[str] = Counter()
    for t in texts:
        for f in fragments(t) if pattern is None else fragments(t, pattern=pattern):
            for n in range(1, order + 1):
                for i in range(len(f) - n + 1):
                    ref[f[i : i + n]] += 1
    return dict(ref)


texts_st = st.lists(st.text(alphabet=ALPHABET, max_size=40), max_size=6)


def test_fragments_split_rule() -> None:
    assert fragments("我爱 NLP，真的!!好") == ["我爱 NLP", "真的", "好"]
    assert fragments("，。") == []


@settings(max_examples=25, deadline=None)
@given(texts=texts_st, order=st.integers(1, 4), chunk=st.integers(1, 60))
def test_counts_equal_counter(texts: list[str], order: int, chunk: int) -> None:
    c = count_ngrams(texts, order=order, chunk_chars=chunk)
    assert c.to_dict() == brute(texts, order)
    for n in range(1, order + 1):
        keys, cnt = c.arrays(n)
        assert np.all(np.diff(keys) > 0) and np.all(cnt > 0)
        assert c.total(n) == sum(v for g, v in brute(texts, order).items() if len(g) == n)


@settings(max_examples=15, deadline=None)
@given(texts=texts_st)
def test_custom_pattern_and_merge_of_different_vocabs(texts: list[str]) -> None:
    pattern = "[^甲乙丙丁戊,]+"  # keeps the comma, splits on latin letters and digits
    c = count_ngrams(texts, order=3, pattern=pattern, chunk_chars=7)
    assert c.to_dict() == brute(texts, 3, pattern)
    d = count_ngrams(texts[::-1], order=3)  # default alphabet
    merged = c.merge(d)
    want = Counter(brute(texts, 3, pattern))
    want.update(brute(texts[::-1], 3))
    assert merged.to_dict() == dict(want)


@settings(max_examples=20, deadline=None)
@given(a=texts_st, b=texts_st)
def test_merge_equals_concatenation(a: list[str], b: list[str]) -> None:
    ca, cb = count_ngrams(a, order=4), count_ngrams(b, order=4)
    assert ca.merge(cb) == count_ngrams(a + b, order=4)
    assert (
        NgramCounts.merge_all([ca, cb, ca]).to_dict() == count_ngrams(a + b + a, order=4).to_dict()
    )


def test_count_lookup_items_and_prune() -> None:
    c = count_ngrams(["中国人民，中国人", "人民"], order=3)
    assert c.count("中国") == 2 and c.count("人民") == 2 and c.count("国人民") == 1
    assert c.count("民中") == 0  # crosses the comma
    assert c.count("中国人民") == 0  # longer than order
    assert c.count("x") == 0
    np.testing.assert_array_equal(c.lookup(["中国", "人民", "国民"], 2), [2, 2, 0])
    assert dict(c.items(1)) == {"中": 2, "国": 2, "人": 3, "民": 2}
    p = c.prune(2)
    assert p.to_dict() == {
        "中": 2,
        "国": 2,
        "人": 3,
        "民": 2,
        "中国": 2,
        "国人": 2,
        "人民": 2,
        "中国人": 2,
    }


def test_save_load_roundtrip(tmp_path) -> None:
    rng = random.Random(0)
    texts = ["".join(rng.choice(ALPHABET) for _ in range(50)) for _ in range(20)]
    c = count_ngrams(texts, order=4)
    c.save(tmp_path / "t.npz")
    d = NgramCounts.load(tmp_path / "t.npz")
    assert d == c and d.order == 4
    for n in range(1, 5):
        np.testing.assert_array_equal(d.arrays(n)[0], c.arrays(n)[0])
    np.save(tmp_path / "x.npy", np.zeros(3))
    np.savez(tmp_path / "bad.npz", a=np.zeros(2))
    with pytest.raises(ValueError, match="not a kexue"):
        NgramCounts.load(tmp_path / "bad.npz")


@pytest.mark.parametrize("error", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_failed_save_leaves_no_temporary_file(tmp_path, monkeypatch, error) -> None:
    c = count_ngrams(["甲乙丙丁甲乙"], order=3)
    c.save(tmp_path / "t.npz")
    before = (tmp_path / "t.npz").read_bytes()
    real = np.savez

    def failing(f, **arrays):  # write some bytes, then fail as a full disk or Ctrl-C would
        real(f, **{k: v for k, v in list(arrays.items())[:3]})
        raise error

    monkeypatch.setattr(np, "savez", failing)
    with pytest.raises(type(error)):
        count_ngrams(["戊己庚"], order=3).save(tmp_path / "t.npz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.npz"]
    assert (tmp_path / "t.npz").read_bytes() == before  # the old table is untouched
    with pytest.raises(FileNotFoundError):
        c.save(tmp_path / "missing" / "t.npz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.npz"]


def test_load_validates_every_field(tmp_path) -> None:
    c = count_ngrams(["甲乙丙丁甲乙", "乙丙丁"], order=2)
    c.save(tmp_path / "t.npz")
    with np.load(tmp_path / "t.npz") as z:
        good = {k: z[k] for k in z.files}
    broken = {
        "version": dict(good, version=np.array(2)),
        "order": dict(good, order=np.array("2")),
        "vocab dtype": dict(good, vocab=good["vocab"].astype(np.int64)),
        "vocab order": dict(good, vocab=good["vocab"][::-1].copy()),
        "key range": dict(good, keys_1=good["keys_1"] + len(good["vocab"]) + 1),
        "zero count": dict(good, counts_1=np.zeros_like(good["counts_1"])),
        "counts dtype": dict(good, counts_2=good["counts_2"].astype(np.int32)),
        "2-d keys": dict(good, keys_2=good["keys_2"].reshape(1, -1)),
    }
    for name, arrays in broken.items():
        path = tmp_path / f"{name}.npz"
        np.savez(path, **arrays)
        with pytest.raises(ValueError, match="not a kexue n-gram count table") as exc:
            NgramCounts.load(path)
        assert str(path) in str(exc.value), name
    np.savez(tmp_path / "ok.npz", **good)
    assert NgramCounts.load(tmp_path / "ok.npz") == c


def test_multiprocess_equals_single() -> None:
    rng = random.Random(1)
    texts = ["".join(rng.choice(ALPHABET) for _ in range(200)) for _ in range(200)]
    one = count_ngrams(texts, order=4, chunk_chars=5000)
    two = count_ngrams(texts, order=4, workers=2, chunk_chars=5000)
    assert one == two
    assert one.to_dict() == brute(texts, 4)


def test_files_streaming_exact_and_pruned(tmp_path) -> None:
    rng = random.Random(2)
    lines = [
        "".join(rng.choice(ALPHABET[:-1]) for _ in range(rng.randint(0, 80))) for _ in range(300)
    ]
    f1, f2 = tmp_path / "a.txt", tmp_path / "b.txt"
    f1.write_text("\n".join(lines[:150]) + "\n", encoding="utf-8")
    f2.write_text("\n".join(lines[150:]), encoding="utf-8")
    seen: list[tuple[int, int]] = []
    exact = count_ngrams_files(
        [f1, f2],
        order=3,
        chunk_chars=100,
        prune_every=None,
        progress=lambda d, t: seen.append((d, t)),
    )
    assert exact.to_dict() == brute(lines, 3)
    assert seen[-1][0] == seen[-1][1] == f1.stat().st_size + f2.stat().st_size
    par = count_ngrams_files([f1, f2], order=3, chunk_chars=100, workers=2, prune_every=None)
    assert par == exact
    # lossy counting: R rounds lose at most R·(m−1) per gram; grams above the bound survive
    m, every = 3, 500
    pruned = count_ngrams_files([f1, f2], order=3, min_count=m, chunk_chars=100, prune_every=every)
    rounds = sum(len(x) for x in lines) // every + 2
    ref = brute(lines, 3)
    got = pruned.to_dict()
    for g, v in got.items():
        assert ref[g] - rounds * (m - 1) <= v <= ref[g] and v >= m
    for g, v in ref.items():
        if v >= rounds * (m - 1) + m:
            assert g in got


def test_bad_utf8_names_file_and_line(tmp_path) -> None:
    p = tmp_path / "bad.txt"
    p.write_bytes("好的\n第二行\n".encode() + b"\xff\xfe oops\n")
    with pytest.raises(ValueError, match=r"bad\.txt: line 3"):
        count_ngrams_files([p], order=2)
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    assert len(count_ngrams_files(empty, order=2)) == 0


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="order"):
        count_ngrams(["ab"], order=0)
    with pytest.raises(ValueError, match="min_count"):
        count_ngrams(["ab"], min_count=0)
    with pytest.raises(ValueError, match="workers"):
        count_ngrams(["ab"], workers=0)
    with pytest.raises(ValueError, match="order=5"):
        count_ngrams(["ab"], order=5)
    with pytest.raises(ValueError, match="texts"):
        count_ngrams([b"ab"])  # type: ignore[list-item]
    with pytest.raises(FileNotFoundError, match="paths"):
        count_ngrams_files(["/nonexistent/file.txt"])
