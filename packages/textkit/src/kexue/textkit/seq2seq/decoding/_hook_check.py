"""Validity of a decoder hook's next-token distributions, checked without host syncs of its own
(private; used by the greedy and sampling loops of :mod:`.decoder`)."""

from __future__ import annotations

import torch
from torch import Tensor

__all__: list[str] = []  # package-internal


class _HookCheck:
    """Validity of the hook's output, checked without host syncs of its own.

    A decoding step that syncs anyway ("did a row finish?") carries the step's flag in the same
    transfer (:meth:`with_done`); steps that do not sync (before ``minlen``) accumulate their
    flags on the device (:meth:`defer`) until the next such transfer or :meth:`finish`.
    """

    def __init__(self) -> None:
        self.pending: Tensor | None = None  # 0-d bool: a bad row in a step not yet read back
        self.since = 0  # first step whose flag is pending

    def defer(self, bad: Tensor, step: int) -> None:
        if self.pending is None:
            self.pending, self.since = bad.any(), step
        else:
            self.pending = self.pending | bad.any()

    def with_done(self, bad: Tensor, probas: Tensor, step: int, done: Tensor) -> bool:
        """One host transfer: raise on an invalid row, else return ``done.any()``."""
        flags = [bad.any(), done.any()] + ([] if self.pending is None else [self.pending])
        now_bad, any_done, *earlier = torch.stack(flags).tolist()
        if now_bad:
            _raise_invalid(bad, probas, step)
        self._raise_earlier(earlier, step)
        self.pending = None
        return any_done

    def finish(self, step: int) -> None:
        if self.pending is not None:
            self._raise_earlier([bool(self.pending)], step + 1)

    def _raise_earlier(self, earlier: list[bool], step: int) -> None:
        if earlier and earlier[0]:
            raise ValueError(
                f"predict returned an invalid next-token distribution (NaN / inf, a negative "
                f"probability or no positive mass) at a step in [{self.since}, {step})"
            )


def _raise_invalid(bad: Tensor, probas: Tensor, step: int) -> None:
    """Error path (host syncs allowed): name the first bad row and what is wrong with it."""
    r = int(bad.nonzero()[0, 0])
    row = probas[r]
    if not bool(torch.isfinite(row).all()):
        what = "holds NaN or inf (e.g. a NaN or +inf logit, or logits all -inf)"
    elif bool((row < 0).any()):
        what = "holds a negative probability (rtype='probas' given logits?)"
    else:
        what = "has no positive mass (every token masked?)"
    raise ValueError(
        f"predict returned an invalid next-token distribution at step {step}: row {r} of "
        f"shape {tuple(probas.shape)} {what}"
    )
