"""Learnable Gaussian-mixture base distribution (spec flows-splines §3.5).

``log p(z) = logsumexp_k(log π_k + log N(z; μ_k, Σ_k))`` with ``π = softmax(logits)``; diagonal
(``Σ_k = diag(σ_k²)``, ``σ = exp(log σ)``) or full covariances (``Σ_k = L_k L_kᵀ`` with
``L_k = diag(exp(·)) +`` a free strict lower triangle). With ``context_features > 0`` a small MLP
of the context (zero-initialised output) adds to every parameter: a conditional mixture.

Sampling draws the component k ~ Categorical(π), then ``z = μ_k + T·L_k ε``. That is
reparametrised in μ and L but not in π, so :meth:`GaussianMixture.rsample` (a pathwise sample
for reverse-KL training) raises unless ``weights_trainable=False`` (zuko's ``Mixture`` has
``has_rsample = False`` for the same reason).

References:
    - zuko ``GMM`` / ``Mixture``; normflows ``GaussianMixture`` (diagonal).
    - Papamakarios et al., Normalizing Flows for Probabilistic Modeling and Inference,
      arXiv:1912.02762 §2.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor, nn

from kexue.flows.base import logdet_dtype
from kexue.flows.nets import MLP
from kexue.flows.priors import Prior

__all__ = ["GaussianMixture"]

_LOG_2PI = math.log(2 * math.pi)


class GaussianMixture(Prior):
    """Mixture of ``components`` Gaussians on ``(B, features)`` vectors, learnable.

    Arguments:
        features: D.
        components: K; default 2 [zuko ``GMM``].
        covariance: ``"diag"`` (default) or ``"full"``.
        context_features: size of a context vector; > 0 makes the mixture conditional (an MLP
            with hidden width ``hidden`` and a zero-initialised output adds to every
            parameter); default 0.
        hidden: width of that MLP (two hidden layers); default 64.
        weights_trainable: learn the mixture weights (default True); False fixes π uniform and
            makes :meth:`rsample` available.
        generator: RNG of the initial means (N(0, 1)); scales start at 1, weights uniform.

    References:
        zuko ``GMM``; normflows ``GaussianMixture``.
    """

    def __init__(
        self,
        features: int,
        components: int = 2,
        *,
        covariance: Literal["diag", "full"] = "diag",
        context_features: int = 0,
        hidden: int = 64,
        weights_trainable: bool = True,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if features < 1 or components < 1 or context_features < 0:
            raise ValueError(
                f"features and components must be >= 1 and context_features >= 0, got "
                f"{features}, {components}, {context_features}"
            )
        if covariance not in ("diag", "full"):
            raise ValueError(f"covariance must be 'diag' or 'full', got {covariance!r}")
        self.shape = (features,)
        self.features, self.components = features, components
        self.covariance = covariance
        self.context_features = context_features
        self.weights_trainable = weights_trainable
        d, k = features, components
        logits = torch.zeros(k)
        self.logits = nn.Parameter(logits) if weights_trainable else None
        if not weights_trainable:
            self.register_buffer("_fixed_logits", logits)
        self.loc = nn.Parameter(torch.randn(k, d, generator=generator))
        self.log_diag = nn.Parameter(torch.zeros(k, d))
        self.tril = nn.Parameter(torch.zeros(k, d, d)) if covariance == "full" else None
        full = k * d * d if self.tril is not None else 0
        self._sizes = [k if weights_trainable else 0, k * d, k * d, full]
        self.cond = (
            MLP(context_features, sum(self._sizes), hidden=hidden, depth=2, zero_init=True)
            if context_features
            else None
        )

    _no_rsample_reason = (
        "needs weights_trainable=False: the component draw is not differentiable in the mixture "
        "weights"
    )

    @property
    def has_rsample(self) -> bool:  # type: ignore[override]
        """Whether :meth:`rsample` is pathwise in every parameter (fixed weights only)."""
        return not self.weights_trainable

    def _params(self, context: Tensor | None, n: int) -> tuple[Tensor, Tensor, Tensor]:
        """``(log π (b, K), μ (b, K, D), L (b, K, D, D) or σ (b, K, D))`` with b = 1 or n."""
        logits = self.logits if self.logits is not None else self._fixed_logits
        loc, log_diag, tril = self.loc, self.log_diag, self.tril
        logits, loc, log_diag = logits[None], loc[None], log_diag[None]
        tril = tril[None] if tril is not None else None
        if self.cond is not None:
            want = (n, self.context_features)
            if context is None or tuple(context.shape) != want:
                got = None if context is None else tuple(context.shape)
                raise ValueError(f"context must have shape {want}, got {got}")
            parts = self.cond(context.to(loc.dtype)).split(self._sizes, dim=1)
            k, d = self.components, self.features
            if self.logits is not None:
                logits = logits + parts[0]
            loc = loc + parts[1].view(n, k, d)
            log_diag = log_diag + parts[2].view(n, k, d)
            if tril is not None:
                tril = tril + parts[3].view(n, k, d, d)
        log_pi = torch.log_softmax(logits, dim=-1)
        if tril is None:
            return log_pi, loc, torch.exp(log_diag)
        scale = torch.tril(tril, diagonal=-1) + torch.diag_embed(torch.exp(log_diag))
        return log_pi, loc, scale

    def _check_z(self, z: Tensor) -> None:
        if z.dim() != 2 or z.shape[1] != self.features:
            raise ValueError(f"z must have shape (B, {self.features}), got {tuple(z.shape)}")

    def component_log_prob(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        """``log π_k + log N(z; μ_k, Σ_k)`` for every component: ``(B, K)``."""
        self._check_z(z)
        acc = logdet_dtype(z)
        log_pi, loc, scale = (t.to(acc) for t in self._params(context, z.shape[0]))
        diff = z.to(acc)[:, None, :] - loc  # (B, K, D)
        if self.tril is None:
            e = diff / scale
            log_det = torch.log(scale).sum(-1)
        else:
            b = torch.broadcast_shapes(diff.shape[:1], scale.shape[:1])[0]
            lower = scale.expand(b, *scale.shape[1:])
            e = torch.linalg.solve_triangular(lower, diff[..., None], upper=False)[..., 0]
            log_det = torch.log(torch.diagonal(scale, dim1=-2, dim2=-1)).sum(-1)
        return log_pi - 0.5 * e.square().sum(-1) - log_det - 0.5 * self.features * _LOG_2PI

    def log_prob(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        """``logsumexp_k(log π_k + log N(z; μ_k, Σ_k))`` per sample, ``(B,)``."""
        return torch.logsumexp(self.component_log_prob(z, context), dim=-1)

    def _draw(
        self, n: int, temperature: float, context: Tensor | None, generator: torch.Generator | None
    ) -> Tensor:
        log_pi, loc, scale = self._params(context, n)
        probs = torch.exp(log_pi.detach()).expand(n, -1)
        k = torch.multinomial(probs, 1, generator=generator).squeeze(1)  # (n,)
        rows = torch.arange(n, device=loc.device)

        def pick(t: Tensor) -> Tensor:
            return t.expand(n, *t.shape[1:])[rows, k]

        eps = torch.randn(n, self.features, generator=generator, device=loc.device, dtype=loc.dtype)
        if self.tril is None:
            return pick(loc) + temperature * pick(scale) * eps
        return pick(loc) + temperature * (pick(scale) @ eps[..., None])[..., 0]
