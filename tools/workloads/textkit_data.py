"""The People's Daily data of the textkit demo parts: the whole corpus, or its first paragraphs.

Quick and smoke runs train on the head of the file; :func:`kexue.textkit.data.peoples_daily.load_peoples_daily`
reads a path, so the head is written to a temporary file (removed at once) and loaded from there,
with the same sentence split and paragraph-level train/dev/test split as the full corpus.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

__all__ = ["load_corpus"]


def load_corpus(paragraphs: int | None, *, max_len: int) -> dict[str, list[Any]]:
    """``load_peoples_daily(max_len=max_len)`` on the first ``paragraphs`` lines (None: all)."""
    from kexue.textkit.data.peoples_daily import load_peoples_daily, peoples_daily_path

    if paragraphs is None:
        return load_peoples_daily(max_len=max_len)
    with open(peoples_daily_path("tag"), encoding="utf-8") as f:
        head = [line for _, line in zip(range(paragraphs), f)]
    fd, tmp = tempfile.mkstemp(suffix=".txt", prefix="pd199801_head_")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.writelines(head)
        return load_peoples_daily(path=tmp, max_len=max_len)
    finally:
        os.unlink(tmp)
