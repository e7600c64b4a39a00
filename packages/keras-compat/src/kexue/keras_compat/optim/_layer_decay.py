"""Depth-based layer-wise learning-rate decay (BEiT; timm ``param_groups_layer_decay``).

A parameter at depth d of a model with L = (deepest block) + 1 gets ``lr_scale = decay^(L − d)``:
embeddings are depth 0, block i is depth i + 1 and everything else (final norm, pooler, head) is
depth L, scale 1. :func:`default_layer_depth` reads the depth from common module names;
``depth_fn`` overrides it.

References:
    Bao et al., "BEiT", arXiv 2106.08254 (layer-wise LR decay); Clark et al., ELECTRA;
    timm ``optim/_param_groups.py`` ``param_groups_layer_decay``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence

__all__ = ["default_layer_depth", "layer_decay_scales"]

DepthFn = Callable[[str], "int | None"]

_BLOCK = re.compile(r"(?:^|\.)(?:layers|layer|blocks|block|h|resblocks)\.(\d+)(?:\.|$)")
_EMBED = re.compile(
    r"(?:^|\.)(?:embeddings?|\w*_embed\w*|\w*_embeddings|cls_token|dist_token|mask_token|"
    r"wte|wpe|embed_tokens|tok_embeddings)(?:\.|$)"
)


def default_layer_depth(name: str) -> int | None:
    """Depth of parameter ``name`` from common naming, or ``None`` for "after the last block".

    ``…layers.N.…``, ``…layer.N.…`` (BERT ``encoder.layer.N``), ``…blocks.N.…``, ``…block.N.…``,
    ``…h.N.…`` (GPT-2), ``…resblocks.N.…`` → N + 1; embeddings (``embeddings``, ``*_embed*``,
    ``cls_token``, ``pos_embed``, ``patch_embed``, ``wte``, ``wpe``, ``embed_tokens``) → 0;
    anything else (final norm, pooler, head) → ``None``, i.e. the top (scale 1).
    """
    m = _BLOCK.search(name)
    if m is not None:
        return int(m.group(1)) + 1
    if _EMBED.search(name):
        return 0
    return None


def layer_decay_scales(
    names: Sequence[str], decay: float, depth_fn: DepthFn | None = None
) -> dict[str, float]:
    """``{name: decay^(L − depth)}`` with L = 1 + the deepest depth found (``None`` → L).

    Arguments:
        names: parameter names.
        decay: layer decay in (0, 1] (BEiT / timm ``layer_decay``, e.g. 0.65 or 0.75).
        depth_fn: ``name -> int | None`` (default :func:`default_layer_depth`).
    """
    if isinstance(decay, bool) or not isinstance(decay, (int, float)) or not 0 < decay <= 1:
        raise ValueError(f"layer_decay: expected a number in (0, 1], got {decay!r}")
    fn = depth_fn or default_layer_depth
    if not callable(fn):
        raise ValueError(f"depth_fn: expected a callable name -> int | None, got {depth_fn!r}")
    depths = {}
    for n in names:
        d = fn(n)
        if d is not None and (isinstance(d, bool) or not isinstance(d, int) or d < 0):
            raise ValueError(f"depth_fn: expected an int >= 0 or None for {n!r}, got {d!r}")
        depths[n] = d
    known = [d for d in depths.values() if d is not None]
    top = max(known) + 1 if known else 0
    return {n: math.pow(decay, top - (top if d is None else d)) for n, d in depths.items()}
