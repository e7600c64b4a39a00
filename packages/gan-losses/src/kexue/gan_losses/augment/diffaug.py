"""DiffAugment: differentiable augmentation applied to real and fake images alike (Zhao et al. 2020).

"Differentiable Augmentation for Data-Efficient GAN Training" (arXiv 2006.10738): the **same
policy T** is applied to reals and fakes in the D step and to fakes in the G step; gradients flow
through T into G. Each call draws fresh per-sample parameters (reals and fakes do not share
draws). Images are NCHW, assumed in [−1, 1].

====================  ==========================================================  ============
op                    effect (one draw per sample)                                default
====================  ==========================================================  ============
brightness            x + u, u ~ U(−0.5, 0.5)                                     —
saturation            (x − mean_C)·u + mean_C, u ~ U(0, 2); mean over channels    —
contrast              (x − mean_CHW)·u + mean_CHW, u ~ U(0.5, 1.5)                —
translation           integer shift in [−s, s] per axis, s = ⌊ratio·size + ½⌋;    ratio 0.125
                      vacated pixels are 0
cutout                zero a square of side ⌊ratio·size + ½⌋, centre uniform,     ratio 0.5
                      clipped at the borders
====================  ==========================================================  ============

Policies: ``"color"`` = brightness → saturation → contrast; ``"color,translation,cutout"`` for
tiny datasets (README); ``"translation,cutout"`` in the BigGAN-CIFAR scripts [code]. The
deterministic forms (``adjust_*``, :func:`translate`, :func:`cutout`) take the parameters
explicitly; the ``rand_*`` ops draw them from a ``torch.Generator``. Index arithmetic is done by
``gather`` and masks, without Python loops over samples.

References:
    Zhao, Liu, Lin, Zhu, Han, arXiv 2006.10738; mit-han-lab/data-efficient-gans
    (``DiffAugment_pytorch.py``, 0b63395).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = [
    "POLICIES",
    "DiffAugment",
    "adjust_brightness",
    "adjust_contrast",
    "adjust_saturation",
    "cutout",
    "diff_augment",
    "rand_brightness",
    "rand_contrast",
    "rand_cutout",
    "rand_saturation",
    "rand_translation",
    "translate",
]


def _check_images(x: object, name: str = "x") -> Tensor:
    if not isinstance(x, Tensor) or x.dim() != 4 or not x.is_floating_point():
        got = (tuple(x.shape), x.dtype) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"{name} must be float images (B, C, H, W), got {got}")
    return x


def _per_sample(u: Tensor | float, x: Tensor) -> Tensor:
    u = torch.as_tensor(u, dtype=x.dtype, device=x.device)
    return u.view(-1, 1, 1, 1) if u.dim() == 1 else u


def _uniform(x: Tensor, lo: float, hi: float, generator: torch.Generator | None) -> Tensor:
    device = generator.device if generator is not None else x.device
    u = torch.rand(x.shape[0], generator=generator, device=device, dtype=torch.float32)
    return (lo + (hi - lo) * u).to(x.device, x.dtype)


def _randint(n: int, lo: int, hi: int, x: Tensor, generator: torch.Generator | None) -> Tensor:
    device = generator.device if generator is not None else x.device
    return torch.randint(lo, hi, (n,), generator=generator, device=device).to(x.device)


def adjust_brightness(x: Tensor, u: Tensor | float) -> Tensor:
    """``x + u`` with ``u`` per sample ``(B,)`` or a scalar."""
    return x + _per_sample(u, x)


def adjust_saturation(x: Tensor, u: Tensor | float) -> Tensor:
    """``(x − mean_C)·u + mean_C`` (mean over channels per pixel)."""
    mean = x.mean(dim=1, keepdim=True)
    return (x - mean) * _per_sample(u, x) + mean


def adjust_contrast(x: Tensor, u: Tensor | float) -> Tensor:
    """``(x − mean_CHW)·u + mean_CHW`` (mean over each whole image)."""
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * _per_sample(u, x) + mean


def translate(x: Tensor, shift_h: Tensor, shift_w: Tensor) -> Tensor:
    """Shift each image by integers ``(shift_h[b], shift_w[b])``: out[i, j] = x[i + s_h, j + s_w].

    Pixels whose source lies outside the image are 0 (DiffAugment's zero padding).
    """
    b, c, h, w = x.shape
    rows = torch.arange(h, device=x.device)[None, :] + shift_h.view(-1, 1).to(x.device)
    cols = torch.arange(w, device=x.device)[None, :] + shift_w.view(-1, 1).to(x.device)
    valid = ((rows >= 0) & (rows < h))[:, :, None] & ((cols >= 0) & (cols < w))[:, None, :]
    index = rows.clamp(0, h - 1)[:, :, None] * w + cols.clamp(0, w - 1)[:, None, :]  # (B, H, W)
    out = x.reshape(b, c, h * w).gather(2, index.view(b, 1, h * w).expand(b, c, h * w))
    return out.view(b, c, h, w) * valid[:, None].to(x.dtype)


def cutout(x: Tensor, centre_h: Tensor, centre_w: Tensor, size: tuple[int, int]) -> Tensor:
    """Zero, per image, the rectangle of ``size`` starting at ``centre − size // 2`` (clipped)."""
    _, _, h, w = x.shape
    lo_h = centre_h.view(-1, 1).to(x.device) - size[0] // 2
    lo_w = centre_w.view(-1, 1).to(x.device) - size[1] // 2
    ar_h, ar_w = torch.arange(h, device=x.device)[None], torch.arange(w, device=x.device)[None]
    in_h = (ar_h >= lo_h) & (ar_h < lo_h + size[0])
    in_w = (ar_w >= lo_w) & (ar_w < lo_w + size[1])
    keep = ~(in_h[:, :, None] & in_w[:, None, :])
    return x * keep[:, None].to(x.dtype)


def rand_brightness(x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Brightness with u ~ U(−0.5, 0.5) per sample."""
    return adjust_brightness(x, _uniform(x, -0.5, 0.5, generator))


def rand_saturation(x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Saturation with u ~ U(0, 2) per sample."""
    return adjust_saturation(x, _uniform(x, 0.0, 2.0, generator))


def rand_contrast(x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Contrast with u ~ U(0.5, 1.5) per sample."""
    return adjust_contrast(x, _uniform(x, 0.5, 1.5, generator))


def rand_translation(
    x: Tensor, ratio: float = 0.125, generator: torch.Generator | None = None
) -> Tensor:
    """Translation by integers in [−s, s] per axis, s = ⌊ratio·size + ½⌋ (ratio 0.125 [code])."""
    sh, sw = int(x.shape[2] * ratio + 0.5), int(x.shape[3] * ratio + 0.5)
    th = _randint(x.shape[0], -sh, sh + 1, x, generator)
    tw = _randint(x.shape[0], -sw, sw + 1, x, generator)
    return translate(x, th, tw)


def rand_cutout(x: Tensor, ratio: float = 0.5, generator: torch.Generator | None = None) -> Tensor:
    """Cutout of side ⌊ratio·size + ½⌋ with a uniform centre (ratio 0.5 [code])."""
    size = (int(x.shape[2] * ratio + 0.5), int(x.shape[3] * ratio + 0.5))
    ch = _randint(x.shape[0], 0, x.shape[2] + (1 - size[0] % 2), x, generator)
    cw = _randint(x.shape[0], 0, x.shape[3] + (1 - size[1] % 2), x, generator)
    return cutout(x, ch, cw, size)


POLICIES: dict[str, tuple[str, ...]] = {
    "color": ("brightness", "saturation", "contrast"),
    "translation": ("translation",),
    "cutout": ("cutout",),
}
"""Policy words and the ops each runs, in order (DiffAugment's ``AUGMENT_FNS``)."""


def _ops(policy: str) -> list[str]:
    words = [w.strip() for w in policy.split(",") if w.strip()]
    for w in words:
        if w not in POLICIES:
            raise ValueError(f"unknown DiffAugment policy word {w!r}; known: {sorted(POLICIES)}")
    return [op for w in words for op in POLICIES[w]]


def diff_augment(
    x: Tensor,
    policy: str = "color,translation,cutout",
    *,
    p: float | Tensor = 1.0,
    translation_ratio: float = 0.125,
    cutout_ratio: float = 0.5,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Apply a DiffAugment policy to images ``(B, C, H, W)``; differentiable in ``x``.

    Arguments:
        x: images in [−1, 1].
        policy: comma-separated words of :data:`POLICIES`; ``""`` is the identity.
        p: probability that each op is applied to each sample (1 = DiffAugment; an
            :class:`~kexue.gan_losses.augment.ADAController`'s ``p`` gates the ops ADA-style). A
            float or a 0-dim tensor (no host sync).
        translation_ratio, cutout_ratio: 0.125 and 0.5 [code].
        generator: seeds every draw; the same seed gives bitwise the same output.

    Returns:
        Augmented images, shape and dtype of ``x``.
    """
    x = _check_images(x)
    ops = _ops(policy)
    gated = not (isinstance(p, (int, float)) and p >= 1)
    for op in ops:
        if op == "brightness":
            y = rand_brightness(x, generator)
        elif op == "saturation":
            y = rand_saturation(x, generator)
        elif op == "contrast":
            y = rand_contrast(x, generator)
        elif op == "translation":
            y = rand_translation(x, translation_ratio, generator)
        else:
            y = rand_cutout(x, cutout_ratio, generator)
        if gated:
            apply = _uniform(x, 0.0, 1.0, generator) < torch.as_tensor(p, device=x.device)
            y = torch.where(apply.view(-1, 1, 1, 1), y, x)
        x = y
    return x


class DiffAugment(nn.Module):
    """One DiffAugment policy, to call on reals and fakes in the D step and on fakes in the G step.

    Holding the policy in one object is what keeps it identical across the three calls. ``p``
    (default 1) may be set each step from an :class:`~kexue.gan_losses.augment.ADAController`.
    """

    def __init__(
        self,
        policy: str = "color,translation,cutout",
        *,
        p: float = 1.0,
        translation_ratio: float = 0.125,
        cutout_ratio: float = 0.5,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        _ops(policy)
        self.policy = policy
        self.p: float | Tensor = p
        self.translation_ratio = translation_ratio
        self.cutout_ratio = cutout_ratio
        self.generator = generator

    def forward(self, x: Tensor) -> Tensor:
        return diff_augment(
            x,
            self.policy,
            p=self.p,
            translation_ratio=self.translation_ratio,
            cutout_ratio=self.cutout_ratio,
            generator=self.generator,
        )

    def extra_repr(self) -> str:
        return f"policy={self.policy!r}"
