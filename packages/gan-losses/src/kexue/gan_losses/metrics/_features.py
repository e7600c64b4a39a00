"""Shared feature-tensor checks and the streaming feature statistics behind every metric.

``FeatureStats`` accumulates, batch by batch, the count, mean and centred second moment of
``(N, d)`` features in float64 (Chan et al.'s pairwise merge, stable for large offsets), and
optionally keeps the features themselves (needed by KID and PRDC). ``all_reduce_`` merges the
statistics of every DDP rank. ``feature_stats`` runs a feature function over an iterable of batches.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

__all__ = ["FeatureStats", "feature_stats"]


def check_features(x: object, name: str, *, min_rows: int = 1) -> Tensor:
    """Validate ``(N, d)`` floating, finite features; return them (device and dtype unchanged)."""
    if not isinstance(x, Tensor):
        raise ValueError(
            f"{name} must be a torch.Tensor of features (N, d), got {type(x).__name__}"
        )
    if x.dim() != 2:
        raise ValueError(f"{name} must be features of shape (N, d), got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if x.shape[0] < min_rows or x.shape[1] == 0:
        raise ValueError(
            f"{name} needs at least {min_rows} rows and one column, got shape {tuple(x.shape)}"
        )
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains non-finite values (inf or NaN); shape {tuple(x.shape)}")
    return x


def check_same_dim(a: Tensor, b: Tensor, name_a: str, name_b: str) -> None:
    if a.shape[1] != b.shape[1]:
        raise ValueError(
            f"{name_a} and {name_b} must have the same feature dimension; got {name_a} shape "
            f"{tuple(a.shape)} and {name_b} shape {tuple(b.shape)}"
        )


class FeatureStats:
    """Streaming float64 statistics of ``(N, d)`` features: count, mean, centred second moment.

    Arguments:
        capture_all: also keep every feature row (on ``store_device``), as KID and PRDC need them.
            Default True.
        max_items: keep at most this many rows (the first ones); ``None`` = all. The moments always
            cover every row seen.
        store_device: where captured rows live (default ``"cpu"``, in the input dtype).

    ``update(x)`` adds a batch; ``mean``, ``cov`` (``N − 1`` normaliser) and ``features`` read the
    state; ``merge_`` folds another ``FeatureStats`` in; ``all_reduce_`` does that over every DDP rank.
    The update is Chan–Golub–LeVeque's pairwise merge, so a feature offset of 1e6 loses nothing to
    ``E[xxᵀ] − μμᵀ`` cancellation.
    """

    def __init__(
        self,
        *,
        capture_all: bool = True,
        max_items: int | None = None,
        store_device: torch.device | str = "cpu",
    ) -> None:
        if max_items is not None and max_items < 1:
            raise ValueError(f"max_items must be >= 1 or None, got {max_items}")
        self.capture_all = capture_all
        self.max_items = max_items
        self.store_device = torch.device(store_device)
        self.n = 0
        self._mean: Tensor | None = None
        self._m2: Tensor | None = None
        self._rows: list[Tensor] = []
        self._kept = 0

    @property
    def dim(self) -> int | None:
        return None if self._mean is None else int(self._mean.shape[0])

    def update(self, x: Tensor) -> FeatureStats:
        """Add a batch of features ``(B, d)`` (any float dtype; the moments are float64)."""
        x = check_features(x, "x")
        if self._mean is not None and x.shape[1] != self._mean.shape[0]:
            raise ValueError(
                f"x has feature dimension {x.shape[1]} but earlier batches had {self._mean.shape[0]}"
            )
        xd = x.detach().to(torch.float64)
        mean_b = xd.mean(dim=0)
        centred = xd - mean_b
        self._fold(int(x.shape[0]), mean_b, centred.T @ centred)
        if self.capture_all:
            take = (
                x.shape[0]
                if self.max_items is None
                else min(x.shape[0], self.max_items - self._kept)
            )
            if take > 0:
                self._rows.append(x.detach()[:take].to(self.store_device))
                self._kept += take
        return self

    def _fold(self, n_b: int, mean_b: Tensor, m2_b: Tensor) -> None:
        if self._mean is None or self._m2 is None:
            self.n, self._mean, self._m2 = n_b, mean_b.clone(), m2_b.clone()
            return
        n_a, n = self.n, self.n + n_b
        delta = (mean_b - self._mean).to(self._mean.device)
        self._mean = self._mean + delta * (n_b / n)
        self._m2 = self._m2 + m2_b.to(self._m2.device) + torch.outer(delta, delta) * (n_a * n_b / n)
        self.n = n

    def merge_(self, other: FeatureStats) -> FeatureStats:
        """Fold ``other``'s rows and moments into this one (in place)."""
        if other._mean is None or other._m2 is None:
            return self
        if self._mean is not None and other._mean.shape != self._mean.shape:
            raise ValueError(
                f"cannot merge feature statistics of dimension {other._mean.shape[0]} into "
                f"{self._mean.shape[0]}"
            )
        self._fold(other.n, other._mean, other._m2)
        if self.capture_all:
            for rows in other._rows:
                room = rows.shape[0] if self.max_items is None else self.max_items - self._kept
                if room > 0:
                    self._rows.append(rows[:room].to(self.store_device))
                    self._kept += min(room, rows.shape[0])
        return self

    def all_reduce_(self, group: Any = None) -> FeatureStats:
        """Merge the statistics (and captured rows) of every rank; a no-op without a process group.

        Every rank ends with the same state, the ranks folded in rank order.
        """
        if not (dist.is_available() and dist.is_initialized()):
            return self
        if self._mean is None:
            raise ValueError("all_reduce_ needs at least one update on every rank")
        gathered: list[Any] = [None] * dist.get_world_size(group)
        payload = (
            self.n,
            self._mean.cpu(),
            self._m2.cpu() if self._m2 is not None else None,
            [r.cpu() for r in self._rows],
        )
        dist.all_gather_object(gathered, payload, group=group)
        merged = FeatureStats(
            capture_all=self.capture_all, max_items=self.max_items, store_device=self.store_device
        )
        device = self._mean.device
        for n_r, mean_r, m2_r, rows_r in gathered:
            part = FeatureStats(capture_all=self.capture_all, store_device=self.store_device)
            part.n, part._mean, part._m2 = n_r, mean_r.to(device), m2_r.to(device)
            part._rows = list(rows_r)
            merged.merge_(part)
        self.__dict__.update(merged.__dict__)
        return self

    @property
    def mean(self) -> Tensor:
        """Mean of every row seen, ``(d,)`` float64."""
        if self._mean is None:
            raise ValueError("FeatureStats is empty: call update() first")
        return self._mean

    @property
    def cov(self) -> Tensor:
        """Sample covariance ``(d, d)`` float64 with the ``N − 1`` normaliser (needs N ≥ 2)."""
        if self._m2 is None or self.n < 2:
            raise ValueError(f"a covariance needs at least 2 rows, have {self.n}")
        return self._m2 / (self.n - 1)

    @property
    def features(self) -> Tensor:
        """The captured rows ``(min(N, max_items), d)``; raises when ``capture_all=False``."""
        if not self.capture_all:
            raise ValueError("these FeatureStats were built with capture_all=False: no rows kept")
        if not self._rows:
            raise ValueError("FeatureStats is empty: call update() first")
        return torch.cat(self._rows) if len(self._rows) > 1 else self._rows[0]


