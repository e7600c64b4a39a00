"""The textkit terms part's page: discovered words and mined domain terms with their precision."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._report import html_table

if TYPE_CHECKING:
    from .._textkit_terms import Budget


def terms_html(
    b: Budget, n_par: int, n_gold: int, disc: dict[str, Any], dom: dict[str, Any]
) -> str:
    parts = [
        f"<p>Unsupervised word discovery on the raw text of People's Daily 1998-01 ({n_par} "
        f"paragraphs, {disc['megabytes']} MB, gold segmentation stripped). Gold lexicon for "
        f"precision: the {n_gold} Han words of ≥ 2 characters seen ≥ 2 times in the gold "
        "segmentation (PKU splits names and many compounds, so some 'misses' are real words).</p>"
    ]
    rows = []
    a_top, b_top = disc["A"]["top"], disc["B"]["top"]
    for i in range(max(len(a_top), len(b_top))):
        row: list[Any] = [i + 1]
        for top in (a_top, b_top):
            if i < len(top):
                w, c, ok = top[i]
                row += [w if ok else f"{w} †", c]
            else:
                row += ["", ""]
        rows.append(row)
    caption = (
        "Most frequent discovered multi-character Han words († = not in the gold lexicon). "
        f"A: WordFinder(min_proba=1e-5, min_pmi=1), {disc['A']['words']} words, "
        f"P@100 {disc['A']['p_at_100']:.2f}, P@1000 {disc['A']['p_at_1000']:.3f}, "
        f"{disc['A']['seconds']:.1f} s; B: discover_ngrams(min_count={b.b_min_count}), "
        f"{disc['B']['words']} words, P@100 {disc['B']['p_at_100']:.2f}, "
        f"P@1000 {disc['B']['p_at_1000']:.3f}, {disc['B']['seconds']:.1f} s (2-core machine, "
        "shared with the other demo sections; BENCHMARKS.md has the timed runs)."
    )
    parts.append(html_table(["#", "A word", "count", "B word", "count"], rows, caption=caption))
    text = [
        f"Domain terms: the {dom['domain_sentences']} sentences mentioning 经济 against the other "
        f"{dom['background_sentences']}. Candidates: WordFinder(1e-6, 0.5) on the domain slice, "
        "filtered by <code>is_good_term</code>; score (f_d + α·m)/(f_d + f_g' + m) with f_g' = "
        "f_g·(domain characters / background characters), m the mean of f_d + f_g', α = Σf_d / "
        "Σ(f_d + f_g') (post 6540), counts = substring occurrences."
    ]
    headers = ["#", "term", "score", "f_d", "f_g"]
    rows = [
        [i + 1, term, f"{score:.3f}", fd, fg]
        for i, (term, score, fd, fg) in enumerate(dom["terms"])
    ]
    if "blog_compat" in dom:
        bc = dom["blog_compat"]
        text[-1] += (
            " The last column is the term's rank under the published pandas code "
            "(<code>blog_compat=True</code>, discovered word counts): "
            f"{bc['nan_terms']} of its {bc['candidates']} candidates are absent from the "
            "background's discovered lexicon, get NaN and sort last (shown as 'NaN'), the "
            "domain-only terms (f_g = 0) among them."
        )
        headers.append("blog_compat rank")
        for row, r in zip(rows, bc["rank_of_top_terms"]):
            row.append("NaN" if r is None else r)
    parts.append("<p>" + "".join(text) + "</p>")
    parts.append(
        html_table(
            headers,
            rows,
            caption=f"Top {len(rows)} domain terms of the 经济 slice ({dom['seconds']:.1f} s).",
            numeric_from=2,
        )
    )
    return "\n".join(parts)
