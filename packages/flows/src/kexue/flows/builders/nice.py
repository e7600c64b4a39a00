"""NICE builder: additive couplings on flat vectors with a diagonal scale (paper or Su's preset).

References:
    Dinh et al., NICE arXiv:1410.8516; https://kexue.fm/archives/5776.
"""

from __future__ import annotations

from typing import Literal

import torch

from kexue.flows.base import Compose, FlowLayer
from kexue.flows.builders._checks import Preset, check_context_dim, check_preset, positive
from kexue.flows.flow import Flow, FlowConfig
from kexue.flows.layers.coupling import AdditiveCoupling
from kexue.flows.layers.normalization import DiagonalScale
from kexue.flows.layers.permutation import Permutation
from kexue.flows.nets import MLP
from kexue.flows.priors import Logistic, StandardNormal

__all__ = ["nice"]


def nice(
    dim: int,
    *,
    n_couplings: int = 4,
    hidden: int = 1000,
    depth: int = 5,
    prior: Literal["logistic", "normal"] | None = None,
    mixing: Literal["reverse", "random", "parity"] | None = None,
    context_dim: int = 0,
    preset: Preset = "paper",
    generator: torch.Generator | None = None,
) -> Flow:
    """NICE: additive couplings on an interleaved (even/odd) split, then a diagonal scaling.

    ``preset="paper"``: couplings alternate which parity is modified (``mixing="parity"``
    unless given), each m a ReLU MLP (``depth`` × ``hidden``), y₂ = x₂ + m(x₁); a zero-init
    :class:`DiagonalScale`; logistic prior; noise +U(0, 1/256).
    ``preset="su_compat"`` (bojone/flow ``nice.py``): before every coupling a reverse shuffle of
    the features, then the interleaved split (modify the odd indices), y₂ = x₂ − m(x₁) with
    m ending in a ReLU; Glorot-normal scale; standard normal prior; noise −0.01·U(0, 1);
    sampling std 0.75, samples clipped to [0, 1].

    Arguments:
        dim: data dimension D (784 for MNIST).
        n_couplings: coupling layers; default 4 [NICE §5.1].
        hidden: MLP width; default 1000 [NICE §5.1].
        depth: MLP hidden layers; default 5 [NICE §5.1].
        prior: ``"logistic"`` or ``"normal"``; default by preset (logistic / normal).
        mixing: ``"parity"`` (alternate the modified half), ``"reverse"`` or ``"random"``
            (permute the features before every coupling); default by preset (parity / reverse).
        context_dim: size of a context vector (B, context_dim) for a conditional NICE: it is
            concatenated to every coupling MLP's input (the scale and the prior stay
            unconditional); ``log_prob(x, context)``, ``sample(n, context=...)``; default 0.
        preset: ``"paper"`` or ``"su_compat"``.
        generator: RNG of the random permutations and the Glorot scale init.

    Returns:
        a :class:`Flow` on ``(B, dim)`` with ``config`` (:class:`FlowConfig`).

    References:
        NICE arXiv:1410.8516; https://kexue.fm/archives/5776; bojone/flow ``nice.py``.
    """
    check_preset(preset)
    positive(dim=dim, n_couplings=n_couplings, hidden=hidden, depth=depth)
    check_context_dim(context_dim)
    if dim < 2:
        raise ValueError(f"dim must be >= 2 to split, got {dim}")
    su = preset == "su_compat"
    prior = prior or ("normal" if su else "logistic")
    mixing = mixing or ("reverse" if su else "parity")
    if prior not in ("logistic", "normal"):
        raise ValueError(f"prior must be 'logistic' or 'normal', got {prior!r}")
    if mixing not in ("reverse", "random", "parity"):
        raise ValueError(f"mixing must be 'reverse', 'random' or 'parity', got {mixing!r}")
    layers: list[FlowLayer] = []
    for i in range(n_couplings):
        parity = i % 2 if mixing == "parity" else 0
        if mixing != "parity":
            layers.append(Permutation(dim, mode=mixing, generator=generator))
        kept = (dim + 1 - parity) // 2  # x[:, parity::2]
        net = MLP(
            kept, dim - kept, hidden=hidden, depth=depth, out_activation="relu" if su else None,
            context_features=context_dim,
        )  # fmt: skip
        layers.append(
            AdditiveCoupling(net, split="parity", parity=parity, sign=-1.0 if su else 1.0)
        )
    init = "glorot_normal" if su else "zeros"
    layers.append(DiagonalScale(dim, init=init, generator=generator))
    base = StandardNormal(dim) if prior == "normal" else Logistic(dim)
    model = Flow(Compose(layers), base)
    model.config = (
        FlowConfig(
            "su_compat",
            noise="negative",
            noise_scale=0.01,
            sample_temperature=0.75,
            clip=(0.0, 1.0),
        )
        if su
        else FlowConfig("paper")
    )
    return model
