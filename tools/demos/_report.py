"""Shared pieces of the demo: run context, section container, progress bar, HTML and figure helpers.

Every section module (``tools/demos/<name>.py``) exposes ``run(ctx: Context) -> Section``; the driver
(``tools/demo.py``, run as ``python -m tools.demo``) builds the context, calls the sections and renders one self-contained HTML page
(inline CSS, figures as base64 PNG, no external resources) plus ``results.json``.
"""

from __future__ import annotations

import base64
import html
import io
import math
import multiprocessing
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Literal, TextIO, TypeVar

__all__ = [
    "Context",
    "Mode",
    "Progress",
    "ScatterPanel",
    "Section",
    "curve_panels",
    "figure_html",
    "html_table",
    "render_page",
    "run_jobs",
    "scatter_panels",
    "text_table",
]

T = TypeVar("T")
R = TypeVar("R")

Mode = Literal["full", "quick", "smoke"]


class Progress:
    """A dependency-free progress bar on stderr.

    On a terminal the bar redraws in place (``\\r``); otherwise (CI logs, captured output) it prints
    one line at 0 %, 25 %, 50 %, 75 % and 100 % so logs stay short.

    Example:
        >>> bar = Progress(stream=io.StringIO())
        >>> bar.start("ring / hinge", total=100)
        >>> bar.update(50)
        >>> bar.finish()
    """

    def __init__(self, stream: TextIO | None = None, width: int = 28) -> None:
        self.stream = sys.stderr if stream is None else stream
        self.width = width
        self.interactive = bool(getattr(self.stream, "isatty", lambda: False)())
        self._label = ""
        self._total = 1
        self._done = 0
        self._t0 = 0.0
        self._last_draw = 0.0
        self._last_quarter = -1

    def start(self, label: str, total: int) -> None:
        self._label, self._total, self._done = label, max(int(total), 1), 0
        self._t0 = time.perf_counter()
        self._last_draw = 0.0
        self._last_quarter = -1
        self._draw(force=True)

    def update(self, n: int = 1) -> None:
        self._done = min(self._done + n, self._total)
        self._draw()

    def set(self, done: int) -> None:
        self._done = min(max(done, self._done), self._total)
        self._draw()

    def finish(self) -> None:
        self._done = self._total
        self._draw(force=True)
        if self.interactive:
            self.stream.write("\n")
            self.stream.flush()

    def note(self, text: str) -> None:
        """Print a line (a section header, a finished run) above the bar."""
        if self.interactive and self._label:
            self.stream.write("\r" + " " * (len(self._line()) + 2) + "\r" + text + "\n")
            self._draw(force=True)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def _line(self) -> str:
        frac = self._done / self._total
        filled = round(frac * self.width)
        bar = "#" * filled + "-" * (self.width - filled)
        elapsed = time.perf_counter() - self._t0
        eta = elapsed / frac - elapsed if frac > 0 else float("nan")
        eta_txt = f"eta {eta:5.1f}s" if math.isfinite(eta) else "eta   ?  "
        return (
            f"{self._label:<34} [{bar}] {self._done:>5}/{self._total:<5} {elapsed:6.1f}s {eta_txt}"
        )

    def _draw(self, force: bool = False) -> None:
        if self.interactive:
            now = time.perf_counter()
            if force or now - self._last_draw > 0.1:
                self._last_draw = now
                self.stream.write("\r" + self._line())
                self.stream.flush()
            return
        quarter = (4 * self._done) // self._total
        if force and self._done < self._total and self._last_quarter >= 0:
            return
        if quarter != self._last_quarter:
            self._last_quarter = quarter
            self.stream.write(self._line() + "\n")
            self.stream.flush()


@dataclass
class Context:
    """What a section receives: run mode, seed, output folder and the shared progress bar.

    ``mode`` is ``"full"`` (the real demo), ``"quick"`` (about a minute, run by CI) or ``"smoke"``
    (a few steps, used by ``tests/test_demo.py``; the numbers mean nothing).
    """

    mode: Mode = "full"
    seed: int = 0
    jobs: int = 1  # worker processes for independent runs (see run_jobs)
    progress: Progress = field(default_factory=Progress)

    @property
    def quick(self) -> bool:
        return self.mode != "full"


