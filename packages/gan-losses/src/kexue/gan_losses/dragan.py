"""DRAGAN: a gradient penalty at points near the real data (Kodali et al. 2017, arXiv 1705.07215).

    P = λ·E[(‖∇D(x̃)‖ − k)²],   x̃ = x + α·(x_p − x),   α ~ U(0, 1) per sample,

with the perturbed point x_p = x + scale·std·δ. The reference code draws δ ~ U[0, 1) elementwise
with the standard deviation of the whole batch tensor (``X + 0.5·X.std()·np.random.random``);
StudioGAN (``WGAN-DRA``) adds the per-sample α and uses λ = 10. The paper states δ ~ N(0, cI),
λ = 10, k = 1 [unverified]; ``noise="gaussian"`` gives that form.

References:
    Kodali, Abernethy, Hays, Kira, "On Convergence and Stability of GANs", arXiv 1705.07215;
    kodalinaveen3/DRAGAN; POSTECH-CVLab/PyTorch-StudioGAN (``cal_dra_penalty``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import torch
from torch import Tensor

from ._validation import Reduction, check_batched, check_positive
from .penalties import gradient_penalty

__all__ = ["dragan_penalty", "dragan_points"]


def _rand(
    shape: tuple[int, ...], like: Tensor, generator: torch.Generator | None, normal: bool
) -> Tensor:
    device = generator.device if generator is not None else like.device
    draw = torch.randn if normal else torch.rand
    return draw(shape, generator=generator, device=device, dtype=torch.float32).to(
        like.device, like.dtype
    )


def dragan_points(
    x_real: Tensor,
    *,
    scale: float = 0.5,
    noise: Literal["uniform", "gaussian"] = "uniform",
    std: Literal["batch", "per_sample"] = "batch",
    generator: torch.Generator | None = None,
) -> Tensor:
    """The points x̃ where DRAGAN penalises, a new leaf with ``requires_grad=True``.

    ``std="batch"`` is the standard deviation of the whole tensor (numpy's, ``ddof=0``, as the
    reference code); ``"per_sample"`` one per sample over its non-batch dims. For uniform noise
    x̃ ∈ [x, x + scale·std) elementwise.
    """
    x = check_batched(x_real, "x_real", min_dim=2).detach()
    check_positive(scale, "scale", allow_zero=True)
    if noise not in ("uniform", "gaussian"):
        raise ValueError(f"noise must be 'uniform' or 'gaussian', got {noise!r}")
    if std not in ("batch", "per_sample"):
        raise ValueError(f"std must be 'batch' or 'per_sample', got {std!r}")
    if std == "batch":
        s = x.std(correction=0)
    else:
        s = x.flatten(1).std(dim=1, correction=0).view(-1, *([1] * (x.dim() - 1)))
    delta = _rand(tuple(x.shape), x, generator, normal=noise == "gaussian")
    alpha = _rand((x.shape[0],) + (1,) * (x.dim() - 1), x, generator, normal=False)
    x_p = x + scale * s * delta
    return (x + alpha * (x_p - x)).requires_grad_(True)


def dragan_penalty(
    critic: Callable[[Tensor], Tensor],
    x_real: Tensor,
    *,
    weight: float = 10.0,
    k: float = 1.0,
    scale: float = 0.5,
    noise: Literal["uniform", "gaussian"] = "uniform",
    std: Literal["batch", "per_sample"] = "batch",
    generator: torch.Generator | None = None,
    create_graph: bool = True,
    grad_scaler: Any | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    """DRAGAN penalty ``λ·E[(‖∇D(x̃)‖ − k)²]`` at :func:`dragan_points` near the real batch.

    Arguments:
        critic: ``(B, ...) -> (B,)`` or ``(B, 1)``.
        x_real: real samples ``(B, ...)`` (detached here).
        weight: λ = 10 [paper; StudioGAN ``WGAN-DRA``]. k: target norm, 1 [paper].
        scale: 0.5 [reference code]. noise, std, generator: see :func:`dragan_points`.
        create_graph, grad_scaler, reduction: as :func:`~kexue.gan_losses.gradient_penalty`
            (per-sample norms over all non-batch dims, fp32, ε = 1e-9 inside the root).

    Returns:
        A scalar, or ``(B,)`` for ``reduction="none"``; fp32.
    """
    if not callable(critic):
        raise ValueError(f"critic must be callable, got {type(critic).__name__}")
    check_positive(k, "k", allow_zero=True)
    x_hat = dragan_points(x_real, scale=scale, noise=noise, std=std, generator=generator)
    scores = critic(x_hat)
    if grad_scaler is not None:
        scores = grad_scaler.scale(scores)
    return gradient_penalty(
        scores,
        x_hat,
        center=k,
        weight=weight,
        create_graph=create_graph,
        grad_scaler=grad_scaler,
        reduction=reduction,
    )
