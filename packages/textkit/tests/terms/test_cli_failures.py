"""kexue-terms never loses work and never hangs: bad output paths (checked before any input is
read), full disk, corrupted count tables, non-finite options, bad JSON lexicons.

Everything here drives the installed console script in a subprocess (found next to
``sys.executable``), except the parse-time checks, which run ``main`` in-process.
"""

from __future__ import annotations

import json
import os
import random
import resource
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from kexue.textkit.terms.cli import main
from kexue.textkit.terms.ngrams import NgramCounts, count_ngrams

COMMANDS = ["discover", "segment", "mine", "count"]


RunScript = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def run_script(kexue_terms: str) -> RunScript:
    """``run_script(args, timeout=60, **subprocess_kwargs)``: the console script, finished."""

    def run(
        args: list[str], *, timeout: float = 60, **kwargs: object
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [kexue_terms, *args], capture_output=True, text=True, timeout=timeout, check=False,
            **kwargs,
        )  # fmt: skip

    return run


def _one_error_line(res: subprocess.CompletedProcess[str], *needles: str) -> str:
    """Exit code 2, nothing on stdout, exactly one ``kexue-terms: error:`` line naming needles."""
    assert res.returncode == 2, (res.returncode, res.stderr)
    assert res.stdout == ""
    lines = res.stderr.splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("kexue-terms: error: "), lines[0]
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def _corpus(path: Path, n_lines: int, seed: int = 0) -> Path:
    rng = random.Random(seed)
    pool = [chr(c) for c in range(0x4E00, 0x4E00 + 4000, 10)]
    words = ["".join(rng.choices(pool, k=rng.choice([2, 3]))) for _ in range(800)]
    weights = [1.0 / (r + 1) for r in range(len(words))]
    lines = ["".join(rng.choices(words, weights, k=12)) + "。" for _ in range(n_lines)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("failures")
    corpus = _corpus(d / "corpus.txt", 600)
    lexicon = d / "lexicon.tsv"
    lexicon.write_text("word\tcount\n变压器\t5\n", encoding="utf-8")
    table = d / "bg.npz"
    count_ngrams(corpus.read_text(encoding="utf-8").splitlines()).save(table)
    return {"corpus": corpus, "lexicon": lexicon, "table": table, "dir": d}


def _argv(command: str, data: dict[str, Path], output: str, *, inputs: str | None = None) -> list:
    """``command`` with an output path; ``inputs`` replaces every input path."""
    c = inputs or str(data["corpus"])
    if command == "discover":
        return ["discover", c, "-o", output, "-q"]
    if command == "segment":
        return ["segment", "--lexicon", inputs or str(data["lexicon"]), c, "-o", output, "-q"]
    if command == "mine":
        return ["mine", "--domain", c, "--background", inputs or str(data["table"]), "-o", output]
    return ["count", c, "-o", output, "-q"]


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ------------------------------------------------------------------------------ output paths
BAD_OUTPUTS: dict[str, tuple[Callable[[Path], str], str]] = {
    "missing folder": (lambda d: str(d / "no" / "such" / "out"), "does not exist"),
    "under a regular file": (lambda d: str(d / "plain.txt" / "out"), "is not a folder"),
    "name too long": (lambda d: str(d / ("x" * 300)), "file name too long"),
    "output is a directory": (lambda d: str(d / "sub"), "is a directory"),
}


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("case", sorted(BAD_OUTPUTS))
def test_bad_output_is_reported_before_any_input_is_read(
    data: dict[str, Path],
    tmp_path: Path,
    command: str,
    case: str,
    run_script: RunScript,
) -> None:
    (tmp_path / "plain.txt").write_text("a file\n", encoding="utf-8")
    (tmp_path / "sub").mkdir()
    make, reason = BAD_OUTPUTS[case]
    output = make(tmp_path)
    before = _listing(tmp_path)
    # the inputs do not exist: the error must be about the output, found first
    res = run_script(_argv(command, data, output, inputs=str(tmp_path / "missing-input.txt")))
    _one_error_line(res, output, reason)
    assert _listing(tmp_path) == before and _listing(tmp_path / "sub") == []


@pytest.mark.parametrize("command", ["discover", "segment"])
def test_bad_output_never_waits_for_stdin(
    data: dict[str, Path], command: str, kexue_terms: str
) -> None:
    """stdin stays open and empty: reading it first would hang until the timeout."""
    output = str(data["dir"] / "no" / "out.tsv")
    argv = (
        ["discover", "-", "-o", output] if command == "discover" else _argv(command, data, output)
    )
    if command == "segment":
        argv[argv.index(str(data["corpus"]))] = "-"
    with subprocess.Popen(
        [kexue_terms, *argv], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as proc:
        try:  # stdin stays open: wait for the exit without closing it
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        assert proc.stdout is not None and proc.stderr is not None
        out, err = proc.stdout.read(), proc.stderr.read()
    res = subprocess.CompletedProcess(argv, proc.returncode, out.decode(), err.decode())
    _one_error_line(res, output, "does not exist")


def test_read_only_folder(data: dict[str, Path], tmp_path: Path, run_script: RunScript) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        probe = ro / "probe"
        try:
            probe.write_text("x")
        except PermissionError:
            pass
        else:  # root ignores mode bits: the folder is writable for this process after all
            probe.unlink()
            pytest.skip("running as root: mode bits do not make a folder read-only")
        for command in COMMANDS:
            res = run_script(_argv(command, data, str(ro / "out")))
            _one_error_line(res, str(ro / "out"), "cannot write")
            assert _listing(ro) == []
    finally:
        ro.chmod(0o755)


# --------------------------------------------------------------------------- full disk (EFBIG)
@pytest.mark.parametrize("command", ["discover", "count"])
@pytest.mark.parametrize("ignore_in_child", [True, False], ids=["SIGXFSZ-ignored", "default"])
def test_full_disk_leaves_nothing(
    data: dict[str, Path],
    tmp_path: Path,
    command: str,
    ignore_in_child: bool,
    run_script: RunScript,
) -> None:
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (2048, 2048))
        if ignore_in_child:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)

    output = str(tmp_path / ("out.tsv" if command == "discover" else "t.npz"))
    argv = _argv(command, data, output)
    if command == "discover":
        argv += ["--min-count", "2"]
    res = run_script(argv, preexec_fn=limit)  # the CLI ignores SIGXFSZ itself: EFBIG, not a kill
    _one_error_line(res, output, "cannot write", "File too large")
    assert _listing(tmp_path) == []
    ok = run_script(argv)  # the same command without the limit writes the file
    assert ok.returncode == 0 and os.path.getsize(output) > 2048


