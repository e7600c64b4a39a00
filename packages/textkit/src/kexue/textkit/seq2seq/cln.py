"""Conditional LayerNorm: a condition vector shifts the LayerNorm gain and bias (spec §2.8).

References: https://kexue.fm/archives/7124 (Conditional Layer Normalization for conditional text
generation); bert4keras ``LayerNormalization(conditional=True, hidden_units, hidden_activation)``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

__all__ = ["ConditionalLayerNorm"]

_ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "linear": lambda x: x,
    "relu": torch.relu,
    "gelu": nn.functional.gelu,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "silu": nn.functional.silu,
}


class ConditionalLayerNorm(nn.Module):
    """LayerNorm whose gain and bias are offset by linear maps of a condition ``c``.

    .. math::
        \\hat x = (x - \\mu) / \\sqrt{\\sigma^2 + \\varepsilon},\\quad
        h = \\mathrm{act}(W_h c)\\ (\\text{or } h = c),\\quad
        y = (\\gamma_0 + W_\\gamma h) \\odot \\hat x + (\\beta_0 + W_\\beta h)

    ``W_γ`` and ``W_β`` are bias-free and ZERO-initialised, so at initialisation the layer equals a
    plain LayerNorm (γ₀ = 1, β₀ = 0) for every condition, and a pretrained LN's ``γ₀, β₀`` can be
    loaded unchanged (``load_layer_norm``). Exactly one linear map is zeroed per path: the optional
    hidden Dense ``W_h`` is Glorot-initialised and bias-free (the post's rule — zeroing two stacked
    maps would block the gradient of both). At init ``W_γ, W_β`` receive non-zero gradients while
    ``W_h`` receives exactly zero (its output only reaches the loss through ``W_γ = W_β = 0``); it
    starts learning after the first step.

    The condition is ``(B, d_c)`` (broadcast over the sequence: γ and β are computed once per row,
    not per position) or ``(B, L, d_c)`` (per position). ``h`` is computed once and shared by the
    γ and β maps.

    Arguments:
        dim: normalised feature size ``d`` (last axis of ``x``).
        cond_dim: condition size ``d_c``.
        hidden_units: size of the optional hidden Dense on the condition (bert4keras
            ``hidden_units``; default None = use ``c`` directly).
        hidden_activation: its activation, one of ``linear, relu, gelu, tanh, sigmoid, silu``
            or a callable (default None = linear, as bert4keras).
        eps: variance epsilon, default 1e-12 (bert4keras ``epsilon or 1e-12``; BERT's value).

    Shapes: ``x (B, L, d)`` or ``(B, d)``; ``cond (B, d_c)`` or ``(B, L, d_c)`` → ``x``'s shape.

    References: https://kexue.fm/archives/7124; spec §2.8.
    """

    def __init__(
        self,
        dim: int,
        cond_dim: int,
        *,
        hidden_units: int | None = None,
        hidden_activation: str | Callable[[Tensor], Tensor] | None = None,
        eps: float = 1e-12,
    ) -> None:
        super().__init__()
        if dim < 1 or cond_dim < 1:
            raise ValueError(f"dim and cond_dim must be >= 1, got dim={dim}, cond_dim={cond_dim}")
        if hidden_units is not None and hidden_units < 1:
            raise ValueError(f"hidden_units must be >= 1 or None, got {hidden_units}")
        if isinstance(hidden_activation, str):
            if hidden_activation not in _ACTIVATIONS:
                raise ValueError(
                    f"hidden_activation must be one of {sorted(_ACTIVATIONS)} or a callable, "
                    f"got {hidden_activation!r}"
                )
            hidden_activation = _ACTIVATIONS[hidden_activation]
        self.dim = dim
        self.cond_dim = cond_dim
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))  # γ₀
        self.bias = nn.Parameter(torch.zeros(dim))  # β₀
        self.hidden_dense: nn.Linear | None = None
        h_dim = cond_dim
        if hidden_units is not None:
            self.hidden_dense = nn.Linear(cond_dim, hidden_units, bias=False)  # Keras glorot
            h_dim = hidden_units
        self.hidden_activation = hidden_activation
        self.gamma_dense = nn.Linear(h_dim, dim, bias=False)
        self.beta_dense = nn.Linear(h_dim, dim, bias=False)
        self.reset_condition_()

    @torch.no_grad()
    def reset_condition_(self) -> None:
        """Zero ``W_γ``, ``W_β`` and Glorot-initialise ``W_h``: the layer becomes a plain
        LayerNorm with its current ``γ₀, β₀`` for every condition (used after a model-wide init)."""
        nn.init.zeros_(self.gamma_dense.weight)
        nn.init.zeros_(self.beta_dense.weight)
        if self.hidden_dense is not None:
            nn.init.xavier_uniform_(self.hidden_dense.weight)

    def condition_projection(self, cond: Tensor) -> Tensor:
        """``h(c)``: the hidden Dense (+ activation) if configured, else ``c`` itself."""
        h = cond if self.hidden_dense is None else self.hidden_dense(cond)
        if self.hidden_activation is not None:
            h = self.hidden_activation(h)
        return h

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        """Normalise ``x`` and apply the condition-dependent gain and bias (see the class)."""
        if x.shape[-1] != self.dim:
            raise ValueError(f"x last dim {x.shape[-1]} != dim {self.dim} (x {tuple(x.shape)})")
        if cond.shape[-1] != self.cond_dim or cond.shape[0] != x.shape[0]:
            raise ValueError(
                f"cond shape {tuple(cond.shape)} does not fit x {tuple(x.shape)}: expected "
                f"(B, {self.cond_dim}) or (B, L, {self.cond_dim}) with B = {x.shape[0]}"
            )
        if cond.dim() == 2:
            view = (cond.shape[0],) + (1,) * (x.dim() - 2) + (self.dim,)
        elif cond.dim() == 3 and x.dim() == 3 and cond.shape[1] == x.shape[1]:
            view = (*cond.shape[:2], self.dim)
        else:
            raise ValueError(
                f"cond shape {tuple(cond.shape)} does not fit x {tuple(x.shape)}: expected "
                f"(B, {self.cond_dim}) or (B, L, {self.cond_dim})"
            )
        h = self.condition_projection(cond)
        gamma = (self.weight + self.gamma_dense(h)).reshape(view)
        beta = (self.bias + self.beta_dense(h)).reshape(view)
        xf = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
        mean = xf.mean(dim=-1, keepdim=True)
        centred = xf - mean
        var = centred.square().mean(dim=-1, keepdim=True)
        normed = (centred * torch.rsqrt(var + self.eps)).to(x.dtype)
        return normed * gamma + beta

    @torch.no_grad()
    def load_layer_norm(self, layer_norm: nn.LayerNorm) -> None:
        """Copy a (pretrained) ``nn.LayerNorm``'s weight and bias into γ₀ and β₀."""
        if tuple(layer_norm.normalized_shape) != (self.dim,):
            raise ValueError(
                f"layer_norm normalized_shape {tuple(layer_norm.normalized_shape)} != ({self.dim},)"
            )
        if layer_norm.weight is not None:
            self.weight.copy_(layer_norm.weight)
        if layer_norm.bias is not None:
            self.bias.copy_(layer_norm.bias)

    def extra_repr(self) -> str:
        hidden = None if self.hidden_dense is None else self.hidden_dense.out_features
        return f"dim={self.dim}, cond_dim={self.cond_dim}, hidden_units={hidden}, eps={self.eps}"