@dataclass
class Section:
    """One package's part of the report.

    Arguments:
        key: registry name (``"gan_losses"``), also the HTML anchor and the ``results.json`` key.
        title: heading shown on the page.
        blocks: HTML fragments in order (paragraphs, tables from :func:`html_table`, figures from
            :func:`figure_html`).
        results: JSON-serialisable numbers for ``results.json``.
        text: plain-text summaries (e.g. tables as markdown) the driver prints at the end.
        wall_s: the section's wall time in seconds (filled in by the driver).
    """

    key: str
    title: str
    blocks: list[str] = field(default_factory=list)
    results: dict[str, Any] = field(default_factory=dict)
    text: list[str] = field(default_factory=list)
    wall_s: float = 0.0

    def add_html(self, fragment: str) -> None:
        self.blocks.append(fragment)

    def add_paragraph(self, text: str) -> None:
        """Add a paragraph of plain text (escaped)."""
        self.blocks.append(f"<p>{html.escape(text)}</p>")

    def add_table(
        self, headers: list[str], rows: list[list[Any]], *, caption: str, numeric_from: int = 1
    ) -> None:
        """Add a table twice: as HTML (:func:`html_table`) to the page and, after its caption, as
        markdown (:func:`text_table`) to the printed summary."""
        self.blocks.append(html_table(headers, rows, caption=caption, numeric_from=numeric_from))
        self.text.append(caption + "\n" + text_table(headers, rows))


# --------------------------------------------------------------------------------------------------
# Independent runs, in-process or in worker processes
# --------------------------------------------------------------------------------------------------

_COUNTER: Any = None  # in a worker: the shared progress counter (multiprocessing.Value)


def _worker_init(counter: Any) -> None:
    global _COUNTER
    _COUNTER = counter
    try:  # one intra-op thread per worker: the workers already use the cores
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover - sections without torch
        pass


def _worker_tick(n: int = 1) -> None:
    with _COUNTER.get_lock():
        _COUNTER.value += n


def _call_in_worker(fn: Callable[[Any, Callable[[int], None]], Any], item: Any) -> Any:
    return fn(item, _worker_tick)


def run_jobs(
    ctx: Context,
    fn: Callable[[T, Callable[[int], None]], R],
    items: Sequence[T],
    *,
    label: str,
    units: Sequence[int] | int,
    describe: Callable[[T, R], str] | None = None,
) -> list[R]:
    """Run ``fn(item, tick)`` for every item and return the results in item order.

    ``tick(n)`` advances the progress bar by ``n`` of the item's ``units`` (one number per item,
    or one number for every item). With ``ctx.jobs > 1``
    the items run in that many ``spawn`` worker processes with one torch thread each; ``fn`` must
    then be a module-level function and items and results picklable. Each run must seed itself,
    so the results do not depend on ``ctx.jobs``. ``describe(item, result)`` gives a line printed
    as each run finishes.
    """
    progress = ctx.progress
    progress.start(label, units * len(items) if isinstance(units, int) else sum(units))
    results: list[Any] = [None] * len(items)
    if ctx.jobs <= 1 or len(items) <= 1:
        for i, item in enumerate(items):
            results[i] = fn(item, progress.update)
            if describe is not None:
                progress.note(describe(item, results[i]))
        progress.finish()
        return results
    mp = multiprocessing.get_context("spawn")
    counter = mp.Value("q", 0)
    workers = min(ctx.jobs, len(items))
    with ProcessPoolExecutor(
        workers, mp_context=mp, initializer=_worker_init, initargs=(counter,)
    ) as pool:
        futures = {pool.submit(_call_in_worker, fn, item): i for i, item in enumerate(items)}
        pending = set(futures)
        try:
            while pending:
                done, pending = wait(pending, timeout=0.25, return_when=FIRST_COMPLETED)
                for fut in done:
                    i = futures[fut]
                    results[i] = fut.result()
                    if describe is not None:
                        progress.note(describe(items[i], results[i]))
                progress.set(counter.value)
        except BaseException:
            _stop_workers(pool)
            raise
    progress.finish()
    return results


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """Cancel the runs that have not started and end the running workers at once.

    Called when a run fails or the demo is interrupted (Ctrl-C, or SIGTERM, which ``tools.demo``
    turns into ``SystemExit``): leaving the ``with`` block alone would wait for every running
    training job, and a killed parent used to leave its spawn workers behind, asleep for good.
    """
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for p in processes:
        if p.is_alive():
            p.terminate()
    for p in processes:
        p.join(timeout=2.0)


