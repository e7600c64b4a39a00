"""Distributed n-gram counting on a Dask cluster (optional: ``pip install kexue-textkit[dask]``).

:func:`count_ngrams_dask` splits text files into byte ranges, counts each range with
:func:`kexue.textkit.terms.ngrams.count_ngrams` on a worker and sums the tables by a tree of
:meth:`NgramCounts.merge_all` tasks; the result equals
:func:`~kexue.textkit.terms.ngrams.count_ngrams_files` (exact mode) on the same files.

**Why Dask, not Ray.** Both run Python functions on a cluster, but for this job Dask fits better:
``dask`` and ``distributed`` are pure-Python wheels (a few MB, no compiled extension, install
anywhere numpy does), a ``LocalCluster`` runs in-process (``processes=False``) so the same code is
tested on a laptop or in CI in about a second, and the same call scales to a multi-machine cluster
(``dask-jobqueue`` for HPC schedulers, Kubernetes, cloud) by passing a different ``Client``. Ray
ships large platform-specific wheels (tens of MB: its own object store and raylet binaries),
starts a multi-process runtime even for local use, and its extra machinery (actors, object spilling,
GPUs) buys nothing for a map-reduce of count tables, which move as small numpy arrays.

**Chunking.** Every file is cut into byte ranges of ``chunk_bytes``; a range owns the lines that
*start* inside it (a worker whose range starts mid-line skips to the next line; the line that
crosses its end is read to completion), so every line is counted exactly once and multi-byte
UTF-8 characters are never split. Each line is one text: n-grams never span lines, as in
``count_ngrams_files``. Workers open the files by path, so the paths must be readable from every
worker (a shared file system, or a local cluster).

References:
    - Dask: https://docs.dask.org/en/stable/ (``dask.delayed``, ``distributed.Client``).
    - Su Jianlin, https://kexue.fm/archives/6920 (n-gram counting for word discovery).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._checks import check_at_least
from .ngrams import DEFAULT_FRAGMENT_PATTERN, NgramCounts, count_ngrams

__all__ = ["count_ngrams_dask", "file_byte_ranges"]

_INSTALL_HINT = "count_ngrams_dask needs dask and distributed: pip install kexue-textkit[dask]"


def _import_dask() -> Any:
    try:
        import dask
    except ImportError as err:
        raise ImportError(_INSTALL_HINT) from err
    return dask


def file_byte_ranges(
    paths: Sequence[str | os.PathLike[str]], *, chunk_bytes: int
) -> list[tuple[str, int, int]]:
    """Split files into ``(path, start, end)`` byte ranges of at most ``chunk_bytes`` bytes.

    Arguments:
        paths: files to split (an empty file yields no range).
        chunk_bytes: range size in bytes (> 0).

    Returns:
        The ranges (absolute paths), file by file, in order; a line belongs to the range holding
        its first byte.
    """
    check_at_least(1, chunk_bytes=chunk_bytes)
    ranges = []
    for p in paths:
        path = Path(p)
        if not path.is_file():
            raise FileNotFoundError(f"paths: no such file {path}")
        size = path.stat().st_size
        ranges.extend(
            (str(path.resolve()), start, min(start + chunk_bytes, size))
            for start in range(0, size, chunk_bytes)
        )
    return ranges


def _read_range(path: str, start: int, end: int, encoding: str) -> list[str]:
    """Decoded lines whose first byte lies in ``[start, end)``."""
    lines: list[str] = []
    with open(path, "rb") as f:
        if start > 0:
            f.seek(start - 1)
            if f.read(1) != b"\n":
                f.readline()  # the line crossing ``start`` belongs to the previous range
        pos = f.tell()
        while pos < end:
            raw = f.readline()
            if not raw:
                break
            try:
                lines.append(raw.decode(encoding).rstrip("\r\n"))
            except UnicodeDecodeError as err:
                with open(path, "rb") as g:  # the line number, only when reporting an error
                    lineno = g.read(pos).count(b"\n") + 1
                raise ValueError(
                    f"{path}: line {lineno}: cannot decode as {encoding} ({err.reason} at byte "
                    f"{err.start} of the line)"
                ) from None
            pos += len(raw)
    return lines


def _count_range(
    path: str, start: int, end: int, order: int, encoding: str, pattern: str
) -> NgramCounts:
    return count_ngrams(_read_range(path, start, end, encoding), order=order, pattern=pattern)


def _merge(*tables: NgramCounts) -> NgramCounts:
    return NgramCounts.merge_all(list(tables))


def count_ngrams_dask(
    paths: Sequence[str | os.PathLike[str]] | str | os.PathLike[str],
    *,
    client: Any = None,
    order: int = 4,
    min_count: int = 1,
    chunk_bytes: int = 64 * 2**20,
    encoding: str = "utf-8",
    merge_fan_in: int = 8,
    pattern: str = DEFAULT_FRAGMENT_PATTERN,
) -> NgramCounts:
    """Count character n-grams of text files across the workers of a Dask cluster.

    One ``dask.delayed`` task per byte range (see the module docstring) counts its lines with
    ``count_ngrams``; tables are summed by a tree of merges (``merge_fan_in`` tables per task),
    then grams rarer than ``min_count`` are dropped. Exact: equals ``count_ngrams_files(paths,
    order=order, min_count=min_count, prune_every=None)``.

    Arguments:
        paths: one or several UTF-8 (``encoding``) text files, readable from every worker.
        client: a ``distributed.Client``; None uses Dask's current default scheduler (the active
            client if one was created, otherwise local threads).
        order: largest n (default 4; see ``count_ngrams``).
        min_count: drop grams counted fewer times, after the full merge.
        chunk_bytes: bytes per counting task (default 64 MiB; memory per task ≈ 60 bytes per
            character).
        encoding: text encoding; undecodable bytes raise ValueError naming the file and line.
        merge_fan_in: tables summed per merge task (≥ 2).
        pattern: fragment separator regex (see ``fragments``).

    Returns:
        An :class:`~kexue.textkit.terms.ngrams.NgramCounts`.

    Raises:
        ImportError: dask is not installed (``pip install kexue-textkit[dask]``).
    """
    dask = _import_dask()
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    check_at_least(1, order=order, min_count=min_count)
    check_at_least(2, merge_fan_in=merge_fan_in)
    ranges = file_byte_ranges(paths, chunk_bytes=chunk_bytes)
    if not ranges:
        return count_ngrams([], order=order, min_count=min_count, pattern=pattern)
    count = dask.delayed(_count_range, pure=True)
    merge = dask.delayed(_merge, pure=True)
    level = [count(p, s, e, order, encoding, pattern) for p, s, e in ranges]
    while len(level) > 1:
        level = [merge(*level[i : i + merge_fan_in]) for i in range(0, len(level), merge_fan_in)]
    if client is not None:
        table = client.compute(level[0]).result()
    else:
        (table,) = dask.compute(level[0])
    return table.prune(min_count)
