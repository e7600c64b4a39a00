"""bert4keras-style data helpers (numpy), without bert4keras's in-place mutation of the inputs.

:func:`sequence_padding`, :func:`truncate_sequences` and :func:`text_segmentate` follow
``bert4keras.snippets`` (same signatures and results) with one fix: ``truncate_sequences`` returns
new lists instead of popping from the caller's. bert4keras's ``ViterbiDecoder`` lives in the
tagging room (:class:`kexue.textkit.tagging.ViterbiDecoder`).

References:
    bert4keras (https://github.com/bojone/bert4keras, ``snippets.py``);
    https://kexue.fm/archives/5542 (CRF and Viterbi), https://kexue.fm/archives/6671 (bert4keras).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "sequence_padding",
    "text_segmentate",
    "truncate_sequences",
]


def sequence_padding(
    inputs: Sequence[Any],
    length: int | Sequence[int] | None = None,
    value: Any = 0,
    seq_dims: int = 1,
    mode: str = "post",
) -> np.ndarray:
    """Pad (and cut) a batch of arrays to a common length along their first ``seq_dims`` axes.

    Every input is first cut to ``x[:length]`` on each sequence axis (the head is kept, in both
    modes, as in bert4keras), then padded with ``value`` at the end (``mode="post"``) or the start
    (``mode="pre"``).

    One meaning across kexue: the result equals bert4keras's (master, 0.11.x) ``sequence_padding``
    wherever that is defined, and ``kexue.keras_compat.sequence_padding`` gives the same result for
    the same call (``tests/test_sequence_padding_agree.py`` checks both against a copy of
    bert4keras's function). An int ``length`` with ``seq_dims > 1`` applies to every sequence axis
    (bert4keras master raises ``IndexError`` there; earlier versions, whose length was a scalar,
    applied it to every axis).

    Arguments:
        inputs: arrays or nested lists with equal trailing (non-sequence) shapes.
        length: target length(s); an int applies to every sequence axis; a sequence holds one
            int per sequence axis; None (default) = the longest input on each axis.
        value: the padding value (default 0), cast to each input's dtype before stacking (as
            ``np.pad`` does: ``value=0.5`` pads an integer input with 0).
        seq_dims: how many leading axes are sequence axes (default 1).
        mode: ``"post"`` (default) or ``"pre"``.

    Returns:
        An array of shape ``(len(inputs), *length, *trailing)``; dtype as numpy infers it.
    """
    if mode not in ("post", "pre"):
        raise ValueError(f'mode must be "post" or "pre", got {mode!r}')
    if len(inputs) == 0:
        raise ValueError("inputs must not be empty")
    arrays = [np.asarray(x) for x in inputs]
    if not isinstance(seq_dims, int) or not 1 <= seq_dims <= min(a.ndim for a in arrays):
        raise ValueError(
            f"seq_dims must be an int in [1, ndim of every input], got {seq_dims!r} for inputs of "
            f"shapes {[a.shape for a in arrays][:4]}"
        )
    if length is None:
        lengths = [max(a.shape[d] for a in arrays) for d in range(seq_dims)]
    elif isinstance(length, (int, np.integer)):
        lengths = [int(length)] * seq_dims
    else:
        lengths = [int(n) for n in length]
        if len(lengths) != seq_dims:
            raise ValueError(f"length must hold seq_dims={seq_dims} values, got {list(length)}")
    if any(n < 0 for n in lengths):
        raise ValueError(f"length must be non-negative, got {lengths}")
    trailing = {a.shape[seq_dims:] for a in arrays}
    if len(trailing) > 1:
        raise ValueError(f"inputs must share their trailing shapes, got {sorted(trailing)}")
    cut = tuple(slice(0, n) for n in lengths)
    outputs = []
    for a in arrays:
        a = a[cut]
        pad = [(0, 0)] * a.ndim
        for d in range(seq_dims):
            gap = lengths[d] - a.shape[d]
            pad[d] = (0, gap) if mode == "post" else (gap, 0)
        outputs.append(np.pad(a, pad, mode="constant", constant_values=value))
    return np.array(outputs)


def truncate_sequences(
    maxlen: int, indices: int | Sequence[int], *sequences: Sequence[Any]
) -> list[list[Any]]:
    """Cut sequences until their total length is at most ``maxlen``, longest first.

    Repeatedly removes, from the currently longest sequence (the first one on ties), the item at
    its position ``indices[i]`` (``-1``: the last item, ``0``: the first; bert4keras's ``pop``).
    Unlike bert4keras the inputs are not modified, and empty sequences are kept in the result (so
    ``a, b = truncate_sequences(...)`` always unpacks; bert4keras drops them).

    Arguments:
        maxlen: the total length to reach.
        indices: one position for all sequences, or one per sequence.
        *sequences: lists (or any sequences) to cut.

    Returns:
        New lists, one per input sequence.
    """
    if not isinstance(maxlen, (int, np.integer)) or maxlen < 0:
        raise ValueError(f"maxlen must be a non-negative int, got {maxlen!r}")
    seqs = [list(s) for s in sequences]
    if isinstance(indices, (list, tuple)):
        if len(indices) != len(seqs):
            raise ValueError(
                f"indices must hold one position per sequence ({len(seqs)}), got {len(indices)}"
            )
        idx = [int(i) for i in indices]
    else:
        idx = [int(indices)] * len(seqs)
    lengths = [len(s) for s in seqs]
    total = sum(lengths)
    while total > maxlen:
        i = max(range(len(seqs)), key=lambda k: (lengths[k], -k))
        try:
            seqs[i].pop(idx[i])
        except IndexError:
            raise ValueError(
                f"indices: position {idx[i]} is out of range for sequence {i} of length "
                f"{lengths[i]}"
            ) from None
        lengths[i] -= 1
        total -= 1
    return seqs


def text_segmentate(
    text: str, maxlen: int, seps: str | Sequence[str] = "\n", strips: str | None = None
) -> list[str]:
    """Split a text into pieces of at most ``maxlen`` characters at separators, recursively.

    The text is stripped (whitespace, then the characters of ``strips``). If it is longer than
    ``maxlen``, it is split at ``seps[0]`` (each piece but the last keeps its separator) and
    consecutive pieces are packed while the packed length stays ≤ ``maxlen − 1``; each pack is then
    segmented again with ``seps[1:]``. A pack still too long when the separators run out is
    returned as it is (no hard cut), as in bert4keras.

    Arguments:
        text: the text.
        maxlen: the target piece length.
        seps: separators in order of preference (a string of single characters, or a sequence of
            strings); bert4keras's examples use ``"\\n。！？!?；;，, "``.
        strips: characters stripped from both ends of every piece (e.g. ``"；;，, "``), or None.

    Returns:
        The pieces, in order.
    """
    if not isinstance(text, str):
        raise ValueError(f"text must be a string, got {type(text).__name__}")
    if not isinstance(maxlen, (int, np.integer)) or maxlen < 1:
        raise ValueError(f"maxlen must be a positive int, got {maxlen!r}")
    text = text.strip().strip(strips)
    if not seps or len(text) <= maxlen:
        return [text]
    sep, rest = seps[0], seps[1:]
    if not sep:
        raise ValueError("seps must not contain an empty separator")
    pieces = text.split(sep)
    out: list[str] = []
    buf = ""
    for k, piece in enumerate(pieces):
        if buf and piece and len(buf) + len(piece) > maxlen - 1:
            out.extend(text_segmentate(buf, maxlen, rest, strips))
            buf = ""
        buf += piece if k == len(pieces) - 1 else piece + sep
    if buf:
        out.extend(text_segmentate(buf, maxlen, rest, strips))
    return out