def html_table(
    headers: list[str], rows: list[list[Any]], *, caption: str | None = None, numeric_from: int = 1
) -> str:
    """An HTML table; cells are escaped, columns from ``numeric_from`` on are right-aligned."""
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = []
    for row in rows:
        cells = []
        for j, cell in enumerate(row):
            cls = ' class="num"' if j >= numeric_from else ""
            cells.append(f"<td{cls}>{html.escape(str(cell))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>" + "".join(body) + "</tbody></table>"


def text_table(headers: list[str], rows: list[list[Any]]) -> str:
    """The same table as GitHub markdown (for logs and for pasting)."""
    cols = [[str(h)] + [str(r[j]) for r in rows] for j, h in enumerate(headers)]
    widths = [max(len(c) for c in col) for col in cols]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"

    out = [line([str(h) for h in headers]), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line([str(c) for c in r]) for r in rows]
    return "\n".join(out)


def figure_html(fig: Any, *, alt: str, caption: str | None = None, dpi: int = 96) -> str:
    """Render a matplotlib figure to an inline ``<img>`` (base64 PNG) and close it."""
    plt = _pyplot()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
    return (
        f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">{cap}</figure>'
    )


def _pyplot() -> Any:
    import matplotlib

    if matplotlib.get_backend().lower() != "agg":
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


@dataclass
class ScatterPanel:
    """One scatter subplot: ``points`` (N, 2) drawn as dots, ``markers`` (M, 2) as red crosses."""

    title: str
    points: Any | None  # array-like (N, 2) or None
    markers: Any | None = None
    limit: float = 1.0  # axes are [-limit, limit]^2


def scatter_panels(rows: list[list[ScatterPanel]], *, size: float = 1.95) -> Any:
    """A grid of equal-aspect 2-D scatter plots, one list of panels per row."""
    plt = _pyplot()
    n_rows, n_cols = len(rows), max(len(r) for r in rows)
    fig, axes = plt.subplots(
        n_rows, n_cols, figsize=(size * n_cols, (size + 0.2) * n_rows), squeeze=False
    )
    for ax_row, row in zip(axes, rows):
        for j, ax in enumerate(ax_row):
            if j >= len(row):
                ax.axis("off")
                continue
            p = row[j]
            if p.points is not None:
                pts = p.points
                ax.scatter(pts[:, 0], pts[:, 1], s=2, alpha=0.35, color="#1f77b4", linewidths=0)
            if p.markers is not None:
                mk = p.markers
                ax.scatter(mk[:, 0], mk[:, 1], s=40, marker="+", color="#d62728", linewidths=1.2)
            ax.set_xlim(-p.limit, p.limit)
            ax.set_ylim(-p.limit, p.limit)
            ax.set_aspect("equal")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(p.title, fontsize=8.5)
    fig.tight_layout()
    return fig


def curve_panels(
    panels: list[tuple[str, list[tuple[Any, ...]]]],
    *,
    xlabel: str,
    ylabel: str,
    ylim: tuple[float, float] | None = None,
) -> Any:
    """Side-by-side line plots, one legend.

    Each panel is ``(title, lines)``; a line is ``(label, xs, ys)`` or ``(label, xs, ys, style)``
    with ``style`` a dict of ``Axes.plot`` keyword arguments (e.g. ``{"linestyle": "--"}``).
    """
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(5.4 * len(panels), 3.0), squeeze=False)
    for ax, (title, lines) in zip(axes[0], panels):
        for label, xs, ys, *style in lines:
            ax.plot(xs, ys, label=label, **{"linewidth": 1.2, **(style[0] if style else {})})
        ax.set_title(title, fontsize=9)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        if ylim is not None:
            ax.set_ylim(*ylim)
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    return fig


_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1200px; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: 0.2em; margin-top: 2em; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.92em; }
caption { caption-side: top; text-align: left; font-weight: 600; padding-bottom: 0.4em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; }
th { background: #f3f3f3; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
tbody tr:nth-child(even) { background: #fafafa; }
figure { margin: 1em 0; } figure img { max-width: 100%; }
figcaption { font-size: 0.9em; color: #555; }
.meta td:first-child { font-weight: 600; }
.error { background: #fee; border: 1px solid #c99; padding: 0.6em; white-space: pre-wrap; }
code { background: #f3f3f3; padding: 0 0.2em; }
"""


def render_page(meta: dict[str, Any], sections: list[Section]) -> str:
    """The whole report: header table, table of contents, then one ``<section>`` per package."""
    meta_rows = "".join(
        f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(str(v))}</td></tr>"
        for k, v in meta.items()
    )
    toc = "".join(
        f'<li><a href="#{html.escape(s.key)}">{html.escape(s.title)}</a> ({s.wall_s:.1f} s)</li>'
        for s in sections
    )
    body = "".join(
        f'<section id="{html.escape(s.key)}"><h2>{html.escape(s.title)}</h2>'
        + "\n".join(s.blocks)
        + "</section>"
        for s in sections
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        "<title>kexue demo</title>"
        f"<style>{_CSS}</style></head><body>"
        "<h1>kexue demo</h1>"
        f'<table class="meta"><tbody>{meta_rows}</tbody></table>'
        f"<ul>{toc}</ul>{body}</body></html>\n"
    )
