"""Clustering scores: contingency table, purity, Hungarian accuracy, NMI, ARI (spec §2.6).

With n_kj = #{ĉ = k, y = j}, row sums a_k, column sums b_j and N samples:

- purity = (1/N)Σ_k max_j n_kj (the author's "acc"; ≥ ACC, grows with K: compare at equal K);
- ACC = (1/N)·max over one-to-one maps π of Σ_k n_{k,π(k)}, by an exact O(K³) Hungarian solver in
  pure Python (the table is zero-padded to square when K_pred ≠ K_true);
- NMI = I/avg(H_C, H_Y), I = Σ(n_kj/N)·log(N·n_kj/(a_k·b_j)); ``average`` "arithmetic" (sklearn ≥ 0.22
  default), "geometric" (older papers), "max" or "min"; two single-cluster labelings give 1;
- ARI = (Σ C(n_kj, 2) − E)/(½[Σ C(a_k, 2) + Σ C(b_j, 2)] − E), E = Σ C(a_k, 2)·Σ C(b_j, 2)/C(N, 2).

Labels may be any integers (they are relabelled 0..K−1 by their sorted unique values); empty
clusters simply do not appear. Accumulation is float64 (numpy), results are Python floats.

References:
    https://kexue.fm/archives/5887 (purity as the clustering VAE's accuracy); Kuhn 1955 /
    Munkres 1957 (assignment); Vinh et al., JMLR 2010 (NMI variants); Hubert & Arabie 1985 (ARI).
"""

from __future__ import annotations

import math

import numpy as np
from torch import Tensor

__all__ = [
    "adjusted_rand_index",
    "clusters_used",
    "contingency",
    "hungarian_accuracy",
    "linear_assignment",
    "normalized_mutual_info",
    "purity",
]

_AVERAGES = ("arithmetic", "geometric", "max", "min")


def _labels(x: Tensor | np.ndarray | list[int], name: str) -> np.ndarray:
    a = x.detach().cpu().numpy() if isinstance(x, Tensor) else np.asarray(x)
    if a.ndim != 1:
        raise ValueError(f"{name} must be a 1-d array of labels, got shape {a.shape}")
    if a.size and not np.issubdtype(a.dtype, np.integer):
        if not np.all(np.equal(np.mod(a, 1), 0)):
            raise ValueError(f"{name} must hold integer labels")
    return a.astype(np.int64)


def contingency(pred: Tensor | np.ndarray, target: Tensor | np.ndarray) -> np.ndarray:
    """Contingency table n_kj = #{pred = k-th label, target = j-th label}, int64 ``(K, J)``.

    Rows follow the sorted unique values of ``pred``, columns those of ``target``.
    """
    p, t = _labels(pred, "pred"), _labels(target, "target")
    if p.shape != t.shape:
        raise ValueError(f"pred and target must have the same length, got {p.size} and {t.size}")
    if p.size == 0:
        raise ValueError("pred and target are empty")
    _, pi = np.unique(p, return_inverse=True)
    _, ti = np.unique(t, return_inverse=True)
    table = np.zeros((pi.max() + 1, ti.max() + 1), dtype=np.int64)
    np.add.at(table, (pi, ti), 1)
    return table


def clusters_used(pred: Tensor | np.ndarray) -> int:
    """Number of non-empty clusters (distinct predicted labels)."""
    return int(np.unique(_labels(pred, "pred")).size)


def purity(pred: Tensor | np.ndarray, target: Tensor | np.ndarray) -> float:
    """Majority-label purity (1/N)Σ_k max_j n_kj (post 5887's accuracy)."""
    n = contingency(pred, target)
    return float(n.max(axis=1).sum() / n.sum())


