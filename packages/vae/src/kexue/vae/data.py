"""Digits data for the benchmarks, demo and tests: scikit-learn's 8×8 ``load_digits``.

1797 images with 17 grey levels (0..16), split by ``train_test_split(test_size=0.2,
random_state=0)`` (1437 train / 360 test), the split of ``kexue-flows``. scikit-learn is needed
only here: install the ``digits`` extra (``pip install "kexue-vae[digits]"``).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from ._validation import check_int

__all__ = ["DigitsSplit", "binarize", "load_digits_split", "random_shift", "scale"]

N_LEVELS = 17


class DigitsSplit(NamedTuple):
    """``(x_train, y_train, x_test, y_test)``: int64 pixels ``(N, 1, 8, 8)`` in 0..16, int64 labels."""

    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor


def load_digits_split(test_size: float = 0.2, random_state: int = 0) -> DigitsSplit:
    """scikit-learn digits as integer tensors, split like ``kexue-flows`` (1437 / 360 by default)."""
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            'kexue.vae.data needs scikit-learn: pip install "kexue-vae[digits]"'
        ) from exc
    data = load_digits()
    xtr, xte, ytr, yte = train_test_split(
        data.images, data.target, test_size=test_size, random_state=random_state
    )

    def img(a):
        return torch.as_tensor(a, dtype=torch.int64).reshape(-1, 1, 8, 8)

    return DigitsSplit(img(xtr), torch.as_tensor(ytr), img(xte), torch.as_tensor(yte))


def scale(x_int: Tensor) -> Tensor:
    """Pixels 0..16 → [0, 1] (``x/16``, the scaling of spec §5), float32."""
    return x_int.to(torch.float32) / (N_LEVELS - 1)


def binarize(x_int: Tensor, threshold: int = 8) -> Tensor:
    """Binary images ``x ≥ threshold`` (default 8, half of the range), float32."""
    return (x_int >= threshold).to(torch.float32)


def random_shift(
    x: Tensor, max_shift: int = 1, *, generator: torch.Generator | None = None
) -> Tensor:
    """Translate each image by an integer offset in [−max_shift, max_shift]² with zero fill.

    Arguments:
        x: ``(B, C, H, W)``.
        max_shift: largest offset in pixels (1 by default: 9 offsets on 8×8 digits).
        generator: for the offsets.
    """
    s = check_int(max_shift, "max_shift", minimum=0)
    if s == 0:
        return x
    b, _, h, w = x.shape
    padded = F.pad(x, (s, s, s, s))
    off = torch.randint(0, 2 * s + 1, (b, 2), generator=generator)
    rows = (off[:, 0, None] + torch.arange(h)[None]).to(x.device)  # (B, H)
    cols = (off[:, 1, None] + torch.arange(w)[None]).to(x.device)  # (B, W)
    bi = torch.arange(b, device=x.device)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[bi, rows[:, :, None], cols[:, None, :]]
    return out.permute(0, 3, 1, 2)
