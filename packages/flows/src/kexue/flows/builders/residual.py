"""i-ResNet and Residual Flow builders.

References:
    i-ResNet arXiv:1811.00995; Residual Flows arXiv:1906.02735;
    https://kexue.fm/archives/6482.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import torch

from kexue.flows.base import Compose, FlowLayer
from kexue.flows.builders._checks import positive
from kexue.flows.flow import Flow, FlowConfig
from kexue.flows.layers.logit import LogitTransform
from kexue.flows.layers.normalization import ActNorm
from kexue.flows.layers.reshape import Squeeze
from kexue.flows.priors import StandardNormal
from kexue.flows.residual.iresblock import IResBlock, conv_residual, mlp_residual

__all__ = ["iresnet", "residual_flow"]


def _check_image_shape(shape: Sequence[int], factor: int) -> tuple[int, int, int]:
    c, h, w = (int(s) for s in shape) if len(tuple(shape)) == 3 else (0, 0, 0)
    if min(c, h, w) < 1:
        raise ValueError(f"shape must be D or (C, H, W), got {tuple(shape)}")
    if h % factor or w % factor:
        raise ValueError(
            f"shape needs H and W divisible by {factor} for the requested squeezes, got "
            f"{tuple(shape)}"
        )
    return c, h, w


_ARCH = ("blocks", "scales", "hidden", "depth", "coeff", "n_power_iter", "activation", "actnorm")


def _residual_stack(args: Mapping[str, Any], block_keys: Sequence[str]) -> Flow:
    """The i-ResNet / Residual Flow stack from a builder's arguments (``locals()``): the
    architecture keys of ``_ARCH`` and, for every ``IResBlock``, ``block_keys`` + ``generator``."""
    shape, logit_alpha, generator = args["shape"], args["logit_alpha"], args["generator"]
    blocks, scales, hidden, depth, coeff, n_power_iter, activation, actnorm = (
        args[k] for k in _ARCH
    )
    block_options = {k: args[k] for k in block_keys} | {"generator": generator}
    positive(blocks=blocks, scales=scales, hidden=hidden, depth=depth)
    layers: list[FlowLayer] = []
    if logit_alpha is not None:
        layers.append(LogitTransform(logit_alpha))
    if isinstance(shape, int) or len(tuple(shape)) == 1:
        dim = shape if isinstance(shape, int) else int(next(iter(shape)))
        positive(dim=dim)
        if scales != 1:
            raise ValueError(f"scales must be 1 for vector data, got {scales}")
        for _ in range(blocks):
            if actnorm:
                layers.append(ActNorm(dim))
            g = mlp_residual(
                dim,
                hidden,
                depth=depth,
                coeff=coeff,
                activation=activation,
                n_power_iter=n_power_iter,
                generator=generator,
            )
            layers.append(IResBlock(g, coeff=coeff, n_power_iter=n_power_iter, **block_options))
        event: tuple[int, ...] = (dim,)
    else:
        c, h, w = _check_image_shape(shape, 2 ** (scales - 1))
        for s in range(scales):
            if s > 0:
                layers.append(Squeeze())
                c, h, w = 4 * c, h // 2, w // 2
            for _ in range(blocks):
                if actnorm:
                    layers.append(ActNorm(c))
                g = conv_residual(
                    c,
                    hidden,
                    coeff=coeff,
                    activation=activation,
                    n_power_iter=n_power_iter,
                    input_shape=(c, h, w),
                    generator=generator,
                )
                layers.append(IResBlock(g, coeff=coeff, n_power_iter=n_power_iter, **block_options))
        event = (c, h, w)
    model = Flow(Compose(layers), StandardNormal(event))
    noise = "uniform" if logit_alpha is not None else "none"
    model.config = FlowConfig("paper", noise=noise)
    return model


def iresnet(
    shape: int | Sequence[int],
    *,
    blocks: int = 4,
    scales: int = 1,
    hidden: int = 64,
    depth: int = 2,
    coeff: float = 0.97,
    n_power_iter: int = 5,
    n_terms_train: int = 5,
    n_terms_eval: int = 20,
    activation: str = "elu",
    actnorm: bool = True,
    logit_alpha: float | None = None,
    inverse_tol: float = 1e-5,
    inverse_max_iter: int = 1000,
    logdet_mode: Literal["series", "exact_series", "exact"] = "series",
    generator: torch.Generator | None = None,
) -> Flow:
    """i-ResNet: [ActNorm → IResBlock] × ``blocks`` per scale, squeezes between scales.

    Vectors (``shape`` = D) use spectral-normalised MLP branches (:func:`mlp_residual`), images
    (``(C, H, W)``) the conv branch SN-conv3×3 → φ → SN-conv1×1 → φ → SN-conv3×3
    (:func:`conv_residual`). Log-det by the truncated power series with Hutchinson traces
    (5 terms in training, 20 in eval [i-ResNet code]); inverse by fixed-point iteration to
    ``inverse_tol``. A single-scale-output model: latents are not factored out (the prior is
    N(0, I) on the final squeezed tensor).

    Arguments:
        shape: D or ``(C, H, W)``.
        blocks: residual blocks per scale; default 4.
        scales: image scales (squeeze between them); default 1.
        hidden: branch width; default 64.
        depth: hidden layers of the MLP branch; default 2.
        coeff: Lipschitz bound c per layer; default 0.97 [i-ResNet code].
        n_power_iter: spectral-norm power iterations per step; default 5 [i-ResNet code].
        n_terms_train: series terms in training; default 5 [i-ResNet CIFAR code].
        n_terms_eval: series terms in eval; default 20.
        activation: 1-Lipschitz activation; default ``"elu"`` [i-ResNet].
        actnorm: ActNorm before each block; default True [i-ResNet code].
        logit_alpha: optional logit pre-processing α (None: none).
        inverse_tol: fixed-point tolerance; default 1e-5 [Residual Flows code].
        inverse_max_iter: fixed-point cap; default 1000.
        logdet_mode: ``"series"`` (default), ``"exact_series"`` or ``"exact"`` (small D, tests).
        generator: RNG of the spectral-norm init vectors and the Hutchinson probes.

    Returns:
        a :class:`Flow` with ``config``.

    References:
        i-ResNet arXiv:1811.00995; https://kexue.fm/archives/6482.
    """
    block = ("n_terms_train", "n_terms_eval", "inverse_tol", "inverse_max_iter", "logdet_mode")
    return _residual_stack(locals(), block)


def residual_flow(
    shape: int | Sequence[int],
    *,
    blocks: int = 4,
    scales: int = 1,
    hidden: int = 64,
    depth: int = 2,
    coeff: float = 0.98,
    n_power_iter: int = 5,
    n_exact_terms: int = 2,
    dist: Literal["geometric", "poisson"] = "geometric",
    p: float = 0.5,
    lam: float = 2.0,
    n_terms_eval: int = 20,
    neumann_grad: bool = True,
    activation: str = "lipswish",
    actnorm: bool = True,
    logit_alpha: float | None = None,
    inverse_tol: float = 1e-5,
    inverse_max_iter: int = 1000,
    generator: torch.Generator | None = None,
) -> Flow:
    """Residual Flow: the i-ResNet stack with the unbiased Russian-roulette log-det (flagged).

    Same layout as :func:`iresnet`; blocks use ``estimator="roulette"`` (``n_exact_terms``
    exact terms, then N ~ ``dist`` more, reweighted by 1/P(N ≥ k)), the Neumann-series gradient
    and LipSwish, coeff 0.98 [Residual Flows code].

    Arguments:
        shape: D or ``(C, H, W)``.
        blocks, scales, hidden, depth, n_power_iter, actnorm, logit_alpha, inverse_tol,
            inverse_max_iter, generator: as :func:`iresnet`.
        coeff: default 0.98 [Residual Flows code].
        n_exact_terms: default 2 [code]; dist: ``"geometric"`` (p = 0.5, default [code]) or
            ``"poisson"`` (λ = 2, ``train_img.py`` [code]); p, lam: their parameters.
        n_terms_eval: exact terms in eval before the roulette; default 20 [code].
        neumann_grad: Neumann-series gradient; default True [code].
        activation: default ``"lipswish"`` [Residual Flows].

    Returns:
        a :class:`Flow` with ``config``.

    References:
        Residual Flows arXiv:1906.02735; https://kexue.fm/archives/6482.
    """
    estimator = "roulette"
    block = ("estimator", "n_exact_terms", "dist", "p", "lam", "n_terms_eval", "neumann_grad",
             "inverse_tol", "inverse_max_iter")  # fmt: skip
    return _residual_stack(locals(), block)
