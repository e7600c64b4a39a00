"""Load HF / Google / bert4keras-era BERT checkpoints into :class:`BertUniLM`, and export back.

:func:`load_bert` reads a folder (``config.json`` + ``model.safetensors`` or
``pytorch_model.bin``, or their ``*.index.json`` shards) without importing ``transformers``;
``.bin`` files go through ``torch.load(weights_only=True)``. :func:`save_bert` writes a folder
that ``transformers.BertForMaskedLM.from_pretrained`` loads with an empty report (spec §7.1).

References: spec §2.2, §2.4, §7.1; bert4keras ``build_transformer_model(..., keep_tokens=)``.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..cln import ConditionalLayerNorm
from .config import BertConfig
from .model import BertUniLM
from .names import normalize_names

__all__ = ["LoadReport", "load_bert", "read_state_dict", "save_bert"]

_WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)


@dataclass
class LoadReport:
    """What :func:`load_bert` did with the checkpoint's tensors.

    Attributes:
        missing: model parameters the checkpoint lacked (initialised as BERT does): with
            ``head="auto"`` and a ``BertModel`` file, the 5 MLM-head tensors.
        unused: checkpoint tensors not loaded (pooler without ``with_pool``, NSP head).
        renamed: ``{checkpoint name: model name}`` for old variants (gamma/beta, decoder bias).
        dropped: tensors consumed on purpose (stale ``position_ids``, tied decoder aliases).
        new: parameters that no checkpoint has (CLN's ``W_γ``, ``W_β``, ``W_h``).
        files: the weight files read.
    """

    missing: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)
    renamed: dict[str, str] = field(default_factory=dict)
    dropped: list[str] = field(default_factory=list)
    new: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)


def _read_file(path: Path) -> dict[str, Tensor]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file  # lazy: only safetensors files need it

        return load_file(str(path))
    return torch.load(path, map_location="cpu", weights_only=True)


def read_state_dict(path: str | Path) -> tuple[dict[str, Tensor], list[str]]:
    """Read a checkpoint's tensors: a weight file, or a folder (safetensors preferred; shards
    through ``*.index.json``'s ``weight_map``). Returns ``(tensors, files read)``."""
    p = Path(path)
    if p.is_dir():
        found = [p / name for name in _WEIGHT_FILES if (p / name).exists()]
        if not found:
            raise FileNotFoundError(f"path {str(p)!r} holds none of {', '.join(_WEIGHT_FILES)}")
        p = found[0]
    if not p.exists():
        raise FileNotFoundError(f"path {str(p)!r} does not exist")
    if p.name.endswith(".index.json"):
        index = json.loads(p.read_text(encoding="utf-8"))
        shards = sorted(set(index["weight_map"].values()))
        state: dict[str, Tensor] = {}
        for shard in shards:
            state.update(_read_file(p.parent / shard))
        return state, [str(p.parent / s) for s in shards]
    return _read_file(p), [str(p)]


def _vocab_pad_id(folder: Path) -> int | None:
    vocab = folder / "vocab.txt"
    if not vocab.exists():
        return None
    for i, line in enumerate(vocab.read_text(encoding="utf-8").splitlines()):
        if line.strip() == "[PAD]":
            return i
    return None


def _keep_rows(state: dict[str, Tensor], keep: Tensor) -> None:
    for key in ("bert.embeddings.word_embeddings.weight", "cls.predictions.bias"):
        if key in state:
            if int(keep.max()) >= state[key].shape[0]:
                raise ValueError(
                    f"keep_tokens reaches id {int(keep.max())} but {key} has "
                    f"{state[key].shape[0]} rows"
                )
            state[key] = state[key].index_select(0, keep)


def load_bert(
    path: str | Path | Mapping[str, Any],
    *,
    config: BertConfig | None = None,
    head: str = "auto",
    keep_tokens: Sequence[int] | None = None,
    with_pool: bool = False,
    cond_dim: int | None = None,
    cond_hidden_units: int | None = None,
    cond_hidden_activation: str | None = None,
    dtype: torch.dtype | None = None,
    strict: bool = True,
) -> tuple[BertUniLM, LoadReport]:
    """Build a :class:`BertUniLM` from a BERT checkpoint (no ``transformers`` import).

    Arguments:
        path: a folder with ``config.json`` and weights, a weight file, or a ``{name: tensor}``
            dict (HF names, or Google TF names as bert4keras reads them; then ``config`` is
            required).
        config: overrides the folder's ``config.json``.
        head: ``"auto"`` (default: the MLM head, initialised and reported missing when the
            file has none), ``"mlm"`` (the file must have it) or ``"none"`` (hidden states only).
        keep_tokens: bert4keras's vocabulary pruning: keep these word-embedding / output-bias
            rows, in this order (e.g. from ``WordPieceTokenizer.simplified``).
        with_pool: load the pooler too (else reported unused).
        cond_dim, cond_hidden_units, cond_hidden_activation: make every LayerNorm conditional
            (zero-initialised maps, reported as new; the model equals the pretrained one at
            init for every condition).
        dtype: cast the model (default float32).
        strict: raise when an encoder tensor is missing (default True).

    Returns:
        ``(model, report)`` with the model in eval mode.

    Raises:
        ValueError naming the key on a shape mismatch, an untied decoder, a missing encoder
        tensor (``strict``), a missing head with ``head="mlm"``; ``FileNotFoundError`` when the
        folder has no weights.

    References: spec §2.2–2.4; bert4keras ``build_transformer_model``.
    """
    if head not in ("auto", "mlm", "none"):
        raise ValueError(f"head must be 'auto', 'mlm' or 'none', got {head!r}")
    report = LoadReport()
    if isinstance(path, Mapping):
        if config is None:
            raise ValueError("config is required when path is a dict of tensors")
        raw = dict(path)
    else:
        folder = Path(path) if Path(path).is_dir() else Path(path).parent
        if config is None:
            config = BertConfig.from_json(folder / "config.json")
        raw, report.files = read_state_dict(path)
        pad = _vocab_pad_id(folder)
        if pad is not None and pad != config.pad_token_id:
            warnings.warn(
                f"config pad_token_id {config.pad_token_id} disagrees with [PAD] at line {pad} "
                "of vocab.txt; using vocab.txt's",
                stacklevel=2,
            )
            config = BertConfig.from_dict({**config.__dict__, "pad_token_id": pad})
    state, report.renamed, report.dropped, report.unused = normalize_names(raw, with_pool=with_pool)
    if head == "none":
        report.unused += sorted(k for k in state if k.startswith("cls."))
        state = {k: v for k, v in state.items() if not k.startswith("cls.")}
    if keep_tokens is not None:
        keep = torch.as_tensor(list(keep_tokens), dtype=torch.long)
        if keep.numel() == 0 or int(keep.min()) < 0:
            raise ValueError("keep_tokens must be a non-empty list of ids >= 0")
        _keep_rows(state, keep)
        kept = keep.tolist()
        pad = kept.index(config.pad_token_id) if config.pad_token_id in kept else 0
        config = BertConfig.from_dict(
            {**config.__dict__, "vocab_size": len(kept), "pad_token_id": pad}
        )
    model = BertUniLM(
        config,
        head="none" if head == "none" else "mlm",
        with_pool=with_pool,
        cond_dim=cond_dim,
        cond_hidden_units=cond_hidden_units,
        cond_hidden_activation=cond_hidden_activation,
    )
    _assign(model, state, report, head=head, strict=strict)
    if dtype is not None:
        model.to(dtype)
    return model.eval(), report


def _assign(
    model: BertUniLM, state: dict[str, Tensor], report: LoadReport, *, head: str, strict: bool
) -> None:
    own = model.state_dict()
    cond_maps = {
        f"{name}.{p}"
        for name, m in model.named_modules()
        if isinstance(m, ConditionalLayerNorm)
        for p, _ in m.named_parameters()
        if p not in ("weight", "bias")
    }
    report.new = sorted(cond_maps)
    for key, value in state.items():
        if key not in own:
            report.unused.append(key)
            continue
        if tuple(value.shape) != tuple(own[key].shape):
            raise ValueError(
                f"checkpoint tensor {key} has shape {tuple(value.shape)}, the model expects "
                f"{tuple(own[key].shape)} (check config.json)"
            )
    missing = sorted(k for k in own if k not in state and k not in cond_maps)
    body = [k for k in missing if not k.startswith("cls.")]
    if body and strict:
        raise ValueError(f"checkpoint lacks encoder tensors: {', '.join(body[:5])}")
    if head == "mlm" and len(missing) > len(body):
        raise ValueError(
            "head='mlm' but the checkpoint has no MLM head (missing "
            f"{', '.join(k for k in missing if k.startswith('cls.'))}); use head='auto'"
        )
    report.missing = missing
    loadable = {k: v for k, v in state.items() if k in own}
    with torch.no_grad():
        for key, value in loadable.items():
            own[key].copy_(value.to(own[key].dtype))


def save_bert(
    model: BertUniLM,
    directory: str | Path,
    tokenizer: Any = None,
    *,
    drop_condition: bool = False,
) -> Path:
    """Write an HF ``BertForMaskedLM`` folder: config.json, model.safetensors (+ tokenizer files).

    ``transformers.BertForMaskedLM.from_pretrained(directory)`` loads it with an empty report
    and gives the same logits; ``load_bert(directory)`` gives a bit-identical model. The pooler
    is not exported. Files are written to temporary names, then renamed.

    Arguments:
        model: a :class:`BertUniLM` with its MLM head.
        directory: target folder (created).
        tokenizer: a :class:`~kexue.textkit.seq2seq.wordpiece.WordPieceTokenizer` (anything with
            ``save_pretrained(dir)`` and ``vocab_size``): vocab.txt and the tokenizer configs.
        drop_condition: a CLN model raises unless True; then its ``γ₀, β₀`` are exported and the
            condition maps dropped (with a warning).

    Returns:
        The folder's path.
    """
    from safetensors.torch import save_file  # lazy: export only

    if model.cls is None:
        raise ValueError("save_bert exports BertForMaskedLM: the model has no MLM head")
    if model.cond_dim is not None:
        if not drop_condition:
            raise ValueError(
                "a Conditional-LayerNorm model has no HF equivalent: pass drop_condition=True to "
                "export its unconditioned γ₀, β₀"
            )
        warnings.warn("save_bert: the CLN condition maps are not exported", stacklevel=2)
    if tokenizer is not None and tokenizer.vocab_size != model.vocab_size:
        raise ValueError(
            f"tokenizer has {tokenizer.vocab_size} tokens, the model {model.vocab_size} rows"
        )
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    skip = ("gamma_dense", "beta_dense", "hidden_dense", "bert.pooler.")
    tensors = {
        k: v.detach().to("cpu", torch.float32).contiguous().clone()
        for k, v in model.state_dict().items()
        if not any(s in k for s in skip)
    }
    cfg = BertConfig.from_dict({**model.config.__dict__, "vocab_size": model.vocab_size})
    tmp = out / ".model.safetensors.tmp"
    save_file(tensors, str(tmp), metadata={"format": "pt"})
    os.replace(tmp, out / "model.safetensors")
    tmp = out / ".config.json.tmp"
    cfg.to_json(tmp)
    os.replace(tmp, out / "config.json")
    if tokenizer is not None:
        tokenizer.save_pretrained(out)
    return out
