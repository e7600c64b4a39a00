"""bert4keras's numpy ``ViterbiDecoder(trans, starts, ends)``, on the max-semiring reference.

A thin wrapper: the per-sentence ``(T, K)`` scores go through the one chain recursion
(:func:`~._chain.chain` under :data:`~.semiring.MAX`, float64) with hard boundary rules
(−inf, as bert4keras, not the CRF's −1e4), and the result comes back as a numpy array. Unlike
bert4keras, ``decode`` leaves ``nodes`` untouched (bert4keras subtracts inf from it in place).

References:
    bert4keras (https://github.com/bojone/bert4keras, ``snippets.py``);
    https://kexue.fm/archives/5542 (CRF and Viterbi).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ._chain import backtrace, chain
from .semiring import MAX

__all__ = ["ViterbiDecoder"]


class ViterbiDecoder:
    """Best label path of a linear chain from per-step scores (numpy; bert4keras's decoder).

    ``decode(nodes)`` returns ``argmax_y Σ_t nodes[t, y_t] + Σ_t trans[y_{t-1}, y_t]`` subject to
    ``y_0 ∈ starts`` and ``y_{T-1} ∈ ends``. Ties go to the lowest label index.

    Arguments:
        trans: ``(K, K)`` transition scores, ``trans[i, j]`` = score of i → j.
        starts: labels allowed at the first step (None: all).
        ends: labels allowed at the last step (None: all).

    Example:
        >>> dec = ViterbiDecoder(np.zeros((2, 2)), starts=[0])
        >>> dec.decode(np.array([[0.0, 1.0], [0.0, 1.0]])).tolist()
        [0, 1]
    """

    def __init__(
        self,
        trans: Any,
        starts: Sequence[int] | None = None,
        ends: Sequence[int] | None = None,
    ) -> None:
        self.trans = np.array(trans, dtype=np.float64)
        if self.trans.ndim != 2 or self.trans.shape[0] != self.trans.shape[1]:
            raise ValueError(f"trans must be a square (K, K) matrix, got shape {self.trans.shape}")
        self.num_labels = k = self.trans.shape[0]
        self._start_mask = self._allowed(starts, "starts", k)
        self._end_mask = self._allowed(ends, "ends", k)
        self._a = torch.from_numpy(self.trans)
        self._start = torch.from_numpy(np.where(self._start_mask, 0.0, -np.inf))
        self._end = torch.from_numpy(np.where(self._end_mask, 0.0, -np.inf))

    @staticmethod
    def _allowed(labels: Sequence[int] | None, name: str, k: int) -> np.ndarray:
        mask = np.zeros(k, dtype=bool)
        if labels is None:
            mask[:] = True
            return mask
        labels = [int(x) for x in labels]
        if not labels or any(not 0 <= x < k for x in labels):
            raise ValueError(f"{name} must be a non-empty list of labels in [0, {k}), got {labels}")
        mask[labels] = True
        return mask

    def decode(self, nodes: Any) -> np.ndarray:
        """The best path for one sequence.

        Arguments:
            nodes: ``(T, K)`` per-step label scores, T ≥ 1 (not modified).

        Returns:
            ``(T,)`` int64 labels.
        """
        x = np.asarray(nodes, dtype=np.float64)
        k = self.num_labels
        if x.ndim != 2 or x.shape[1] != k or x.shape[0] == 0:
            raise ValueError(f"nodes must have shape (T >= 1, {k}), got {x.shape}")
        if not np.isfinite(x).all():
            raise ValueError("nodes must be finite")
        t_len = x.shape[0]
        h = torch.tensor(x).unsqueeze(0)  # a copy: nodes stay untouched
        mask = torch.ones(1, t_len, dtype=torch.bool)
        with torch.no_grad():
            _, witness, back = chain(MAX, h, mask, self._a, self._start, self._end, t_len)
            path = backtrace(MAX, witness, back)
        return path[0, 0].numpy().astype(np.int64)
