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

Failures never lose work or hang: every output path is checked before any input is read; any
``OSError`` (missing folder, read-only folder, name too long, full disk, ``ulimit -f``) is one
``kexue-terms: error: PATH: reason`` line on stderr with exit code 2 and no temporary file left;
SIGINT (Ctrl-C) exits 130 and SIGTERM 143 within moments at any phase, worker processes
included, leaving no partial output. Numeric options must be finite (checked at parse time).

``discover`` defaults (algorithm B): ``--min-count`` 2 per 5 MB of input (at least 2) and
``--min-pmi 0,3,5,7``, the setting measured in BENCHMARKS.md (P@1000 ≥ 0.92 and P@5000 ≥ 0.80 on
People's Daily 1998-01).

Output formats: ``tsv`` has a header row (``word\\tcount`` for discover, ``term\\tscore\\t
domain_count\\tbackground_count`` for mine); ``json`` is a list of objects with the same keys
(NaN scores of ``--blog-compat`` become ``null``). A discover output is a valid ``--lexicon``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import math
import os
import sys
from collections.abc import Sequence
from typing import Any

from ._cli_io import (
    PROG,
    CliError,
    ProgressBar,
    Terminated,
    check_input,
    check_output,
    deferred_signals,
    finite_float,
    finite_floats,
    handle_signals,
    os_error_message,
    probability,
    read_lexicon,
    read_lines,
    write_output,
)

__all__ = ["main"]

#: the modules each command imports (with numpy), loaded while signals are deferred
_NEEDS = {
    "discover": ("discovery",),
    "segment": ("segment", "_segment_batch"),
    "mine": ("domain", "discovery", "ngrams", "segment", "_segment_batch"),
    "count": ("ngrams",),
}

#: discover, algorithm B: min_pmi per n (n = 1..4) and the min_count rate (2 per 5 MB of input).
DISCOVER_MIN_PMI = (0.0, 3.0, 5.0, 7.0)
DISCOVER_BYTES_PER_COUNT = 2_500_000


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _progress_enabled(args: argparse.Namespace) -> bool:
    return not args.quiet and bool(getattr(sys.stderr, "isatty", lambda: False)())


def _note(args: argparse.Namespace, message: str) -> None:
    if not args.quiet:
        print(f"{PROG}: {message}", file=sys.stderr)


# ---------------------------------------------------------------------------------------- input
def _size(path: str) -> int:
    return 0 if path == "-" else os.path.getsize(path)


class _Progress:
    """A progress bar over the bytes of ``paths`` (each checked first), advanced as they are read."""

    def __init__(self, paths: Sequence[str], args: argparse.Namespace, label: str) -> None:
        for p in paths:
            check_input(p)
        total = sum(_size(p) for p in paths)
        self.bar = ProgressBar(label, total, enabled=_progress_enabled(args))
        self.done = 0

    def advance(self, n: int) -> None:
        self.done += n
        self.bar.update(self.done)


def _read_corpus(
    paths: Sequence[str], args: argparse.Namespace, label: str
) -> tuple[list[str], int]:
    """All non-empty lines of ``paths`` and the bytes read, with a progress bar; warns about
    empty inputs."""
    progress = _Progress(paths, args, label)
    texts: list[str] = []
    try:
        for p in paths:
            lines = [
                line for line in read_lines(p, progress.advance) if line and not line.isspace()
            ]
            if not lines:
                _note(args, f"warning: {p} holds no text")
            texts.extend(lines)
    finally:
        progress.bar.close()
    return texts, progress.done


def _format_rows(rows: list[dict[str, Any]], keys: Sequence[str], fmt: str) -> str:
    if fmt == "json":
        import json

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
def _parse_min_pmi(
    parts: tuple[float, ...] | None, algorithm: str
) -> float | tuple[float, ...] | None:
    if parts is None:
        return None
    if algorithm == "A":
        if len(parts) != 1:
            raise CliError("--min-pmi: algorithm A takes one number (the pair PMI threshold)")
        return parts[0]
    return parts


def _discover(texts: list[str], nbytes: int, args: argparse.Namespace) -> dict[str, int]:
    from .discovery import WordFinder, discover_ngrams

    min_pmi = _parse_min_pmi(args.min_pmi, args.algorithm)
    if args.algorithm == "A":
        finder = WordFinder(
            min_proba=args.min_proba, min_pmi=1.0 if min_pmi is None else float(min_pmi)
        )
        words = finder.train(texts).words
        min_count = args.min_count or 1
        return {w: c for w, c in words.items() if c >= min_count}
    min_count = args.min_count or max(2, round(nbytes / DISCOVER_BYTES_PER_COUNT))
    if min_pmi is None:
        min_pmi = DISCOVER_MIN_PMI[: args.order]
    return discover_ngrams(
        texts,
        order=args.order,
        min_count=min_count,
        min_pmi=min_pmi,
        workers=args.workers,
        threads=args.threads,
    )


def _cmd_discover(args: argparse.Namespace) -> int:
    texts, nbytes = _read_corpus(args.corpus, args, "reading")
    if texts:
        _note(args, f"discovering words in {len(texts)} lines (algorithm {args.algorithm})")
    words = _discover(texts, nbytes, args) if texts else {}
    ranked = sorted(
        ((w, c) for w, c in words.items() if len(w) >= args.min_length),
        key=lambda wc: (-wc[1], wc[0]),
    )
    if args.top is not None:
        ranked = ranked[: args.top]
    _note(args, f"{len(words)} words discovered in {len(texts)} lines, {len(ranked)} written")
    if args.format == "tsv":  # the common case, without building row dicts
        text = "word\tcount\n" + "".join([f"{w}\t{c}\n" for w, c in ranked])
    else:
        text = _format_rows([{"word": w, "count": c} for w, c in ranked], ["word", "count"], "json")
    write_output(text, args.output)
    return 0


def _cmd_segment(args: argparse.Namespace) -> int:
    from .segment import UnigramSegmenter

    lexicon = read_lexicon(args.lexicon)
    if not lexicon:
        raise CliError(f"{args.lexicon}: the lexicon is empty")
    seg = UnigramSegmenter(lexicon)
    inputs = args.inputs or ["-"]
    progress = _Progress(inputs, args, "segmenting")
    out: list[str] = []
    try:
        for p in inputs:
            for line in read_lines(p, progress.advance):
                words = seg.segment(line) if line else []
                out.append(" ".join(w for w in words if not w.isspace()))
    finally:
        progress.bar.close()
    write_output("".join(x + "\n" for x in out), args.output)
    return 0


def _is_count_table(path: str) -> bool:
    """A ``.npz`` name or a zip archive: read as a count table (a damaged one is an error)."""
    if path == "-" or not os.path.isfile(path):
        return False
    if path.endswith(".npz"):
        return True
    with open(path, "rb") as f:
        return f.read(4) == b"PK\x03\x04"  # an .npz archive


def _cmd_mine(args: argparse.Namespace) -> int:
    from .domain import is_good_term, mine_domain_terms
    from .ngrams import NgramCounts

    for p in [*args.domain, *args.background]:
        check_input(p)
    domain, _ = _read_corpus(args.domain, args, "domain")
    if not domain:
        raise CliError("--domain: no text in the domain corpus")
    tables = [p for p in args.background if _is_count_table(p)]
    if tables and len(args.background) > 1:
        raise CliError("--background: give either one count table (.npz) or text files")
    if tables:
        try:
            background: Any = NgramCounts.load(tables[0])
        except ValueError as err:  # it names the file
            raise CliError(str(err)) from None
    else:
        background, _ = _read_corpus(args.background, args, "background")
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
    write_output(_format_rows(rows, keys, args.format), args.output)
    return 0


def _cmd_count(args: argparse.Namespace) -> int:
    from .ngrams import count_ngrams_files

    for p in args.corpus:
        if p == "-":
            raise CliError("count reads files (it streams them twice), not stdin")
        check_input(p)
    output = args.output
    total = sum(_size(p) for p in args.corpus)
    bar = ProgressBar("counting", total, enabled=_progress_enabled(args))
    try:
        table = count_ngrams_files(
            args.corpus,
            order=args.order,
            min_count=args.min_count,
            workers=args.workers,
            chunk_chars=args.chunk_chars,
            prune_every=args.prune_every or None,
            progress=bar.update,
        )
    finally:
        bar.close()
    try:  # a temporary file next to the target, then os.replace; removed on any failure
        table.save(output)
    except OSError as err:
        raise CliError(f"{output}: cannot write ({err.strerror or err})") from None
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
                   help="B: gram/piece threshold (default 2 per 5 MB of input, at least 2); "
                        "A: drop rarer words (default 1)")  # fmt: skip
    d.add_argument("--min-pmi", type=finite_floats, default=None,
                   help="A: one number (default 1.0); B: per-n list (default 0,3,5,7)")  # fmt: skip
    d.add_argument("--min-proba", type=probability, default=1e-7, help="A: probability floor")
    d.add_argument("--order", type=int, default=4, help="B: longest n-gram (2..4)")
    d.add_argument("--min-length", type=int, default=1, help="shortest word written")
    d.add_argument("--top", type=int, default=None, help="write the K most frequent words")
    d.add_argument("--workers", type=int, default=1, help="B: counting processes")
    d.add_argument("--threads", type=int, default=min(2, _usable_cores()),
                   help="B: threads for the in-process cut (default: 2 when 2 cores are usable)")  # fmt: skip
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
    m.add_argument("--min-sim", type=finite_float, default=0.6,
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
    c.add_argument("--chunk-chars", type=int, default=1 << 21,
                   help="characters per counting job (memory ≈ 60 bytes per character per worker)")  # fmt: skip
    c.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS)
    c.set_defaults(func=_cmd_count)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``kexue-terms`` with ``argv`` (default ``sys.argv[1:]``); returns the exit code.

    Exit codes: 0 success, 2 bad usage, bad input or a failed write (one ``kexue-terms: error:
    ...`` line on stderr, no traceback, no partial output), 130 interrupted (SIGINT), 143
    terminated (SIGTERM).

    Arguments:
        argv: command-line arguments without the program name.

    Returns:
        The process exit code.
    """
    with handle_signals():
        try:
            parser = _build_parser()
            args = parser.parse_args(argv)
            for name in ("top", "min_count", "workers", "threads", "order", "dim", "chunk_chars"):
                value = getattr(args, name, None)
                if value is not None and value < 1:
                    parser.error(
                        f"--{name.replace('_', '-')}: expected a positive integer, got {value}"
                    )
            check_output(args.output)  # before any input is read
            if args.command != "mine":  # only mine --seeds uses BLAS: no idle BLAS threads
                os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
            with (
                deferred_signals()
            ):  # an interrupt inside numpy's import would become an ImportError
                for module in _NEEDS[args.command]:
                    importlib.import_module(f".{module}", __package__)
            return int(args.func(args))
        except (CliError, ValueError) as err:
            print(f"{PROG}: error: {err}", file=sys.stderr)
            return 2
        except BrokenPipeError:  # e.g. `kexue-terms discover x | head`
            with contextlib.suppress(OSError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
        except OSError as err:
            print(f"{PROG}: error: {os_error_message(err)}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print(f"{PROG}: interrupted", file=sys.stderr)
            return 130
        except Terminated:
            print(f"{PROG}: terminated", file=sys.stderr)
            return 143


if __name__ == "__main__":
    sys.exit(main())
