"""SIGINT / SIGTERM end kexue-terms quickly at any phase, leaving no output, temp file or worker.

Each trial starts the installed console script in its own session, waits for a phase (start-up: a
random delay after the start; counting: both worker processes exist, then a random delay; writing:
the temporary output file has its first bytes, then a random delay), then sends SIGINT to the whole process
group (what Ctrl-C does) or SIGTERM to the parent only (what ``kill`` does). It asserts an exit
within 2 s with status 130 / 143, no output and no temporary file in the output folder, and no
process left in the group. Delays come from a seeded ``random.Random``.

At start-up a signal can arrive before ``main`` has installed its handlers (while the interpreter
starts or imports the command): the process then dies by the signal itself, which a shell reports
as the same status 128 + n (``returncode == -n`` here), or, for a SIGINT while the interpreter still
imports ``site``, CPython's own "Fatal Python error: init_import_site" with status 1; those trials
are counted and still have to end in time and leave nothing behind.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

DEADLINE_S = 2.0
TRIALS = {"start-up": 6, "counting": 8, "writing": 6}  # 20 trials


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4.7 MB of random words over 3000 Han characters: millions of distinct grams."""
    rng = random.Random(0)
    pool = [chr(c) for c in range(0x4E00, 0x4E00 + 3000)]
    words = ["".join(rng.choices(pool, k=rng.choice([2, 3]))) for _ in range(20000)]
    toks = rng.choices(words, k=600_000)
    path = tmp_path_factory.mktemp("interrupts") / "corpus.txt"
    lines = ("".join(toks[i : i + 12]) + "。" for i in range(0, len(toks), 12))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _stat_fields(pid: str) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            text = f.read()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()  # state, ppid, pgrp, ...


def _procs(*, ppid: int | None = None, pgrp: int | None = None) -> list[int]:
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        f = _stat_fields(pid)
        if f is None or (f[0] == "Z" and ppid is None):
            continue
        if (ppid is not None and int(f[1]) == ppid) or (pgrp is not None and int(f[2]) == pgrp):
            out.append(int(pid))
    return out


def _wait_for(cond, proc: subprocess.Popen, timeout: float = 20.0) -> None:
    t0 = time.monotonic()
    while not cond():
        if proc.poll() is not None:
            raise AssertionError(f"the command ended (code {proc.returncode}) before the phase")
        if time.monotonic() - t0 > timeout:
            raise AssertionError("the phase never came")
        time.sleep(0.0005)


def _writing(folder: Path) -> bool:
    for name in os.listdir(folder):
        if name.endswith(".tmp"):
            try:
                if (folder / name).stat().st_size > 0:
                    return True
            except FileNotFoundError:
                pass
    return False


def _trial(exe: str, argv: list[str], out_dir: Path, phase: str, sig: int, delay: float) -> dict:
    proc = subprocess.Popen(
        [exe, *argv],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group, as a shell job
    )
    try:
        if phase == "counting":
            _wait_for(lambda: len(_procs(ppid=proc.pid)) >= 2, proc)
        elif phase == "writing":  # a non-empty temporary file (the start-up probe is empty)
            _wait_for(lambda: _writing(out_dir), proc)
        time.sleep(delay)
        assert proc.poll() is None, f"the command ended (code {proc.returncode}) before the signal"
        t0 = time.monotonic()
        if sig == signal.SIGINT:
            os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the whole group
        else:
            proc.send_signal(signal.SIGTERM)  # kill PID: the parent only
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        elapsed = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.stderr is not None
    stderr = proc.stderr.read().decode("utf-8", "replace")
    proc.stderr.close()
    group: list[int] = []
    for _ in range(100):  # a terminated worker may take a moment to disappear from /proc
        group = _procs(pgrp=proc.pid)
        if not group:
            break
        time.sleep(0.01)
    return {
        "code": proc.returncode,
        "elapsed": elapsed,
        "stderr": stderr,
        "left": sorted(os.listdir(out_dir)),
        "group": group,
    }


def _check(r: dict, sig: int, phase: str) -> str:
    """'handled' (exit 128 + n from main) or 'default' (killed by the signal at start-up)."""
    assert r["elapsed"] < DEADLINE_S, r
    assert r["left"] == [], r  # no output, no temporary file
    assert r["group"] == [], r  # no worker left behind
    if r["code"] == 128 + sig:
        assert "Traceback" not in r["stderr"], r["stderr"]
        word = "interrupted" if sig == signal.SIGINT else "terminated"
        assert r["stderr"].endswith(f"kexue-terms: {word}\n"), r["stderr"]
        return "handled"
    assert phase == "start-up", r
    if r["code"] == 1 and "Fatal Python error: init_import_site" in r["stderr"]:
        # SIGINT while the interpreter still imports ``site`` (before any kexue code runs):
        # CPython reports a fatal error with status 1; nothing of the command has started.
        return "default"
    assert r["code"] == -sig, r
    return "default"


def _argv(kind: str, corpus: Path, out: Path, workers: int) -> list[str]:
    if kind == "discover":
        return ["discover", str(corpus), "-o", str(out / "words.tsv"), "-q"]
    argv = ["count", str(corpus), "-o", str(out / "t.npz"), "-q", "--workers", str(workers)]
    return [*argv, "--chunk-chars", "100000"]


@pytest.mark.slow
@pytest.mark.parametrize("phase", list(TRIALS))
def test_signals_end_the_command_in_time(
    corpus: Path, tmp_path: Path, phase: str, kexue_terms: str
) -> None:
    rng = random.Random(f"kexue-terms interrupts {phase}")
    outcomes = []
    for i in range(TRIALS[phase]):
        sig = (signal.SIGINT, signal.SIGTERM)[i % 2]
        out = tmp_path / f"trial{i}"
        out.mkdir()
        if phase == "start-up":  # discover (no workers) and count --workers 2, from 0 to 150 ms
            argv = _argv(("discover", "count")[(i // 2) % 2], corpus, out, 2)
            delay = rng.uniform(0.0, 0.15)
        elif phase == "counting":  # count --workers 2 while both workers exist
            argv = _argv("count", corpus, out, 2)
            delay = rng.uniform(0.0, 0.25)
        else:  # while the table is written (exact counts: a ~50 MB table), 1 or 2 workers
            argv = [*_argv("count", corpus, out, 1 + i % 2), "--prune-every", "0"]
            delay = rng.uniform(0.0, 0.01)
        r = _trial(kexue_terms, argv, out, phase, sig, delay)
        outcomes.append(_check(r, sig, phase))
    print(f"{phase}: {outcomes}")
    if phase != "start-up":
        assert outcomes == ["handled"] * TRIALS[phase]


def test_count_runs_to_the_end_without_a_signal(
    corpus: Path, tmp_path: Path, kexue_terms: str
) -> None:
    """The trials' commands succeed when left alone (so an interrupted one lost real work)."""
    res = subprocess.run(
        [kexue_terms, *_argv("count", corpus, tmp_path, 2)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert res.returncode == 0, res.stderr
    assert sorted(os.listdir(tmp_path)) == ["t.npz"]
