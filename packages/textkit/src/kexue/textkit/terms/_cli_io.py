"""Input, output, path checks and signals of ``kexue-terms`` (private; standard library only).

- Output paths are checked before any input is read (:func:`check_output`): the folder exists, is a
  folder and takes a new file (a probe file is created and removed), the name fits NAME_MAX and
  the path PATH_MAX, and the target is not a directory.
- Results are written atomically (:func:`write_output`: a temporary file in the same folder, then
  ``os.replace``); any ``OSError`` becomes a :class:`CliError` naming the path and the reason, and
  the temporary file is removed on any failure or interrupt.
- :func:`handle_signals` turns SIGTERM into :class:`Terminated` (exit 143; SIGINT stays
  ``KeyboardInterrupt``, exit 130) and ignores SIGXFSZ, so a write past ``ulimit -f`` fails with
  ``EFBIG`` and is cleaned up instead of killing the process.
- :func:`read_lines` reads a UTF-8 file in 4 MiB blocks (one decode per block, not per line);
  undecodable bytes are reported with the file, line and column. :func:`read_lexicon` reads a
  TSV or JSON lexicon; every problem in it is an error naming the file.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import math
import os
import signal
import stat
import sys
import time
from collections.abc import Callable, Iterator
from typing import TextIO

from ._atomic import atomic_file, make_temp, signals_deferred

__all__ = [
    "CliError",
    "ProgressBar",
    "Terminated",
    "check_input",
    "check_output",
    "deferred_signals",
    "finite_float",
    "finite_floats",
    "handle_signals",
    "os_error_message",
    "probability",
    "read_lexicon",
    "read_lines",
    "write_output",
]

PROG = "kexue-terms"
_BLOCK = 1 << 22


class CliError(Exception):
    """An input problem reported as one line on stderr with exit code 2."""


class Terminated(BaseException):
    """Raised in the main thread by SIGTERM (exit code 143)."""


# ------------------------------------------------------------------------------------ signals
def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated


@contextlib.contextmanager
def handle_signals() -> Iterator[None]:
    """SIGTERM raises :class:`Terminated`; SIGXFSZ is ignored (writes fail with EFBIG instead).

    The previous handlers are restored on exit (``main`` can run inside another program)."""
    old = {}
    for sig, handler in ((signal.SIGTERM, _raise_terminated), (signal.SIGXFSZ, signal.SIG_IGN)):
        with contextlib.suppress(ValueError, OSError):  # not the main thread: leave them alone
            old[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def deferred_signals() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back for the duration (delivered, and raised, on exit).

    Used around the import of numpy and the algorithms: an exception raised by a signal handler
    inside an extension module's initialisation is turned into an ``ImportError`` (numpy reports
    "PyCapsule_Import could not import module ...") instead of reaching ``main``."""
    sigs = {signal.SIGINT, signal.SIGTERM}
    try:
        old = signal.pthread_sigmask(signal.SIG_BLOCK, sigs)
    except (AttributeError, OSError, ValueError):  # no pthread_sigmask: nothing to defer
        yield
        return
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def os_error_message(err: OSError) -> str:
    """``PATH: reason`` for an OSError (the reason alone when it names no path)."""
    reason = err.strerror or str(err) or type(err).__name__
    if err.filename is None:
        return reason
    path = os.fsdecode(err.filename) if isinstance(err.filename, bytes) else str(err.filename)
    return f"{path}: {reason}"


