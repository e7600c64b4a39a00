"""Input validation shared by every public function of ``kexue.gan_losses``.

Validate once at the public boundary, then trust internal calls. Every error is a ``ValueError``
that names the argument and the shapes involved; nothing is ever broadcast silently (the
``(B, 1)`` against ``(B,)`` bug that turns a per-sample loss into a ``(B, B)`` matrix is the
classic one, fixed by the author of GAN-QP in commit f109699).

The non-finite check on scores and on sample tensors costs one reduction and, on CUDA, one host
sync per checked tensor. It is on by default; switch it off for production loops with
:func:`set_finite_checks` or the environment variable ``KEXUE_GAN_LOSSES_CHECK_FINITE=0``.

Scores in half precision (fp16, bf16) are promoted to fp32 by :func:`as_scores`, so every loss is
computed in fp32 at least, as the gradient penalties are (an LSGAN loss on fp16 scores of 300
would otherwise overflow to inf); the gradient still flows back to the half-precision scores.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import torch
from torch import Tensor

__all__ = ["Reduction", "finite_checks", "set_finite_checks"]

Reduction = Literal["mean", "sum", "none"]
_REDUCTIONS = ("mean", "sum", "none")

_CHECK_FINITE = os.environ.get("KEXUE_GAN_LOSSES_CHECK_FINITE", "1") not in ("0", "false", "False")


def set_finite_checks(enabled: bool) -> bool:
    """Turn the non-finite check on scores on or off globally; returns the previous setting."""
    global _CHECK_FINITE
    previous = _CHECK_FINITE
    _CHECK_FINITE = bool(enabled)
    return previous


@contextmanager
def finite_checks(enabled: bool) -> Iterator[None]:
    """Context manager form of :func:`set_finite_checks`."""
    previous = set_finite_checks(enabled)
    try:
        yield
    finally:
        set_finite_checks(previous)


def finite_checks_enabled() -> bool:
    """Whether the non-finite checks are on (for checks that accumulate on device)."""
    return _CHECK_FINITE


def check_reduction(reduction: str) -> None:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def reduce(loss: Tensor, reduction: str) -> Tensor:
    """Reduce a per-sample loss ``(B,)`` by ``reduction`` (already validated or not)."""
    check_reduction(reduction)
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def check_tensor(x: object, name: str) -> Tensor:
    if not isinstance(x, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    return x


def check_finite(x: Tensor, name: str) -> None:
    if _CHECK_FINITE and x.numel() and not bool(torch.isfinite(x.detach()).all()):
        raise ValueError(
            f"{name} contains non-finite values (inf or NaN); shape {tuple(x.shape)}. "
            "Disable this check with kexue.gan_losses.set_finite_checks(False)."
        )


def as_scores(x: object, name: str) -> Tensor:
    """Return discriminator scores as shape ``(B,)``.

    Accepts ``(B,)`` and ``(B, 1)`` (squeezed explicitly); anything else raises, naming ``name``.
    Integer tensors are rejected (scores are real-valued logits). fp16 / bf16 scores come back as
    fp32 (the losses compute in fp32 at least, like the penalties); fp32 and fp64 are unchanged.
    """
    x = check_tensor(x, name)
    if x.dim() == 2 and x.shape[1] == 1:
        x = x.squeeze(1)
    if x.dim() != 1:
        raise ValueError(
            f"{name} must be discriminator scores of shape (B,) or (B, 1), got shape {tuple(x.shape)}"
        )
    if x.shape[0] == 0:
        raise ValueError(
            f"{name} is empty (shape {tuple(x.shape)}); a batch needs at least one sample"
        )
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    check_finite(x, name)
    return x.to(torch.promote_types(x.dtype, torch.float32))


def check_same_batch(a: Tensor, b: Tensor, name_a: str, name_b: str) -> None:
    """Raise when two tensors paired by index have different batch sizes."""
    if a.shape[0] != b.shape[0]:
        raise ValueError(
            f"{name_a} and {name_b} are paired sample by sample and need the same batch size; "
            f"got {name_a} shape {tuple(a.shape)} and {name_b} shape {tuple(b.shape)}"
        )


def check_batched(x: object, name: str, min_dim: int = 2) -> Tensor:
    """Validate a batched sample tensor ``(B, ...)`` with at least ``min_dim`` dims, finite values."""
    x = check_tensor(x, name)
    if x.dim() < min_dim:
        raise ValueError(
            f"{name} must be a batch of shape (B, ...) with at least {min_dim} dims, "
            f"got shape {tuple(x.shape)}"
        )
    if x.shape[0] == 0:
        raise ValueError(f"{name} is empty (shape {tuple(x.shape)})")
    check_finite(x, name)
    return x


def check_paired(
    a: object,
    b: object,
    name_a: str,
    name_b: str,
    *,
    pairing: str = "paired",
    names_in_shapes: bool = False,
) -> tuple[Tensor, Tensor]:
    """Validate two batches paired sample by sample: each ``check_batched``, the same shape.

    ``pairing`` words the error (``"paired"``, ``"interpolated"``); ``names_in_shapes`` puts each
    name before its shape in it.
    """
    a = check_batched(a, name_a)
    b = check_batched(b, name_b)
    if a.shape != b.shape:
        shape_a, shape_b = tuple(a.shape), tuple(b.shape)
        got = (
            f"{name_a} {shape_a} and {name_b} {shape_b}"
            if names_in_shapes
            else f"{shape_a} and {shape_b}"
        )
        raise ValueError(
            f"{name_a} and {name_b} are {pairing} sample by sample and need the same shape; "
            f"got {got}"
        )
    return a, b


def check_positive(value: float, name: str, *, allow_zero: bool = False) -> None:
    ok = value >= 0 if allow_zero else value > 0
    if not ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be {bound}, got {value}")


def signed(x: Tensor, energy: bool) -> Tensor:
    """Map scores to the canonical sign (higher = more real): ``energy=True`` means lower = more real."""
    return -x if energy else x


def per_sample_flat(x: Tensor) -> Tensor:
    """Flatten all non-batch dims: ``(B, ...) -> (B, N)``. Never a per-pixel norm."""
    return x.reshape(x.shape[0], -1)


def reduce_pair(
    real_term: Tensor,
    fake_term: Tensor,
    reduction: str,
    *,
    real_name: str = "real_scores",
    fake_name: str = "fake_scores",
    scale: float = 1.0,
) -> Tensor:
    """Combine a real term ``(B_r,)`` and a fake term ``(B_f,)`` under ``reduction``.

    ``mean``: ``scale·(mean(real) + mean(fake))``; ``sum``: ``scale·(sum(real) + sum(fake))``;
    ``none``: ``scale·(real[i] + fake[i])``, which needs ``B_r == B_f``.
    """
    check_reduction(reduction)
    if reduction == "none":
        if real_term.shape[0] != fake_term.shape[0]:
            raise ValueError(
                f"reduction='none' returns one value per pair ({real_name}[i], {fake_name}[i]) and "
                f"needs equal batch sizes; got {real_name} batch {real_term.shape[0]} and "
                f"{fake_name} batch {fake_term.shape[0]}. Use reduction='mean' or 'sum'."
            )
        out = real_term + fake_term
    elif reduction == "mean":
        out = real_term.mean() + fake_term.mean()
    else:
        out = real_term.sum() + fake_term.sum()
    return out * scale if scale != 1.0 else out


def signed_pair(real_scores: Tensor, fake_scores: Tensor, energy: bool) -> tuple[Tensor, Tensor]:
    r = signed(as_scores(real_scores, "real_scores"), energy)
    f = signed(as_scores(fake_scores, "fake_scores"), energy)
    return r, f
