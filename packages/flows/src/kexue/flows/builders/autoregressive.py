"""Vector-flow builders: ``maf`` (affine MAF / IAF) and ``nsf`` (neural spline flow, autoregressive
or coupling), optionally conditional (``context_dim``).

Both stack ``transforms`` layers whose feature orders alternate ascending / descending (zuko's
default; ``randperm=True`` draws random orders), on a standard-normal base unless ``base`` is
given (e.g. a :class:`~kexue.flows.mixture.GaussianMixture`). Every conditioner's output layer
is zero-initialised, so a freshly built flow is the identity map.

References:
    - Papamakarios et al., MAF, arXiv:1705.07057; Durkan et al., Neural Spline Flows,
      arXiv:1906.04032; zuko ``MAF`` / ``NSF``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch

from kexue.flows.base import Compose, FlowLayer
from kexue.flows.builders._checks import check_context_dim, positive
from kexue.flows.flow import Flow
from kexue.flows.layers.autoregressive import MaskedAutoregressive
from kexue.flows.layers.spline_coupling import SplineCoupling
from kexue.flows.nets import MLP
from kexue.flows.priors import Prior, StandardNormal

__all__ = ["maf", "nsf"]


def _orders(
    features: int, transforms: int, randperm: bool, generator: torch.Generator | None
) -> list[torch.Tensor]:
    asc = torch.arange(features)
    if randperm:
        return [torch.randperm(features, generator=generator) for _ in range(transforms)]
    return [asc if i % 2 == 0 else asc.flip(0) for i in range(transforms)]


def _flow(layers: list[FlowLayer], features: int, base: Prior | None) -> Flow:
    prior = StandardNormal(features) if base is None else base
    return Flow(Compose(layers), prior)


def _check(features: int, transforms: int, hidden: Sequence[int], context_dim: int) -> list[int]:
    positive(features=features, transforms=transforms)
    widths = [hidden] if isinstance(hidden, int) else list(hidden)
    if not widths or any(not isinstance(w, int) or w < 1 for w in widths):
        raise ValueError(f"hidden must be positive widths, got {hidden!r}")
    check_context_dim(context_dim)
    return widths


def maf(
    features: int,
    *,
    transforms: int = 3,
    hidden: Sequence[int] = (64, 64),
    context_dim: int = 0,
    direction: Literal["maf", "iaf"] = "maf",
    randperm: bool = False,
    base: Prior | None = None,
    generator: torch.Generator | None = None,
) -> Flow:
    """Masked autoregressive flow with affine transformers (x·exp(s) + t, soft-clipped s).

    Arguments:
        features: D.
        transforms: number of MADE layers; default 3 [zuko ``MAF``].
        hidden: MADE hidden widths; default (64, 64) [zuko].
        context_dim: context features fed to every MADE (and to ``base`` if conditional);
            default 0 (unconditional).
        direction: ``"maf"`` (default; one-pass density) or ``"iaf"`` (one-pass sampling).
        randperm: random feature orders instead of alternating ones; default False.
        base: the base distribution; default ``StandardNormal(D)``.
        generator: RNG of the MADE inits and random orders.

    Returns:
        a :class:`~kexue.flows.flow.Flow` (``log_prob(x, context)``, ``sample(n, context=)``).

    References:
        Papamakarios et al., arXiv:1705.07057; Kingma et al., arXiv:1606.04934.
    """
    widths = _check(features, transforms, hidden, context_dim)
    layers: list[FlowLayer] = [
        MaskedAutoregressive(
            features,
            "affine",
            direction,
            hidden=widths,
            context_features=context_dim,
            order=order,
            generator=generator,
        )
        for order in _orders(features, transforms, randperm, generator)
    ]
    return _flow(layers, features, base)


def nsf(
    features: int,
    *,
    transforms: int = 3,
    hidden: Sequence[int] = (64, 64),
    bins: int = 8,
    bound: float = 5.0,
    kind: Literal["autoregressive", "coupling"] = "autoregressive",
    context_dim: int = 0,
    param: str = "nflows",
    randperm: bool = False,
    base: Prior | None = None,
    generator: torch.Generator | None = None,
) -> Flow:
    """Neural spline flow: rational-quadratic spline transformers, autoregressive or coupling.

    ``kind="autoregressive"`` stacks :class:`MaskedAutoregressive` spline layers (NSF-AR, zuko's
    ``NSF``); ``kind="coupling"`` stacks :class:`SplineCoupling` layers with a parity split whose
    kept half alternates, each net an MLP of ``len(hidden)`` layers of width ``hidden[0]``
    (NSF-C). Data should lie mostly inside [−bound, bound] (standardise first).

    Arguments:
        features: D (≥ 2 for ``"coupling"``).
        transforms: number of spline layers; default 3 [zuko ``NSF``].
        hidden: conditioner hidden widths; default (64, 64) [zuko].
        bins: K; default 8 [zuko, NSF paper].
        bound: B; default 5.0 [zuko].
        kind: ``"autoregressive"`` (default) or ``"coupling"``.
        context_dim: context features fed to every conditioner; default 0.
        param: spline parametrisation ``"nflows"`` (default) or ``"zuko"``.
        randperm: random orders (autoregressive only); default False.
        base: the base distribution; default ``StandardNormal(D)``.
        generator: RNG of the conditioners' init and random orders.

    Returns:
        a :class:`~kexue.flows.flow.Flow`.

    References:
        Durkan et al., arXiv:1906.04032; zuko ``NSF``.
    """
    widths = _check(features, transforms, hidden, context_dim)
    if kind not in ("autoregressive", "coupling"):
        raise ValueError(f"kind must be 'autoregressive' or 'coupling', got {kind!r}")
    layers: list[FlowLayer] = []
    if kind == "autoregressive":
        for order in _orders(features, transforms, randperm, generator):
            layers.append(
                MaskedAutoregressive(
                    features,
                    "spline",
                    "maf",
                    hidden=widths,
                    context_features=context_dim,
                    order=order,
                    bins=bins,
                    bound=bound,
                    param=param,
                    generator=generator,
                )
            )
        return _flow(layers, features, base)
    if features < 2:
        raise ValueError(f"a coupling needs features >= 2, got {features}")
    for i in range(transforms):
        parity = i % 2
        kept = len(range(parity, features, 2))
        net = MLP(
            kept, (features - kept) * (3 * bins - 1), hidden=widths[0], depth=len(widths),
            zero_init=True, context_features=context_dim,
        )  # fmt: skip
        layers.append(
            SplineCoupling(net, bins=bins, bound=bound, param=param, split="parity", parity=parity)
        )
    return _flow(layers, features, base)
