"""Depth-based layer decay (BEiT / timm ``param_groups_layer_decay``) on the rule groups."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from kexue.keras_compat import Rule, default_layer_depth, layer_decay_scales, param_groups


class _Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(4)
        self.mlp = nn.Linear(4, 4)


class _ViT(nn.Module):
    def __init__(self, depth: int = 3) -> None:
        super().__init__()
        self.patch_embed = nn.Linear(6, 4)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, 4))
        self.pos_embed = nn.Parameter(torch.zeros(1, 5, 4))
        self.blocks = nn.ModuleList(_Block() for _ in range(depth))
        self.norm = nn.LayerNorm(4)
        self.head = nn.Linear(4, 3)


def _scales(groups: list[dict]) -> dict[str, float]:
    return {n: g["lr_scale"] for g in groups for n in g["param_names"]}


def test_vit_scales_follow_timm_layer_ids() -> None:
    decay, model = 0.75, _ViT(depth=3)
    num_layers = len(model.blocks) + 1  # timm: layer_scales[i] = decay ** (num_layers - i)
    scales = _scales(param_groups(model, layer_decay=decay))
    for name, _ in model.named_parameters():
        if name.startswith(("patch_embed", "cls_token", "pos_embed")):
            layer_id = 0
        elif name.startswith("blocks."):
            layer_id = int(name.split(".")[1]) + 1
        else:
            layer_id = num_layers
        assert scales[name] == pytest.approx(decay ** (num_layers - layer_id), rel=1e-15), name
    assert scales["head.weight"] == 1.0 and scales["cls_token"] == pytest.approx(decay**4)


def test_default_depth_of_common_names() -> None:
    cases = {
        "bert.embeddings.word_embeddings.weight": 0,
        "bert.encoder.layer.0.attention.self.query.weight": 1,
        "bert.encoder.layer.11.output.dense.bias": 12,
        "bert.pooler.dense.weight": None,
        "classifier.weight": None,
        "transformer.wte.weight": 0,
        "transformer.h.5.mlp.c_fc.weight": 6,
        "model.embed_tokens.weight": 0,
        "model.layers.2.self_attn.q_proj.weight": 3,
        "blocks.7.attn.qkv.weight": 8,
        "head.weight": None,
        "norm.weight": None,
    }
    assert {n: default_layer_depth(n) for n in cases} == cases


def test_override_and_composition_with_rules_and_no_decay() -> None:
    model = _ViT(depth=2)

    def depth_fn(name: str) -> int | None:  # everything but the head at depth 0
        return None if name.startswith("head") else 0

    groups = param_groups(
        model, [Rule(name=r"^head\.", lr_scale=10.0)], layer_decay=0.5, depth_fn=depth_fn,
        weight_decay=0.05,
    )  # fmt: skip
    scales = _scales(groups)
    assert scales["head.weight"] == 10.0
    assert scales["blocks.1.mlp.weight"] == 0.5
    wd = {n: g.get("weight_decay") for g in groups for n in g["param_names"]}
    assert wd["blocks.1.mlp.weight"] == 0.05 and wd["blocks.1.mlp.bias"] == 0.0
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    assert layer_decay_scales(["a", "b"], 0.5) == {"a": 1.0, "b": 1.0}  # no depth found: all top


@pytest.mark.parametrize("bad", [0.0, 1.5, float("nan"), True])
def test_bad_layer_decay(bad) -> None:
    with pytest.raises(ValueError, match="layer_decay"):
        param_groups(_ViT(), layer_decay=bad)
    with pytest.raises(ValueError, match="depth_fn"):
        layer_decay_scales(["x"], 0.5, depth_fn=lambda n: -1)
