"""``BertUniLM``: a post-LN BERT encoder with HF module names, UniLM masks, a KV cache and CLN.

The module tree is HF's ``BertForMaskedLM`` (``bert.embeddings.word_embeddings``, …,
``bert.encoder.layer.N.attention.self.query``, …, ``cls.predictions.transform.dense``,
``cls.predictions.bias``), so loading an HF file is a prefix strip plus a few renames and the
export is the identity (spec §2.4). The forward is BERT's (spec §2.3): word + segment + position
embeddings → LayerNorm, then per layer ``x = LN(x + Attn(x))``, ``x = LN(x + FFN(x))``; the MLM
head is ``LN(act(Dense(h)))·E_wordᵀ + b`` with the word embedding tied. The attention mask is the
one of :class:`~kexue.textkit.seq2seq.transformer.UniLMTransformer` (segment ids → bert4keras's
UniLM mask, no segments → causal), or BERT's bidirectional one with ``bidirectional=True``.
Unlike ``UniLMTransformer`` a segment row is always added (row 0 without ``segments``), as HF does.

References: BERT arXiv:1810.04805; UniLM arXiv:1905.03197; https://kexue.fm/archives/6933
(bert4keras ``application='unilm'``); https://kexue.fm/archives/7124 (conditional LN on every LN).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._attention import KV, AttentionPlan, CachedStack, attend
from ..cln import ConditionalLayerNorm
from .config import BertConfig

__all__ = ["BertUniLM"]


def _activation(name: str) -> Callable[[Tensor], Tensor]:
    if name == "gelu":
        return F.gelu
    if name in ("gelu_new", "gelu_pytorch_tanh"):
        return lambda x: F.gelu(x, approximate="tanh")
    return {"relu": torch.relu, "silu": F.silu, "swish": F.silu, "tanh": torch.tanh}[name]


def _norm(ln: nn.Module, x: Tensor, cond: Tensor | None) -> Tensor:
    return ln(x) if cond is None else ln(x, cond)


def _dropout(x: Tensor, p: float, training: bool) -> Tensor:
    return F.dropout(x, p, True) if training and p > 0 else x


class _Named(nn.Module):
    """A container whose children carry HF's names."""

    def __init__(self, /, **children: nn.Module) -> None:  # "self" is an HF child name
        super().__init__()
        for k, v in children.items():
            self.add_module(k, v)


class _Embeddings(nn.Module):
    def __init__(self, cfg: BertConfig, norm: Callable[[], nn.Module]) -> None:
        super().__init__()
        d = cfg.hidden_size
        self.word_embeddings = nn.Embedding(cfg.vocab_size, d, padding_idx=cfg.pad_token_id)
        self.position_embeddings = nn.Embedding(cfg.max_position_embeddings, d)
        self.token_type_embeddings = nn.Embedding(cfg.type_vocab_size, d)
        self.LayerNorm = norm()


