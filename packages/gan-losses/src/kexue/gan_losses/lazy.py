"""StyleGAN2's lazy regularisation: R1 every k minibatches, path-length regularisation.

**Lazy R1.** R1 = (γ/2)·‖∇ₓD(x_real)‖² per sample, evaluated only every ``interval`` = 16
minibatches and multiplied by the interval (``gain``), so its expected gradient equals per-step
regularisation; the lazily regularised net's Adam uses lr·c and betas^c, c = k/(k + 1)
(:func:`lazy_adam_hparams`). γ: 10 (``stylegan2`` config), 1 (``paper256``), 0.01 (``cifar``);
``auto`` 0.0002·res²/minibatch [stylegan2-ada-pytorch ``train.py``].

**Path length.** Every ``G_reg_interval`` = 4 minibatches, on batch/2 samples: y ~ N(0, I)/√(H·W),
g = ∇_w Σ(G(w)·y), ℓ = √(mean over the w layers of Σ over w dims of g²); the running mean
a ← a + 0.01·(mean ℓ − a) (detached, a buffer); loss (ℓ − a)²·``pl_weight`` (2)·interval.
The ``cifar`` config turns it off.

References:
    Karras et al., "Analyzing and Improving the Image Quality of StyleGAN", arXiv 1912.04958
    §3.2 (path length, lazy regularisation); NVlabs/stylegan2-ada-pytorch ``training/loss.py``,
    ``train.py`` (d72cc7d).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from ._validation import Reduction, check_positive
from .penalties import r1_penalty

__all__ = [
    "PathLengthState",
    "lazy_adam_hparams",
    "lazy_r1_penalty",
    "lazy_schedule",
    "path_length_penalty",
]


def _check_interval(interval: int) -> None:
    if not isinstance(interval, int) or interval < 1:
        raise ValueError(f"interval must be an int >= 1, got {interval!r}")


def lazy_schedule(step: int, interval: int) -> bool:
    """Whether minibatch ``step`` (0-based) is a regularisation step: ``step % interval == 0``."""
    _check_interval(interval)
    return step % interval == 0


def lazy_adam_hparams(
    lr: float, betas: tuple[float, float], interval: int
) -> tuple[float, tuple[float, float]]:
    """Adam settings for a lazily regularised net: ``lr·c`` and ``betas^c``, c = k/(k + 1).

    stylegan2-ada applies it to nets with a lazy interval (``reg_interval`` set); e.g.
    ``(2e-3, (0, 0.99), 16)`` → ``(2e-3·16/17, (0, 0.99^(16/17)))``. Use the plain settings
    for a net regularised every step.
    """
    _check_interval(interval)
    c = interval / (interval + 1)
    return lr * c, (betas[0] ** c, betas[1] ** c)


def lazy_r1_penalty(
    real_scores: Tensor,
    x_real: Tensor,
    *,
    interval: int = 16,
    gamma: float = 10.0,
    create_graph: bool = True,
    grad_scaler: Any | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    """R1 for a regularisation step of a lazy schedule: ``interval × (γ/2)·E‖∇ₓD(x)‖²``.

    Call it only when :func:`lazy_schedule` says so; in expectation over the schedule it matches
    :func:`~kexue.gan_losses.r1_penalty` every step. Arguments as ``r1_penalty``;
    ``interval`` = 16 (``D_reg_interval``), γ = 10 (``stylegan2`` config).
    """
    _check_interval(interval)
    plain = r1_penalty(
        real_scores,
        x_real,
        gamma=gamma,
        create_graph=create_graph,
        grad_scaler=grad_scaler,
        reduction=reduction,
    )
    return plain * interval


class PathLengthState(nn.Module):
    """The running mean ``a`` of path lengths, a buffer ``pl_mean`` (fp32 scalar, starts at 0).

    Arguments:
        decay: ``pl_decay`` = 0.01 [stylegan2-ada]; a ← a + decay·(mean ℓ − a).
    """

    pl_mean: Tensor

    def __init__(self, decay: float = 0.01) -> None:
        super().__init__()
        if not 0.0 < decay <= 1.0:
            raise ValueError(f"decay must be in (0, 1], got {decay}")
        self.decay = float(decay)
        self.register_buffer("pl_mean", torch.zeros((), dtype=torch.float32))

    def extra_repr(self) -> str:
        return f"decay={self.decay}"


def path_length_penalty(
    images: Tensor,
    ws: Tensor,
    state: PathLengthState,
    *,
    weight: float = 2.0,
    interval: int = 1,
    generator: torch.Generator | None = None,
    create_graph: bool = True,
) -> Tensor:
    """Path-length penalty ``weight·interval·mean((ℓ − a)²)`` and an update of ``state``.

    Arguments:
        images: ``G(ws)``, ``(B, C, H, W)``, attached to ``ws``.
        ws: the latents G saw, ``(B, w_dim)`` or ``(B, num_ws, w_dim)``, requiring grad.
        state: :class:`PathLengthState` (its mean is updated in place, DDP-averaged).
        weight: ``pl_weight`` = 2 [stylegan2-ada]. interval: the lazy gain (``G_reg_interval``
            = 4 there; 1 = every step).
        generator: seeds the image-space noise y.
        create_graph: keep the graph so the penalty trains G.

    Returns:
        A fp32 scalar. ``state.pl_mean`` holds the updated running mean, which the penalty uses
        (as stylegan2-ada does).
    """
    check_positive(weight, "weight", allow_zero=True)
    _check_interval(interval)
    if images.dim() != 4:
        raise ValueError(f"images must be (B, C, H, W), got shape {tuple(images.shape)}")
    if ws.dim() not in (2, 3) or ws.shape[0] != images.shape[0]:
        raise ValueError(
            f"ws must be (B, w_dim) or (B, num_ws, w_dim) with the images' batch; got ws "
            f"{tuple(ws.shape)} and images {tuple(images.shape)}"
        )
    if not ws.requires_grad:
        raise ValueError("ws does not require grad; G's latents must be part of the graph")
    h, w = images.shape[2], images.shape[3]
    device = generator.device if generator is not None else images.device
    y = torch.randn(images.shape, generator=generator, device=device, dtype=torch.float32)
    y = y.to(images.device) / math.sqrt(h * w)
    (g,) = torch.autograd.grad((images.float() * y).sum(), ws, create_graph=create_graph)
    g = g.float()
    lengths = g.square().sum(-1).mean(1).sqrt() if g.dim() == 3 else g.square().sum(1).sqrt()
    with torch.no_grad():
        batch_mean = lengths.detach().mean()
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(batch_mean)
            batch_mean = batch_mean / dist.get_world_size()
        state.pl_mean.lerp_(batch_mean.to(state.pl_mean.device), state.decay)
    a = state.pl_mean.to(lengths.device)
    return (lengths - a).square().mean() * (weight * interval)