# ------------------------------------------------------------------------- numeric options
def finite_float(text: str) -> float:
    """argparse type: a finite float (nan and inf are rejected at parse time)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def probability(text: str) -> float:
    """argparse type: a finite number in (0, 1]."""
    value = finite_float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"expected a probability in (0, 1], got {text!r}")
    return value


def finite_floats(text: str) -> tuple[float, ...]:
    """argparse type: finite numbers separated by commas."""
    try:
        return tuple(finite_float(x) for x in text.split(","))
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"expected finite numbers separated by commas, got {text!r}"
        ) from None


# ------------------------------------------------------------------------------------- paths
def check_output(output: str | None) -> None:
    """Raise :class:`CliError` unless a file can be written at ``output`` (None/``-``: stdout)."""
    if output is None or output == "-":
        return
    path = os.path.abspath(output)
    folder, name = os.path.split(path)
    if not name or output.endswith(os.sep):
        raise CliError(f"{output}: is a directory, expected a file name")
    try:
        st = os.stat(folder)
    except FileNotFoundError:
        raise CliError(f"{output}: folder {folder} does not exist") from None
    except NotADirectoryError:
        raise CliError(
            f"{output}: folder {folder} is not a folder (a file is in the way)"
        ) from None
    except OSError as err:
        raise CliError(f"{output}: folder {folder}: {err.strerror}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise CliError(f"{output}: folder {folder} is not a folder")
    if os.path.isdir(path):
        raise CliError(f"{output}: is a directory, expected a file name")
    limits = []
    for key, default in (("PC_NAME_MAX", 255), ("PC_PATH_MAX", 4096)):
        try:
            limits.append(os.pathconf(folder, key) or default)
        except (OSError, ValueError):
            limits.append(default)
    name_max, path_max = limits
    if len(os.fsencode(name)) > name_max:
        raise CliError(
            f"{output}: file name too long ({len(os.fsencode(name))} bytes, "
            f"the limit is {name_max}: {os.strerror(errno.ENAMETOOLONG)})"
        )
    if len(os.fsencode(path)) >= path_max:
        raise CliError(
            f"{output}: path too long ({len(os.fsencode(path))} bytes, the limit is {path_max})"
        )
    try:  # the real test of "writable" (root ignores mode bits; read-only mounts do not)
        with signals_deferred():  # an interrupt here must not leave the probe file behind
            fd, probe = make_temp(folder, name)
            os.close(fd)
            os.unlink(probe)
    except OSError as err:
        raise CliError(f"{output}: cannot write in folder {folder} ({err.strerror})") from None


def check_input(path: str) -> None:
    """Raise :class:`CliError` unless ``path`` is ``-`` or a readable regular file."""
    if path == "-":
        return
    if os.path.isdir(path):
        raise CliError(f"{path}: is a directory, expected a text file")
    if not os.path.isfile(path):
        raise CliError(f"{path}: no such file")


def write_output(text: str, output: str | None) -> None:
    """Write ``text`` to stdout, or atomically to ``output``; OSError → :class:`CliError`."""
    if output is None or output == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    try:
        with atomic_file(output, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
    except OSError as err:
        raise CliError(f"{output}: cannot write ({err.strerror or err})") from None


# ------------------------------------------------------------------------------------- input
def _decode(block: bytes, name: str, first_line: int) -> str:
    try:
        return block.decode("utf-8")
    except UnicodeDecodeError as err:
        line = first_line + block.count(b"\n", 0, err.start)
        col = err.start - (block.rfind(b"\n", 0, err.start) + 1) + 1
        raise CliError(
            f"{name}, line {line}: not valid UTF-8 ({err.reason}, byte 0x"
            f"{block[err.start]:02x} at column {col}); convert the file to UTF-8, "
            "e.g. iconv -f GB18030 -t UTF-8"
        ) from None


def read_lines(path: str, on_bytes: Callable[[int], None]) -> list[str]:
    """Lines of a UTF-8 file (``-`` = stdin) without line ends (``\\n``, ``\\r\\n``) and
    without a leading byte-order mark; bad bytes → :class:`CliError` naming file and line."""
    check_input(path)
    stream = sys.stdin.buffer if path == "-" else open(path, "rb")
    name = "<stdin>" if path == "-" else path
    lines: list[str] = []
    rest = b""
    try:
        while True:
            data = stream.read(_BLOCK)
            on_bytes(len(data))
            buf = rest + data if rest else data
            if data:
                cut = buf.rfind(b"\n") + 1
                block, rest = buf[:cut], buf[cut:]
            else:
                block, rest = buf, b""
            if block:
                text = _decode(block, name, len(lines) + 1)
                if not lines and text.startswith("\ufeff"):
                    text = text[1:]  # UTF-8 byte order mark
                part = text.split("\n")
                if text.endswith("\n"):
                    part.pop()
                if "\r" in text:
                    part = [x.rstrip("\r") for x in part]
                lines.extend(part)
            if not data:
                return lines
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()


def read_lexicon(path: str) -> dict[str, int]:
    """A lexicon: TSV/space-separated ``word [count]`` lines (a ``word count`` header is skipped)
    or JSON (a list of ``{"word", "count"}`` objects as written by discover, or a dict). Every
    problem is a :class:`CliError` naming the file."""
    lines = read_lines(path, lambda _n: None)
    body = "\n".join(lines).strip()
    if body.startswith(("[", "{")):
        import json

        try:
            data = json.loads(body)
        except json.JSONDecodeError as err:
            raise CliError(f"{path}: invalid JSON lexicon ({err})") from None
        try:
            if isinstance(data, dict):
                pairs = [(w, c) for w, c in data.items()]
            else:
                pairs = [(r["word"], r.get("count", 1)) for r in data]
            lexicon = {}
            for w, c in pairs:
                if not isinstance(w, str) or isinstance(c, bool) or not isinstance(c, (int, float)):
                    raise TypeError
                if not (math.isfinite(c) and c == int(c) and c >= 1):
                    raise ValueError
                lexicon[w] = int(c)
            return lexicon
        except (TypeError, KeyError, ValueError, AttributeError):
            raise CliError(
                f"{path}: JSON lexicon must be a list of objects with a string 'word' and a "
                "positive integer 'count', or a {word: count} object"
            ) from None
    lexicon: dict[str, int] = {}
    for lineno, line in enumerate(lines, start=1):
        parts = line.split()
        if not parts or (lineno == 1 and parts[:2] == ["word", "count"]):
            continue
        try:
            lexicon[parts[0]] = int(parts[1]) if len(parts) > 1 else 1
        except ValueError:
            raise CliError(f"{path}, line {lineno}: expected 'word<TAB>count'") from None
    return lexicon


# ---------------------------------------------------------------------------------- progress
class ProgressBar:
    """Minimal byte-progress bar on stderr: redrawn in place at most 10 times a second."""

    def __init__(self, label: str, total: int, *, enabled: bool, stream: TextIO | None = None):
        self.stream = sys.stderr if stream is None else stream
        self.enabled = enabled
        self.label, self.total = label, max(total, 1)
        self.t0 = time.perf_counter()
        self.last = 0.0
        self.done = 0

    def update(self, done: int, total: int | None = None) -> None:
        if total is not None:
            self.total = max(total, 1)
        self.done = done
        now = time.perf_counter()
        if self.enabled and (now - self.last > 0.1 or done >= self.total):
            self.last = now
            frac = min(self.done / self.total, 1.0)
            bar = "#" * round(24 * frac) + "-" * (24 - round(24 * frac))
            rate = self.done / 2**20 / max(now - self.t0, 1e-9)
            self.stream.write(
                f"\r{self.label:<12} [{bar}] {100 * frac:5.1f}% "
                f"{self.done / 2**20:8.1f}/{self.total / 2**20:.1f} MiB {rate:6.1f} MiB/s"
            )
            self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.update(self.total)
            self.stream.write("\n")
            self.stream.flush()
