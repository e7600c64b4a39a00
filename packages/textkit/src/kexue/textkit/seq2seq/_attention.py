"""Input checks, positions and the UniLM / causal / bidirectional attention mask with a KV cache,
shared by :class:`~kexue.textkit.seq2seq.transformer.UniLMTransformer` and
:class:`~kexue.textkit.seq2seq.bert.BertUniLM` (private).

The mask key is ``c = cumsum(segments)`` (bert4keras's UniLM mask, a causal mask when every
token is its own segment), continued across cached calls; the key-padding mask is ANDed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .masks import check_attention_mask

__all__ = ["AttentionPlan", "check_model_inputs", "finish_cache", "plan_attention", "store_cache"]


@dataclass
class AttentionPlan:
    """What one forward needs: the SDPA mask (None = unmasked), positions and cache rows."""

    mask: Tensor | None
    position_ids: Tensor
    cum: Tensor
    valid: Tensor
    next_pos: Tensor
    past: int


def check_model_inputs(
    tokens: Tensor,
    segments: Tensor | None,
    key_padding_mask: Tensor | None,
    position_ids: Tensor | None,
    cond: Tensor | None,
    cache: Any,
    *,
    vocab_size: int,
    cond_dim: int | None,
    num_segments: int | None = None,
) -> None:
    """Raise ``ValueError`` naming the argument unless the inputs fit the model."""
    if tokens.dim() != 2 or tokens.dtype.is_floating_point:
        raise ValueError(f"tokens must be a (B, L) integer tensor, got {tuple(tokens.shape)}")
    if tokens.shape[1] == 0:
        raise ValueError("tokens has length 0 (empty source)")
    if int(tokens.min()) < 0 or int(tokens.max()) >= vocab_size:
        raise ValueError(f"tokens must lie in [0, vocab_size={vocab_size})")
    for name, t in (
        ("segments", segments),
        ("key_padding_mask", key_padding_mask),
        ("position_ids", position_ids),
    ):
        if t is not None and tuple(t.shape) != tuple(tokens.shape):
            raise ValueError(
                f"{name} shape {tuple(t.shape)} does not match tokens {tuple(tokens.shape)}"
            )
    if segments is not None and num_segments is not None:
        if int(segments.min()) < 0 or int(segments.max()) >= num_segments:
            raise ValueError(
                f"segments must lie in [0, type_vocab_size={num_segments}), got values in "
                f"[{int(segments.min())}, {int(segments.max())}]"
            )
    if key_padding_mask is not None:
        if key_padding_mask.dtype != torch.bool:
            raise ValueError(f"key_padding_mask must be bool, got {key_padding_mask.dtype}")
        if (cache is None or cache.length == 0) and not bool(key_padding_mask[:, 0].all()):
            raise ValueError(
                "key_padding_mask[:, 0] must be True (right padding only: a query that sees "
                "no key would give NaN)"
            )
    if (cond is None) != (cond_dim is None):
        raise ValueError(
            "cond is required exactly when the model has cond_dim "
            f"(cond_dim={cond_dim}, cond given: {cond is not None})"
        )
    if cache is not None and cache.batch_size not in (None, tokens.shape[0]):
        raise ValueError(
            f"cache holds {cache.batch_size} rows but tokens has batch {tokens.shape[0]}"
        )


def plan_attention(
    tokens: Tensor,
    segments: Tensor | None,
    *,
    attn_mask: Tensor | None,
    key_padding_mask: Tensor | None,
    position_ids: Tensor | None,
    cache: Any,
    cond: Tensor | None,
    vocab_size: int,
    cond_dim: int | None,
    max_len: int,
    num_segments: int | None = None,
    bidirectional: bool = False,
) -> AttentionPlan:
    """Check the inputs (:func:`check_model_inputs`), then the mask and positions of one forward
    (see the module docstring).

    ``bidirectional=True`` (BERT's encoder) lets every query see every valid key; otherwise
    segments give the UniLM mask and ``segments=None`` a causal one. Positions continue each
    row from the cache (``next_pos + arange(L)``) unless given.
    """
    check_model_inputs(
        tokens,
        segments,
        key_padding_mask,
        position_ids,
        cond,
        cache,
        vocab_size=vocab_size,
        cond_dim=cond_dim,
        num_segments=num_segments,
    )
    b, n = tokens.shape
    dev = tokens.device
    past = cache.length if cache is not None else 0
    valid = (
        key_padding_mask
        if key_padding_mask is not None
        else torch.ones(b, n, dtype=torch.bool, device=dev)
    )
    step = segments.long() if segments is not None else torch.ones_like(tokens)
    last_c = cache.cum[:, -1:] if cache is not None and cache.cum is not None else 0
    c_new = last_c + torch.cumsum(step, dim=1)
    start = (
        cache.next_pos
        if cache is not None and cache.next_pos is not None
        else torch.zeros(b, dtype=torch.long, device=dev)
    )
    if position_ids is None:
        position_ids = start[:, None] + torch.arange(n, device=dev)
    if int(position_ids.max()) >= max_len or int(position_ids.min()) < 0:
        raise ValueError(f"position ids reach {int(position_ids.max())} >= max_len {max_len}")
    if past:
        c_all = torch.cat((cache.cum, c_new), dim=1)
        valid_all = torch.cat((cache.valid, valid), dim=1)
    else:
        c_all, valid_all = c_new, valid
    if attn_mask is None:
        if bidirectional:
            mask = valid_all[:, None, :].expand(b, n, past + n)
        else:
            mask = (c_all[:, None, :] <= c_new[:, :, None]) & valid_all[:, None, :]
    else:
        check_attention_mask(attn_mask, batch=b, query_len=n, key_len=past + n)
        mask = attn_mask
        if mask.dim() == 2:
            mask = mask[None]
        if mask.dim() == 3:
            mask = mask[:, None]
        if mask.dtype == torch.bool:
            mask = mask & valid_all[:, None, None, :]
    if mask.dim() == 3:
        mask = mask[:, None]
    out: Tensor | None = mask
    if mask.dtype == torch.bool and (n == 1 or bidirectional) and bool(mask.all()):
        out = None  # every query sees every key: SDPA's unmasked fast path
    return AttentionPlan(out, position_ids, c_all, valid_all, start + valid.sum(dim=1), past)


def store_cache(cache: Any, plan: AttentionPlan, layer: int, k: Tensor, v: Tensor) -> None:
    """Put layer ``layer``'s full keys/values into ``cache`` (appending on the first call)."""
    if plan.past:
        cache.keys[layer], cache.values[layer] = k, v
    else:
        cache.keys.append(k)
        cache.values.append(v)


def finish_cache(cache: Any, plan: AttentionPlan) -> None:
    """Record the mask bookkeeping of this call in ``cache``."""
    cache.cum, cache.valid, cache.next_pos = plan.cum, plan.valid, plan.next_pos
