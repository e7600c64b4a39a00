"""Input-gradient primitive shared by every gradient penalty.

Rules (spec §1.5): gradients come from ``torch.autograd.grad(..., create_graph=True)`` followed by
an ordinary ``backward()`` (never ``backward(create_graph=True)``, unsupported under DDP); under AMP
the gradients of a scaled output are unscaled by ``1 / scaler.get_scale()``; norms are per sample
over all non-batch dims and are formed in fp32.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ._validation import as_scores, check_same_batch, check_tensor, per_sample_flat

__all__ = ["input_gradients", "per_sample_grad_sqnorm"]


def input_gradients(
    outputs: Tensor,
    inputs: Tensor,
    *,
    create_graph: bool = True,
    grad_scaler: Any | None = None,
    outputs_name: str = "outputs",
    inputs_name: str = "inputs",
) -> Tensor:
    """Gradient of ``outputs.sum()`` w.r.t. ``inputs``, shape of ``inputs``, fp32 (fp64 stays fp64).

    Arguments:
        outputs: critic scores ``(B,)`` or ``(B, 1)`` computed from ``inputs``.
        inputs: the tensor the critic saw, ``(B, ...)``; must require grad.
        create_graph: keep the graph so the penalty can be back-propagated (default True).
        grad_scaler: a ``torch.amp.GradScaler`` whose scale was applied to ``outputs``; the
            gradients are divided by ``grad_scaler.get_scale()``. Pass it only if you scaled
            ``outputs`` yourself (``scaler.scale(outputs)``).
    """
    outputs = as_scores(outputs, outputs_name)
    inputs = check_tensor(inputs, inputs_name)
    check_same_batch(outputs, inputs, outputs_name, inputs_name)
    if not inputs.requires_grad:
        raise ValueError(
            f"{inputs_name} does not require grad; call {inputs_name}.requires_grad_() (or pass a "
            "detached leaf with requires_grad=True) before the critic forward"
        )
    if not outputs.requires_grad:
        raise ValueError(f"{outputs_name} does not depend on {inputs_name} through autograd")
    (grads,) = torch.autograd.grad(
        outputs=outputs.sum(),
        inputs=inputs,
        create_graph=create_graph,
        retain_graph=True,
        allow_unused=True,
    )
    if grads is None:
        raise ValueError(f"{outputs_name} does not depend on {inputs_name} through autograd")
    grads = grads.to(torch.promote_types(grads.dtype, torch.float32))  # fp32 at least, keeps fp64
    if grad_scaler is not None:
        scale = grad_scaler.get_scale()
        grads = grads / scale
    return grads


def per_sample_grad_sqnorm(grads: Tensor) -> Tensor:
    """Per-sample squared L2 norm over all non-batch dims, ``(B, ...) -> (B,)``, fp32 at least."""
    grads = grads.to(torch.promote_types(grads.dtype, torch.float32))
    return per_sample_flat(grads).pow(2).sum(dim=1)
