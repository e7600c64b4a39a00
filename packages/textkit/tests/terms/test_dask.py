"""count_ngrams_dask equals local counting, on a 2-worker local Dask cluster."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

from kexue.textkit.terms.dask import count_ngrams_dask, file_byte_ranges
from kexue.textkit.terms.ngrams import count_ngrams, count_ngrams_files

pytest.importorskip("dask")
distributed = pytest.importorskip("distributed")


def _write_corpus(path: Path, n_lines: int, seed: int) -> list[str]:
    """Random lines over a few Han characters, ASCII and punctuation (multi-byte UTF-8)."""
    rng = random.Random(seed)
    alphabet = (
        "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动"
        + "ab1 ，。！"
    )
    lines = ["".join(rng.choices(alphabet, k=rng.randint(0, 40))) for _ in range(n_lines)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return lines


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    d = tmp_path_factory.mktemp("dask")
    paths = [d / "a.txt", d / "b.txt", d / "empty.txt"]
    _write_corpus(paths[0], 400, 0)
    _write_corpus(paths[1], 250, 1)
    paths[2].write_bytes(b"")
    return paths


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
    )
    with distributed.Client(cluster) as c:
        yield c
    cluster.close()


def test_byte_ranges_cover_every_line_once(corpus: list[Path]) -> None:
    from kexue.textkit.terms.dask import _read_range

    for chunk in (3, 100, 10**6):
        ranges = file_byte_ranges(corpus, chunk_bytes=chunk)
        for path in corpus:
            own = [r for r in ranges if r[0] == str(path.resolve())]
            assert sum(e - s for _, s, e in own) == path.stat().st_size
            lines = [line for _, s, e in own for line in _read_range(str(path), s, e, "utf-8")]
            assert lines == path.read_text(encoding="utf-8").splitlines()


@pytest.mark.parametrize("chunk_bytes", [1001, 8192])
def test_dask_counts_equal_local(client, corpus: list[Path], chunk_bytes: int) -> None:
    got = count_ngrams_dask(corpus, client=client, order=4, chunk_bytes=chunk_bytes, merge_fan_in=3)
    texts = [t for p in corpus for t in p.read_text(encoding="utf-8").splitlines()]
    assert got == count_ngrams(texts, order=4)
    assert got == count_ngrams_files(corpus, order=4, prune_every=None)
    pruned = count_ngrams_dask(corpus, client=client, order=3, min_count=3, chunk_bytes=chunk_bytes)
    assert pruned == count_ngrams(texts, order=3, min_count=3)
    assert min(pruned.to_dict().values()) >= 3


def test_default_scheduler_and_empty(corpus: list[Path]) -> None:
    texts = corpus[1].read_text(encoding="utf-8").splitlines()
    assert count_ngrams_dask(corpus[1], order=2, chunk_bytes=500) == count_ngrams(texts, order=2)
    empty = count_ngrams_dask([corpus[2]], order=2)
    assert empty.num_grams() == 0


def test_bad_utf8_names_file_and_line(client, tmp_path: Path) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_bytes("好的\n".encode() * 50 + "坏".encode("gb18030") + b"\n" + "好的\n".encode() * 5)
    with pytest.raises(ValueError, match=r"bad\.txt: line 51"):
        count_ngrams_dask([bad], client=client, chunk_bytes=64)


def test_bad_arguments_and_missing_dask(
    corpus: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ValueError, match="chunk_bytes"):
        count_ngrams_dask(corpus, chunk_bytes=0)
    with pytest.raises(ValueError, match="merge_fan_in"):
        count_ngrams_dask(corpus, merge_fan_in=1)
    with pytest.raises(FileNotFoundError, match="paths"):
        count_ngrams_dask([corpus[0].with_name("missing.txt")])
    monkeypatch.setitem(sys.modules, "dask", None)
    with pytest.raises(ImportError, match=r"pip install kexue-textkit\[dask\]"):
        count_ngrams_dask(corpus)
