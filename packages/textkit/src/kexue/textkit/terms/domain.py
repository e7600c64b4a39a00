"""Domain-term mining: rank a domain corpus's words against a background corpus (spec §2.4).

Su Jianlin's DataFountain electric-power entry (post 6540): discover words in the domain corpus D
and in a general corpus G, rescale G's counts to D's size and score each word by a smoothed
P(domain | word),

    f_g ← f_g · Σf_d / Σf_g,
    score(w) = (f_d + α·m) / (f_d + f_g + m),  m = mean_w (f_d + f_g),  α = Σf_d / Σ(f_d + f_g),

i.e. Matrix67's shrinkage of f_d / (f_d + f_g) towards the prior α (0.5 after rescaling) with
pseudo-count m. A word missing from one corpus counts 0 there (never NaN); ``blog_compat=True``
reproduces the published pandas code, where such words get NaN and sort last, and α and m are
taken over the words present in both (spec §2.4 item 4).

Optional seed-word expansion (spec §2.4 item 5) lives in :mod:`kexue.textkit.terms.expand`:
:func:`~kexue.textkit.terms.expand.expand_seeds` (BFS over embedding neighbours with a
depth-rising threshold) on vectors from
:func:`~kexue.textkit.terms.expand.cooccurrence_vectors` (PPMI + truncated eigendecomposition,
numpy only), which stand in for the post's word2vec (not a dependency). The candidate filter
:func:`~kexue.textkit.terms.termfilter.is_good_term` lives in :mod:`.termfilter` (re-exported here).

References:
    - Su Jianlin, "基于“词向量+Matrix67平滑”的领域词汇挖掘" (DataFountain), https://kexue.fm/archives/6540
    - Levy, Goldberg & Dagan 2015, "Improving distributional similarity with lessons learned from
      word embeddings", TACL 3 (PPMI + SVD, eigenvalue weighting p = 0.5).
"""

from __future__ import annotations

import math
import numbers
import os
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from ._checks import check_at_least
from .expand import cooccurrence_vectors, expand_seeds
from .termfilter import DEFAULT_STOP_CHARS, is_good_term

if TYPE_CHECKING:
    from .ngrams import NgramCounts

__all__ = [
    "DEFAULT_STOP_CHARS",
    "TermScore",
    "domain_scores",
    "is_good_term",
    "mine_domain_terms",
]


@dataclass(frozen=True)
class TermScore:
    """One ranked term.

    Arguments:
        term: the word.
        score: the smoothed domain score in (0, 1) (NaN only under ``blog_compat=True``).
        domain_count: f_d, its count in the domain corpus.
        background_count: f_g, its raw (unscaled) count in the background corpus.
    """

    term: str
    score: float
    domain_count: int
    background_count: int


