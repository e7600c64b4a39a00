"""Invertible residual blocks (i-ResNet) and the Residual Flows extension.

``y = x + g(x)`` with Lip(g) ≤ c < 1 (spectral-normalised ``g``, see :mod:`kexue.flows.residual.spectral`)
is invertible by Banach's fixed-point theorem; the inverse iterates ``x ← y − g(x)``. The
log-determinant ``ln det(I + J_g)`` comes from the power series with Hutchinson traces
(i-ResNet), optionally made unbiased by Russian roulette with the Neumann-series gradient
(Residual Flows), see :mod:`kexue.flows.residual.roulette`.

References:
    - Behrmann et al., Invertible Residual Networks, arXiv:1811.00995.
    - Chen et al., Residual Flows for Invertible Generative Modeling, arXiv:1906.02735.
    - 可逆ResNet:极致的暴力美学, https://kexue.fm/archives/6482
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kexue.flows.base import FlowLayer
from kexue.flows.nets import make_activation
from kexue.flows.residual.roulette import (
    exact_logdet,
    exact_series_logdet,
    hutchinson_logdet,
    jacobian_matrix,
    neumann_logdet,
    roulette_weights,
    sample_probe,
)
from kexue.flows.residual.spectral import (
    SpectralNormConv2d,
    SpectralNormLinear,
    _SpectralNormBase,
    frozen_spectral_norm,
)

__all__ = [
    "IResBlock",
    "InverseInfo",
    "InverseNotConverged",
    "LipSwish",
    "conv_residual",
    "mlp_residual",
]

_LOGDET_MODES = ("series", "exact_series", "exact")
_ESTIMATORS = ("series", "roulette")


class InverseNotConverged(RuntimeWarning):
    """The fixed-point inverse of an :class:`IResBlock` hit its iteration cap above tolerance.

    Issued with :func:`warnings.warn` by default, raised (it is an ``Exception``) when the block
    has ``strict=True``. The achieved residual is in ``block.last_inverse_info``.
    """


@dataclass(frozen=True)
class InverseInfo:
    """Diagnostics of the last :meth:`IResBlock.inverse` call.

    Attributes:
        iterations: fixed-point iterations run.
        step: last step size ``max|x_k − x_{k−1}|`` (the stopping criterion).
        residual: ``max|x + g(x) − y|`` at the returned ``x`` (before the final differentiable
            step), over the whole batch.
        converged: whether ``step ≤ inverse_tol`` was reached within ``inverse_max_iter``.
    """

    iterations: int
    step: float
    residual: float
    converged: bool


class LipSwish(nn.Module):
    """1-Lipschitz Swish: ``LipSwish(x) = x·sigmoid(βx)/1.1`` with ``β = softplus(β̂)``.

    ``max_x d/dx [x·sigmoid(βx)] ≈ 1.0998`` for every β > 0, so dividing by 1.1 makes it
    1-Lipschitz. β̂ is a learned scalar, initialised to 0.5 (Residual Flows [code]).

    Arguments:
        beta_init: initial value of the raw parameter β̂ (default 0.5).

    Returns:
        (from ``forward``) a tensor of the input's shape.

    References:
        Chen et al., Residual Flows, arXiv:1906.02735, §4; Ramachandran et al., arXiv:1710.05941.
    """

    def __init__(self, *, beta_init: float = 0.5) -> None:
        super().__init__()
        self.beta_raw = nn.Parameter(torch.tensor(float(beta_init)))

    def forward(self, x: Tensor) -> Tensor:
        """Apply ``x·sigmoid(softplus(β̂)·x)/1.1`` elementwise."""
        beta = F.softplus(self.beta_raw).to(x.dtype)
        return x * torch.sigmoid(beta * x) / 1.1


_ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "elu": nn.ELU,
    "lipswish": LipSwish,
    "softplus": nn.Softplus,
    "tanh": nn.Tanh,
}


def mlp_residual(
    dim: int,
    hidden: int,
    *,
    depth: int = 2,
    coeff: float = 0.97,
    activation: str | Callable[[], nn.Module] = "elu",
    n_power_iter: int = 5,
    generator: torch.Generator | None = None,
) -> nn.Sequential:
    """Residual branch ``g: R^D → R^D`` as a spectrally normalised MLP.

    ``Linear(D, H) → φ → [Linear(H, H) → φ] × (depth − 1) → Linear(H, D)``, every linear map
    normalised to ‖W‖₂ ≲ coeff and φ 1-Lipschitz, so Lip(g) ≤ coeff^{depth+1} ≤ coeff.

    Arguments:
        dim: data dimension D.
        hidden: hidden width H.
        depth: number of hidden layers (≥ 1; default 2).
        coeff: per-layer spectral bound c (default 0.97, i-ResNet [code]).
        activation: ``"elu"`` (i-ResNet default), ``"lipswish"`` (Residual Flows),
            ``"softplus"``, ``"tanh"``, or a zero-argument factory of a 1-Lipschitz module.
        n_power_iter: power-iteration steps per training forward (default 5).
        generator: RNG for the initialisation.

    Returns:
        ``nn.Sequential`` mapping ``(B, D) → (B, D)``.

    References:
        Behrmann et al., arXiv:1811.00995; Chen et al., arXiv:1906.02735.
    """
    if dim < 1 or hidden < 1 or depth < 1:
        raise ValueError(f"dim, hidden and depth must be >= 1, got {dim}, {hidden}, {depth}")
    sizes = [dim] + [hidden] * depth + [dim]
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        if i > 0:
            layers.append(make_activation(activation, _ACTIVATIONS))
        layers.append(
            SpectralNormLinear(a, b, coeff=coeff, n_power_iter=n_power_iter, generator=generator)
        )
    return nn.Sequential(*layers)


def conv_residual(
    channels: int,
    hidden: int,
    *,
    coeff: float = 0.97,
    activation: str | Callable[[], nn.Module] = "elu",
    kernel_size: int = 3,
    n_power_iter: int = 5,
    input_shape: tuple[int, int, int] | None = None,
    generator: torch.Generator | None = None,
) -> nn.Sequential:
    """Residual branch of the i-ResNet conv block: SN-conv3×3 → φ → SN-conv1×1 → φ → SN-conv3×3.

    Every convolution is normalised by its operator norm (power iteration with conv /
    conv_transpose on the actual input size), so Lip(g) ≤ coeff³.

    Arguments:
        channels: input/output channels C.
        hidden: hidden channels (i-ResNet CIFAR: 512 [code]).
        coeff: per-layer spectral bound (default 0.97, i-ResNet [code]).
        activation: 1-Lipschitz activation name or factory (default ``"elu"``, i-ResNet [code]).
        kernel_size: size of the outer convolutions (default 3).
        n_power_iter: power-iteration steps per training forward (default 5).
        input_shape: ``(C, H, W)``, to create the power-iteration vectors eagerly.
        generator: RNG for the initialisation.

    Returns:
        ``nn.Sequential`` mapping ``(B, C, H, W) → (B, C, H, W)``.

    References:
        Behrmann et al., arXiv:1811.00995 (§5, block architecture); jhjacobsen/invertible-resnet.
    """
    if channels < 1 or hidden < 1:
        raise ValueError(f"channels and hidden must be >= 1, got {channels}, {hidden}")
    if kernel_size % 2 != 1:
        raise ValueError(f"kernel_size must be odd to keep H, W, got {kernel_size}")
    hid_shape = None if input_shape is None else (hidden, *input_shape[1:])
    opts = {"coeff": coeff, "n_power_iter": n_power_iter, "generator": generator}
    return nn.Sequential(
        SpectralNormConv2d(channels, hidden, kernel_size, input_shape=input_shape, **opts),
        make_activation(activation, _ACTIVATIONS),
        SpectralNormConv2d(hidden, hidden, 1, input_shape=hid_shape, **opts),
        make_activation(activation, _ACTIVATIONS),
        SpectralNormConv2d(hidden, channels, kernel_size, input_shape=hid_shape, **opts),
    )


class IResBlock(FlowLayer):
    """Invertible residual block ``y = x + g(x)`` with a stochastic or exact log-determinant.

    **Log-det** (``logdet_mode``):

    - ``"series"`` (default): ``Σ_{m=1..n} (−1)^{m+1} vᵀJ^m v / m`` with Hutchinson probes
      (``probe``; averaged over ``trace_samples``), ``n = n_terms_train`` in training and
      ``n_terms_eval`` in eval (i-ResNet: 5 / 20 [code]); biased by at most
      ``d·Σ_{k>n} c^k/k``. With ``estimator="roulette"`` the tail is randomised per sample
      (Residual Flows): ``n_exact_terms`` exact terms (``max(n_exact_terms, n_terms_eval)`` in
      eval), then ``N ~ dist`` more, each reweighted by ``1/P(N ≥ j)`` — unbiased.
    - ``"exact_series"``: the same truncated series with exact traces from the full Jacobian
      (D VJPs; tests and small D).
    - ``"exact"``: ``slogdet(I + J)`` of the full Jacobian (tests and small D).

    With ``neumann_grad=True`` (and gradients enabled) the Hutchinson estimate carries the
    Neumann-series gradient (constant memory in the number of terms; its value is unchanged);
    otherwise gradients flow through the chained VJPs (``create_graph``).

    **Inverse:** ``x₀ = y``, ``x_{k+1} = y − g(x_k)`` until ``max|x_{k+1} − x_k| ≤ inverse_tol``
    or ``inverse_max_iter`` steps, power iteration frozen. Diagnostics are stored in
    :attr:`last_inverse_info`; non-convergence warns :class:`InverseNotConverged` (raises it
    with ``strict=True``). The returned ``x = y − g(x*)`` (one more step, differentiable) has
    gradient ``∂x/∂y = I`` — a first-order approximation of ``(I + J)^{-1}``.

    Arguments:
        g: residual branch mapping ``(B, ...) → (B, ...)`` with Lip(g) < 1, acting on each sample
            independently (e.g. :func:`mlp_residual`, :func:`conv_residual`).
        coeff: spectral bound written into every spectral-norm layer of ``g`` (default 0.97,
            i-ResNet [code]; Residual Flows uses 0.98); ``None`` keeps the layers' own values.
        n_power_iter: power-iteration steps per training forward, written into those layers
            (default 5, i-ResNet [code]); ``None`` keeps their values.
        n_terms_train: series terms in training (default 5, i-ResNet CIFAR density [code]).
        n_terms_eval: series terms in eval (default 20, i-ResNet / Residual Flows [code]).
        trace_samples: Hutchinson probes per sample (default 1 [code]).
        probe: ``"gaussian"`` (default [code]) or ``"rademacher"``.
        inverse_tol: absolute tolerance on the fixed-point step (default 1e-5, Residual Flows).
        inverse_max_iter: iteration cap (default 1000, Residual Flows [code]).
        logdet_mode: ``"series"``, ``"exact_series"`` or ``"exact"``.
        estimator: ``"series"`` (truncated) or ``"roulette"`` (unbiased).
        dist: roulette count distribution ``"geometric"`` (default [code]) or ``"poisson"``.
        p: geometric parameter (default 0.5 [code]).
        lam: Poisson rate (default 2.0, Residual Flows ``train_img.py`` [code]).
        n_exact_terms: exact terms before the roulette (default 2 [code]).
        neumann_grad: use the Neumann-series gradient (default True [code]).
        strict: raise instead of warn when the inverse does not converge.
        generator: default RNG for the probes and roulette counts (overridable per call).

    Returns:
        (from ``forward``) ``(y, logdet)`` with ``logdet`` of shape ``(B,)``.

    References:
        Behrmann et al., arXiv:1811.00995; Chen et al., arXiv:1906.02735;
        https://kexue.fm/archives/6482
    """

    def __init__(
        self,
        g: nn.Module,
        *,
        coeff: float | None = 0.97,
        n_power_iter: int | None = 5,
        n_terms_train: int = 5,
        n_terms_eval: int = 20,
        trace_samples: int = 1,
        probe: str = "gaussian",
        inverse_tol: float = 1e-5,
        inverse_max_iter: int = 1000,
        logdet_mode: str = "series",
        estimator: str = "series",
        dist: str = "geometric",
        p: float = 0.5,
        lam: float = 2.0,
        n_exact_terms: int = 2,
        neumann_grad: bool = True,
        strict: bool = False,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(g, nn.Module):
            raise ValueError(f"g must be an nn.Module, got {type(g).__name__}")
        if logdet_mode not in _LOGDET_MODES:
            raise ValueError(f"logdet_mode must be one of {_LOGDET_MODES}, got {logdet_mode!r}")
        if estimator not in _ESTIMATORS:
            raise ValueError(f"estimator must be one of {_ESTIMATORS}, got {estimator!r}")
        if dist not in ("geometric", "poisson"):
            raise ValueError(f"dist must be 'geometric' or 'poisson', got {dist!r}")
        if probe not in ("gaussian", "rademacher"):
            raise ValueError(f"probe must be 'gaussian' or 'rademacher', got {probe!r}")
        for name, val in (
            ("n_terms_train", n_terms_train),
            ("n_terms_eval", n_terms_eval),
            ("trace_samples", trace_samples),
            ("inverse_max_iter", inverse_max_iter),
        ):
            if not isinstance(val, int) or val < 1:
                raise ValueError(f"{name} must be a positive int, got {val!r}")
        if not isinstance(n_exact_terms, int) or n_exact_terms < 0:
            raise ValueError(f"n_exact_terms must be a non-negative int, got {n_exact_terms!r}")
        if not inverse_tol > 0:
            raise ValueError(f"inverse_tol must be > 0, got {inverse_tol}")
        if not 0.0 < p <= 1.0:
            raise ValueError(f"p must be in (0, 1], got {p}")
        if not lam > 0.0:
            raise ValueError(f"lam must be > 0, got {lam}")
        if coeff is not None and not 0.0 < coeff < 1.0:
            raise ValueError(f"coeff must be in (0, 1) for invertibility, got {coeff}")
        self.g = g
        for layer in g.modules():
            if isinstance(layer, _SpectralNormBase):
                if coeff is not None:
                    layer.coeff = float(coeff)
                if n_power_iter is not None:
                    layer.n_power_iter = int(n_power_iter)
        self.coeff = coeff
        self.n_terms_train, self.n_terms_eval = n_terms_train, n_terms_eval
        self.trace_samples, self.probe = trace_samples, probe
        self.inverse_tol, self.inverse_max_iter = float(inverse_tol), inverse_max_iter
        self.logdet_mode, self.estimator = logdet_mode, estimator
        self.dist, self.p, self.lam = dist, float(p), float(lam)
        self.n_exact_terms, self.neumann_grad, self.strict = n_exact_terms, neumann_grad, strict
        self.generator = generator
        self.last_inverse_info: InverseInfo | None = None

    @property
    def last_inverse_residual(self) -> float:
        """``max|x + g(x) − y|`` of the last inverse (``nan`` before any inverse call)."""
        info = self.last_inverse_info
        return math.nan if info is None else info.residual

    def extra_repr(self) -> str:
        return (
            f"logdet_mode={self.logdet_mode!r}, estimator={self.estimator!r}, "
            f"n_terms_train={self.n_terms_train}, n_terms_eval={self.n_terms_eval}"
        )

    def _check(self, x: Tensor, name: str) -> None:
        if not isinstance(x, Tensor) or x.dim() < 2:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"{name} must be a (B, ...) tensor, got {shape}")
        if not torch.isfinite(x).all():
            raise ValueError(f"{name} contains NaN or inf")

    def _weights(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        n = self.n_terms_train if self.training else self.n_terms_eval
        if self.estimator == "series":
            return torch.ones(x.shape[0], n, dtype=x.dtype, device=x.device)
        n_exact = self.n_exact_terms if self.training else max(self.n_exact_terms, n)
        return roulette_weights(
            x.shape[0],
            n_exact=n_exact,
            dist=self.dist,
            p=self.p,
            lam=self.lam,
            generator=generator,
            device=x.device,
            dtype=x.dtype,
        )

    def _logdet(
        self, gx: Tensor, x: Tensor, need_graph: bool, generator: torch.Generator | None
    ) -> Tensor:
        if self.logdet_mode != "series":
            jac = jacobian_matrix(gx, x, create_graph=need_graph)
            if self.logdet_mode == "exact":
                return exact_logdet(jac)
            n = self.n_terms_train if self.training else self.n_terms_eval
            return exact_series_logdet(jac, n)
        weights = self._weights(x, generator)
        total = None
        for _ in range(self.trace_samples):
            v = sample_probe(x, kind=self.probe, generator=generator)
            if need_graph and self.neumann_grad:
                est = neumann_logdet(gx, x, v, weights)
            else:
                est = hutchinson_logdet(gx, x, v, weights, create_graph=need_graph)
            total = est if total is None else total + est
        return total / self.trace_samples

    def _residual_and_logdet(
        self, x: Tensor, generator: torch.Generator | None
    ) -> tuple[Tensor, Tensor]:
        need_graph = torch.is_grad_enabled()
        with torch.enable_grad():
            xg = x if x.requires_grad else x.detach().requires_grad_(True)
            gx = self.g(xg)
            if gx.shape != x.shape:
                raise ValueError(
                    f"g must preserve the shape: x {tuple(x.shape)} -> g(x) {tuple(gx.shape)}"
                )
            logdet = self._logdet(gx, xg, need_graph, generator)
        if not need_graph:
            return gx.detach(), logdet.detach()
        return gx, logdet

    def forward(
        self,
        x: Tensor,
        context: Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Tensor]:
        """``y = x + g(x)`` and ``logdet ≈ ln det(I + J_g(x))`` per sample.

        Arguments:
            x: ``(B, ...)`` input.
            context: ignored (the block is unconditional).
            generator: RNG for probes / roulette counts (default: the block's ``generator``).

        Returns:
            ``(y, logdet)``, ``logdet`` of shape ``(B,)``.
        """
        self._check(x, "x")
        gx, logdet = self._residual_and_logdet(
            x, generator if generator is not None else self.generator
        )
        return x + gx, logdet

    def inverse(
        self,
        y: Tensor,
        context: Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Fixed-point inverse ``x = y − g(x)`` and ``logdet_inv = −logdet(x)``.

        Arguments:
            y: ``(B, ...)`` output of the block.
            context: ignored.
            generator: RNG for the log-det estimate at the recovered ``x``.

        Returns:
            ``(x, logdet_inv)``; diagnostics in :attr:`last_inverse_info`.
        """
        self._check(y, "y")
        gen = generator if generator is not None else self.generator
        with frozen_spectral_norm(self.g):
            with torch.no_grad():
                x = y.detach().clone()
                step, iterations, converged = math.inf, 0, False
                for iterations in range(1, self.inverse_max_iter + 1):  # noqa: B007
                    x_new = y.detach() - self.g(x)
                    step = (x_new - x).abs().max().item()
                    x = x_new
                    if step <= self.inverse_tol:
                        converged = True
                        break
            gx, logdet = self._residual_and_logdet(x, gen)
            residual = (x + gx.detach() - y.detach()).abs().max().item()
        self.last_inverse_info = InverseInfo(iterations, step, residual, converged)
        if not converged:
            msg = (
                f"i-ResNet inverse did not converge: step {step:.3e} > inverse_tol "
                f"{self.inverse_tol:.1e} after {iterations} iterations (residual {residual:.3e})"
            )
            if self.strict:
                raise InverseNotConverged(msg)
            warnings.warn(msg, InverseNotConverged, stacklevel=2)
        return y - gx, -logdet
