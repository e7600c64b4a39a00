"""kexue-terms end to end: discover, segment, mine, count; bad UTF-8, empty files, atomic output."""

from __future__ import annotations

import io
import json
import os
import random
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from kexue.textkit.terms._cli_io import ProgressBar
from kexue.textkit.terms.cli import main

TERMS = ["变压器", "输电线路", "继电保护", "电网调度"]


def _sentences(n: int, p_term: float, seed: int) -> list[str]:
    """Zipfian random words over 400 Han characters (as in test_domain), TERMS planted."""
    rng = random.Random(0)
    pool = [chr(c) for c in range(0x4E00, 0x4E00 + 6000, 15)]
    words = sorted({"".join(rng.choices(pool, k=rng.choice([2, 2, 3]))) for _ in range(3000)})
    rng.shuffle(words)
    weights = [1.0 / (r + 1) for r in range(len(words))]
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        ws = rng.choices(words, weights, k=rng.randint(6, 12))
        if rng.random() < p_term:
            ws.insert(rng.randrange(len(ws) + 1), rng.choice(TERMS))
        out.append("".join(w + ("，" if rng.random() < 0.5 else "") for w in ws) + "。")
    return out


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("cli")
    dom, bg = _sentences(500, 0.5, 1), _sentences(2000, 0.005, 2)
    paths = {"domain": d / "domain.txt", "background": d / "background.txt"}
    paths["domain"].write_text("\n".join(dom) + "\n", encoding="utf-8")
    paths["background"].write_text("\n".join(bg) + "\n", encoding="utf-8")
    paths["bad"] = d / "bad.txt"
    paths["bad"].write_bytes("第一行\n第二行\n".encode() + "第三行".encode("gb18030") + b"\n")
    paths["empty"] = d / "empty.txt"
    paths["empty"].write_bytes(b"")
    return paths


Run = Callable[[list[str]], tuple[int, str, str]]


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Run:
    """``run(argv) -> (exit code, stdout, stderr)`` of ``kexue-terms argv``, in-process."""

    def run(argv: list[str]) -> tuple[int, str, str]:
        code = main(argv)
        out, err = capsys.readouterr()
        return code, out, err

    return run


def _tsv(text: str) -> tuple[list[str], list[list[str]]]:
    lines = text.rstrip("\n").split("\n")
    return lines[0].split("\t"), [line.split("\t") for line in lines[1:]]


@pytest.mark.parametrize("algorithm", ["A", "B"])
def test_discover_tsv_and_json(files: dict[str, Path], run: Run, algorithm: str) -> None:
    from kexue.textkit.terms.discovery import WordFinder, discover_ngrams

    argv = ["discover", str(files["domain"]), "--algorithm", algorithm, "--min-count", "5"]
    code, out, err = run([*argv, "--top", "30"])
    assert code == 0 and "words discovered" in err
    header, rows = _tsv(out)
    assert header == ["word", "count"] and len(rows) == 30
    texts = [t for t in files["domain"].read_text(encoding="utf-8").splitlines() if t]
    if algorithm == "A":
        words = WordFinder().train(texts).words
        ref = {w: c for w, c in words.items() if c >= 5}
    else:  # the command's default min_pmi for algorithm B is (0, 3, 5, 7)
        ref = discover_ngrams(texts, min_count=5, min_pmi=(0, 3, 5, 7))
    expected = sorted(ref.items(), key=lambda wc: (-wc[1], wc[0]))[:30]
    assert [(w, int(c)) for w, c in rows] == expected
    code, out, _ = run([*argv, "--format", "json", "--min-length", "2"])
    data = json.loads(out)
    assert code == 0 and all(len(r["word"]) >= 2 for r in data)
    assert data == [{"word": w, "count": c} for w, c in sorted(ref.items(), key=lambda wc: (-wc[1], wc[0])) if len(w) >= 2]  # fmt: skip


def test_bad_encoding_names_file_and_line(files: dict[str, Path], run: Run) -> None:
    for argv in (
        ["discover", str(files["domain"]), str(files["bad"])],
        ["mine", "--domain", str(files["bad"]), "--background", str(files["background"])],
        ["segment", "--lexicon", str(files["bad"]), str(files["domain"])],
        ["count", str(files["bad"]), "-o", str(files["bad"].with_suffix(".npz"))],
    ):
        code, out, err = run(argv)
        assert code == 2, argv
        assert out == ""
        assert err.startswith("kexue-terms: error: ") and "Traceback" not in err
        assert "bad.txt" in err and "line 3" in err, err
    assert not files["bad"].with_suffix(".npz").exists()


def test_empty_file(files: dict[str, Path], run: Run) -> None:
    code, out, err = run(["discover", str(files["empty"]), "--format", "json"])
    assert code == 0 and json.loads(out) == [] and "holds no text" in err
    code, out, err = run(["discover", str(files["empty"]), "--quiet"])
    assert code == 0 and out == "word\tcount\n" and err == ""
    code, out, err = run(
        ["mine", "--domain", str(files["empty"]), "--background", str(files["background"])]
    )
    assert code == 2 and "no text in the domain corpus" in err
    code, out, err = run(
        ["mine", "--domain", str(files["domain"]), "--background", str(files["empty"])]
    )
    assert code == 2 and "no text in the background corpus" in err


