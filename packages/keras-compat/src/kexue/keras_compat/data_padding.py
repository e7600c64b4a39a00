"""Padding and masking of ragged sequences (bert4keras ``sequence_padding``/``sequence_masking``).

``sequence_padding`` pads **and truncates** a list of ragged arrays or tensors over their first
``seq_dims`` axes and stacks them into one array (or tensor) of the input kind, keeping the dtype.
For numpy inputs and nested lists it returns exactly what bert4keras's
``sequence_padding(inputs, length, value, seq_dims, mode)`` returns (master, 0.11.x); so does
``kexue.textkit.data.sequence_padding``, and ``tests/test_sequence_padding_agree.py`` checks both
against a copy of bert4keras's function. An integer ``length`` applies to every sequence axis
(bert4keras master raises ``IndexError`` for it when ``seq_dims > 1``; earlier bert4keras versions,
whose ``length`` was always a scalar, applied it to every axis).
``torch.nn.utils.rnn.pad_sequence`` pads the first axis only and never truncates;
``keras.utils.pad_sequences`` is one-dimensional. ``sequence_masking`` overwrites the positions
a ``(B, L)`` mask marks as padding.

References:
    bert4keras ``snippets.sequence_padding`` and ``backend.sequence_masking``
    (https://github.com/bojone/bert4keras, c1ae0dc).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch

__all__ = ["sequence_masking", "sequence_padding"]


def _resolve_length(
    length: int | Sequence[int | None] | None, max_len: list[int], seq_dims: int
) -> list[int]:
    if length is None:
        return max_len
    if isinstance(length, (int, np.integer)):
        length = [int(length)] * seq_dims
    length = list(length)
    if len(length) != seq_dims:
        raise ValueError(f"length must have seq_dims={seq_dims} entries, got {len(length)}")
    out = []
    for i, n in enumerate(length):
        if n is None:
            out.append(max_len[i])
        elif int(n) < 0:
            raise ValueError(f"length entries must be >= 0, got {length}")
        else:
            out.append(int(n))
    return out


def sequence_padding(
    inputs: Sequence[Any],
    length: int | Sequence[int | None] | None = None,
    value: float = 0,
    seq_dims: int = 1,
    mode: Literal["post", "pre"] = "post",
    *,
    truncating: Literal["post", "pre"] = "post",
) -> np.ndarray | torch.Tensor:
    """Pads and truncates ragged sequences over their first ``seq_dims`` axes, then stacks them.

    Each input ``x`` of shape ``(L_1, ..., L_s, *F)`` (``s = seq_dims``) is truncated to
    ``length`` and padded with ``value`` to exactly ``length`` along the first ``s`` axes; the
    trailing feature shape ``F`` must agree across inputs. The result has shape
    ``(N, length_1, ..., length_s, *F)``.

    Arguments:
        inputs: A non-empty list of arrays, nested lists or tensors. If any element is a
            ``torch.Tensor`` the result is a tensor (on the first tensor's device), otherwise a
            ``numpy`` array. The dtype is kept (promoted across inputs when they differ).
        length: Target length: ``None`` (the per-axis maximum over inputs), an int (every
            sequence axis) or a sequence of ``seq_dims`` ints (``None`` entries mean the maximum).
        value: Fill value, cast to each input's dtype before stacking (as ``np.pad`` does in
            bert4keras: ``value=0.5`` pads an integer input with 0 even when another input is
            float).
        seq_dims: Number of leading axes to pad/truncate (bert4keras default 1).
        mode: ``"post"`` pads at the end, ``"pre"`` at the start (bert4keras names).
        truncating: Which end is cut when an input is longer than ``length``: ``"post"`` keeps
            the head (bert4keras's behaviour for both modes), ``"pre"`` keeps the tail (Keras
            ``pad_sequences(truncating="pre")``).

    Returns:
        One array or tensor of shape ``(N, *length, *F)``.

    Example:
        >>> sequence_padding([[1, 2, 3], [4]], mode="pre")
        array([[1, 2, 3],
               [0, 0, 4]])
    """
    if mode not in ("post", "pre"):
        raise ValueError(f'mode must be "post" or "pre", got {mode!r}')
    if truncating not in ("post", "pre"):
        raise ValueError(f'truncating must be "post" or "pre", got {truncating!r}')
    if isinstance(seq_dims, bool) or not isinstance(seq_dims, int) or seq_dims < 1:
        raise ValueError(f"seq_dims must be a positive int, got {seq_dims!r}")
    if isinstance(inputs, (np.ndarray, torch.Tensor)):
        inputs = list(inputs)
    if len(inputs) == 0:
        raise ValueError("inputs must be a non-empty sequence of arrays or tensors")

    use_torch = any(isinstance(x, torch.Tensor) for x in inputs)
    if use_torch:
        first = next(x for x in inputs if isinstance(x, torch.Tensor))
        items = [torch.as_tensor(x, device=first.device) for x in inputs]
        dtype: Any = items[0].dtype
        for x in items[1:]:
            dtype = torch.promote_types(dtype, x.dtype)
    else:
        items = [np.asarray(x) for x in inputs]
        dtype = np.result_type(*items)

    shapes = [tuple(x.shape) for x in items]
    for i, s in enumerate(shapes):
        if len(s) < seq_dims:
            raise ValueError(
                f"inputs[{i}] has shape {s}, fewer than seq_dims={seq_dims} dimensions"
            )
        if s[seq_dims:] != shapes[0][seq_dims:]:
            raise ValueError(
                f"inputs must share trailing shape after seq_dims={seq_dims}: inputs[0] has "
                f"{shapes[0]}, inputs[{i}] has {s}"
            )
    max_len = [max(s[d] for s in shapes) for d in range(seq_dims)]
    target = _resolve_length(length, max_len, seq_dims)
    out_shape = (len(items), *target, *shapes[0][seq_dims:])

    if use_torch:
        out = torch.empty(out_shape, dtype=dtype, device=items[0].device)
    else:
        out = np.empty(out_shape, dtype=dtype)
    for i, x in enumerate(items):
        src, dst = [], []
        for d in range(seq_dims):
            n = min(x.shape[d], target[d])
            src.append(slice(0, n) if truncating == "post" else slice(x.shape[d] - n, x.shape[d]))
            dst.append(slice(0, n) if mode == "post" else slice(target[d] - n, target[d]))
        # the fill value is cast to this input's dtype first (bert4keras pads each input alone)
        if use_torch:
            row = torch.full(out_shape[1:], value, dtype=x.dtype, device=x.device)
        else:
            row = np.full(out_shape[1:], value, dtype=x.dtype)
        row[tuple(dst)] = x[tuple(src)]
        out[i] = row
    return out


def sequence_masking(
    x: torch.Tensor,
    mask: torch.Tensor | None = None,
    value: float | str = 0.0,
    axis: int = 1,
) -> torch.Tensor:
    """Replaces the positions a sequence mask marks as padding by ``value``.

    ``out = where(mask, x, value)`` with ``mask: (B, L)`` aligned to ``x``'s axes 0 and
    ``axis`` and broadcast over all other axes; ``mask`` is truthy where the position is kept.

    Arguments:
        x: Tensor of shape ``(B, ..., L, ...)`` with ``L`` at ``axis``.
        mask: ``(B, L)`` boolean or 0/1 tensor (1 = keep), or ``None`` (returns ``x``).
        value: Fill value; the strings ``"-inf"``/``"inf"`` mean the most negative/positive
            finite value of ``x``'s dtype (bert4keras uses ±1e12, which overflows float16;
            finite values keep a fully masked softmax row NaN-free).
        axis: The sequence axis of ``x`` (bert4keras default 1); negative values count from
            the end; must not be the batch axis 0.

    Returns:
        A new tensor like ``x``.
    """
    if mask is None:
        return x
    if not isinstance(x, torch.Tensor) or not isinstance(mask, torch.Tensor):
        raise ValueError("x and mask must be torch.Tensor")
    ax = axis + x.ndim if axis < 0 else axis
    if not 0 < ax < x.ndim:
        raise ValueError(f"axis must index a non-batch dimension of x {tuple(x.shape)}, got {axis}")
    if mask.shape != (x.shape[0], x.shape[ax]):
        raise ValueError(
            f"mask must have shape (B, L) = {(x.shape[0], x.shape[ax])} for x of shape "
            f"{tuple(x.shape)} and axis={axis}, got {tuple(mask.shape)}"
        )
    if isinstance(value, str):
        if value not in ("-inf", "inf"):
            raise ValueError(f'value must be a number, "-inf" or "inf", got {value!r}')
        info = torch.finfo(x.dtype) if x.is_floating_point() else torch.iinfo(x.dtype)
        value = info.min if value == "-inf" else info.max
    shape = [1] * x.ndim
    shape[0], shape[ax] = x.shape[0], x.shape[ax]
    keep = mask.to(device=x.device, dtype=torch.bool).reshape(shape)
    return torch.where(keep, x, torch.as_tensor(value, dtype=x.dtype, device=x.device))