def domain_scores(
    domain_counts: Mapping[str, float],
    background_counts: Mapping[str, float],
    *,
    blog_compat: bool = False,
    scale: float | None = None,
) -> list[TermScore]:
    """Score every word of either count map by the smoothed domain probability (spec §2.4).

    score(w) = (f_d + α·m) / (f_d + f_g' + m) with f_g' = f_g·scale, scale = Σf_d/Σf_g,
    m = mean over words of (f_d + f_g'), α = Σf_d / Σ(f_d + f_g').

    Properties (default mode): every score lies in (0, 1); with the default scale α = 0.5 (up to
    rounding; exactly when Σf_d = Σf_g) and a word with f_d = f_g' scores 0.5; the score
    increases with f_d at fixed f_g (also when Σf_d, the scale and m move with it).

    Arguments:
        domain_counts: word → count in the domain corpus (f_d).
        background_counts: word → count in the background corpus (f_g).
        blog_compat: reproduce the published pandas code: words absent from one map get NaN and
            sort last (ties among them by word), α and m come from the words present in both;
            the rescaling sums still run over each whole map, as ``Series.sum()`` does.
        scale: factor applied to f_g (default Σf_d / Σf_g over the two maps; pass e.g. the ratio
            of the corpora's character totals when the maps hold only a few candidates).

    Returns:
        :class:`TermScore` list sorted by score (descending), ties by domain count (descending)
        then by word.

    References:
        https://kexue.fm/archives/6540
    """
    for name, counts in (
        ("domain_counts", domain_counts),
        ("background_counts", background_counts),
    ):
        for word, c in counts.items():
            if not (isinstance(c, numbers.Real) and math.isfinite(c) and c >= 0):
                raise ValueError(f"{name}: count of {word!r} is {c!r}; need finite values >= 0")
    sum_d = float(sum(domain_counts.values()))
    sum_g = float(sum(background_counts.values()))
    if sum_d <= 0:
        raise ValueError("domain_counts: empty or all zero")
    if scale is None:
        if sum_g <= 0:
            raise ValueError("background_counts: empty or all zero (or pass scale)")
        scale = sum_d / sum_g
    elif not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"scale: expected a finite value > 0, got {scale}")
    if blog_compat:
        words = sorted(set(domain_counts) | set(background_counts))
        both = [w for w in words if w in domain_counts and w in background_counts]
        if not both:
            raise ValueError("blog_compat: the two maps share no word, every score would be NaN")
        fd_both = sum(float(domain_counts[w]) for w in both)
        tot_both = sum(float(domain_counts[w]) + scale * float(background_counts[w]) for w in both)
        m = tot_both / len(both)
        alpha = fd_both / tot_both
    else:
        words = sorted(set(domain_counts) | set(background_counts))
        m = (sum_d + scale * sum_g) / len(words)
        alpha = sum_d / (sum_d + scale * sum_g)
    out: list[TermScore] = []
    for w in words:
        fd = domain_counts.get(w)
        fg = background_counts.get(w)
        if fd is None or fg is None:
            if blog_compat:
                out.append(TermScore(w, math.nan, int(fd or 0), int(fg or 0)))
                continue
        fd_v, fg_v = float(fd or 0), float(fg or 0)
        score = (fd_v + alpha * m) / (fd_v + scale * fg_v + m)
        out.append(TermScore(w, score, int(fd_v), int(fg_v)))
    out.sort(
        key=lambda t: (math.isnan(t.score), -t.score if not math.isnan(t.score) else 0.0,
                       -t.domain_count, t.term)
    )  # fmt: skip
    return out


def _table_counts(table: NgramCounts, words: Sequence[str]) -> list[int]:
    """Counts of ``words`` in an n-gram table; a word longer than its order gets the minimum count
    of its order-character windows (an upper bound on its occurrences)."""
    order = table.order
    out = [0] * len(words)
    by_len: dict[int, list[int]] = {}
    for i, w in enumerate(words):
        by_len.setdefault(min(len(w), order), []).append(i)
    for n, idx in by_len.items():
        if n < order:
            counts = table.lookup([words[i] for i in idx], n)
            for i, c in zip(idx, counts.tolist()):
                out[i] = int(c)
            continue
        windows = [words[i][j : j + order] for i in idx for j in range(len(words[i]) - order + 1)]
        counts = table.lookup(windows, order).tolist() if windows else []
        pos = 0
        for i in idx:
            k = len(words[i]) - order + 1
            out[i] = int(min(counts[pos : pos + k]))
            pos += k
    return out


def _discover(
    texts: Sequence[str], algorithm: str, min_count: int, options: Mapping[str, Any]
) -> dict[str, int]:
    if algorithm == "A":
        from .discovery import WordFinder

        opts = {"min_proba": 1e-6, "min_pmi": 0.5, **options}  # the DataFountain setting (§2.4)
        finder = WordFinder(**opts)
        finder.train(texts)
        return {w: int(c) for w, c in finder.words.items() if c >= min_count}
    if algorithm == "B":
        from .discovery import discover_ngrams

        return {
            w: int(c) for w, c in discover_ngrams(texts, min_count=min_count, **options).items()
        }
    raise ValueError(f"algorithm: expected 'A' (nlp-zero) or 'B' (n-gram), got {algorithm!r}")


