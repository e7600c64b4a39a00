"""``kexue-terms``: word discovery, segmentation, domain-term mining and n-gram counting.

Commands (``kexue-terms COMMAND --help`` for every option)::

    kexue-terms discover CORPUS... [--algorithm A|B] [--min-count N] [--top K] [--format tsv|json]
    kexue-terms segment --lexicon LEXICON [INPUT...]
    kexue-terms mine --domain D... --background B... [--counts ngrams|discovered] [--top K]
    kexue-terms count CORPUS... --output TABLE.npz [--order 4] [--workers N]

Input is UTF-8 text, one paragraph/sentence per line (``-`` reads stdin). Undecodable bytes stop
the run with ``error: FILE, line N: not valid UTF-8`` on stderr and exit code 2 (no traceback);
an empty input gives an empty result and a warning. ``discover``, ``segment`` and ``mine`` hold the
corpus in memory; ``count`` streams (memory bounded by pruning) and its table can be the
background of ``mine``. With ``--output`` the result is written atomically (temporary file in the
same folder, then ``os.replace``), otherwise to stdout. A progress bar (bytes read) is drawn on
stderr when it is a terminal, unless ``--quiet``.

Output formats: ``tsv`` has a header row (``word\\tcount`` for discover, ``term\\tscore\\t
domain_count\\tbackground_count`` for mine); ``json`` is a list of objects with the same keys
(NaN scores of ``--blog-compat`` become ``null``). A discover output is a valid ``--lexicon``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

__all__ = ["main"]

PROG = "kexue-terms"


class CliError(Exception):
    """An input problem reported as one line on stderr with exit code 2."""


# ------------------------------------------------------------------------------------ progress
class _ProgressBar:
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


def _progress_enabled(args: argparse.Namespace) -> bool:
    return not args.quiet and bool(getattr(sys.stderr, "isatty", lambda: False)())


def _note(args: argparse.Namespace, message: str) -> None:
    if not args.quiet:
        print(f"{PROG}: {message}", file=sys.stderr)


# ---------------------------------------------------------------------------------------- input
def _size(path: str) -> int:
    return 0 if path == "-" else os.path.getsize(path)


def _iter_lines(path: str, on_bytes: Callable[[int], None]) -> Iterator[str]:
    """Lines of a UTF-8 file (``-`` = stdin) without line ends; bad bytes → CliError naming the
    file and the line."""
    if path != "-" and not os.path.isfile(path):
        raise CliError(f"{path}: no such file")
    stream = sys.stdin.buffer if path == "-" else open(path, "rb")
    name = "<stdin>" if path == "-" else path
    try:
        for lineno, raw in enumerate(stream, start=1):
            on_bytes(len(raw))
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise CliError(
                    f"{name}, line {lineno}: not valid UTF-8 ({err.reason}, byte 0x"
                    f"{raw[err.start]:02x} at column {err.start + 1}); convert the file to UTF-8, "
                    "e.g. iconv -f GB18030 -t UTF-8"
                ) from None
            if lineno == 1 and line.startswith("\ufeff"):
                line = line[1:]  # UTF-8 byte order mark
            yield line.rstrip("\r\n")
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()


def _read_corpus(paths: Sequence[str], args: argparse.Namespace, label: str) -> list[str]:
    """All non-empty lines of ``paths``, with a progress bar; warns about empty inputs."""
    for p in paths:
        if p != "-" and not os.path.isfile(p):
            raise CliError(f"{p}: no such file")
    total = sum(_size(p) for p in paths)
    bar = _ProgressBar(label, total, enabled=_progress_enabled(args))
    done = 0

    def advance(n: int) -> None:
        nonlocal done
        done += n
        bar.update(done)

    texts: list[str] = []
    try:
        for p in paths:
            before = len(texts)
            texts.extend(line for line in _iter_lines(p, advance) if line.strip())
            if len(texts) == before:
                _note(args, f"warning: {p} holds no text")
    finally:
        bar.close()
    return texts


# --------------------------------------------------------------------------------------- output
def _write_output(text: str, output: str | None) -> None:
    """Write ``text`` to stdout, or atomically to ``output`` (temp file + os.replace)."""
    if output is None or output == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    path = Path(output)
    if not path.parent.is_dir():
        raise CliError(f"{output}: folder {path.parent} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _format_rows(rows: list[dict[str, Any]], keys: Sequence[str], fmt: str) -> str:
    if fmt == "json":
        clean = [
            {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
            for r in rows
        ]
        return json.dumps(clean, ensure_ascii=False, indent=1) + "\n"
    lines = ["\t".join(keys)]
    for r in rows:
        cells = []
        for k in keys:
            v = r[k]
            cells.append(f"{v:.6g}" if isinstance(v, float) else str(v))
        lines.append("\t".join(cells))
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------- commands
def _parse_min_pmi(value: str | None, algorithm: str) -> float | tuple[float, ...] | None:
    if value is None:
        return None
    try:
        parts = tuple(float(x) for x in value.split(","))
    except ValueError:
        raise CliError(f"--min-pmi: expected numbers separated by commas, got {value!r}") from None
    if algorithm == "A":
        if len(parts) != 1:
            raise CliError("--min-pmi: algorithm A takes one number (the pair PMI threshold)")
        return parts[0]
    return parts


def _discover(texts: list[str], args: argparse.Namespace) -> dict[str, int]:
    from .discovery import WordFinder, discover_ngrams

    min_pmi = _parse_min_pmi(args.min_pmi, args.algorithm)
    if args.algorithm == "A":
        finder = WordFinder(
            min_proba=args.min_proba, min_pmi=1.0 if min_pmi is None else float(min_pmi)
        )
        words = finder.train(texts).words
        min_count = args.min_count or 1
        return {w: c for w, c in words.items() if c >= min_count}
    opts: dict[str, Any] = {"order": args.order, "min_count": args.min_count or 32}
    if min_pmi is not None:
        opts["min_pmi"] = min_pmi
    return discover_ngrams(texts, workers=args.workers, **opts)


def _cmd_discover(args: argparse.Namespace) -> int:
    texts = _read_corpus(args.corpus, args, "reading")
    if texts:
        _note(args, f"discovering words in {len(texts)} lines (algorithm {args.algorithm})")
    words = _discover(texts, args) if texts else {}
    ranked = sorted(
        ((w, c) for w, c in words.items() if len(w) >= args.min_length),
        key=lambda wc: (-wc[1], wc[0]),
    )
    if args.top is not None:
        ranked = ranked[: args.top]
    _note(args, f"{len(words)} words discovered in {len(texts)} lines, {len(ranked)} written")
    rows = [{"word": w, "count": c} for w, c in ranked]
    _write_output(_format_rows(rows, ["word", "count"], args.format), args.output)
    return 0


def _read_lexicon(path: str) -> dict[str, int]:
    """A lexicon: TSV/space-separated ``word [count]`` lines (a ``word count`` header is skipped)
    or JSON (a list of ``{"word", "count"}`` objects as written by discover, or a dict)."""
    lines = list(_iter_lines(path, lambda _n: None))
    body = "\n".join(lines).strip()
    if body.startswith(("[", "{")):
        try:
            data = json.loads(body)
        except json.JSONDecodeError as err:
            raise CliError(f"{path}: invalid JSON lexicon ({err})") from None
        if isinstance(data, dict):
            return {str(w): int(c) for w, c in data.items()}
        try:
            return {str(r["word"]): int(r.get("count", 1)) for r in data}
        except (TypeError, KeyError, ValueError):
            raise CliError(
                f"{path}: JSON lexicon must hold objects with 'word' (and 'count')"
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


def _cmd_segment(args: argparse.Namespace) -> int:
    from .segment import UnigramSegmenter

    lexicon = _read_lexicon(args.lexicon)
    if not lexicon:
        raise CliError(f"{args.lexicon}: the lexicon is empty")
    seg = UnigramSegmenter(lexicon)
    inputs = args.inputs or ["-"]
    total = sum(_size(p) for p in inputs)
    bar = _ProgressBar("segmenting", total, enabled=_progress_enabled(args))
    done = 0

    def advance(n: int) -> None:
        nonlocal done
        done += n
        bar.update(done)

    out: list[str] = []
    try:
        for p in inputs:
            for line in _iter_lines(p, advance):
                words = seg.segment(line) if line else []
                out.append(" ".join(w for w in words if not w.isspace()))
    finally:
        bar.close()
    _write_output("".join(x + "\n" for x in out), args.output)
    return 0


def _is_count_table(path: str) -> bool:
    if path == "-" or not os.path.isfile(path):
        return False
    with open(path, "rb") as f:
        return f.read(4) == b"PK\x03\x04"  # an .npz archive


def _cmd_mine(args: argparse.Namespace) -> int:
    from .domain import is_good_term, mine_domain_terms
    from .ngrams import NgramCounts

    domain = _read_corpus(args.domain, args, "domain")
    if not domain:
        raise CliError("--domain: no text in the domain corpus")
    tables = [p for p in args.background if _is_count_table(p)]
    if tables and len(args.background) > 1:
        raise CliError("--background: give either one count table (.npz) or text files")
    if tables:
        try:
            background: Any = NgramCounts.load(tables[0])
        except (ValueError, OSError) as err:
            raise CliError(f"{tables[0]}: {err}") from None
    else:
        background = _read_corpus(args.background, args, "background")
        if not background:
            raise CliError("--background: no text in the background corpus")
    seeds = None
    if args.seeds:
        seeds = [s for s in args.seeds.split(",") if s]

    def term_filter(w: str) -> bool:
        return is_good_term(w, min_length=args.min_length, strict=args.strict)

    discovery: dict[str, Any] = {}
    if args.algorithm == "B" and args.order:
        discovery["order"] = args.order
    _note(args, f"mining {len(domain)} domain lines (algorithm {args.algorithm})")
    terms = mine_domain_terms(
        domain,
        background,
        algorithm=args.algorithm,
        counts=args.counts,
        min_count=args.min_count,
        top=args.top,
        term_filter=term_filter,
        blog_compat=args.blog_compat,
        discovery_options=discovery,
        seeds=seeds,
        expansion_options={"min_sim": args.min_sim, "dim": args.dim},
    )
    rows = [
        {
            "term": t.term,
            "score": t.score,
            "domain_count": t.domain_count,
            "background_count": t.background_count,
        }
        for t in terms
    ]
    keys = ["term", "score", "domain_count", "background_count"]
    _write_output(_format_rows(rows, keys, args.format), args.output)
    return 0


def _cmd_count(args: argparse.Namespace) -> int:
    from .ngrams import count_ngrams_files

    for p in args.corpus:
        if not os.path.isfile(p):
            raise CliError(f"{p}: no such file")
    output = Path(args.output)
    if not output.parent.is_dir():
        raise CliError(f"{args.output}: folder {output.parent} does not exist")
    total = sum(_size(p) for p in args.corpus)
    bar = _ProgressBar("counting", total, enabled=_progress_enabled(args))
    try:
        table = count_ngrams_files(
            args.corpus,
            order=args.order,
            min_count=args.min_count,
            workers=args.workers,
            prune_every=args.prune_every or None,
            progress=bar.update,
        )
    finally:
        bar.close()
    # NgramCounts.save writes a temporary file next to the target and os.replace()s it.
    table.save(output)
    _note(args, f"{table!r} written to {output}")
    return 0


# --------------------------------------------------------------------------------------- parser
def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Unsupervised Chinese word discovery and domain-term mining (kexue-textkit).",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar or notes")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common_out(p: argparse.ArgumentParser, *, fmt: bool = True) -> None:
        if fmt:
            p.add_argument("--format", choices=["tsv", "json"], default="tsv")
        p.add_argument("-o", "--output", help="output file (atomic write); default stdout")
        p.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS)

    d = sub.add_parser("discover", help="discover words in raw text")
    d.add_argument("corpus", nargs="+", help="UTF-8 text files (- = stdin)")
    d.add_argument("--algorithm", choices=["A", "B"], default="B",
                   help="A: nlp-zero pair-PMI + de-redundancy; B: n-gram cohesion (default)")  # fmt: skip
    d.add_argument("--min-count", type=int, default=None,
                   help="B: gram/piece threshold (default 32); A: drop rarer words (default 1)")  # fmt: skip
    d.add_argument("--min-pmi", default=None,
                   help="A: one number (default 1.0); B: per-n list, e.g. 0,2,4,6")  # fmt: skip
    d.add_argument("--min-proba", type=float, default=1e-7, help="A: probability floor")
    d.add_argument("--order", type=int, default=4, help="B: longest n-gram (2..4)")
    d.add_argument("--min-length", type=int, default=1, help="shortest word written")
    d.add_argument("--top", type=int, default=None, help="write the K most frequent words")
    d.add_argument("--workers", type=int, default=1, help="B: counting processes")
    common_out(d)
    d.set_defaults(func=_cmd_discover)

    s = sub.add_parser("segment", help="segment text with a lexicon (unigram DP)")
    s.add_argument("--lexicon", required=True, help="word<TAB>count lines or a discover JSON")
    s.add_argument("inputs", nargs="*", help="UTF-8 text files (default stdin)")
    common_out(s, fmt=False)
    s.set_defaults(func=_cmd_segment)

    m = sub.add_parser("mine", help="rank domain terms against a background corpus")
    m.add_argument("--domain", nargs="+", required=True, help="domain text files")
    m.add_argument("--background", nargs="+", required=True,
                   help="background text files, or one count table written by 'count'")  # fmt: skip
    m.add_argument("--algorithm", choices=["A", "B"], default="A",
                   help="candidate discovery (default A at min_proba 1e-6, min_pmi 0.5)")  # fmt: skip
    m.add_argument("--counts", choices=["ngrams", "discovered"], default=None,
                   help="f_d/f_g as n-gram occurrence counts (default) or discovered word counts")  # fmt: skip
    m.add_argument("--order", type=int, default=None, help="B: longest n-gram")
    m.add_argument("--min-count", type=int, default=5, help="smallest domain count")
    m.add_argument("--min-length", type=int, default=2, help="shortest term")
    m.add_argument("--strict", action="store_true", help="the author's strict term filter")
    m.add_argument("--blog-compat", action="store_true", help="the published NaN ranking")
    m.add_argument("--seeds", default=None, help="comma-separated seed words: expand and keep")
    m.add_argument("--min-sim", type=float, default=0.6,
                   help="seed expansion: cosine threshold at depth 0 (default 0.6)")  # fmt: skip
    m.add_argument("--dim", type=int, default=100, help="seed expansion: vector size")
    m.add_argument("--top", type=int, default=100, help="number of terms (default 100)")
    common_out(m)
    m.set_defaults(func=_cmd_mine)

    c = sub.add_parser("count", help="count character n-grams into a table (.npz)")
    c.add_argument("corpus", nargs="+", help="UTF-8 text files")
    c.add_argument("-o", "--output", required=True, help="table file to write (.npz)")
    c.add_argument("--order", type=int, default=4)
    c.add_argument("--min-count", type=int, default=1, help="prune rarer grams")
    c.add_argument("--prune-every", type=int, default=50_000_000,
                   help="characters between pruning rounds (0: never; exact counts)")  # fmt: skip
    c.add_argument("--workers", type=int, default=1)
    c.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS)
    c.set_defaults(func=_cmd_count)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``kexue-terms`` with ``argv`` (default ``sys.argv[1:]``); returns the exit code.

    Exit codes: 0 success, 2 bad usage or bad input (one ``kexue-terms: error: ...`` line on
    stderr, no traceback), 130 interrupted.

    Arguments:
        argv: command-line arguments without the program name.

    Returns:
        The process exit code.
    """
    parser = _build_parser()
    args = parser.parse_args(argv)
    for name in ("top", "min_count", "workers", "order", "dim"):
        value = getattr(args, name, None)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')}: expected a positive integer, got {value}")
    try:
        return int(args.func(args))
    except CliError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError, PermissionError, IsADirectoryError) as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `kexue-terms discover x | head`
        return 0


if __name__ == "__main__":
    sys.exit(main())
