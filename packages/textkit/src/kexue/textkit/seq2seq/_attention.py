"""What :class:`~kexue.textkit.seq2seq.transformer.UniLMTransformer` and
:class:`~kexue.textkit.seq2seq.bert.BertUniLM` share (private): the input checks, positions and
the UniLM / causal / bidirectional attention mask of one forward (:func:`plan_attention`), the
:class:`KVCache`, the attention call over cached + new keys (:func:`attend`) and the forward
itself (:class:`CachedStack`: plan → embeddings → blocks → final norm; logits).

The mask key is ``c = cumsum(segments)`` (bert4keras's UniLM mask, a causal mask when every
token is its own segment), continued across cached calls; the key-padding mask is ANDed in.
The cache keeps per-layer key/value buffers with room for ``reserve`` more steps and writes the
new steps in place (growing by doubling when full), so a decoding step copies no past keys.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .masks import check_attention_mask

__all__ = [
    "AttentionPlan",
    "CachedStack",
    "KVCache",
    "attend",
    "check_model_inputs",
    "plan_attention",
]


@dataclass
class KVCache:
    """Per-layer keys/values of the tokens seen so far, plus the mask bookkeeping.

    Attributes:
        keys, values: one ``(B, H, T, D_h)`` tensor per layer (rotary already applied to keys),
            views of preallocated buffers.
        cum: ``(B, T)`` long, ``c = cumsum(segments)`` of the cached tokens (the UniLM mask
            key), continued across calls.
        valid: ``(B, T)`` bool, key-padding mask of the cached tokens.
        next_pos: ``(B,)`` long, position id of each row's next token (= its number of valid
            tokens so far), so right-padded prompts of different lengths continue correctly.
        reserve: time steps to preallocate beyond the first call's (e.g. the decoding
            ``maxlen``; default 0). A full buffer doubles, so any length works; the reserve only
            saves those copies.

    Create an empty one with ``KVCache()``; the models' ``forward`` writes into it in place.
    :meth:`reorder` selects/reorders batch rows (beam search).
    """

    keys: list[Tensor] = field(default_factory=list)
    values: list[Tensor] = field(default_factory=list)
    cum: Tensor | None = None
    valid: Tensor | None = None
    next_pos: Tensor | None = None
    reserve: int = 0
    _buffers: list[tuple[Tensor, Tensor]] = field(default_factory=list, repr=False)

    @property
    def length(self) -> int:
        """Number of cached time steps ``T`` (0 when empty)."""
        return 0 if self.cum is None else self.cum.shape[1]

    @property
    def batch_size(self) -> int | None:
        """Rows in the cache (None when empty)."""
        return None if self.cum is None else self.cum.shape[0]

    def write(self, layer: int, k: Tensor, v: Tensor, start: int) -> tuple[Tensor, Tensor]:
        """Store layer ``layer``'s new ``(B, H, n, D_h)`` keys/values at steps ``[start, start+n)``
        and return its keys/values over steps ``[0, start+n)`` (views: the past is not copied)."""
        end = start + k.shape[2]
        if layer == len(self._buffers):
            self._buffers.append((k[:, :, :0], v[:, :, :0]))
            self.keys.append(k)
            self.values.append(v)
        kb, vb = self._buffers[layer]
        if k.requires_grad or v.requires_grad:  # autograd: no in-place writes, concatenate
            kb, vb = torch.cat((kb[:, :, :start], k), 2), torch.cat((vb[:, :, :start], v), 2)
        else:
            if end > kb.shape[2]:  # first call: room for `reserve` more; later: double
                cap = max(end, 2 * kb.shape[2]) if start else end + max(self.reserve, 0)
                kb, vb = _grown(kb, start, cap), _grown(vb, start, cap)
            kb[:, :, start:end], vb[:, :, start:end] = k, v
        self._buffers[layer] = (kb, vb)
        self.keys[layer], self.values[layer] = kb[:, :, :end], vb[:, :, :end]
        return self.keys[layer], self.values[layer]

    def reorder(self, index: Tensor) -> KVCache:
        """Keep rows ``index`` (``(N,)`` long; repeats allowed) in place, and return ``self``."""
        if self.cum is None:
            return self
        t = self.length
        self._buffers = [
            (k.index_select(0, index), v.index_select(0, index)) for k, v in self._buffers
        ]
        self.keys = [k[:, :, :t] for k, _ in self._buffers]
        self.values = [v[:, :, :t] for _, v in self._buffers]
        self.cum = self.cum.index_select(0, index)
        self.valid = self.valid.index_select(0, index)  # type: ignore[union-attr]
        self.next_pos = self.next_pos.index_select(0, index)  # type: ignore[union-attr]
        return self


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


KV = Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]


def attend(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, kv: KV | None, p: float) -> Tensor:
    """SDPA of ``(B, H, n, D_h)`` queries over the cached + new keys (``kv`` stores the new ones
    and returns all; None = no cache), heads merged back to ``(B, n, H·D_h)``."""
    if kv is not None:
        k, v = kv(k, v)
    a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
    b, h, n, dh = a.shape
    return a.transpose(1, 2).reshape(b, n, h * dh)


class CachedStack(nn.Module):
    """The forward both seq2seq models share (subclasses give the parts).

    A subclass sets ``vocab_size`` and ``cond_dim`` and implements ``_limits() -> (max_len,
    num_segments or None)``, ``_embed(tokens, segments, plan, cond) -> (x, extra)``,
    ``_blocks()`` (each called ``block(x, mask, cond, kv, extra)``), ``_final(x, cond)`` and
    :meth:`logits`.
    """

    vocab_size: int
    cond_dim: int | None

    def _limits(self) -> tuple[int, int | None]:
        raise NotImplementedError

    def _embed(
        self, tokens: Tensor, segments: Tensor | None, plan: AttentionPlan, cond: Tensor | None
    ) -> tuple[Tensor, Any]:
        raise NotImplementedError

    def _blocks(self) -> Iterable[nn.Module]:
        raise NotImplementedError

    def _final(self, x: Tensor, cond: Tensor | None) -> Tensor:
        return x

    def logits(self, hidden: Tensor, cond: Tensor | None = None) -> Tensor:
        raise NotImplementedError

    def forward_hidden(
        self,
        tokens: Tensor,
        segments: Tensor | None = None,
        *,
        attn_mask: Tensor | None = None,
        key_padding_mask: Tensor | None = None,
        position_ids: Tensor | None = None,
        cond: Tensor | None = None,
        cache: KVCache | None = None,
        bidirectional: bool = False,
    ) -> Tensor:
        """Last hidden states ``(B, L, d)``; the arguments are those of :meth:`forward`."""
        max_len, num_segments = self._limits()
        plan = plan_attention(
            tokens,
            segments,
            attn_mask=attn_mask,
            key_padding_mask=key_padding_mask,
            position_ids=position_ids,
            cache=cache,
            cond=cond,
            vocab_size=self.vocab_size,
            cond_dim=self.cond_dim,
            max_len=max_len,
            num_segments=num_segments,
            bidirectional=bidirectional,
        )
        x, extra = self._embed(tokens, segments, plan, cond)
        for i, block in enumerate(self._blocks()):
            kv = None if cache is None else _writer(cache, i, plan.past)
            x = block(x, plan.mask, cond, kv, extra)
        if cache is not None:
            cache.cum, cache.valid, cache.next_pos = plan.cum, plan.valid, plan.next_pos
        return self._final(x, cond)

    def forward(self, tokens: Tensor, segments: Tensor | None = None, **kwargs: Any) -> Tensor:
        """Logits ``(B, L, V)`` at every position: ``logits(forward_hidden(...), cond)``.

        Arguments (keyword-only after ``segments``; see the model class):
            tokens: ``(B, L)`` token ids (with a cache: only the NEW tokens).
            segments: ``(B, L)`` segment ids → UniLM mask ``c[j] <= c[i]`` with
                ``c = cumsum(segments)`` (and segment embeddings); None → causal mask.
            attn_mask: explicit mask instead of the segment/causal one: bool (True = attend) or
                additive, ``(L, T+L)``, ``(B, L, T+L)`` or ``(B, H, L, T+L)`` where ``T`` is the
                cached length; a mismatch raises ``ValueError`` naming both shapes. A bool mask
                is ANDed with the key-padding mask.
            key_padding_mask: ``(B, L)`` bool, True = real token (right padding only; pads are
                never attended to, also later through the cache).
            position_ids: ``(B, L)`` positions (default: continue each row from the cache, i.e.
                ``next_pos + arange(L)``, starting at 0).
            cond: condition for the CLN layers, required iff ``cond_dim`` was set.
            cache: a :class:`KVCache` to read and extend in place (None = no caching).
            bidirectional: every query sees every valid key (BERT's encoder mask) instead of
                the UniLM / causal mask.
        """
        return self.logits(self.forward_hidden(tokens, segments, **kwargs), kwargs.get("cond"))


def _grown(buf: Tensor, keep: int, cap: int) -> Tensor:
    out = buf.new_empty(buf.shape[0], buf.shape[1], cap, buf.shape[3])
    out[:, :, :keep] = buf[:, :, :keep]
    return out


def _writer(cache: KVCache, layer: int, start: int) -> KV:
    return lambda k, v: cache.write(layer, k, v, start)
