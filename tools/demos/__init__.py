"""Demo sections, one module per package.

``SECTIONS`` maps a section name (what ``tools/demo.py --sections`` takes) to the module that
implements it. A section module exposes ``run(ctx: demos._report.Context) -> demos._report.Section``
and may import anything it needs inside ``run`` (so listing a section costs nothing). To add a
package's section: write ``tools/demos/<name>.py`` and append it here; the order is the page order.
"""

from __future__ import annotations

__all__ = ["SECTIONS"]

SECTIONS: dict[str, str] = {
    "gan_losses": "demos.gan_losses",
    "keras_compat": "demos.keras_compat",
    "vq": "demos.vq",
    "flows": "demos.flows",
    "textkit": "demos.textkit",
}
