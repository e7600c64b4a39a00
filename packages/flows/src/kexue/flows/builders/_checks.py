"""Argument checks shared by the NICE, RealNVP and Glow builders (validated once, at the builder)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

__all__ = ["Preset", "check_context_dim", "check_image_shape", "check_preset", "positive"]

Preset = Literal["paper", "su_compat"]


def check_preset(preset: str) -> None:
    if preset not in ("paper", "su_compat"):
        raise ValueError(f"preset must be 'paper' or 'su_compat', got {preset!r}")


def check_image_shape(shape: Sequence[int], factor: int, name: str = "shape") -> tuple[int, ...]:
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"{name} must be (C, H, W), got {shape}")
    if shape[1] % factor or shape[2] % factor:
        raise ValueError(
            f"{name} needs H and W divisible by {factor} for the requested squeezes, got {shape}"
        )
    return shape


def positive(**values: int) -> None:
    for name, v in values.items():
        if not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive int, got {v!r}")


def check_context_dim(context_dim: int) -> None:
    if not isinstance(context_dim, int) or context_dim < 0:
        raise ValueError(f"context_dim must be an int >= 0, got {context_dim!r}")
