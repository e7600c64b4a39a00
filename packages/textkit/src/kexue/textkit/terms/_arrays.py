"""Array kernels behind :mod:`kexue.textkit.terms.ngrams` (private).

Characters become integer ids (0 = fragment boundary), n-grams become int64 keys packed in base
``B = len(vocab) + 1``: the gram with ids (i_1, ..., i_n) has key Σ_j i_j·B^(n−j). The vocabulary is
sorted by code point and ids are 1-based positions in it, so sorted keys are sorted strings.

One pass counts every order: at each position the *padded* key of the next ``order`` ids, digits
past the first boundary set to 0, is computed with ``order`` vectorised multiply-adds; one sort of
these keys (``np.unique``) gives the ``order``-gram counts and, by integer division, the counts of
every shorter prefix, already sorted (a prefix is a real gram iff its last digit is non-zero).
"""

from __future__ import annotations

import re

import numpy as np

__all__: list[str] = []

DEFAULT_FRAGMENT_PATTERN = "[^\u4e00-\u9fa5a-zA-Z0-9 ]+"

_HAN_LO, _HAN_HI = 0x4E00, 0x9FA5
_DEFAULT_VOCAB = np.array(
    sorted(
        [
            ord(" "),
            *range(ord("0"), ord("9") + 1),
            *range(ord("A"), ord("Z") + 1),
            *range(ord("a"), ord("z") + 1),
            *range(_HAN_LO, _HAN_HI + 1),
        ]
    ),
    dtype=np.uint32,
)
_DEFAULT_LUT: np.ndarray | None = None
_INT64_MAX = np.iinfo(np.int64).max


def unique(x: np.ndarray) -> np.ndarray:
    """Sorted unique values of a 1-D array (``np.unique`` without its ``numpy.ma`` import)."""
    s = np.sort(np.asarray(x).ravel())
    if len(s) < 2:
        return s
    keep = np.empty(len(s), dtype=bool)
    keep[0] = True
    np.not_equal(s[1:], s[:-1], out=keep[1:])
    return s[keep]


