"""Attention masks for one Transformer doing LM, prefix-LM and UniLM seq2seq (spec §2.5).

Boolean masks follow :func:`torch.nn.functional.scaled_dot_product_attention`: ``True`` means
"this query MAY attend to this key". A mask is ``(L, L)`` (shared by the batch), ``(B, L, L)``, or
``(B, 1, L, L)`` (one head axis, broadcast over heads — what :func:`sdpa_mask` returns).
:func:`attention_bias` turns a boolean mask into the additive form (0 where allowed, a large
negative number elsewhere) for attention code that adds a bias to the scores.

The UniLM mask of bert4keras: with segment ids ``s`` (0 = source incl. [CLS] and the first [SEP],
1 = target incl. its closing [SEP]) and ``c = cumsum(s)``, ``allowed[b, i, j] = c[b, j] <= c[b, i]``:
source queries see all source keys and no target key, target query ``i`` sees the source and the
target up to ``i``. Right padding is segment 0, so it carries the last ``c``; the key-padding mask
MUST be ANDed in (bert4keras does so inside attention), which :func:`unilm_mask` does when given
``key_padding_mask``. A causal mask is the special case "every token is its own segment".

References: UniLM, arXiv:1905.03197; https://kexue.fm/archives/6933 (bert4keras UniLM usage);
https://kexue.fm/archives/7115 (seq2seq reading comprehension).
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "attention_bias",
    "causal_mask",
    "check_attention_mask",
    "padding_mask",
    "prefix_lm_mask",
    "sdpa_mask",
    "unilm_mask",
]


def causal_mask(length: int, *, device: torch.device | str | None = None) -> Tensor:
    """Lower-triangular LM mask: ``allowed[i, j] = (j <= i)``.

    Arguments:
        length: sequence length ``L`` (≥ 1).
        device: where to build it.

    Returns:
        Bool tensor ``(L, L)``, True = may attend.

    References: spec §2.5 "LM mask" (bert4keras ``LM_Mask``).
    """
    if length < 1:
        raise ValueError(f"length must be >= 1, got {length}")
    idx = torch.arange(length, device=device)
    return idx[None, :] <= idx[:, None]


def padding_mask(lengths: Tensor, length: int | None = None) -> Tensor:
    """Key-padding mask of right-padded sequences: ``valid[b, j] = (j < lengths[b])``.

    Arguments:
        lengths: ``(B,)`` integer lengths, each in ``[1, length]``.
        length: padded length ``L`` (default ``max(lengths)``).

    Returns:
        Bool tensor ``(B, L)``, True = a real token.
    """
    if lengths.dim() != 1 or lengths.dtype.is_floating_point or lengths.dtype == torch.bool:
        raise ValueError(
            f"lengths must be a 1-D integer tensor (B,), got {tuple(lengths.shape)} {lengths.dtype}"
        )
    if lengths.numel() == 0:
        raise ValueError("lengths is empty")
    if int(lengths.min()) < 1:
        raise ValueError(f"lengths must be >= 1 (an empty sequence), got {lengths.tolist()}")
    longest = int(lengths.max())
    if length is None:
        length = longest
    elif length < longest:
        raise ValueError(f"length {length} is shorter than max(lengths) = {longest}")
    return torch.arange(length, device=lengths.device)[None, :] < lengths[:, None]


def _check_segments(segments: Tensor) -> None:
    if segments.dim() != 2:
        raise ValueError(f"segments must be (B, L), got shape {tuple(segments.shape)}")
    if segments.shape[1] == 0:
        raise ValueError("segments has length 0 (empty sequence)")
    if segments.dtype.is_floating_point:
        raise ValueError(f"segments must be an integer or bool tensor, got {segments.dtype}")


def _check_key_padding(key_padding_mask: Tensor, shape: tuple[int, int]) -> None:
    if key_padding_mask.dtype != torch.bool:
        raise ValueError(f"key_padding_mask must be bool, got {key_padding_mask.dtype}")
    if tuple(key_padding_mask.shape) != shape:
        raise ValueError(
            f"key_padding_mask shape {tuple(key_padding_mask.shape)} does not match the "
            f"sequence shape (B, L) = {shape}"
        )


def unilm_mask(segments: Tensor, *, key_padding_mask: Tensor | None = None) -> Tensor:
    """UniLM seq2seq mask from segment ids: ``allowed[b, i, j] = c[b, j] <= c[b, i]``, ``c = cumsum(s)``.

    Source (segment 0) queries see every source key; target (segment 1) query ``i`` sees the
    source and target keys ``<= i``. ``key_padding_mask`` (True = real token) is ANDed over the
    key axis, so right padding (segment 0, same ``c`` as the last token) is never attended to.
    Query rows of padding keep their own (harmless) pattern; they always see key 0.

    Arguments:
        segments: ``(B, L)`` integer/bool segment ids (0 source, 1 target). Any non-decreasing
            use works: ``c`` only has to be a per-row cumulative count.
        key_padding_mask: optional ``(B, L)`` bool, True = real token.

    Returns:
        Bool tensor ``(B, L, L)``, True = may attend (add a head axis with :func:`sdpa_mask`).

    References: spec §2.5; bert4keras ``UniLM_Mask``; UniLM arXiv:1905.03197.
    """
    _check_segments(segments)
    c = torch.cumsum(segments.long(), dim=1)
    allowed = c[:, None, :] <= c[:, :, None]
    if key_padding_mask is not None:
        _check_key_padding(key_padding_mask, tuple(segments.shape))
        allowed = allowed & key_padding_mask[:, None, :]
    return allowed


def prefix_lm_mask(
    prefix_lengths: Tensor, length: int, *, key_padding_mask: Tensor | None = None
) -> Tensor:
    """Prefix-LM mask: bidirectional over the first ``prefix_lengths[b]`` tokens, causal after.

    Equal to :func:`unilm_mask` with ``segments[b, j] = (j >= prefix_lengths[b])``.

    Arguments:
        prefix_lengths: ``(B,)`` integer lengths of the bidirectional prefix, in ``[0, length]``
            (0 = a plain causal mask).
        length: sequence length ``L``.
        key_padding_mask: optional ``(B, L)`` bool, True = real token.

    Returns:
        Bool tensor ``(B, L, L)``.
    """
    if prefix_lengths.dim() != 1 or prefix_lengths.dtype.is_floating_point:
        raise ValueError(
            f"prefix_lengths must be a 1-D integer tensor (B,), got {tuple(prefix_lengths.shape)}"
        )
    if length < 1:
        raise ValueError(f"length must be >= 1, got {length}")
    if prefix_lengths.numel() and (
        int(prefix_lengths.min()) < 0 or int(prefix_lengths.max()) > length
    ):
        raise ValueError(f"prefix_lengths must lie in [0, {length}], got {prefix_lengths.tolist()}")
    pos = torch.arange(length, device=prefix_lengths.device)
    segments = (pos[None, :] >= prefix_lengths[:, None]).long()
    return unilm_mask(segments, key_padding_mask=key_padding_mask)


def check_attention_mask(
    attn_mask: Tensor, *, batch: int, query_len: int, key_len: int, name: str = "attn_mask"
) -> None:
    """Raise ``ValueError`` (naming both shapes) unless ``attn_mask`` fits ``(B, Lq, Lk)``.

    Accepted shapes: ``(Lq, Lk)``, ``(B, Lq, Lk)``, ``(B or 1, 1 or H, Lq, Lk)``; bool or float.

    Arguments:
        attn_mask: the mask to check.
        batch, query_len, key_len: the attention's ``B``, ``Lq`` and ``Lk`` (with a KV cache
            ``Lk`` = cached + new tokens).
        name: the argument name used in the message.
    """
    shape = tuple(attn_mask.shape)
    ok = attn_mask.dim() in (2, 3, 4) and shape[-2:] == (query_len, key_len)
    if ok and attn_mask.dim() >= 3:
        ok = shape[0] in (1, batch)
    if not ok:
        raise ValueError(
            f"{name} shape {shape} does not match the sequence: expected (Lq, Lk), (B, Lq, Lk) "
            f"or (B, H, Lq, Lk) with B = {batch}, Lq = {query_len}, Lk = {key_len}"
        )
    if attn_mask.dtype != torch.bool and not attn_mask.dtype.is_floating_point:
        raise ValueError(f"{name} must be bool or floating point, got {attn_mask.dtype}")


def sdpa_mask(mask: Tensor) -> Tensor:
    """Give a ``(L, L)`` or ``(B, L, L)`` mask the head axis SDPA broadcasts: ``(B|1, 1, L, L)``.

    Arguments:
        mask: bool or additive mask of 2–4 dims.

    Returns:
        The same values with shape ``(B, 1, Lq, Lk)`` (``(1, 1, Lq, Lk)`` for a 2-D mask).
    """
    if mask.dim() == 2:
        return mask[None, None]
    if mask.dim() == 3:
        return mask[:, None]
    if mask.dim() == 4:
        return mask
    raise ValueError(f"mask must have 2, 3 or 4 dims, got shape {tuple(mask.shape)}")


def attention_bias(
    mask: Tensor, *, dtype: torch.dtype = torch.float32, fill: str = "min"
) -> Tensor:
    """Additive attention bias from a boolean mask: 0 where allowed, a large negative elsewhere.

    ``fill="min"`` (default) uses ``torch.finfo(dtype).min``: finite, so a fully masked row gives
    a uniform softmax instead of NaN, and safe under fp16/bf16 (the score plus the bias saturates
    at ``finfo.min`` rather than overflowing to ``-inf``). ``fill="-inf"`` gives exact zeros after
    the softmax but NaN rows when a query sees no key. ``fill="-1e4"`` is bert4keras's fp16 bias.

    Arguments:
        mask: bool mask, True = may attend, any shape.
        dtype: floating dtype of the bias (match the attention scores).
        fill: ``"min"`` | ``"-inf"`` | ``"-1e4"``.

    Returns:
        Tensor of ``mask``'s shape and ``dtype``.

    References: spec §2.5 "Bias".
    """
    if mask.dtype != torch.bool:
        raise ValueError(f"mask must be bool, got {mask.dtype}")
    if not dtype.is_floating_point:
        raise ValueError(f"dtype must be floating point, got {dtype}")
    if fill == "min":
        neg = torch.finfo(dtype).min
    elif fill == "-inf":
        neg = float("-inf")
    elif fill == "-1e4":
        neg = -1e4
    else:
        raise ValueError(f"fill must be 'min', '-inf' or '-1e4', got {fill!r}")
    bias = torch.zeros(mask.shape, dtype=dtype, device=mask.device)
    return bias.masked_fill(~mask, neg)