def mine_domain_terms(
    domain_texts: Iterable[str],
    background: Iterable[str] | Mapping[str, int] | NgramCounts | str | os.PathLike[str],
    *,
    algorithm: Literal["A", "B"] = "A",
    counts: Literal["ngrams", "discovered"] | None = None,
    min_count: int = 5,
    top: int | None = 100,
    term_filter: Callable[[str], bool] | None = is_good_term,
    blog_compat: bool = False,
    discovery_options: Mapping[str, Any] | None = None,
    seeds: Iterable[str] | None = None,
    expansion_options: Mapping[str, Any] | None = None,
) -> list[TermScore]:
    """Discover candidate words in a domain corpus and rank them against a background (§2.4).

    1. Candidates: words discovered in ``domain_texts`` by algorithm A (nlp-zero ``WordFinder``,
       default at the DataFountain setting min_proba 1e-6, min_pmi 0.5) or B
       (``discover_ngrams``), with domain count ≥ ``min_count``.
    2. Counts f_d, f_g, by ``counts``:

       - ``"ngrams"`` (default for texts and count tables): occurrence counts of the candidates
         as substrings, from n-gram tables of both corpora (``count_ngrams``; the background may
         be texts, an :class:`~kexue.textkit.terms.ngrams.NgramCounts` or the path of a saved one, whose
         order is used for the domain too). A word longer than the order gets the minimum count
         of its order-character windows (an upper bound). Scale = ratio of character totals.
         Robust: a common word the background's discovery happened to cut differently still
         counts there.
       - ``"discovered"`` (the post's method; default for a word-count mapping): the same
         discovery runs on background texts and f_d, f_g are discovered word counts (or the
         mapping's counts); the score uses every word of both lexicons. A frequent background
         word missing from the background lexicon (cut into parts there) counts 0 and can rank
         high: the method needs a large background corpus.
    3. Scores by :func:`domain_scores`; candidates passing ``term_filter`` are returned.
    4. With ``seeds``: the domain corpus is re-segmented with the whole discovered lexicon
       (``UnigramSegmenter``; rarer words than ``min_count`` included), vectors come from :func:`cooccurrence_vectors`, and
       :func:`expand_seeds` grows the seed set; only seeds and accepted words are returned, in
       score order (the post's output step).
       The post's thresholds (min_sim 0.6) were set for word2vec; PPMI-SVD cosines run lower
       (on People's Daily at dim 100 the nearest neighbours of 金融 — 保险, 财政, 银行 — score
       0.53-0.56, at dim 50 0.63-0.69), so lower ``min_sim`` or ``dim`` via
       ``expansion_options``; on a small domain slice the vectors are noisy.

    Arguments:
        domain_texts: the domain corpus (texts).
        background: texts, a word → count mapping, an ``NgramCounts`` or a saved table's path.
        algorithm: ``"A"`` or ``"B"``.
        counts: ``"ngrams"`` or ``"discovered"`` (see step 2; None picks by ``background``).
        min_count: smallest domain count of a candidate (also B's ``min_count``).
        top: number of terms returned (None: all).
        term_filter: predicate on terms (default :func:`is_good_term`; None keeps everything).
        blog_compat: the published NaN behaviour (see :func:`domain_scores`).
        discovery_options: extra keyword arguments of ``WordFinder`` / ``discover_ngrams``.
        seeds: seed words for the optional expansion.
        expansion_options: keyword arguments of :func:`cooccurrence_vectors` (``window``, ``dim``,
            ``max_vocab``, ``seed``) and :func:`expand_seeds` (``min_sim``, ``max_sim``, ``decay``,
            ``neighbours``, ``max_accept``).

    Returns:
        :class:`TermScore` list, best first.

    References:
        https://kexue.fm/archives/6540
    """
    from .ngrams import NgramCounts, count_ngrams

    texts = list(domain_texts)
    if not all(isinstance(t, str) for t in texts):
        raise ValueError("domain_texts: expected an iterable of str")
    if not any(texts):
        raise ValueError("domain_texts: empty corpus")
    check_at_least(1, min_count=min_count)
    check_at_least(1, allow_none=True, top=top)
    if isinstance(background, (str, os.PathLike)):
        background = NgramCounts.load(background)
    if counts is None:
        counts = "discovered" if isinstance(background, Mapping) else "ngrams"
    if counts not in ("ngrams", "discovered"):
        raise ValueError(f"counts: expected 'ngrams' or 'discovered', got {counts!r}")
    is_table = isinstance(background, NgramCounts)
    if counts == "ngrams" and isinstance(background, Mapping):
        raise ValueError("counts: 'ngrams' needs background texts or a count table, not a mapping")
    if counts == "discovered" and is_table:
        raise ValueError("counts: 'discovered' needs background texts or a mapping, not a table")
    opts = dict(discovery_options or {})
    lexicon = _discover(texts, algorithm, 1 if algorithm == "A" else min_count, opts)
    cand = {w: c for w, c in lexicon.items() if c >= min_count}
    if not is_table and not isinstance(background, Mapping):
        bg_texts = list(background)
        if not all(isinstance(t, str) for t in bg_texts):
            raise ValueError("background: expected texts, a word-count mapping or a count table")
        if not any(bg_texts):
            raise ValueError("background: empty corpus")
        background = bg_texts
    if counts == "ngrams":
        table = background if is_table else count_ngrams(background, order=4)
        if table.total(1) <= 0:
            raise ValueError("background: the count table is empty")
        words = sorted(cand)
        dom_table = count_ngrams(texts, order=table.order)
        fd = dict(zip(words, _table_counts(dom_table, words)))
        fg = {w: c for w, c in zip(words, _table_counts(table, words)) if c > 0 or not blog_compat}
        scale = dom_table.total(1) / table.total(1)
        ranked = domain_scores(fd, fg, blog_compat=blog_compat, scale=scale)
    else:
        if isinstance(background, Mapping):
            bg = {str(w): int(c) for w, c in background.items()}
        else:
            bg = _discover(background, algorithm, 1 if algorithm == "A" else min_count, opts)
        ranked = domain_scores(cand, bg, blog_compat=blog_compat)
    keep = term_filter or (lambda _w: True)
    ranked = [t for t in ranked if t.term in cand and keep(t.term)]
    if seeds is not None:
        ranked = _restrict_to_expansion(
            texts, lexicon, ranked, list(seeds), expansion_options or {}
        )
    return ranked if top is None else ranked[:top]


def _restrict_to_expansion(
    texts: list[str],
    lexicon: dict[str, int],
    ranked: list[TermScore],
    seeds: list[str],
    options: Mapping[str, Any],
) -> list[TermScore]:
    from .segment import UnigramSegmenter

    vec_keys = {"window", "dim", "max_vocab", "min_count", "seed"}
    vec_opts = {k: v for k, v in options.items() if k in vec_keys}
    bfs_opts = {k: v for k, v in options.items() if k not in vec_keys}
    docs = [
        [w for w in doc if unicodedata.category(w[0])[0] not in "PSZC"]  # drop punctuation/spaces
        for doc in UnigramSegmenter(lexicon).segment_many(texts)
    ]
    words, vectors = cooccurrence_vectors(docs, **vec_opts)
    accepted = expand_seeds(seeds, words, vectors, **bfs_opts)
    chosen = set(seeds) | {a.term for a in accepted}
    return [t for t in ranked if t.term in chosen]
