"""MADE: masked autoencoder conditioner for autoregressive flows (spec flows-splines §3.2).

Feature d gets the degree m(d) = 1 + its rank in ``order`` (1..D). Hidden units get degrees in
[1, D − 1] ([0, D − 1] with a context, so that it reaches every output), cycled (default) or drawn at random (nflows ``random_mask``); a hidden unit k sees
input j iff m_h(k) ≥ m(j), and output d sees hidden unit k iff m(d) > m_h(k) (strict), so output
d depends only on features of smaller degree: the Jacobian of the outputs w.r.t. the inputs is
strictly triangular in the ordering. Context columns are unmasked (zuko's convention): every
hidden unit of the first layer sees the whole context. Outputs are tiled feature-major: ``P``
values per feature, returned as ``(B, D, P)``.

References:
    - Germain, Gregor, Murray, Larochelle, MADE: Masked Autoencoder for Distribution
      Estimation, arXiv:1502.03509.
    - Papamakarios, Pavlakou, Murray, Masked Autoregressive Flow, arXiv:1705.07057.
    - nflows ``MADE`` / zuko ``MaskedMLP`` (context columns all ones).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kexue.flows.nets import make_activation

__all__ = ["MADE", "MaskedLinear", "made_degrees"]


class MaskedLinear(nn.Linear):
    """``y = x (W ⊙ M)ᵀ + b`` with a fixed 0/1 mask ``M`` (a buffer, so it is in ``state_dict``).

    Arguments:
        in_features: input features.
        out_features: output features.
        mask: ``(out_features, in_features)`` 0/1 tensor.
        bias: learn a bias; default True.

    References:
        Germain et al., MADE, arXiv:1502.03509 §4.
    """

    def __init__(self, in_features: int, out_features: int, mask: Tensor, bias: bool = True):
        super().__init__(in_features, out_features, bias=bias)
        if tuple(mask.shape) != (out_features, in_features):
            raise ValueError(
                f"mask must have shape ({out_features}, {in_features}), got {tuple(mask.shape)}"
            )
        self.register_buffer("mask", mask.detach().to(self.weight.dtype).clone())

    def forward(self, x: Tensor) -> Tensor:
        """``x (W ⊙ M)ᵀ + b``."""
        return F.linear(x, self.weight * self.mask, self.bias)


def made_degrees(
    features: int,
    hidden: Sequence[int],
    *,
    order: Sequence[int] | Tensor | None = None,
    random_degrees: bool = False,
    context: bool = False,
    passes: int | None = None,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, list[Tensor]]:
    """Input degrees (D,) and the hidden degrees of every hidden layer.

    Arguments:
        features: D.
        hidden: widths of the hidden layers.
        order: rank of every feature (a permutation of 0..D−1); feature d gets degree order[d] + 1.
            Default ``range(D)``.
        random_degrees: draw hidden degrees uniformly from [lo, D − 1] (nflows ``random_mask``;
            each layer's lower bound is the previous layer's minimum) instead of cycling.
        context: the net has context inputs: hidden degrees start at 0 instead of 1, so
            degree-0 units (which see only the context) reach every output, the first feature's
            included (nflows' [1, D − 1] leaves the first output context-free).
        passes: group the features into blocks of ``ceil(D / passes)`` consecutive ranks that
            share a degree (zuko's ``passes``): ``None`` (default) = D blocks, fully
            autoregressive; ``2`` = a coupling (the first block is conditioned on nothing, the
            second on the first); the inverse then needs ``passes`` passes.
        generator: RNG of the random degrees.

    Returns:
        ``(input_degrees, [hidden_degrees per layer])``, int64. For D = 1 the hidden degrees are
        0 (the single output depends on the context and the bias only).
    """
    if order is None:
        order_t = torch.arange(features)
    else:
        order_t = torch.as_tensor(order, dtype=torch.long).flatten()
        if order_t.numel() != features or not torch.equal(
            order_t.sort().values, torch.arange(features)
        ):
            raise ValueError(f"order must be a permutation of 0..{features - 1}, got {order_t}")
    if passes is not None:
        if not isinstance(passes, int) or passes < 1:
            raise ValueError(f"passes must be a positive int or None, got {passes!r}")
        order_t = torch.div(order_t, -(-features // passes), rounding_mode="floor")
    deg_in = order_t + 1
    top = int(deg_in.max()) - 1 if features else 0  # hidden degrees lie in [lo, top]
    out: list[Tensor] = []
    lo = 1 if top >= 1 and not context else 0
    for width in hidden:
        if random_degrees and top >= 1:
            deg = torch.randint(lo, top + 1, (width,), generator=generator)
            lo = int(deg.min())
        else:
            deg = torch.arange(width) % (top + 1 - lo) + lo
        out.append(deg)
    return deg_in, out


class MADE(nn.Module):
    """Masked MLP: ``(B, D)`` (+ context ``(B, C)``) → ``(B, D, P)``, output d autoregressive.

    Output ``[:, d, :]`` depends only on the features whose degree is below d's (and on the
    context): the Jacobian w.r.t. x is strictly triangular in ``order``.

    Arguments:
        features: D (≥ 1).
        hidden: hidden widths; an int gives two layers of that width; default (64, 64)
            [zuko ``MaskedMLP``]. Each width should be ≥ D − 1 so every allowed dependency exists.
        out_per_feature: P, the parameters per feature (2 for affine, 3K − 1 for a spline).
        context_features: C, size of the context vector; default 0.
        order: rank of every feature; default ``range(D)``.
        passes: feature blocks sharing a degree (:func:`made_degrees`); default None (D).
        random_degrees: random hidden degrees (nflows); default False (cycled).
        activation: hidden activation; default ``"relu"``.
        zero_init: zero the output layer, so every parameter starts at 0 (identity transforms);
            default True.
        generator: RNG of the weights' init and random degrees.

    References:
        Germain et al., MADE, arXiv:1502.03509; nflows ``MADE``; zuko ``MaskedMLP``.
    """

    def __init__(
        self,
        features: int,
        hidden: int | Sequence[int] = (64, 64),
        out_per_feature: int = 2,
        *,
        context_features: int = 0,
        order: Sequence[int] | Tensor | None = None,
        passes: int | None = None,
        random_degrees: bool = False,
        activation: str | Callable[[], nn.Module] = "relu",
        zero_init: bool = True,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        widths = [hidden, hidden] if isinstance(hidden, int) else list(hidden)
        if features < 1 or out_per_feature < 1 or context_features < 0:
            raise ValueError(
                f"features and out_per_feature must be >= 1 and context_features >= 0, got "
                f"{features}, {out_per_feature}, {context_features}"
            )
        if not widths or any(w < 1 for w in widths):
            raise ValueError(f"hidden must be positive widths, got {hidden!r}")
        self.features = features
        self.out_per_feature = out_per_feature
        self.context_features = context_features
        deg_in, deg_hidden = made_degrees(
            features,
            widths,
            order=order,
            random_degrees=random_degrees,
            context=context_features > 0,
            passes=passes,
            generator=generator,
        )
        self.register_buffer("degrees", deg_in)
        layers: list[nn.Module] = []
        prev, width_in = deg_in, features
        for i, (width, deg) in enumerate(zip(widths, deg_hidden)):
            mask = (deg[:, None] >= prev[None, :]).float()
            if i == 0 and context_features:
                mask = torch.cat([mask, torch.ones(width, context_features)], dim=1)
                width_in += context_features
            layers += [MaskedLinear(width_in, width, mask), make_activation(activation)]
            prev, width_in = deg, width
        deg_out = deg_in.repeat_interleave(out_per_feature)  # feature-major tiling
        last = MaskedLinear(width_in, features * out_per_feature, (deg_out[:, None] > prev).float())
        self.net = nn.Sequential(*layers, last)
        self._init(generator, zero_init)

    def _init(self, generator: torch.Generator | None, zero_init: bool) -> None:
        with torch.no_grad():
            layers = [m for m in self.net if isinstance(m, MaskedLinear)]
            for m in layers:
                bound = 1.0 / max(m.in_features, 1) ** 0.5  # nn.Linear's default range
                u = torch.rand(m.weight.shape, generator=generator, dtype=m.weight.dtype)
                m.weight.copy_((2 * u - 1) * bound)
                # random biases, as nn.Linear: with zero biases every ReLU of a unit that sees
                # one feature hinges at 0 (for D = 2 the first layer is then a single kink)
                u = torch.rand(m.bias.shape, generator=generator, dtype=m.bias.dtype)
                m.bias.copy_((2 * u - 1) * bound)
            if zero_init:
                layers[-1].weight.zero_()
                layers[-1].bias.zero_()

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """``x``: (B, D); ``context``: (B, C) when configured → ``(B, D, P)``."""
        if x.dim() != 2 or x.shape[1] != self.features:
            raise ValueError(f"x must have shape (B, {self.features}), got {tuple(x.shape)}")
        if self.context_features:
            want = (x.shape[0], self.context_features)
            if context is None or tuple(context.shape) != want:
                got = None if context is None else tuple(context.shape)
                raise ValueError(f"context must have shape {want}, got {got}")
            x = torch.cat([x, context.to(x.dtype)], dim=1)
        elif context is not None:
            raise ValueError(
                f"context was given but this MADE has context_features=0 (context shape "
                f"{tuple(context.shape)})"
            )
        return self.net(x).view(x.shape[0], self.features, self.out_per_feature)
