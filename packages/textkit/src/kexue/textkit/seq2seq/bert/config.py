"""``BertConfig``: the keys of an HF ``config.json`` a BERT-family encoder needs (spec §2.1).

References: transformers ``BertConfig``; google-research/bert ``bert_config.json``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

__all__ = ["ACTIVATIONS", "BertConfig"]

# hidden_act values understood (HF names); "gelu" is the exact erf form.
ACTIVATIONS = ("gelu", "gelu_new", "gelu_pytorch_tanh", "relu", "silu", "swish", "tanh")


@dataclass
class BertConfig:
    """Shape and numerics of a BERT encoder, named as in HF's ``config.json``.

    Defaults are BERT-base's (spec §2.1): 12 layers of width 768, 12 heads, FFN 3072, exact-erf
    GELU, 512 positions, 2 segment rows, LayerNorm eps 1e-12, dropouts 0.1, ``[PAD]`` id 0.
    Only ``position_embedding_type="absolute"`` is supported (others raise).
    """

    vocab_size: int = 21128
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-12
    pad_token_id: int = 0
    position_embedding_type: str = "absolute"

    def __post_init__(self) -> None:
        for name in (
            "vocab_size",
            "hidden_size",
            "num_hidden_layers",
            "num_attention_heads",
            "intermediate_size",
            "max_position_embeddings",
            "type_vocab_size",
        ):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"config {name} must be >= 1, got {getattr(self, name)}")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"config hidden_size {self.hidden_size} is not a multiple of "
                f"num_attention_heads {self.num_attention_heads}"
            )
        if self.hidden_act not in ACTIVATIONS:
            raise ValueError(
                f"config hidden_act must be one of {ACTIVATIONS}, got {self.hidden_act!r}"
            )
        if self.position_embedding_type != "absolute":
            raise ValueError(
                "config position_embedding_type must be 'absolute' (relative_key and "
                f"relative_key_query are not supported), got {self.position_embedding_type!r}"
            )
        if not 0 <= self.pad_token_id < self.vocab_size:
            raise ValueError(
                f"config pad_token_id {self.pad_token_id} outside [0, {self.vocab_size})"
            )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BertConfig:
        """Build from a ``config.json`` dict; unknown keys are ignored, ``null`` means default."""
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known and v is not None}
        return cls(**kwargs)

    @classmethod
    def from_json(cls, path: str | Path) -> BertConfig:
        """Read a ``config.json`` file (or a folder holding one)."""
        p = Path(path)
        if p.is_dir():
            p = p / "config.json"
        return cls.from_dict(json.loads(p.read_text(encoding="utf-8")))

    def to_dict(self) -> dict[str, Any]:
        """The HF ``config.json`` of a ``BertForMaskedLM`` with these settings (spec §7.1)."""
        out: dict[str, Any] = {"architectures": ["BertForMaskedLM"], "model_type": "bert"}
        out.update(asdict(self))
        out["tie_word_embeddings"] = True
        return out

    def to_json(self, path: str | Path) -> None:
        """Write :meth:`to_dict` as JSON."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n", "utf-8")

    @property
    def head_dim(self) -> int:
        """Per-head width ``hidden_size / num_attention_heads``."""
        return self.hidden_size // self.num_attention_heads
