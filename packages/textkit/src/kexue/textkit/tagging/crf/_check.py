"""The CRF's checked entry: validate once, in the caller's layout, then hand trusted tensors on.

:func:`check_inputs` runs the shape / dtype checks eagerly (no synchronisation) with messages in
the caller's own layout — ``(T, B, K)`` for a time-major ``CRF(batch_first=False)`` — *before*
any transpose, registers the value checks (mask layout, tag range, finite emissions and
parameters, each named) on a :class:`~kexue.textkit.tagging._checks.DeviceChecks`, and returns the
batch-first tensors the cores trust. The caller reads the checks back once.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .._checks import DeviceChecks, require_prefix_mask

__all__ = ["Prepared", "check_inputs", "require_finite_params"]


@dataclass
class Prepared:
    """Batch-first inputs of the trusted cores (emissions zeroed at padded steps)."""

    h: Tensor  # (B, T, K), fp32 or wider, 0 at pads
    mask: Tensor  # (B, T) bool
    a: Tensor  # (K, K)
    start: Tensor | None
    end: Tensor | None
    tags: Tensor | None  # (B, T) long, 0 at pads


def _shape(t: object) -> str:
    return str(tuple(t.shape)) if isinstance(t, Tensor) else type(t).__name__


def require_finite_params(checks: DeviceChecks, params: dict[str, Tensor | None]) -> None:
    """Require every parameter to be free of NaN / ±inf (named in the message)."""
    for name, p in params.items():
        if p is not None:
            checks.require(torch.isfinite(p).all(), f"{name} contains NaN or inf")


def check_inputs(
    checks: DeviceChecks,
    emissions: Tensor,
    transitions: Tensor,
    mask: Tensor | None,
    start: Tensor | None,
    end: Tensor | None,
    tags: Tensor | None = None,
    *,
    batch_first: bool = True,
    num_tags: int | None = None,
    names: tuple[str, str, str] = ("transitions", "start", "end"),
) -> Prepared:
    """Validate CRF inputs given in the caller's layout; register value checks on ``checks``.

    Arguments:
        emissions: (B, T, K), or (T, B, K) when ``batch_first`` is False.
        transitions, start, end: the parameters (K, K), (K,), (K,) (start / end optional).
        mask, tags: (B, T) (or (T, B)); mask bool (non-bool is read as ``!= 0``), default all on.
        num_tags: the module's K; emissions must match it (None: K = emissions' last dim).
        names: how the caller calls transitions, start and end (used in messages).

    Returns:
        :class:`Prepared` batch-first tensors, valid once ``checks.read()`` has passed.
    """
    layout, mlayout = ("(B, T, K)", "(B, T)") if batch_first else ("(T, B, K)", "(T, B)")
    if not isinstance(emissions, Tensor) or emissions.dim() != 3:
        raise ValueError(f"emissions must be a {layout} tensor, got shape {_shape(emissions)}")
    if not emissions.is_floating_point():
        raise ValueError(f"emissions must be floating point, got {emissions.dtype}")
    if emissions.numel() == 0:
        raise ValueError(f"emissions must be non-empty {layout}, got shape {_shape(emissions)}")
    k = emissions.shape[-1]
    if num_tags is not None and k != num_tags:
        raise ValueError(
            f"emissions' last dim (K) is {k} but the CRF has num_tags={num_tags} "
            f"(emissions shape {_shape(emissions)}, expected {layout})"
        )
    n_a, n_s, n_e = names
    if not isinstance(transitions, Tensor) or transitions.shape != (k, k):
        raise ValueError(
            f"{n_a} must be (K, K) = ({k}, {k}) for emissions {_shape(emissions)} {layout}, "
            f"got {_shape(transitions)}"
        )
    for name, vec in ((n_s, start), (n_e, end)):
        if vec is not None and vec.shape != (k,):
            raise ValueError(f"{name} must be (K,) = ({k},), got {_shape(vec)}")
    seq_shape = tuple(emissions.shape[:2])
    if mask is not None and tuple(mask.shape) != seq_shape:
        raise ValueError(
            f"mask shape {_shape(mask)} does not match emissions {_shape(emissions)} "
            f"(expected {mlayout} = {seq_shape})"
        )
    if tags is not None:
        if tuple(tags.shape) != seq_shape:
            raise ValueError(
                f"tags shape {_shape(tags)} does not match emissions {_shape(emissions)} "
                f"(expected {mlayout} = {seq_shape})"
            )
        if tags.dtype.is_floating_point or tags.dtype.is_complex or tags.dtype == torch.bool:
            raise ValueError(f"tags must be an integer tensor, got {tags.dtype}")
    # the caller's layout is checked: from here on batch first
    if not batch_first:
        emissions = emissions.transpose(0, 1)
        mask = None if mask is None else mask.transpose(0, 1)
        tags = None if tags is None else tags.transpose(0, 1)
    b, t, _ = emissions.shape
    if mask is None:
        mask = torch.ones(b, t, dtype=torch.bool, device=emissions.device)
    else:
        mask = mask if mask.dtype == torch.bool else mask != 0
        require_prefix_mask(checks, mask, time_major=not batch_first)
    if tags is not None:
        tags = tags.long().masked_fill(~mask, 0)
        checks.require(
            ((tags >= 0) & (tags < k)).all(), f"tags must lie in [0, {k}) at unmasked positions"
        )
    dtype = torch.promote_types(emissions.dtype, torch.float32)
    h = torch.where(mask.unsqueeze(-1), emissions.to(dtype), 0.0)
    lo, hi = h.aminmax()  # NaN propagates; 10× cheaper than isfinite(h).all() on CPU
    checks.require(
        torch.isfinite(lo) & torch.isfinite(hi),
        "emissions contain NaN or inf at unmasked positions",
    )
    require_finite_params(checks, {n_a: transitions, n_s: start, n_e: end})
    return Prepared(
        h=h,
        mask=mask,
        a=transitions.to(dtype),
        start=None if start is None else start.to(dtype),
        end=None if end is None else end.to(dtype),
        tags=tags,
    )
