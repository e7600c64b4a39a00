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

from collections.abc import Callable, Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._attention import KV, AttentionPlan, CachedStack, KVCache, attend
from .cln import ConditionalLayerNorm

__all__ = ["KVCache", "UniLMTransformer", "seq2seq_loss"]


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
        kv: KV | None,
        rot: tuple[Tensor, Tensor] | None,
    ) -> Tensor:
        b, n, d = x.shape
        h = self.norm1(x) if cond is None else self.norm1(x, cond)
        q, k, v = self.qkv(h).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        if rot is not None:
            q, k = _rotate(q, *rot), _rotate(k, *rot)
        p = self.dropout if self.training else 0.0
        x = x + F.dropout(self.proj(attend(q, k, v, mask, kv, p)), p, self.training)
        h = self.norm2(x) if cond is None else self.norm2(x, cond)
        return x + F.dropout(self.ff2(F.gelu(self.ff1(h))), p, self.training)


class UniLMTransformer(CachedStack):
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

    # -- the parts of CachedStack's forward (``forward_hidden`` / ``forward``, documented there:
    # tokens, segments, attn_mask, key_padding_mask, position_ids, cond, cache, bidirectional) --
    def _limits(self) -> tuple[int, int | None]:
        return self.max_len, None

    def _embed(
        self, tokens: Tensor, segments: Tensor | None, plan: AttentionPlan, cond: Tensor | None
    ) -> tuple[Tensor, Any]:
        x = self.token_embedding(tokens)
        if segments is not None:
            x = x + self.segment_embedding(segments.long())
        rot = None
        if self.position_embedding is not None:
            x = x + self.position_embedding(plan.position_ids)
        else:
            ang = plan.position_ids[..., None].float() * self.inv_freq
            rot = (ang.cos()[:, None].to(x.dtype), ang.sin()[:, None].to(x.dtype))  # (B,1,L,D/2)
        return F.dropout(x, self.dropout, self.training), rot

    def _blocks(self) -> Iterable[nn.Module]:
        return self.blocks

    def _final(self, x: Tensor, cond: Tensor | None) -> Tensor:
        return self.final_norm(x) if cond is None else self.final_norm(x, cond)

    def logits(self, hidden: Tensor, cond: Tensor | None = None) -> Tensor:
        """Tied output layer: ``hidden @ Eᵀ + b`` → ``(..., V)``.

        ``cond`` is accepted for the decoder protocol and unused (the final CLN is applied in
        :meth:`forward_hidden`)."""
        return F.linear(hidden, self.token_embedding.weight, self.output_bias)


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
