"""Checked entries, trusted cores: input requirements evaluated on the device, read back once.

A public op (``CRF.forward``, ``SequenceTagger.loss``, ``crf_nll``, …) collects every check that
needs the tensors' values (mask layout, tag range, finiteness) and every value it needs on the
host (the longest length, the transition spread of ``algorithm="auto"``) in one
:class:`DeviceChecks`, reads them back with **one** device→host synchronisation, raises the first
failed requirement as a ``ValueError``, and calls a private core that trusts its inputs. Shape and
dtype checks need no synchronisation and run eagerly.

The argument checks and the per-sequence reductions that the CRF (functional and module) and the
taggers share live here too: :func:`check_positive_int`, :func:`check_reduction`, :func:`reduce`.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "REDUCTIONS",
    "DeviceChecks",
    "check_positive_int",
    "check_reduction",
    "reduce",
    "require_prefix_mask",
]

REDUCTIONS = ("none", "sum", "mean", "token_mean")


def check_positive_int(name: str, value: object, *, allow_none: bool = False) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``value`` is an int ≥ 1 (bools refused);
    ``allow_none``: None passes too."""
    if allow_none and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        kind = "None or a positive int" if allow_none else "a positive int"
        raise ValueError(f"{name} must be {kind}, got {value!r}")


def check_reduction(reduction: str) -> str:
    """Return ``reduction`` if it is one of :data:`REDUCTIONS`, else raise ``ValueError``."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    return reduction


def reduce(values: Tensor, mask: Tensor, reduction: str) -> Tensor:
    """Apply a checked ``reduction`` to (B,) per-sequence values: ``"none"`` (B,), ``"sum"``,
    ``"mean"`` over sequences, ``"token_mean"`` = sum / number of true ``mask`` (B, T) entries
    (at least 1, so an empty batch gives 0, not NaN)."""
    if reduction == "none":
        return values
    if reduction == "sum":
        return values.sum()
    if reduction == "mean":
        return values.mean()
    return values.sum() / mask.sum().clamp_min(1)


class DeviceChecks:
    """Requirements (bool scalars) and values (scalars), read back with one ``tolist()``."""

    def __init__(self) -> None:
        self._conds: list[tuple[Tensor, str]] = []
        self._values: list[tuple[str, Tensor]] = []
        self._vectors: list[tuple[str, Tensor]] = []

    def require(self, ok: Tensor, message: str) -> None:
        """Raise ``ValueError(message)`` at :meth:`read` unless the bool scalar ``ok`` holds."""
        self._conds.append((ok, message))

    def value(self, name: str, x: Tensor) -> None:
        """Read the scalar ``x`` back under ``name``."""
        self._values.append((name, x))

    def vector(self, name: str, x: Tensor) -> None:
        """Read the 1-D integer tensor ``x`` back under ``name`` (as a list of ints)."""
        self._vectors.append((name, x))

    def read(self) -> dict[str, float | list[int]]:
        """One synchronisation: check every requirement (first failure raises), return values."""
        parts = [c.reshape(1) for c, _ in self._conds] + [v.reshape(1) for _, v in self._values]
        parts += [v.reshape(-1) for _, v in self._vectors]
        if not parts:
            return {}
        dev = parts[0].device
        flat = torch.cat([p.to(device=dev, dtype=torch.float64) for p in parts]).tolist()
        for (_, message), ok in zip(self._conds, flat):
            if not ok:
                raise ValueError(message)
        out: dict[str, float | list[int]] = {}
        i = len(self._conds)
        for name, _ in self._values:
            out[name] = flat[i]
            i += 1
        for name, v in self._vectors:
            n = v.numel()
            out[name] = [int(x) for x in flat[i : i + n]]
            i += n
        return out


def require_prefix_mask(checks: DeviceChecks, mask: Tensor, *, time_major: bool = False) -> None:
    """Require a right-padded prefix mask with the first step on, given (B, T) ``mask``.

    ``time_major``: the caller's tensor was (T, B) (messages name its layout).
    """
    first = "mask[0]" if time_major else "mask[:, 0]"
    checks.require(
        mask[:, 0].all(),
        f"{first} must be all True: empty sequences and left padding are not supported "
        "(right padding only)",
    )
    if mask.shape[1] > 1:
        checks.require(
            ~(mask[:, 1:] & ~mask[:, :-1]).any(),
            "mask must be a right-padded prefix mask (right padding only): a True follows a False",
        )
