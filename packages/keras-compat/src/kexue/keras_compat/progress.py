"""Keras-Progbar running means and a rank-0 progress bar over tqdm (post 6575; spec §2.12).

Keras's ``Progbar`` shows, for every metric, the mean of the values logged so far in the epoch,
weighted by the number of steps each value covers; "stateful" metrics (already cumulative, e.g. an
accuracy kept by a metric object) are shown as they are. :class:`RunningMean` reproduces that
bookkeeping without host synchronisation per step (tensor values are accumulated on their
device and converted only in :meth:`RunningMean.result`). :func:`progbar` is a thin shim over
``tqdm`` (an optional dependency, imported lazily; a plain text bar otherwise) that prints on
rank 0 only.

References:
    https://kexue.fm/archives/6575; Keras ``utils.Progbar``; tqdm ``set_postfix``.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, TextIO

import torch
from torch import Tensor

__all__ = ["RunningMean", "is_rank_zero", "progbar"]

Number = float | int | Tensor


def is_rank_zero() -> bool:
    """True on the process that should log: rank 0 of the initialised default process group,
    else ``int(os.environ["RANK"]) == 0`` (torchrun sets it before the group exists), else True."""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    try:
        return int(os.environ.get("RANK", "0")) == 0
    except ValueError:
        return True


class RunningMean:
    """Batch-count-weighted running means with Keras ``Progbar`` semantics.

    ``update(values, n)`` adds ``value·n`` to a per-metric sum and ``n`` to its count; the shown
    value is sum / count. Metrics in ``stateful_metrics`` are not averaged: the last value is
    shown. Tensor values are detached and summed as tensors (no ``.item()`` per step); floats
    stay floats.

    Arguments:
        stateful_metrics: names shown as last value (Keras ``Progbar(stateful_metrics=...)``).

    Example:
        >>> meter = RunningMean(stateful_metrics=["lr"])
        >>> meter.update({"loss": 1.0, "lr": 0.1})
        >>> meter.update({"loss": 4.0, "lr": 0.05}, n=2)
        >>> meter.result()
        {'loss': 3.0, 'lr': 0.05}
    """

    def __init__(self, stateful_metrics: Iterable[str] = ()) -> None:
        if isinstance(stateful_metrics, str):
            stateful_metrics = [stateful_metrics]
        self.stateful_metrics = set(stateful_metrics)
        self._sums: dict[str, Number] = {}
        self._counts: dict[str, int] = {}

    def update(self, values: Mapping[str, Number] | None = None, n: int = 1, **kw: Number) -> None:
        """Log ``values`` (a mapping and/or keywords) covering ``n`` ≥ 1 steps."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be an int >= 1, got {n!r}")
        items = {**(dict(values) if values is not None else {}), **kw}
        for name, value in items.items():
            if isinstance(value, Tensor):
                if value.numel() != 1:
                    raise ValueError(
                        f"values[{name!r}] must be a scalar, got shape {tuple(value.shape)}"
                    )
                value = value.detach().reshape(())
            elif not isinstance(value, (int, float)):
                raise ValueError(f"values[{name!r}] must be a number or a scalar tensor")
            if name in self.stateful_metrics:
                self._sums[name], self._counts[name] = value, 1
            elif name in self._sums:
                self._sums[name] = self._sums[name] + value * n
                self._counts[name] += n
            else:
                self._sums[name], self._counts[name] = value * n, n

    def result(self) -> dict[str, float]:
        """name → running mean (last value for stateful metrics), as Python floats."""
        return {k: float(s) / self._counts[k] for k, s in self._sums.items()}

    def reset(self) -> None:
        """Forget everything (Keras starts a new Progbar each epoch)."""
        self._sums.clear()
        self._counts.clear()

    def __getitem__(self, name: str) -> float:
        return float(self._sums[name]) / self._counts[name]

    def __contains__(self, name: object) -> bool:
        return name in self._sums

    def state_dict(self) -> dict[str, Any]:
        """Sums (as floats), counts and the stateful names."""
        return {
            "sums": {k: float(v) for k, v in self._sums.items()},
            "counts": dict(self._counts),
            "stateful_metrics": sorted(self.stateful_metrics),
        }

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` output."""
        self._sums = dict(state_dict["sums"])
        self._counts = {k: int(v) for k, v in state_dict["counts"].items()}
        self.stateful_metrics = set(state_dict.get("stateful_metrics", self.stateful_metrics))


def _format(metrics: Mapping[str, float]) -> dict[str, str]:
    return {k: f"{v:.4g}" if math.isfinite(v) else str(v) for k, v in metrics.items()}


class _TextBar:
    """Plain text fallback with the part of tqdm's interface that :class:`Progbar` uses."""

    def __init__(
        self,
        iterable: Iterable[Any],
        total: int | None,
        desc: str | None,
        file: TextIO | None,
        mininterval: float,
    ) -> None:
        self.iterable, self.total, self.desc = iterable, total, desc
        self.file = file if file is not None else sys.stderr
        self.mininterval, self.n, self.postfix = mininterval, 0, ""
        self._last = -math.inf

    def __iter__(self) -> Iterator[Any]:
        for item in self.iterable:
            yield item
            self.n += 1
            if time.monotonic() - self._last >= self.mininterval:
                self.refresh()

    def set_postfix(self, ordered_dict: Mapping[str, str], refresh: bool = True) -> None:
        self.postfix = " - ".join(f"{k}: {v}" for k, v in ordered_dict.items())
        if refresh:
            self.refresh()

    def refresh(self) -> None:
        self._last = time.monotonic()
        count = f"{self.n}/{self.total}" if self.total is not None else f"{self.n}"
        head = f"{self.desc}: " if self.desc else ""
        tail = f" - {self.postfix}" if self.postfix else ""
        self.file.write(f"\r{head}{count}{tail}")
        self.file.flush()

    def write(self, msg: str) -> None:
        self.file.write(msg + "\n")

    def close(self) -> None:
        self.refresh()
        self.file.write("\n")
        self.file.flush()


class Progbar:
    """Iterable returned by :func:`progbar`; yields the items of the wrapped iterable."""

    def __init__(
        self,
        iterable: Iterable[Any],
        bar: Any,
        metrics: RunningMean | Callable[[], Mapping[str, float]] | Mapping[str, float] | None,
        mininterval: float,
    ) -> None:
        self.iterable, self.bar, self.metrics, self.mininterval = (
            iterable,
            bar,
            metrics,
            mininterval,
        )

    def _metrics(self) -> Mapping[str, float]:
        if self.metrics is None:
            return {}
        if isinstance(self.metrics, RunningMean):
            return self.metrics.result()
        if callable(self.metrics):
            return self.metrics()
        return {k: float(v) for k, v in self.metrics.items()}

    def __iter__(self) -> Iterator[Any]:
        if self.bar is None:  # rank != 0 or disabled: no output at all
            yield from self.iterable
            return
        last = -math.inf
        try:
            for item in self.bar:
                yield item
                now = time.monotonic()
                if self.metrics is not None and now - last >= self.mininterval:
                    self.bar.set_postfix(_format(self._metrics()), refresh=False)
                    last = now
            if self.metrics is not None:
                self.bar.set_postfix(_format(self._metrics()), refresh=False)
        finally:
            self.bar.close()

    def write(self, msg: str) -> None:
        """Print ``msg`` above the bar, on rank 0 only."""
        if self.bar is not None:
            self.bar.write(msg)


def progbar(
    iterable: Iterable[Any],
    total: int | None = None,
    metrics: RunningMean | Callable[[], Mapping[str, float]] | Mapping[str, float] | None = None,
    *,
    desc: str | None = None,
    disable: bool = False,
    file: TextIO | None = None,
    mininterval: float = 0.1,
    **tqdm_kwargs: Any,
) -> Progbar:
    """Progress bar over ``iterable`` showing ``metrics`` Keras-style, on rank 0 only.

    The postfix is refreshed from ``metrics`` after each step at most every ``mininterval``
    seconds (so a :class:`RunningMean` holding tensors synchronises at most that often) and once
    at the end. On any rank other than 0 (:func:`is_rank_zero`) or with ``disable=True`` nothing
    is printed and the items are passed through. Uses ``tqdm.tqdm`` when installed (extra
    ``[progress]``), a plain ``\\r`` text bar otherwise.

    Arguments:
        iterable: what to iterate (a DataLoader, a range, ...).
        total: number of items; default ``len(iterable)`` when defined.
        metrics: a :class:`RunningMean`, a callable returning name → float, or a mapping.
        desc: label before the bar.
        disable: print nothing.
        file: stream; default ``sys.stderr``.
        mininterval: seconds between postfix refreshes; default 0.1 (tqdm's).
        **tqdm_kwargs: passed to ``tqdm.tqdm`` (ignored by the text fallback).

    Example:
        >>> meter = RunningMean()
        >>> for x in progbar(range(3), metrics=meter, disable=True):
        ...     meter.update(loss=float(x))
    """
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    if disable or not is_rank_zero():
        return Progbar(iterable, None, metrics, mininterval)
    try:
        from tqdm import tqdm
    except ImportError:
        bar: Any = _TextBar(iterable, total, desc, file, mininterval)
    else:
        bar = tqdm(
            iterable, total=total, desc=desc, file=file, mininterval=mininterval, **tqdm_kwargs
        )
    return Progbar(iterable, bar, metrics, mininterval)
