"""Next-token logits of a :class:`~kexue.textkit.seq2seq.transformer.UniLMTransformer` by full
recomputation over a right-padded batch (the reference the KV-cached decoder is tested against).

Public through :mod:`kexue.textkit.seq2seq.decoding`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["unilm_next_logits"]


@torch.no_grad()
def unilm_next_logits(
    model: nn.Module,
    source: Tensor,
    lengths: Tensor,
    output_ids: Tensor,
    *,
    seq2seq: bool = True,
    cond: Tensor | None = None,
) -> Tensor:
    """Next-token logits after ``source[b, :lengths[b]] + output_ids[b]`` (full recomputation).

    The sequence is ``[source (right-padded), output_ids]`` with the source pads masked as keys,
    segments 0 / 1 (``seq2seq=True``, UniLM) or a causal LM (``seq2seq=False``), and the generated
    tokens at positions ``lengths[b] + t``; so the result equals running each row unpadded.

    Arguments:
        model: the transformer.
        source: ``(N, L)`` right-padded token ids.
        lengths: ``(N,)`` source lengths in ``[1, L]``.
        output_ids: ``(N, t)`` generated tokens so far (``t`` may be 0).
        seq2seq: UniLM segments (True) or causal LM.
        cond: CLN condition ``(N, d_c)`` when the model has ``cond_dim``.

    Returns:
        ``(N, V)`` logits of the next token.
    """
    n, src_len = source.shape
    t = output_ids.shape[1]
    dev = source.device
    valid = torch.arange(src_len, device=dev)[None, :] < lengths[:, None]
    tokens = torch.cat((source, output_ids), dim=1)
    pos = torch.cat(
        (
            torch.arange(src_len, device=dev).expand(n, src_len),
            lengths[:, None] + torch.arange(t, device=dev),
        ),
        dim=1,
    )
    kpm = torch.cat((valid, torch.ones_like(output_ids, dtype=torch.bool)), dim=1)
    segs = None
    if seq2seq:
        segs = torch.cat((torch.zeros_like(source), torch.ones_like(output_ids)), dim=1)
    hidden = model.forward_hidden(tokens, segs, key_padding_mask=kpm, position_ids=pos, cond=cond)
    last = hidden[:, -1] if t else hidden[torch.arange(n, device=dev), lengths - 1]
    return model.logits(last, cond)
