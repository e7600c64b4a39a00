"""Seed-word expansion for domain-term mining (spec §2.4 item 5), numpy only.

The post re-segments the domain corpus with the discovered lexicon, trains word2vec (skip-gram,
dim 100) and grows ~150 seed words by a breadth-first search over cosine neighbours whose acceptance
threshold rises with depth. word2vec is not a dependency of kexue-textkit, so
:func:`cooccurrence_vectors` stands in for it: PPMI of window co-occurrences followed by a truncated
(randomised) eigendecomposition, the SVD route of Levy, Goldberg & Dagan (2015).
:func:`expand_seeds` is the BFS. :func:`kexue.textkit.terms.domain.mine_domain_terms` calls both when it
is given ``seeds``.

References:
    - Su Jianlin, "基于“词向量+Matrix67平滑”的领域词汇挖掘" (DataFountain), https://kexue.fm/archives/6540
    - Levy, Goldberg & Dagan 2015, "Improving distributional similarity with lessons learned from
      word embeddings", TACL 3 (PPMI + SVD, eigenvalue weighting p = 0.5).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from ._checks import check_at_least
from .termfilter import is_good_term

__all__ = ["ExpandedTerm", "cooccurrence_vectors", "expand_seeds"]


@dataclass(frozen=True)
class ExpandedTerm:
    """A word accepted by :func:`expand_seeds`.

    Arguments:
        term: the word.
        similarity: cosine similarity to the query of the word that found it.
        depth: BFS depth at which it was enqueued (the finder's depth + 1; seeds are at 0).
        threshold: the threshold it passed, ``min_sim + (max_sim − min_sim)(1 − e^{−a·(depth−1)})``.
    """

    term: str
    similarity: float
    depth: int
    threshold: float


def _orthonormal(y: np.ndarray) -> np.ndarray:
    """Orthonormal basis of the columns of a tall ``y`` by eigh of its Gram matrix, twice (a
    Cholesky-QR2 variant; LAPACK's threaded QR of a tall-skinny matrix is ~30x slower on a busy
    machine), dropping numerically null directions."""
    for _ in range(2):
        lam, u = np.linalg.eigh(y.T @ y)
        ok = lam > lam.max() * 1e-12
        y = y @ (u[:, ok] / np.sqrt(lam[ok]))
    return y


def cooccurrence_vectors(
    docs: Iterable[Sequence[str]],
    *,
    window: int = 5,
    dim: int = 100,
    min_count: int = 2,
    max_vocab: int = 4000,
    seed: int = 0,
) -> tuple[list[str], np.ndarray]:
    """Word vectors from PPMI co-occurrences and a truncated eigendecomposition (numpy only).

    Co-occurrence counts C_ij within ``window`` tokens (weight (window − k + 1)/window at distance
    k, word2vec's dynamic-window expectation; out-of-vocabulary tokens removed first, as word2vec
    does), PPMI_ij = max(0, ln(C_ij·ΣC / (C_i·C_j))), then the top ``dim`` eigenpairs of the
    symmetric PPMI matrix (dense ``eigh`` when V ≤ 2·dim + 20, else a randomized range finder,
    Halko et al. 2011, oversampling max(10, dim), four power iterations) and vectors U·√λ (Levy et
    al. 2015's eigenvalue weighting p = 0.5), L2-normalised. This stands in for the post's
    word2vec (skip-gram, dim 100, negative 10, min_count 2), whose objective factorises a shifted
    PMI matrix (Levy & Goldberg 2014). Cost: a dense V×V float64 matrix (128 MB at V = 4000) and
    about 10 products of it with a V×2·dim block.

    Arguments:
        docs: segmented documents (lists of words).
        window: context half-width in tokens (word2vec default 5).
        dim: vector size (the post: 100).
        min_count: smallest word count kept (the post: 2).
        max_vocab: keep at most this many most frequent words (default 4000).
        seed: seed of the random range finder.

    Returns:
        ``(words, vectors)``: the vocabulary (by count, descending) and a (V, d) float32 array of
        unit rows (a word without any context gets a zero row); d = min(dim, V).

    References:
        Levy, Goldberg & Dagan 2015, TACL 3; Levy & Goldberg 2014, NeurIPS; Halko, Martinsson &
        Tropp 2011, arXiv:0909.4061.
    """
    check_at_least(1, window=window, dim=dim, min_count=min_count)
    check_at_least(2, max_vocab=max_vocab)
    docs = [list(d) for d in docs]
    freq: dict[str, int] = {}
    for d in docs:
        for w in d:
            freq[w] = freq.get(w, 0) + 1
    vocab = sorted((w for w, c in freq.items() if c >= min_count), key=lambda w: (-freq[w], w))
    vocab = vocab[:max_vocab]
    v = len(vocab)
    if v < 2:
        raise ValueError(f"docs: only {v} word(s) with count >= min_count={min_count}")
    index = {w: i for i, w in enumerate(vocab)}
    stream: list[int] = []
    for d in docs:
        stream.extend(index[w] for w in d if w in index)
        stream.extend([-1] * window)  # documents never share a window
    ids = np.asarray(stream, dtype=np.int64)
    keys, weights = [], []
    for k in range(1, window + 1):
        a, b = ids[:-k], ids[k:]
        ok = (a >= 0) & (b >= 0)
        a, b = a[ok], b[ok]
        keys += [a * v + b, b * v + a]
        weights += [np.full(2 * len(a), (window - k + 1) / window)]
    key = np.concatenate(keys)
    if key.size == 0:
        raise ValueError(f"docs: no two vocabulary words within window={window} of each other")
    uniq, inv = np.unique(key, return_inverse=True)
    cnt = np.bincount(inv, weights=np.concatenate(weights))
    rows, cols = uniq // v, uniq % v
    row_sum = np.bincount(rows, weights=cnt, minlength=v)
    pmi = np.log(cnt * cnt.sum() / (row_sum[rows] * row_sum[cols]))
    mat = np.zeros((v, v), dtype=np.float64)
    mat[rows, cols] = np.maximum(pmi, 0.0)
    d = min(dim, v)
    if v <= 2 * d + 20:
        lam, vec = np.linalg.eigh(mat)
    else:
        rng = np.random.default_rng(seed)
        q = _orthonormal(mat @ rng.standard_normal((v, d + max(10, d))))
        for _ in range(4):
            q = _orthonormal(mat @ q)
        lam, small = np.linalg.eigh(q.T @ mat @ q)
        vec = q @ small
    top = np.argsort(-lam, kind="stable")[:d]
    emb = vec[:, top] * np.sqrt(np.maximum(lam[top], 0.0))
    norm = np.linalg.norm(emb, axis=1, keepdims=True)
    emb = np.divide(emb, norm, out=np.zeros_like(emb), where=norm > 0)
    return vocab, emb.astype(np.float32)


def expand_seeds(
    seeds: Iterable[str],
    words: Sequence[str],
    vectors: np.ndarray,
    *,
    min_sim: float = 0.6,
    max_sim: float = 1.0,
    decay: float = 0.35,
    neighbours: int = 200,
    term_filter: Callable[[str], bool] | None = is_good_term,
    center: np.ndarray | None = None,
    negative: np.ndarray | None = None,
    max_accept: int | None = None,
) -> list[ExpandedTerm]:
    """Grow a seed set by breadth-first search over embedding neighbours (spec §2.4 item 5).

    The queue holds (depth, word) items, seeds at depth 0. Popping (d, w) ranks the words not yet
    seen by cosine similarity to q = vec(w) + center − negative and takes the top ``neighbours``;
    a neighbour is accepted when its similarity ≥ t(d) = min_sim + (max_sim − min_sim)(1 − e^{−a·d})
    and it passes ``term_filter``, and is enqueued at depth d + 1. The threshold rises with depth,
    so the search drifts less the further it gets from the seeds; it never accepts below t(d), and
    it terminates because every word is enqueued at most once (at most V pops).

    Arguments:
        seeds: seed words (those without a vector are ignored).
        words: vocabulary, aligned with the rows of ``vectors``.
        vectors: (V, d) word vectors (normalised here).
        min_sim, max_sim, decay: threshold schedule; defaults 0.6, 1.0, 0.35 are the values the
            post used (its function default for ``decay`` is 0.25).
        neighbours: neighbours examined per pop (the post: 200).
        term_filter: predicate a word must pass (default :func:`is_good_term`; None: any).
        center, negative: (d,) offsets added to / subtracted from each query (the post: 0).
        max_accept: stop after this many accepted words (None: no limit).

    Returns:
        The accepted words (seeds excluded) in acceptance order.

    References:
        https://kexue.fm/archives/6540
    """
    vectors = np.asarray(vectors, dtype=np.float64)
    if vectors.ndim != 2 or vectors.shape[0] != len(words):
        raise ValueError(
            f"vectors: expected shape (len(words)={len(words)}, d), got {tuple(vectors.shape)}"
        )
    if not (0.0 <= min_sim <= max_sim) or decay < 0 or neighbours < 1:
        raise ValueError(
            f"min_sim/max_sim/decay/neighbours: need 0 <= min_sim <= max_sim, decay >= 0, "
            f"neighbours >= 1; got {min_sim}/{max_sim}/{decay}/{neighbours}"
        )
    offset = np.zeros(vectors.shape[1])
    for name, off, sign in (("center", center, 1.0), ("negative", negative, -1.0)):
        if off is not None:
            off = np.asarray(off, dtype=np.float64)
            if off.shape != (vectors.shape[1],):
                raise ValueError(f"{name}: expected shape ({vectors.shape[1]},), got {off.shape}")
            offset = offset + sign * off
    norm = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = np.divide(vectors, norm, out=np.zeros_like(vectors), where=norm > 0)
    index = {w: i for i, w in enumerate(words)}
    start = [index[s] for s in dict.fromkeys(seeds) if s in index]
    if not start:
        raise ValueError("seeds: none of the seed words has a vector")
    keep = term_filter or (lambda _w: True)
    seen = np.zeros(len(words), dtype=bool)
    seen[start] = True
    queue = deque((0, i) for i in start)
    accepted: list[ExpandedTerm] = []
    while queue:
        depth, i = queue.popleft()
        q = unit[i] + offset
        qn = float(np.linalg.norm(q))
        if qn == 0.0:
            continue
        sims = unit @ (q / qn)
        sims[seen] = -np.inf
        k = min(neighbours, int((~seen).sum()))
        if k == 0:
            break
        cand = np.argpartition(-sims, k - 1)[:k]
        cand = cand[np.lexsort((cand, -sims[cand]))]
        thr = min_sim + (max_sim - min_sim) * (1.0 - math.exp(-decay * depth))
        for j in cand.tolist():
            if sims[j] < thr:
                break
            if seen[j] or not keep(words[j]):
                continue
            seen[j] = True
            accepted.append(ExpandedTerm(words[j], float(sims[j]), depth + 1, thr))
            queue.append((depth + 1, j))
            if max_accept is not None and len(accepted) >= max_accept:
                return accepted
    return accepted
