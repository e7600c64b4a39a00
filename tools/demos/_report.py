"""Shared pieces of the demo: run context, section container, progress bar, HTML and figure helpers.

Every section module (``tools/demos/<name>.py``) exposes ``run(ctx: Context) -> Section``; the driver
(``tools/demo.py``) builds the context, calls the sections and renders one self-contained HTML page
(inline CSS, figures as base64 PNG, no external resources) plus ``results.json``.
"""

from __future__ import annotations

import base64
import html
import io
import math
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Literal, TextIO

__all__ = [
    "Context",
    "Mode",
    "Progress",
    "Section",
    "figure_html",
    "html_table",
    "render_page",
]

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

    def finish(self) -> None:
        self._done = self._total
        self._draw(force=True)
        if self.interactive:
            self.stream.write("\n")
            self.stream.flush()

    def note(self, text: str) -> None:
        """Print a line (e.g. a section header) without breaking the bar."""
        self.stream.write(text + "\n")
        self.stream.flush()

    def _line(self) -> str:
        frac = self._done / self._total
        filled = int(round(frac * self.width))
        bar = "#" * filled + "-" * (self.width - filled)
        elapsed = time.perf_counter() - self._t0
        eta = elapsed / frac - elapsed if frac > 0 else float("nan")
        eta_txt = f"eta {eta:5.1f}s" if math.isfinite(eta) else "eta   ?  "
        return (
            f"{self._label:<34} [{bar}] {self._done:>5}/{self._total:<5} "
            f"{elapsed:6.1f}s {eta_txt}"
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
        wall_s: the section's wall time in seconds (filled in by the driver).
    """

    key: str
    title: str
    blocks: list[str] = field(default_factory=list)
    results: dict[str, Any] = field(default_factory=dict)
    wall_s: float = 0.0

    def add_html(self, fragment: str) -> None:
        self.blocks.append(fragment)

    def add_paragraph(self, text: str) -> None:
        """Add a paragraph of plain text (escaped)."""
        self.blocks.append(f"<p>{html.escape(text)}</p>")


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
    return (
        f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>" + "".join(body) + "</tbody></table>"
    )


def text_table(headers: list[str], rows: list[list[Any]]) -> str:
    """The same table as GitHub markdown (for logs and for pasting)."""
    cols = [[str(h)] + [str(r[j]) for r in rows] for j, h in enumerate(headers)]
    widths = [max(len(c) for c in col) for col in cols]
    line = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    out = [line([str(h) for h in headers]), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line([str(c) for c in r]) for r in rows]
    return "\n".join(out)


def figure_html(fig: Any, *, alt: str, caption: str | None = None, dpi: int = 96) -> str:
    """Render a matplotlib figure to an inline ``<img>`` (base64 PNG) and close it."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
    return (
        f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">{cap}</figure>'
    )


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
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<title>kexue demo</title>"
        f"<style>{_CSS}</style></head><body>"
        "<h1>kexue demo</h1>"
        f'<table class="meta"><tbody>{meta_rows}</tbody></table>'
        f"<ul>{toc}</ul>{body}</body></html>\n"
    )