def test_mine_texts_and_count_table(files: dict[str, Path], tmp_path: Path, run: Run) -> None:
    out_tsv = tmp_path / "terms.tsv"
    code, out, _ = run(
        ["mine", "--domain", str(files["domain"]), "--background", str(files["background"]),
         "--top", "10", "-o", str(out_tsv), "-q"])  # fmt: skip
    assert code == 0 and out == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["terms.tsv"]  # no temp file left
    header, rows = _tsv(out_tsv.read_text(encoding="utf-8"))
    assert header == ["term", "score", "domain_count", "background_count"]
    assert {r[0] for r in rows[:4]} == set(TERMS)
    assert all(0 < float(r[1]) < 1 for r in rows)
    # The same ranking with the background given as a count table written by `count`.
    table = tmp_path / "bg.npz"
    code, _, _ = run(["count", str(files["background"]), "-o", str(table), "-q"])
    assert code == 0 and table.is_file()
    code, out, _ = run(
        ["mine", "--domain", str(files["domain"]), "--background", str(table), "--top", "10",
         "--format", "json"])  # fmt: skip
    data = json.loads(out)
    assert [(d["term"], d["domain_count"]) for d in data] == [(r[0], int(r[2])) for r in rows]
    assert [d["score"] for d in data] == pytest.approx([float(r[1]) for r in rows], rel=1e-5)
    # blog_compat: NaN scores become JSON null and come last.
    code, out, _ = run(
        ["mine", "--domain", str(files["domain"]), "--background", str(files["background"]),
         "--counts", "discovered", "--blog-compat", "--top", "100000", "--format", "json"])  # fmt: skip
    scores = [d["score"] for d in json.loads(out)]
    first_null = scores.index(None)
    assert all(s is None for s in scores[first_null:]) and first_null > 0


def test_count_then_load(files: dict[str, Path], tmp_path: Path, run: Run) -> None:
    from kexue.textkit.terms.ngrams import NgramCounts, count_ngrams

    table = tmp_path / "t.npz"
    code, _, err = run(["count", str(files["domain"]), "-o", str(table), "--order", "3"])
    assert code == 0 and "written to" in err
    texts = files["domain"].read_text(encoding="utf-8").splitlines()
    assert NgramCounts.load(table) == count_ngrams(texts, order=3)


def test_segment_with_discovered_lexicon(
    files: dict[str, Path],
    tmp_path: Path,
    run: Run,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from kexue.textkit.terms.segment import UnigramSegmenter

    for fmt in ("tsv", "json"):
        lex = tmp_path / f"lex.{fmt}"
        code, _, _ = run(
            ["discover", str(files["domain"]), "--algorithm", "A", "--format", fmt, "-o", str(lex)]
        )
        assert code == 0
        text = tmp_path / "in.txt"
        text.write_text("在变压器旁，继电保护 装置\n\n输电线路。\n", encoding="utf-8")
        code, out, _ = run(["segment", "--lexicon", str(lex), str(text)])
        assert code == 0
        lines = out.split("\n")
        assert lines[1] == "" and len(lines) == 4  # empty line kept, trailing newline
        assert "变压器" in lines[0].split(" ") and "继电保护" in lines[0].split(" ")
        assert lines[2].split(" ")[0] == "输电线路"
    # stdin input ("-" or no file), compared with the library.
    lexicon = {}
    for r in json.loads(lex.read_text(encoding="utf-8")):
        lexicon[r["word"]] = r["count"]
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO("继电保护和变压器。".encode())))
    code, out, _ = run(["segment", "--lexicon", str(lex)])
    assert (
        code == 0
        and out == " ".join(UnigramSegmenter(lexicon).segment("继电保护和变压器。")) + "\n"
    )


def test_usage_errors(files: dict[str, Path], tmp_path: Path, run: Run) -> None:
    code, _, err = run(["discover", str(tmp_path / "missing.txt")])
    assert code == 2 and "missing.txt: no such file" in err
    code, _, err = run(["discover", str(files["domain"]), "--algorithm", "A", "--min-pmi", "1,2"])
    assert code == 2 and "--min-pmi" in err
    code, _, err = run(["discover", str(files["domain"]), "-o", str(tmp_path / "no" / "x.tsv")])
    assert code == 2 and "does not exist" in err
    with pytest.raises(SystemExit) as exc:
        main(["discover", str(files["domain"]), "--top", "0"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit):
        main([])


def test_failed_write_leaves_target_untouched(
    files: dict[str, Path],
    tmp_path: Path,
    run: Run,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    target = tmp_path / "out.tsv"
    target.write_text("old\n", encoding="utf-8")

    def boom(*_a: object, **_k: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    code, out, err = run(["discover", str(files["domain"]), "-o", str(target), "-q"])
    assert code == 2 and out == ""
    assert err == f"kexue-terms: error: {target}: cannot write (disk full)\n"
    assert target.read_text(encoding="utf-8") == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.tsv"]


def test_progress_bar_draws_on_a_terminal() -> None:
    stream = io.StringIO()
    bar = ProgressBar("reading", 4 * 2**20, enabled=True, stream=stream)
    bar.update(2**20)
    bar.update(4 * 2**20)
    bar.close()
    text = stream.getvalue()
    assert "\r" in text and "100.0%" in text and text.endswith("\n")
    quiet = io.StringIO()
    off = ProgressBar("reading", 10, enabled=False, stream=quiet)
    off.update(10)
    off.close()
    assert quiet.getvalue() == ""


def test_console_script(files: dict[str, Path], kexue_terms: str) -> None:
    exe = kexue_terms
    ok = subprocess.run(
        [exe, "discover", str(files["domain"]), "--top", "3", "--format", "json"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    data = json.loads(ok.stdout)
    assert len(data) == 3 and all(isinstance(d["count"], int) for d in data)
    assert ok.stderr == "" or "\r" not in ok.stderr  # not a terminal: no bar
    bad = subprocess.run(
        [exe, "discover", str(files["bad"])],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 2 and "bad.txt, line 3" in bad.stderr
    assert "Traceback" not in bad.stderr