def unique_counts_inplace(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted unique values and their int64 counts; sorts ``x`` in place (no copy)."""
    x.sort()
    if len(x) == 0:
        return x, np.zeros(0, dtype=np.int64)
    first = np.empty(len(x), dtype=bool)
    first[0] = True
    np.not_equal(x[1:], x[:-1], out=first[1:])
    idx = np.flatnonzero(first)
    counts = np.diff(idx, append=len(x))
    return x[idx], counts


def default_vocab() -> np.ndarray:
    """The fixed alphabet of the default fragment pattern (sorted code points)."""
    return _DEFAULT_VOCAB


def is_default_vocab(vocab: np.ndarray) -> bool:
    """Whether ``vocab`` is the default alphabet (same object, or equal after pickling)."""
    return vocab is _DEFAULT_VOCAB or (
        len(vocab) == len(_DEFAULT_VOCAB) and bool(np.array_equal(vocab, _DEFAULT_VOCAB))
    )


def _default_lut() -> np.ndarray:
    global _DEFAULT_LUT
    if _DEFAULT_LUT is None:
        lut = np.zeros(0x10000, dtype=np.int64)
        lut[_DEFAULT_VOCAB] = np.arange(1, len(_DEFAULT_VOCAB) + 1)
        _DEFAULT_LUT = lut
    return _DEFAULT_LUT


def codepoints(text: str) -> np.ndarray:
    """Code points of ``text`` as uint32."""
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


def check_base(base: int, order: int) -> None:
    """Raise if ``order`` digits in ``base`` overflow int64."""
    if base**order > _INT64_MAX:
        raise ValueError(
            f"order={order} with a vocabulary of {base - 1} characters overflows int64 keys "
            f"({base}^{order} > 2^63); use a smaller order or a narrower fragment pattern"
        )


def text_to_ids(text: str, pattern: str, vocab: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Ids of ``text`` (0 at every character outside the fragments) and the vocabulary used.

    With the default pattern the fixed default alphabet is used; otherwise fragments are split with
    the regex, joined with NUL and the vocabulary is ``vocab`` (if given; characters outside it
    raise) or the sorted set of characters present.
    """
    if pattern == DEFAULT_FRAGMENT_PATTERN and (vocab is None or is_default_vocab(vocab)):
        cps = codepoints(text)
        lut = _default_lut()
        bmp = cps < 0x10000
        if bmp.all():  # the common case: one gather
            return lut[cps], _DEFAULT_VOCAB
        ids = np.zeros(len(cps), dtype=np.int64)
        ids[bmp] = lut[cps[bmp]]
        return ids, _DEFAULT_VOCAB
    joined = "\x00".join(re.split(pattern, text))
    cps = codepoints(joined)
    nz = cps != 0
    if vocab is None:
        vocab = unique(cps[nz]).astype(np.uint32)
    ids = np.zeros(len(cps), dtype=np.int64)
    pos = np.searchsorted(vocab, cps[nz])
    pos_c = np.minimum(pos, max(len(vocab) - 1, 0))
    if nz.any() and (len(vocab) == 0 or np.any(vocab[pos_c] != cps[nz])):
        raise ValueError("text contains characters outside the given vocabulary")
    ids[nz] = pos + 1
    return ids, vocab


def count_ids(ids: np.ndarray, order: int, base: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Sorted unique keys and counts of every n-gram (n = 1..order) of an id array.

    Grams never cross a 0 id. Returns ``[(keys_1, counts_1), ..., (keys_order, counts_order)]``.
    """
    check_base(base, order)
    n_pos = len(ids)
    padded = np.zeros(n_pos + order, dtype=np.int64)
    padded[:n_pos] = ids
    nz = ids != 0
    if not nz.any():
        empty = np.zeros(0, dtype=np.int64)
        return [(empty, empty.copy()) for _ in range(order)]
    # keys at every position with contiguous slices (faster than gathers), then the gram starts
    key = padded[:n_pos].copy()
    alive = nz.copy()
    for j in range(1, order):
        d = padded[j : j + n_pos]
        alive &= d != 0
        key *= base
        key += d * alive
    key = key[nz]
    uk, uc = unique_counts_inplace(key)
    out: list[tuple[np.ndarray, np.ndarray]] = []
    for n in range(1, order + 1):
        pref = uk // (base ** (order - n)) if n < order else uk
        valid = (pref % base) != 0
        p, c = pref[valid], uc[valid]
        out.append(group_sorted(p, c))
    return out


def group_sorted(keys: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sum ``counts`` over runs of equal values in the sorted ``keys``."""
    if len(keys) == 0:
        return keys.astype(np.int64), counts.astype(np.int64)
    first = np.empty(len(keys), dtype=bool)
    first[0] = True
    np.not_equal(keys[1:], keys[:-1], out=first[1:])
    idx = np.flatnonzero(first)
    if len(idx) == len(keys):
        return keys, counts.astype(np.int64)
    return keys[idx], np.add.reduceat(counts.astype(np.int64), idx)


def merge_sorted(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Merge several sorted (keys, counts) tables by summing counts of equal keys."""
    parts = [p for p in parts if len(p[0])]
    if not parts:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    if len(parts) == 1:
        return parts[0][0], parts[0][1]
    keys = np.concatenate([p[0] for p in parts])
    counts = np.concatenate([p[1] for p in parts])
    perm = np.argsort(keys, kind="stable")  # timsort: linear-ish on concatenated sorted runs
    return group_sorted(keys[perm], counts[perm])


def digits(keys: np.ndarray, n: int, base: int) -> np.ndarray:
    """(m, n) id matrix of n-gram keys."""
    out = np.empty((len(keys), n), dtype=np.int64)
    k = keys.copy()
    for j in range(n - 1, -1, -1):
        out[:, j] = k % base
        k //= base
    return out


def pack(ids: np.ndarray, base: int) -> np.ndarray:
    """Pack an (m, n) id matrix into keys."""
    key = np.zeros(ids.shape[0], dtype=np.int64)
    for j in range(ids.shape[1]):
        key *= base
        key += ids[:, j]
    return key


def remap_keys(
    keys: np.ndarray, n: int, old_base: int, new_base: int, idmap: np.ndarray
) -> np.ndarray:
    """Re-express keys after a monotone change of vocabulary (old id → ``idmap[id]``)."""
    return pack(idmap[digits(keys, n, old_base)], new_base)


def decode_keys(keys: np.ndarray, n: int, base: int, vocab: np.ndarray) -> list[str]:
    """Strings of n-gram keys."""
    if len(keys) == 0:
        return []
    cps = vocab[digits(keys, n, base) - 1].astype(np.uint32)
    raw = np.ascontiguousarray(cps).tobytes().decode("utf-32-le", "surrogatepass")
    return [raw[i : i + n] for i in range(0, len(raw), n)]


def encode_grams(
    grams: list[str], n: int, base: int, vocab: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Keys of equal-length grams and a bool mask of those whose characters are all in ``vocab``."""
    if not grams:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=bool)
    cps = codepoints("".join(grams)).reshape(len(grams), n)
    pos = np.searchsorted(vocab, cps)
    posc = np.minimum(pos, len(vocab) - 1)
    ok = (vocab[posc] == cps).all(axis=1)
    return pack(np.where(ok[:, None], posc + 1, 1), base), ok
