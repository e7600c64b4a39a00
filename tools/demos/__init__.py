"""Demo sections, one module per package.

``SECTIONS`` maps a section name (what ``python -m tools.demo --sections`` takes) to the module that
implements it. A section module exposes ``run(ctx: tools.demos._report.Context) ->
tools.demos._report.Section`` and may import anything it needs inside ``run`` (so listing a section
costs nothing). To add a package's section: write ``tools/demos/<name>.py`` (``run`` trains and
measures; set-ups a benchmark also uses go to ``tools/workloads/``), put its figures, tables and
HTML text in ``tools/demos/pages/<name>.py``, and append it here; the order is the page order.
"""

from __future__ import annotations

__all__ = ["SECTIONS"]

SECTIONS: dict[str, str] = {
    "gan_losses": "tools.demos.gan_losses",
    "keras_compat": "tools.demos.keras_compat",
    "vq": "tools.demos.vq",
    "flows": "tools.demos.flows",
    "textkit": "tools.demos.textkit",
    "vae": "tools.demos.vae",
}
