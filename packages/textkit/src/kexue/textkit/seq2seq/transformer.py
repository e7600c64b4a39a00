"""A compact UniLM-style Transformer: one stack for LM, seq2seq and conditional generation.

Pre-LN blocks (``x + Attn(LN(x))``, ``x + FFN(LN(x))``, a final LN before the tied output
embedding). Pre-LN, not BERT's post-LN, because this model is trained from scratch on a CPU: pre-LN
keeps the residual path an identity at init, trains stably without a learning-rate warm-up and
tolerates larger rates (Xiong et al., arXiv:2002.04745). With ``cond_dim`` set, EVERY LayerNorm
(both per block and the final one) is a :class:`~kexue.textkit.seq2seq.cln.ConditionalLayerNorm` fed the
same condition, as bert4keras's ``layer_norm_cond`` does (spec §2.8); at init the model is then
exactly the unconditioned one.

Attention masks (see :mod:`kexue.textkit.seq2seq.masks`): with ``segments`` the UniLM mask
``c[j] <= c[i]`` (``c = cumsum(segments)``), without them a causal mask; the key-padding mask is
always ANDed in. Incremental decoding feeds only the new tokens with a :class:`KVCache`, which keeps
per-layer keys and values and the mask bookkeeping (cumulative segment count ``c``, key validity
and the next position of each row), so cached and full recomputation see the same mask and
positions.

References: UniLM arXiv:1905.03197; https://kexue.fm/archives/6933 (UniLM with bert4keras);
https://kexue.fm/archives/7124 (conditional LN); RoFormer arXiv:2104.09864 (rotary positions);
spec §2.5 (loss).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._attention import finish_cache, plan_attention, store_cache
from .cln import ConditionalLayerNorm

__all__ = ["KVCache", "UniLMTransformer", "seq2seq_loss"]


@dataclass
class KVCache:
    """Per-layer keys/values of the tokens seen so far, plus the mask bookkeeping.

    Attributes:
        keys, values: one ``(B, H, T, D_h)`` tensor per layer (rotary already applied to keys).
        cum: ``(B, T)`` long, ``c = cumsum(segments)`` of the cached tokens (the UniLM mask
            key), continued across calls.
        valid: ``(B, T)`` bool, key-padding mask of the cached tokens.
        next_pos: ``(B,)`` long, position id of each row's next token (= its number of valid
            tokens so far), so right-padded prompts of different lengths continue correctly.

    Create an empty one with ``KVCache()``; :meth:`UniLMTransformer.forward` appends to it in
    place. :meth:`reorder` selects/reorders batch rows (beam search).
    """

    keys: list[Tensor] = field(default_factory=list)
    values: list[Tensor] = field(default_factory=list)
    cum: Tensor | None = None
    valid: Tensor | None = None
    next_pos: Tensor | None = None

    @property
    def length(self) -> int:
        """Number of cached time steps ``T`` (0 when empty)."""
        return 0 if self.cum is None else self.cum.shape[1]

    @property
    def batch_size(self) -> int | None:
        """Rows in the cache (None when empty)."""
        return None if self.cum is None else self.cum.shape[0]

    def reorder(self, index: Tensor) -> KVCache:
        """Keep rows ``index`` (``(N,)`` long; repeats allowed) in place, and return ``self``."""
        if self.cum is None:
            return self
        self.keys = [k.index_select(0, index) for k in self.keys]
        self.values = [v.index_select(0, index) for v in self.values]
        self.cum = self.cum.index_select(0, index)
        self.valid = self.valid.index_select(0, index)  # type: ignore[union-attr]
        self.next_pos = self.next_pos.index_select(0, index)  # type: ignore[union-attr]
        return self


def _rotate(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)


class _Block(nn.Module):
    def __init__(
        self, dim: int, heads: int, ffn_dim: int, dropout: float, norm: Callable[[], nn.Module]
    ) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = norm()
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = norm()
        self.ff1 = nn.Linear(dim, ffn_dim)
        self.ff2 = nn.Linear(ffn_dim, dim)
        self.dropout = dropout

    def forward(
        self,
        x: Tensor,
        mask: Tensor | None,
        cond: Tensor | None,
        rot: tuple[Tensor, Tensor] | None,
        past: tuple[Tensor, Tensor] | None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        b, n, d = x.shape
        h = self.norm1(x) if cond is None else self.norm1(x, cond)
        q, k, v = self.qkv(h).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        if rot is not None:
            q, k = _rotate(q, *rot), _rotate(k, *rot)
        if past is not None:
            k = torch.cat((past[0], k), dim=2)
            v = torch.cat((past[1], v), dim=2)
        p = self.dropout if self.training else 0.0
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        a = a.transpose(1, 2).reshape(b, n, d)
        x = x + F.dropout(self.proj(a), p, self.training)
        h = self.norm2(x) if cond is None else self.norm2(x, cond)
        x = x + F.dropout(self.ff2(F.gelu(self.ff1(h))), p, self.training)
        return x, k, v


class UniLMTransformer(nn.Module):
    """Pre-LN Transformer with token + segment embeddings, UniLM masks, optional CLN, KV cache.

    Arguments:
        vocab_size: vocabulary size ``V``.
        dim: model width ``d`` (divisible by ``heads``; by ``2·heads`` for rotary).
        depth: number of blocks.
        heads: attention heads.
        max_len: longest position (learned table size; rotary only checks it).
        positions: ``"learned"`` (BERT/GPT-2 absolute table, default) or ``"rotary"``
            (RoFormer, base 10000, applied to queries and keys).
        cond_dim: if set, every LayerNorm is a ConditionalLayerNorm on a ``(B, cond_dim)`` or
            ``(B, L, cond_dim)`` condition passed as ``cond=``.
        cond_hidden_units, cond_hidden_activation: ConditionalLayerNorm's hidden Dense (spec §2.8).
        num_segments: segment-embedding rows (2: source/target).
        ffn_dim: feed-forward width (default ``4·dim``).
        dropout: dropout on attention probabilities and residual branches (default 0).
        eps: LayerNorm epsilon (default 1e-12, bert4keras/BERT).

    The output layer is tied to the token embedding (``logits = h·Eᵀ + b``). Parameters start as
    GPT-2: normal(0, 0.02) weights, zero biases.

    References: UniLM arXiv:1905.03197; https://kexue.fm/archives/6933; pre-LN arXiv:2002.04745.
    """

    def __init__(
        self,
        vocab_size: int,
        *,
        dim: int = 256,
        depth: int = 4,
        heads: int = 4,
        max_len: int = 512,
        positions: str = "learned",
        cond_dim: int | None = None,
        cond_hidden_units: int | None = None,
        cond_hidden_activation: str | None = None,
        num_segments: int = 2,
        ffn_dim: int | None = None,
        dropout: float = 0.0,
        eps: float = 1e-12,
    ) -> None:
        super().__init__()
        if vocab_size < 2 or dim < 1 or depth < 1 or heads < 1 or max_len < 1:
            raise ValueError(
                f"vocab_size >= 2 and dim, depth, heads, max_len >= 1 required, got vocab_size="
                f"{vocab_size}, dim={dim}, depth={depth}, heads={heads}, max_len={max_len}"
            )
        if positions not in ("learned", "rotary"):
            raise ValueError(f"positions must be 'learned' or 'rotary', got {positions!r}")
        if dim % heads or (positions == "rotary" and (dim // heads) % 2):
            raise ValueError(f"dim {dim} must split into heads {heads} (even head size for rotary)")
        self.vocab_size, self.dim, self.heads, self.max_len = vocab_size, dim, heads, max_len
        self.positions, self.cond_dim = positions, cond_dim

        def norm() -> nn.Module:
            if cond_dim is None:
                return nn.LayerNorm(dim, eps=eps)
            return ConditionalLayerNorm(
                dim,
                cond_dim,
                hidden_units=cond_hidden_units,
                hidden_activation=cond_hidden_activation,
                eps=eps,
            )

        self.token_embedding = nn.Embedding(vocab_size, dim)
        self.segment_embedding = nn.Embedding(num_segments, dim)
        self.position_embedding = nn.Embedding(max_len, dim) if positions == "learned" else None
        if positions == "rotary":
            hd = dim // heads
            inv = 1.0 / (10000 ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))
            self.register_buffer("inv_freq", inv, persistent=False)
        self.blocks = nn.ModuleList(
            _Block(dim, heads, ffn_dim or 4 * dim, dropout, norm) for _ in range(depth)
        )
        self.final_norm = norm()
        self.output_bias = nn.Parameter(torch.zeros(vocab_size))
        self.dropout = dropout
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=0.02)
                if isinstance(m, nn.Linear) and m.bias is not None:
                    nn.init.zeros_(m.bias)
        for m in self.modules():  # CLN's condition maps start at zero (spec §2.8)
            if isinstance(m, ConditionalLayerNorm):
                m.reset_condition_()

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
    ) -> Tensor:
        """Final-normalised hidden states ``(B, L, dim)``; arguments as :meth:`forward`."""
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
            max_len=self.max_len,
        )
        position_ids, mask, past = plan.position_ids, plan.mask, plan.past

        x = self.token_embedding(tokens)
        if segments is not None:
            x = x + self.segment_embedding(segments.long())
        rot = None
        if self.position_embedding is not None:
            x = x + self.position_embedding(position_ids)
        else:
            ang = position_ids[..., None].float() * self.inv_freq
            rot = (ang.cos()[:, None].to(x.dtype), ang.sin()[:, None].to(x.dtype))  # (B,1,L,D/2)
        x = F.dropout(x, self.dropout, self.training)
        for i, block in enumerate(self.blocks):
            kv = (cache.keys[i], cache.values[i]) if past else None
            x, k, v = block(x, mask, cond, rot, kv)
            if cache is not None:
                store_cache(cache, plan, i, k, v)
        if cache is not None:
            finish_cache(cache, plan)
        return self.final_norm(x) if cond is None else self.final_norm(x, cond)

    def logits(self, hidden: Tensor, cond: Tensor | None = None) -> Tensor:
        """Tied output layer: ``hidden @ Eᵀ + b`` → ``(..., V)``.

        ``cond`` is accepted for the decoder protocol and unused (the final CLN is applied in
        :meth:`forward_hidden`)."""
        return F.linear(hidden, self.token_embedding.weight, self.output_bias)

    def forward(
        self,
        tokens: Tensor,
        segments: Tensor | None = None,
        *,
        attn_mask: Tensor | None = None,
        key_padding_mask: Tensor | None = None,
        position_ids: Tensor | None = None,
        cond: Tensor | None = None,
        cache: KVCache | None = None,
    ) -> Tensor:
        """Next-token logits ``(B, L, V)`` for every position.

        Arguments:
            tokens: ``(B, L)`` token ids (with a cache: only the NEW tokens).
            segments: ``(B, L)`` segment ids (0 source, 1 target) → UniLM mask and segment
                embeddings; None → causal mask, no segment embedding.
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

        Returns:
            Logits ``(B, L, V)``.
        """
        hidden = self.forward_hidden(
            tokens,
            segments,
            attn_mask=attn_mask,
            key_padding_mask=key_padding_mask,
            position_ids=position_ids,
            cond=cond,
            cache=cache,
        )
        return self.logits(hidden)


def seq2seq_loss(logits: Tensor, tokens: Tensor, segments: Tensor) -> Tensor:
    """UniLM seq2seq loss: CE of ``logits[:, :-1]`` vs ``tokens[:, 1:]`` weighted by ``segments[:, 1:]``.

    .. math:: \\mathcal L = \\frac{\\sum_{b,t} s_{b,t+1}\\,\\mathrm{CE}(z_{b,t}, x_{b,t+1})}
              {\\sum_{b,t} s_{b,t+1}}

    Only target tokens (segment 1, including the closing [SEP]) are predicted; the source and
    the right padding (segment 0) carry weight 0.

    Arguments:
        logits: ``(B, L, V)``.
        tokens: ``(B, L)`` token ids.
        segments: ``(B, L)`` segment ids (0/1, or float weights).

    Returns:
        Scalar mean loss over the target tokens.

    References: spec §2.5 "Loss"; bert4keras ``task_seq2seq_autotitle`` CrossEntropy.
    """
    if logits.dim() != 3 or logits.shape[:2] != tokens.shape:
        raise ValueError(
            f"logits shape {tuple(logits.shape)} does not match tokens {tuple(tokens.shape)}"
        )
    if segments.shape != tokens.shape:
        raise ValueError(
            f"segments shape {tuple(segments.shape)} does not match tokens {tuple(tokens.shape)}"
        )
    if tokens.shape[1] < 2:
        raise ValueError(f"tokens needs length >= 2 to predict anything, got {tuple(tokens.shape)}")
    work = logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits
    weight = segments[:, 1:].to(work.dtype)
    total = weight.sum()
    if float(total) <= 0:
        raise ValueError("segments has no target token (sum of segments[:, 1:] is 0)")
    ce = F.cross_entropy(
        work[:, :-1].reshape(-1, logits.shape[-1]),
        tokens[:, 1:].reshape(-1),
        reduction="none",
    ).view_as(weight)
    return (ce * weight).sum() / total
