"""The n-gram count table :class:`NgramCounts` and its on-disk format (private; the public home is
:mod:`kexue.textkit.terms.ngrams`, which counts into it).

**On-disk format** (:meth:`NgramCounts.save`, a numpy ``.npz`` archive, no pickle):

- ``format``: the string ``"kexue-ngrams"``, ``version``: int (1), ``order``: int,
- ``vocab``: uint32 code points, sorted; a character's id is its position + 1 (0 = boundary),
- ``keys_<n>`` (int64, sorted ascending) and ``counts_<n>`` (int64) for n = 1..order: the gram with
  ids (i_1..i_n) has key Σ_j i_j·B^(n−j), B = len(vocab) + 1, so key order is string order.

:meth:`NgramCounts.load` checks all of it and raises ``ValueError`` naming the file for anything
else (a truncated or foreign archive, missing or extra arrays, wrong dtypes or lengths).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from . import _arrays as _A
from ._atomic import atomic_file
from ._checks import check_at_least

__all__ = ["NgramCounts"]

_FORMAT = "kexue-ngrams"
_VERSION = 1
_HEADER = ("format", "version", "order", "vocab")


class NgramCounts:
    """Counts of character n-grams, n = 1..order, as sorted int64 keys plus int64 counts per n.

    Build with :func:`count_ngrams` / :func:`count_ngrams_files`; combine with :meth:`merge` (exact:
    merging the tables of two corpora equals counting their concatenation, as fragments never span
    texts). The on-disk format is described in the module docstring.

    Arguments:
        order: largest n.
        vocab: sorted uint32 code points (id = position + 1).
        keys: per n (index n−1), sorted unique int64 keys.
        counts: per n, int64 counts aligned with ``keys``.
    """

    def __init__(
        self,
        order: int,
        vocab: np.ndarray,
        keys: Sequence[np.ndarray],
        counts: Sequence[np.ndarray],
    ) -> None:
        check_at_least(1, order=order)
        if len(keys) != order or len(counts) != order:
            raise ValueError(
                f"keys and counts need {order} arrays each, got {len(keys)}, {len(counts)}"
            )
        for n, (k, c) in enumerate(zip(keys, counts), 1):
            if k.shape != c.shape:
                raise ValueError(f"keys_{n} and counts_{n} differ in shape: {k.shape} vs {c.shape}")
        self.order = int(order)
        self.vocab_codes = np.asarray(vocab, dtype=np.uint32)
        self.base = len(self.vocab_codes) + 1
        _A.check_base(self.base, self.order)
        self._keys = [np.asarray(k, dtype=np.int64) for k in keys]
        self._counts = [np.asarray(c, dtype=np.int64) for c in counts]

    # ---------------------------------------------------------------- access
    def _check_n(self, n: int) -> None:
        if not 1 <= n <= self.order:
            raise ValueError(f"n must be in 1..{self.order}, got {n}")

    def arrays(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The sorted keys and the counts of the n-grams (views; do not modify)."""
        self._check_n(n)
        return self._keys[n - 1], self._counts[n - 1]

    def grams(self, n: int) -> list[str]:
        """The n-gram strings, in key (= string) order, aligned with ``arrays(n)[1]``."""
        self._check_n(n)
        return _A.decode_keys(self._keys[n - 1], n, self.base, self.vocab_codes)

    def encode(self, grams: Sequence[str], n: int) -> tuple[np.ndarray, np.ndarray]:
        """Keys of length-``n`` strings and a mask of those expressible in this vocabulary."""
        self._check_n(n)
        for g in grams:
            if len(g) != n:
                raise ValueError(f"grams must all have length n={n}, got {g!r}")
        return _A.encode_grams(list(grams), n, self.base, self.vocab_codes)

    def lookup(self, grams: Sequence[str], n: int) -> np.ndarray:
        """Counts (int64, 0 when absent) of length-``n`` strings, vectorised."""
        keys, ok = self.encode(grams, n)
        k, c = self._keys[n - 1], self._counts[n - 1]
        if len(k) == 0:
            return np.zeros(len(keys), dtype=np.int64)
        pos = np.minimum(np.searchsorted(k, keys), len(k) - 1)
        return np.where(ok & (k[pos] == keys), c[pos], 0)

    def count(self, gram: str) -> int:
        """Count of one gram (0 when absent or longer than ``order``)."""
        if not 1 <= len(gram) <= self.order:
            return 0
        return int(self.lookup([gram], len(gram))[0])

    def items(self, n: int) -> Iterator[tuple[str, int]]:
        """(gram, count) pairs of the n-grams, in string order."""
        return zip(self.grams(n), (int(c) for c in self._counts[n - 1]))

    def to_dict(self, n: int | None = None) -> dict[str, int]:
        """``{gram: count}`` for one n, or for every n when ``n`` is None."""
        ns = range(1, self.order + 1) if n is None else [n]
        out: dict[str, int] = {}
        for m in ns:
            out.update(self.items(m))
        return out

    def total(self, n: int) -> int:
        """Sum of the n-gram counts (after any pruning)."""
        self._check_n(n)
        return int(self._counts[n - 1].sum())

    def num_grams(self, n: int | None = None) -> int:
        """Number of distinct grams of length n (all n when None)."""
        ns = range(1, self.order + 1) if n is None else [n]
        return int(sum(len(self._keys[m - 1]) for m in ns))

    def __len__(self) -> int:
        return self.num_grams()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, NgramCounts):
            return NotImplemented
        return self.order == other.order and all(
            a == b
            for a, b in ((self.to_dict(n), other.to_dict(n)) for n in range(1, self.order + 1))
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        sizes = ", ".join(f"{n}:{len(k)}" for n, k in enumerate(self._keys, 1))
        return f"NgramCounts(order={self.order}, vocab={len(self.vocab_codes)}, grams={{{sizes}}})"

    # -------------------------------------------------------------- transforms
    def with_vocab(self, vocab: np.ndarray) -> NgramCounts:
        """The same counts expressed in a superset vocabulary ``vocab`` (sorted code points)."""
        vocab = np.asarray(vocab, dtype=np.uint32)
        if len(vocab) == len(self.vocab_codes) and np.array_equal(vocab, self.vocab_codes):
            return self
        pos = np.searchsorted(vocab, self.vocab_codes)
        if len(self.vocab_codes) and (
            np.any(pos >= len(vocab))
            or np.any(vocab[np.minimum(pos, len(vocab) - 1)] != self.vocab_codes)
        ):
            raise ValueError("vocab must contain every character of this table")
        idmap = np.concatenate([[0], pos + 1]).astype(np.int64)
        nb = len(vocab) + 1
        keys = [_A.remap_keys(k, n, self.base, nb, idmap) for n, k in enumerate(self._keys, 1)]
        return NgramCounts(self.order, vocab, keys, self._counts)

    @staticmethod
    def merge_all(tables: Sequence[NgramCounts]) -> NgramCounts:
        """Sum several tables of the same ``order`` (vocabularies are united)."""
        if not tables:
            raise ValueError("tables must not be empty")
        order = tables[0].order
        if any(t.order != order for t in tables):
            raise ValueError(f"tables must share one order, got {[t.order for t in tables]}")
        v0 = tables[0].vocab_codes
        if all(t.vocab_codes is v0 or np.array_equal(t.vocab_codes, v0) for t in tables):
            vocab = v0
        else:
            vocab = _A.unique(np.concatenate([t.vocab_codes for t in tables])).astype(np.uint32)
        ts = [t.with_vocab(vocab) for t in tables]
        keys, counts = [], []
        for n in range(order):
            k, c = _A.merge_sorted([(t._keys[n], t._counts[n]) for t in ts])
            keys.append(k)
            counts.append(c)
        return NgramCounts(order, vocab, keys, counts)

    def merge(self, other: NgramCounts) -> NgramCounts:
        """Sum of two tables (see :meth:`merge_all`)."""
        return NgramCounts.merge_all([self, other])

    def prune(self, min_count: int) -> NgramCounts:
        """A table without the grams counted fewer than ``min_count`` times (per n)."""
        if min_count <= 1:
            return self
        keys, counts = [], []
        for k, c in zip(self._keys, self._counts):
            keep = c >= min_count
            keys.append(k[keep])
            counts.append(c[keep])
        return NgramCounts(self.order, self.vocab_codes, keys, counts)

    # -------------------------------------------------------------------- I/O
    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the table as ``.npz`` (format in the module docstring), atomically.

        The archive is written to a temporary file in the target's folder and moved over ``path``
        with ``os.replace``; on any failure (full disk, ``EFBIG``, an interrupt) the temporary
        file is removed and ``path`` is left as it was.
        """
        path = Path(path)
        arrays: dict[str, np.ndarray] = {
            "format": np.array(_FORMAT),
            "version": np.array(_VERSION),
            "order": np.array(self.order),
            "vocab": self.vocab_codes,
        }
        for n in range(1, self.order + 1):
            arrays[f"keys_{n}"] = self._keys[n - 1]
            arrays[f"counts_{n}"] = self._counts[n - 1]
        with atomic_file(path, "wb") as f:
            np.savez(f, **arrays)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> NgramCounts:
        """Read a table written by :meth:`save`.

        Raises:
            ValueError: naming ``path``, when the file is not a complete, consistent table
                (truncated or foreign archive, missing or extra arrays, wrong dtype, shape,
                order or key range).
            OSError: when the file cannot be opened (missing, permission, ...).
        """
        with open(path, "rb") as f:  # OSError (missing, EACCES, EISDIR) passes through as is
            magic = f.read(4)
        import zipfile  # here, not at import: kexue-terms starts faster
        import zlib

        if magic != b"PK\x03\x04":
            raise ValueError(f"{path}: not a kexue n-gram count table (not a .npz archive)")
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {name: z[name] for name in z.files}
        except (zipfile.BadZipFile, zlib.error, EOFError, KeyError, ValueError, OSError) as e:
            raise ValueError(
                f"{path}: not a kexue n-gram count table (truncated or damaged archive: {e})"
            ) from None
        return cls._from_arrays(arrays, path)

    @classmethod
    def _from_arrays(cls, z: dict[str, np.ndarray], path: object) -> NgramCounts:
        def bad(why: str) -> ValueError:
            return ValueError(f"{path}: not a kexue n-gram count table ({why})")

        if any(k not in z for k in _HEADER):
            raise bad(f"missing {sorted(set(_HEADER) - set(z))}")
        fmt = z["format"]
        if fmt.shape != () or fmt.dtype.kind != "U" or str(fmt) != _FORMAT:
            raise bad("no 'kexue-ngrams' format tag")
        for name in ("version", "order"):
            if z[name].shape != () or z[name].dtype.kind not in "iu":
                raise bad(f"'{name}' is not an integer")
        if int(z["version"]) != _VERSION:
            raise bad(f"unsupported format version {int(z['version'])}")
        order = int(z["order"])
        if not 1 <= order <= 64:
            raise bad(f"order {order} out of range")
        expected = set(_HEADER) | {
            f"{p}_{n}" for p in ("keys", "counts") for n in range(1, order + 1)
        }
        if set(z) != expected:
            missing, extra = sorted(expected - set(z)), sorted(set(z) - expected)
            raise bad(f"arrays missing: {missing}, unexpected: {extra}")
        vocab = z["vocab"]
        if vocab.dtype != np.uint32 or vocab.ndim != 1:
            raise bad(f"vocab has dtype {vocab.dtype} and {vocab.ndim} dims, expected 1-D uint32")
        if len(vocab) > 1 and not np.all(vocab[1:] > vocab[:-1]):
            raise bad("vocab is not sorted and unique")
        base = len(vocab) + 1
        try:
            _A.check_base(base, order)
        except ValueError:
            raise bad(f"order {order} with {len(vocab)} characters overflows int64 keys") from None
        keys, counts = [], []
        for n in range(1, order + 1):
            k, c = z[f"keys_{n}"], z[f"counts_{n}"]
            if k.dtype != np.int64 or c.dtype != np.int64 or k.ndim != 1 or c.ndim != 1:
                raise bad(f"keys_{n}/counts_{n} must be 1-D int64, got {k.dtype}/{c.dtype}")
            if len(k) != len(c):
                raise bad(f"keys_{n} has {len(k)} entries but counts_{n} has {len(c)}")
            if len(k) and (k[0] < 0 or k[-1] >= base**n or np.any(k[1:] <= k[:-1])):
                raise bad(f"keys_{n} are not sorted, unique keys of {n}-grams")
            if len(c) and c.min() < 1:
                raise bad(f"counts_{n} holds counts < 1")
            keys.append(k)
            counts.append(c)
        return cls(order, vocab, keys, counts)