class _Layer(nn.Module):
    def __init__(self, cfg: BertConfig, norm: Callable[[], nn.Module]) -> None:
        super().__init__()
        d, i = cfg.hidden_size, cfg.intermediate_size
        lin = nn.Linear
        attn_self = _Named(query=lin(d, d), key=lin(d, d), value=lin(d, d))
        self.attention = _Named(self=attn_self, output=_Named(dense=lin(d, d), LayerNorm=norm()))
        self.intermediate = _Named(dense=lin(d, i))
        self.output = _Named(dense=lin(i, d), LayerNorm=norm())
        self.heads = cfg.num_attention_heads
        self.act = _activation(cfg.hidden_act)
        self.p_attn, self.p_hidden = cfg.attention_probs_dropout_prob, cfg.hidden_dropout_prob

    def forward(
        self, x: Tensor, mask: Tensor | None, cond: Tensor | None, kv: KV | None, _: Any = None
    ) -> Tensor:
        b, n, d = x.shape
        sa = self.attention.self

        def heads(t: Tensor) -> Tensor:
            return t.view(b, n, self.heads, d // self.heads).transpose(1, 2)

        p = self.p_attn if self.training else 0.0
        a = attend(heads(sa.query(x)), heads(sa.key(x)), heads(sa.value(x)), mask, kv, p)
        out = self.attention.output
        x = _norm(out.LayerNorm, x + _dropout(out.dense(a), self.p_hidden, self.training), cond)
        h = self.output.dense(self.act(self.intermediate.dense(x)))
        return _norm(self.output.LayerNorm, x + _dropout(h, self.p_hidden, self.training), cond)


class BertUniLM(CachedStack):
    """BERT encoder + tied MLM head with HF parameter names, usable as a UniLM (spec §2.4).

    Arguments:
        config: a :class:`~kexue.textkit.seq2seq.bert.config.BertConfig`.
        head: ``"mlm"`` (default) builds the MLM head (``cls.predictions``), ``"none"`` gives
            hidden states only (:meth:`logits` raises).
        with_pool: also build the pooler (``bert.pooler.dense``, tanh on ``[CLS]``).
        cond_dim: if set, EVERY LayerNorm (embeddings, both per layer, the MLM transform) is a
            :class:`~kexue.textkit.seq2seq.cln.ConditionalLayerNorm` on a ``(B, cond_dim)`` or
            ``(B, L, cond_dim)`` condition; its ``W_γ, W_β`` start at zero, so a loaded
            pretrained model is unchanged at step 0 for every condition (bert4keras
            ``layer_norm_cond``).
        cond_hidden_units, cond_hidden_activation: CLN's optional hidden Dense.

    Parameters start as HF's ``_init_weights``: ``N(0, initializer_range)`` weights and
    embeddings (the ``[PAD]`` row zero), zero biases, LayerNorm γ = 1, β = 0.

    It implements the decoder protocol of :class:`~kexue.textkit.seq2seq.decoding.UniLMDecoder`
    (``vocab_size``, ``forward_hidden``, ``logits``) with :class:`KVCache`.

    References: BERT arXiv:1810.04805; https://kexue.fm/archives/6933; spec §2.3–2.4.
    """

    def __init__(
        self,
        config: BertConfig,
        *,
        head: str = "mlm",
        with_pool: bool = False,
        cond_dim: int | None = None,
        cond_hidden_units: int | None = None,
        cond_hidden_activation: str | None = None,
    ) -> None:
        super().__init__()
        if head not in ("mlm", "none"):
            raise ValueError(f"head must be 'mlm' or 'none', got {head!r}")
        self.config, self.cond_dim, self.head = config, cond_dim, head
        d, eps = config.hidden_size, config.layer_norm_eps

        def norm() -> nn.Module:
            if cond_dim is None:
                return nn.LayerNorm(d, eps=eps)
            return ConditionalLayerNorm(
                d,
                cond_dim,
                hidden_units=cond_hidden_units,
                hidden_activation=cond_hidden_activation,
                eps=eps,
            )

        layers = nn.ModuleList(_Layer(config, norm) for _ in range(config.num_hidden_layers))
        body = {"embeddings": _Embeddings(config, norm), "encoder": _Named(layer=layers)}
        if with_pool:
            body["pooler"] = _Named(dense=nn.Linear(d, d))
        self.bert = _Named(**body)
        self.cls: nn.Module | None = None
        if head == "mlm":
            transform = _Named(dense=nn.Linear(d, d), LayerNorm=norm())
            predictions = _Named(transform=transform)
            predictions.bias = nn.Parameter(torch.zeros(config.vocab_size))
            self.cls = _Named(predictions=predictions)
        self.act = _activation(config.hidden_act)
        self.reset_parameters()

    # -- sizes ----------------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        """Rows of the word embedding (the output size of :meth:`logits`)."""
        return self.bert.embeddings.word_embeddings.num_embeddings

    @property
    def with_pool(self) -> bool:
        """Whether the pooler exists."""
        return hasattr(self.bert, "pooler")

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """HF's BERT init (see the class), CLN condition maps zero."""
        std = self.config.initializer_range
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=std)
                if isinstance(m, nn.Linear) and m.bias is not None:
                    nn.init.zeros_(m.bias)
                if isinstance(m, nn.Embedding) and m.padding_idx is not None:
                    m.weight[m.padding_idx].zero_()
            elif isinstance(m, (nn.LayerNorm, ConditionalLayerNorm)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        for m in self.modules():
            if isinstance(m, ConditionalLayerNorm):
                m.reset_condition_()
        if self.cls is not None:
            self.cls.predictions.bias.zero_()

    # -- the parts of CachedStack's forward (``forward_hidden`` / ``forward``: tokens, segments
    # (token types + UniLM mask; None = type 0, causal), attn_mask, key_padding_mask, position_ids,
    # cond, cache, bidirectional = BERT's encoder mask; ``forward_hidden`` gives HF's
    # ``last_hidden_state``, ``forward`` the MLM logits at every position) ----------------------
    def _limits(self) -> tuple[int, int | None]:
        return self.config.max_position_embeddings, self.config.type_vocab_size

    def _embed(
        self, tokens: Tensor, segments: Tensor | None, plan: AttentionPlan, cond: Tensor | None
    ) -> tuple[Tensor, Any]:
        emb = self.bert.embeddings
        types = segments.long() if segments is not None else torch.zeros_like(tokens)
        x = emb.word_embeddings(tokens) + emb.token_type_embeddings(types)
        x = _norm(emb.LayerNorm, x + emb.position_embeddings(plan.position_ids), cond)
        return _dropout(x, self.config.hidden_dropout_prob, self.training), None

    def _blocks(self) -> Iterable[nn.Module]:
        return self.bert.encoder.layer

    def logits(self, hidden: Tensor, cond: Tensor | None = None) -> Tensor:
        """MLM head ``LN(act(Dense(h)))·E_wordᵀ + b`` → ``(..., V)``; ``cond`` for CLN models.

        Pass only the rows that need logits (e.g. the target positions) to save the V-wide
        product; with a ``(B, d_c)`` condition ``hidden`` must keep the batch axis first."""
        if self.cls is None:
            raise ValueError("this model has no MLM head (built with head='none')")
        t = self.cls.predictions.transform
        h = _norm(t.LayerNorm, self.act(t.dense(hidden)), cond)
        return F.linear(h, self.bert.embeddings.word_embeddings.weight, self.cls.predictions.bias)

    def pooled(self, hidden: Tensor) -> Tensor:
        """HF's ``pooler_output``: ``tanh(Dense(hidden[:, 0]))`` (needs ``with_pool=True``)."""
        if not self.with_pool:
            raise ValueError("this model has no pooler (load or build it with with_pool=True)")
        return torch.tanh(self.bert.pooler.dense(hidden[:, 0]))

    def num_parameters(self) -> int:
        """Number of parameters (the tied decoder counted once)."""
        return sum(p.numel() for p in self.parameters())

    def extra_repr(self) -> str:
        c = self.config
        return (
            f"layers={c.num_hidden_layers}, hidden={c.hidden_size}, heads={c.num_attention_heads}, "
            f"vocab={self.vocab_size}, head={self.head!r}, cond_dim={self.cond_dim}, "
            f"params≈{self.num_parameters() / 1e6:.2f}M"
        )
