"""Checkpoint parameter names → :class:`~kexue.textkit.seq2seq.bert.model.BertUniLM` names.

- HF files (spec §2.2): ``BertForMaskedLM``/``BertForPreTraining`` keys carry ``bert.``,
  ``BertModel`` keys none; old files name LayerNorm parameters ``gamma``/``beta``; stale
  ``position_ids``/``token_type_ids`` buffers are dropped; ``cls.predictions.decoder.weight`` (the
  tied word embedding) is dropped when equal to it and an error otherwise; a lone
  ``cls.predictions.decoder.bias`` becomes ``cls.predictions.bias`` (chinese-roberta-wwm-ext).
- Google TF checkpoint names as bert4keras's ``variable_mapping`` reads them (spec §2.5):
  :func:`tf_to_hf` turns a ``{name: array}`` dict (e.g. read with
  ``tf.train.load_checkpoint(path)``) into HF names, transposing ``kernel`` matrices
  (TF ``[in, out]``) and skipping optimizer slots. Reading ``.ckpt`` files needs TensorFlow and
  is left to the caller.

References: google-research/bert ``modeling.py``; bert4keras ``models.BERT.variable_mapping``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = ["TF_SKIP", "normalize_names", "tf_name_to_hf", "tf_to_hf"]

# Substrings of TF variables that are optimizer state or bookkeeping, never weights.
TF_SKIP = ("adam_m", "adam_v", "global_step", "AdamWeightDecayOptimizer", "lamb_m", "lamb_v")
_BUFFERS = ("position_ids", "token_type_ids")


def tf_name_to_hf(name: str) -> tuple[str, bool] | None:
    """HF name of a Google TF BERT variable and whether its value must be transposed.

    ``None`` for optimizer slots and bookkeeping (:data:`TF_SKIP`).

    >>> tf_name_to_hf("bert/encoder/layer_3/attention/self/query/kernel")
    ('bert.encoder.layer.3.attention.self.query.weight', True)
    >>> tf_name_to_hf("cls/predictions/output_bias")
    ('cls.predictions.bias', False)
    """
    if any(s in name for s in TF_SKIP):
        return None
    if name == "cls/predictions/output_bias":
        return "cls.predictions.bias", False
    if name == "cls/seq_relationship/output_weights":  # already [2, d]: not transposed
        return "cls.seq_relationship.weight", False
    if name == "cls/seq_relationship/output_bias":
        return "cls.seq_relationship.bias", False
    out = re.sub(r"layer_(\d+)", r"layer.\1", name.replace("/", "."))
    transpose = False
    if out.endswith(".gamma"):
        out = out[: -len(".gamma")] + ".weight"
    elif out.endswith(".beta"):
        out = out[: -len(".beta")] + ".bias"
    elif out.endswith(".kernel"):
        out, transpose = out[: -len(".kernel")] + ".weight", True
    elif out.endswith("_embeddings"):
        out = out + ".weight"
    return out, transpose


def tf_to_hf(variables: Mapping[str, Any]) -> dict[str, Tensor]:
    """Rename (and transpose) a Google TF BERT checkpoint's ``{name: array}`` to HF names.

    Optimizer slots are skipped. The result can be passed to
    :func:`~kexue.textkit.seq2seq.bert.checkpoint.load_bert` with a ``config``.
    """
    out: dict[str, Tensor] = {}
    for name, value in variables.items():
        mapped = tf_name_to_hf(name)
        if mapped is None:
            continue
        key, transpose = mapped
        t = value if isinstance(value, Tensor) else torch.from_numpy(np.asarray(value))
        out[key] = t.t().contiguous() if transpose else t
    return out


def normalize_names(
    state: Mapping[str, Tensor], *, with_pool: bool
) -> tuple[dict[str, Tensor], dict[str, str], list[str], list[str]]:
    """HF / TF / old-variant names → ``BertUniLM`` names (see the module docstring).

    Returns ``(state, renamed {old: new}, dropped, unused)``: ``dropped`` are keys consumed on
    purpose (buffers, the tied decoder aliases), ``unused`` keys that were not loaded (the
    pooler without ``with_pool``, the NSP head). Raises ``ValueError`` naming the key when
    ``cls.predictions.decoder.weight`` differs from the word embedding (an untied head) or when
    ``decoder.bias`` and ``cls.predictions.bias`` disagree.
    """
    if any("/" in k for k in state):
        state = tf_to_hf(state)
    renamed: dict[str, str] = {}
    dropped: list[str] = []
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        prefixed = key if key.startswith(("bert.", "cls.")) else "bert." + key
        new = re.sub(r"LayerNorm\.gamma$", "LayerNorm.weight", prefixed)
        new = re.sub(r"LayerNorm\.beta$", "LayerNorm.bias", new)
        if new.rsplit(".", 1)[-1] in _BUFFERS:
            dropped.append(key)
            continue
        if new != prefixed:  # a BertModel file's missing "bert." is not worth reporting
            renamed[key] = new
        out[new] = value
    word = out.get("bert.embeddings.word_embeddings.weight")
    dec_w = out.pop("cls.predictions.decoder.weight", None)
    if dec_w is not None:
        if word is None or dec_w.shape != word.shape or not torch.equal(dec_w, word):
            raise ValueError(
                "cls.predictions.decoder.weight differs from bert.embeddings.word_embeddings."
                "weight: untied MLM decoders are not supported"
            )
        dropped.append("cls.predictions.decoder.weight")
    dec_b = out.pop("cls.predictions.decoder.bias", None)
    if dec_b is not None:
        bias = out.get("cls.predictions.bias")
        if bias is None:
            out["cls.predictions.bias"] = dec_b
            renamed["cls.predictions.decoder.bias"] = "cls.predictions.bias"
        elif bias.shape != dec_b.shape or not torch.equal(bias, dec_b):
            raise ValueError("cls.predictions.decoder.bias differs from cls.predictions.bias")
        else:
            dropped.append("cls.predictions.decoder.bias")
    unused = [k for k in out if k.startswith("cls.seq_relationship.")]
    if not with_pool:
        unused += [k for k in out if k.startswith("bert.pooler.")]
    for k in unused:
        out.pop(k)
    return out, renamed, dropped, sorted(unused)