# ------------------------------------------------------------------------ corrupted tables
def _variants(table: Path, folder: Path) -> dict[str, Path]:
    out = {}
    raw = table.read_bytes()
    out["truncated"] = folder / "truncated.npz"
    out["truncated"].write_bytes(raw[:2000])
    out["not a zip"] = folder / "text.npz"
    out["not a zip"].write_text("变压器\n", encoding="utf-8")
    np.savez(out.setdefault("foreign", folder / "foreign.npz"), a=np.zeros(3))
    with np.load(table) as z:
        arrays = {k: z[k] for k in z.files}
    bad_len = dict(arrays, counts_2=arrays["counts_2"][:-1])
    np.savez(out.setdefault("lengths", folder / "lengths.npz"), **bad_len)
    bad_dtype = dict(arrays, keys_1=arrays["keys_1"].astype(np.float64))
    np.savez(out.setdefault("dtype", folder / "dtype.npz"), **bad_dtype)
    extra = dict(arrays, keys_5=arrays["keys_1"])
    np.savez(out.setdefault("extra key", folder / "extra.npz"), **extra)
    missing = {k: v for k, v in arrays.items() if k != "counts_3"}
    np.savez(out.setdefault("missing key", folder / "missing.npz"), **missing)
    unsorted = dict(arrays, keys_2=arrays["keys_2"][::-1].copy())
    np.savez(out.setdefault("unsorted", folder / "unsorted.npz"), **unsorted)
    return out


def test_load_rejects_damaged_tables_naming_the_file(data: dict[str, Path], tmp_path: Path) -> None:
    good = NgramCounts.load(data["table"])
    assert good.num_grams() > 0
    for name, path in _variants(data["table"], tmp_path).items():
        with pytest.raises(ValueError, match="not a kexue n-gram count table") as exc:
            NgramCounts.load(path)
        assert str(path) in str(exc.value), name
    with pytest.raises(FileNotFoundError):
        NgramCounts.load(tmp_path / "absent.npz")


def test_mine_with_a_damaged_background_table(
    data: dict[str, Path], tmp_path: Path, run_script: RunScript
) -> None:
    for name, path in _variants(data["table"], tmp_path).items():
        out = tmp_path / f"{name}.tsv"
        res = run_script([*_argv("mine", data, str(out))[:4], str(path), "-o", str(out)])
        _one_error_line(res, str(path), "not a kexue n-gram count table")
        assert not out.exists() and "Traceback" not in res.stderr


# ------------------------------------------------------------------ parse-time option checks
@pytest.mark.parametrize(
    "argv",
    [
        ["discover", "{c}", "--min-pmi", "nan,nan,nan,nan"],
        ["discover", "{c}", "--min-pmi", "0,3,inf,7"],
        ["discover", "{c}", "--algorithm", "A", "--min-pmi", "nan"],
        ["discover", "{c}", "--algorithm", "A", "--min-proba", "inf"],
        ["discover", "{c}", "--algorithm", "A", "--min-proba", "nan"],
        ["discover", "{c}", "--algorithm", "A", "--min-proba", "0"],
        ["mine", "--domain", "{c}", "--background", "{c}", "--min-sim", "nan"],
        ["mine", "--domain", "{c}", "--background", "{c}", "--min-sim=-inf"],
    ],
)
def test_non_finite_options_are_rejected_at_parse_time(
    data: dict[str, Path], capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main([a.format(c=data["corpus"]) for a in argv])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    option = next(a for a in argv if a.startswith("--min-")).split("=")[0]
    assert f"argument {option}" in err and ("finite" in err or "probability" in err)


@pytest.mark.parametrize(
    "body",
    ['{"变压器": null}', '[{"count": 3}]', "[1, 2]", '{"变压器": 1e400}', '{"变压器": -2}', "[{"],
)
def test_bad_json_lexicon_names_the_file(
    data: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], body: str
) -> None:
    lex = tmp_path / "lexicon.json"
    lex.write_text(body, encoding="utf-8")
    code = main(["segment", "--lexicon", str(lex), str(data["corpus"])])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err.startswith(f"kexue-terms: error: {lex}: ") and err.count("\n") == 1
    good = tmp_path / "good.json"
    good.write_text(json.dumps([{"word": "变压器", "count": 3}]), encoding="utf-8")
    assert main(["segment", "--lexicon", str(good), str(data["corpus"]), "-q"]) == 0


def test_unreadable_input_is_one_line(
    data: dict[str, Path], tmp_path: Path, run_script: RunScript
) -> None:
    res = run_script(["discover", str(tmp_path), "-q"])  # a folder given as input
    _one_error_line(res, str(tmp_path), "is a directory")