def linear_assignment(weights: np.ndarray) -> list[int]:
    """Maximum-weight perfect matching of a square matrix (Hungarian algorithm, O(K³), exact).

    Arguments:
        weights: ``(K, K)`` real matrix.

    Returns:
        ``col`` with ``col[i]`` the column assigned to row i, maximising Σ_i weights[i, col[i]].
    """
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 2 or w.shape[0] != w.shape[1]:
        raise ValueError(f"weights must be square (K, K), got shape {w.shape}")
    n = w.shape[0]
    cost = (w.max() if n else 0.0) - w  # minimise cost, all entries >= 0
    inf = math.inf
    u, v = [0.0] * (n + 1), [0.0] * (n + 1)
    match = [0] * (n + 1)  # match[j] = row (1-based) assigned to column j
    way = [0] * (n + 1)
    for i in range(1, n + 1):
        match[0] = i
        j0 = 0
        minv = [inf] * (n + 1)
        used = [False] * (n + 1)
        while True:
            used[j0] = True
            i0, delta, j1 = match[j0], inf, 0
            row = cost[i0 - 1]
            for j in range(1, n + 1):
                if not used[j]:
                    cur = row[j - 1] - u[i0] - v[j]
                    if cur < minv[j]:
                        minv[j], way[j] = cur, j0
                    if minv[j] < delta:
                        delta, j1 = minv[j], j
            for j in range(n + 1):
                if used[j]:
                    u[match[j]] += delta
                    v[j] -= delta
                else:
                    minv[j] -= delta
            j0 = j1
            if match[j0] == 0:
                break
        while j0:
            j1 = way[j0]
            match[j0] = match[j1]
            j0 = j1
    col = [0] * n
    for j in range(1, n + 1):
        col[match[j] - 1] = j - 1
    return col


def hungarian_accuracy(
    pred: Tensor | np.ndarray, target: Tensor | np.ndarray, *, return_mapping: bool = False
) -> float | tuple[float, dict[int, int]]:
    """Best one-to-one cluster → class accuracy (zero-padded to square), exact.

    Arguments:
        pred, target: ``(N,)`` integer labels.
        return_mapping: also return ``{cluster label: class label}`` for the matched clusters
            (clusters matched to a padding column are left out).
    """
    p, t = _labels(pred, "pred"), _labels(target, "target")
    n = contingency(p, t)
    k = max(n.shape)
    square = np.zeros((k, k), dtype=np.int64)
    square[: n.shape[0], : n.shape[1]] = n
    col = linear_assignment(square)
    acc = float(sum(square[i, col[i]] for i in range(k)) / n.sum())
    if not return_mapping:
        return acc
    pl, tl = np.unique(p), np.unique(t)
    mapping = {int(pl[i]): int(tl[col[i]]) for i in range(len(pl)) if col[i] < len(tl)}
    return acc, mapping


def _entropy(counts: np.ndarray, total: float) -> float:
    q = counts[counts > 0] / total
    return float(-(q * np.log(q)).sum())


def normalized_mutual_info(
    pred: Tensor | np.ndarray, target: Tensor | np.ndarray, *, average: str = "arithmetic"
) -> float:
    """NMI = I(C; Y)/avg(H_C, H_Y) (natural logs; the ratio does not depend on the base).

    Arguments:
        average: "arithmetic" (default, sklearn ≥ 0.22), "geometric", "max" or "min".
    """
    if average not in _AVERAGES:
        raise ValueError(f"average must be one of {_AVERAGES}, got {average!r}")
    n = contingency(pred, target).astype(np.float64)
    total = n.sum()
    a, b = n.sum(1), n.sum(0)
    hc, hy = _entropy(a, total), _entropy(b, total)
    if hc == 0.0 and hy == 0.0:
        return 1.0
    nz = n > 0
    outer = np.outer(a, b)
    mi = float((n[nz] / total * np.log(total * n[nz] / outer[nz])).sum())
    denom = {
        "arithmetic": 0.5 * (hc + hy),
        "geometric": math.sqrt(hc * hy),
        "max": max(hc, hy),
        "min": min(hc, hy),
    }[average]
    return 0.0 if denom == 0.0 else max(0.0, mi) / denom


def adjusted_rand_index(pred: Tensor | np.ndarray, target: Tensor | np.ndarray) -> float:
    """Adjusted Rand index (Hubert & Arabie): 1 for identical partitions, ≈ 0 for chance."""
    n = contingency(pred, target).astype(np.float64)
    total = n.sum()

    def comb2(v: np.ndarray | float) -> np.ndarray | float:
        return v * (v - 1.0) / 2.0

    sum_ij = float(comb2(n).sum())
    sum_a, sum_b = float(comb2(n.sum(1)).sum()), float(comb2(n.sum(0)).sum())
    expected = sum_a * sum_b / float(comb2(total)) if total > 1 else 0.0
    max_index = 0.5 * (sum_a + sum_b)
    if max_index == expected:  # both partitions trivial (all one cluster, or all singletons)
        return 1.0
    return (sum_ij - expected) / (max_index - expected)
