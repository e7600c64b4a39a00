"""BERT-family checkpoints in the seq2seq stack: an HF-named post-LN encoder usable as a UniLM,
loading and export.

- :mod:`.config` — ``BertConfig`` (HF ``config.json`` keys).
- :mod:`.model` — ``BertUniLM``: embeddings, post-LN layers, tied MLM head; UniLM / causal /
  bidirectional masks, ``KVCache``, Conditional LayerNorm on every LN.
- :mod:`.names` — HF / old-variant / Google TF parameter names → ``BertUniLM`` names.
- :mod:`.checkpoint` — ``load_bert`` (safetensors / ``.bin`` / shards / dicts, ``keep_tokens``),
  ``save_bert`` (an HF ``BertForMaskedLM`` folder), ``LoadReport``.
"""

from __future__ import annotations

from .checkpoint import LoadReport, load_bert, read_state_dict, save_bert
from .config import BertConfig
from .model import BertUniLM
from .names import tf_name_to_hf, tf_to_hf

__all__ = [
    "BertConfig",
    "BertUniLM",
    "LoadReport",
    "load_bert",
    "read_state_dict",
    "save_bert",
    "tf_name_to_hf",
    "tf_to_hf",
]