def feature_stats(
    feature_fn: Callable[[Tensor], Tensor] | None,
    batches: Iterable[Any],
    *,
    capture_all: bool = True,
    max_items: int | None = None,
    device: torch.device | str | None = None,
    store_device: torch.device | str = "cpu",
) -> FeatureStats:
    """Run ``feature_fn`` over ``batches`` under ``torch.no_grad`` and accumulate ``FeatureStats``.

    Arguments:
        feature_fn: maps a batch ``(B, ...)`` to features ``(B, d)`` (any extractor: a classifier's
            penultimate layer, Inception, CLIP, ...). ``None`` means the batches are features.
        batches: an iterable of tensors, or of tuples/lists whose first item is the tensor (a
            ``DataLoader`` of ``(x, y)`` works as is).
        capture_all, max_items, store_device: as in :class:`FeatureStats`. Iteration stops once
            ``max_items`` rows are seen.
        device: move each batch there before ``feature_fn`` (default: leave it).

    Example::

        real = feature_stats(classifier.features, real_loader)
        fake = feature_stats(classifier.features, (G(torch.randn(256, 64)) for _ in range(40)))
        fd = frechet_distance(real, fake)
    """
    stats = FeatureStats(capture_all=capture_all, max_items=max_items, store_device=store_device)
    with torch.no_grad():
        for batch in batches:
            x = batch[0] if isinstance(batch, (tuple, list)) else batch
            if device is not None:
                x = x.to(device)
            feats = feature_fn(x) if feature_fn is not None else x
            if max_items is not None:
                feats = feats[: max_items - stats.n]
            stats.update(feats.reshape(feats.shape[0], -1) if feats.dim() != 2 else feats)
            if max_items is not None and stats.n >= max_items:
                break
    if stats.n == 0:
        raise ValueError("batches yielded no rows")
    return stats


def as_features(x: Tensor | FeatureStats, name: str, *, min_rows: int = 1) -> Tensor:
    """Features from a tensor or a capturing ``FeatureStats`` (checked)."""
    if isinstance(x, FeatureStats):
        return check_features(x.features, name, min_rows=min_rows)
    return check_features(x, name, min_rows=min_rows)
