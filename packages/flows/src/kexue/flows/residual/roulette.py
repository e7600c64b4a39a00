"""Log-determinant estimators for i-ResNet / Residual Flow blocks ``y = x + g(x)``.

``ln det(I + J_g) = Σ_{m≥1} (−1)^{m+1} tr(J_g^m)/m`` (converges for ‖J_g‖₂ < 1). The estimators
here all evaluate the weighted series ``Σ_m (−1)^{m+1} w_m tr_m / m`` with per-sample weights
``w`` of shape ``(B, n)``:

- truncated power series: ``w_m = 1`` for ``m ≤ n`` (i-ResNet), biased by at most
  ``d·Σ_{m>n} c^m/m``;
- Russian roulette (Residual Flows): ``w_m = 1`` for the first ``n_exact`` terms, then
  ``w_m = 1[N ≥ m − n_exact] / P(N ≥ m − n_exact)`` with ``N`` drawn per sample, which makes the
  estimate unbiased;

with ``tr_m`` either the Hutchinson estimate ``vᵀ J^m v`` (``m`` chained vector–Jacobian
products) or the exact trace from the full Jacobian (small D, tests).

The Neumann-series gradient (:func:`neumann_logdet`) returns the same value as
:func:`hutchinson_logdet` but back-propagates the estimator
``∂θ ln det(I+J) ≈ (Σ_{k≥0} (−1)^k w_{k+1} vᵀJ^k) (∂θ J) v``: the series is accumulated without
a graph and one vector–Jacobian product with ``create_graph`` carries the gradient, so memory does
not grow with the number of terms.

References:
    - Behrmann et al., Invertible Residual Networks, arXiv:1811.00995 (§3.2, truncation bound).
    - Chen et al., Residual Flows, arXiv:1906.02735 (§3.1 roulette, §3.2 Neumann gradient).
    - Hutchinson 1989; https://kexue.fm/archives/6482
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = [
    "exact_logdet",
    "exact_series_logdet",
    "hutchinson_logdet",
    "jacobian_matrix",
    "neumann_logdet",
    "roulette_tail_probability",
    "roulette_weights",
    "sample_probe",
    "truncation_bound",
]


def _acc_dtype(x: Tensor) -> torch.dtype:
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def _per_sample(w: Tensor, like: Tensor) -> Tensor:
    return w.to(like.dtype).view(-1, *([1] * (like.dim() - 1)))


def sample_probe(
    x: Tensor, *, kind: str = "gaussian", generator: torch.Generator | None = None
) -> Tensor:
    """Draw a Hutchinson probe ``v`` shaped like ``x`` with ``E[v vᵀ] = I``.

    Arguments:
        x: template tensor (shape, dtype, device).
        kind: ``"gaussian"`` (v ~ N(0, I), i-ResNet / Residual Flows default) or
            ``"rademacher"`` (±1 with probability ½).
        generator: RNG; the draw happens on the generator's device and is moved to ``x``'s.

    Returns:
        Tensor of ``x``'s shape, dtype and device.
    """
    device = generator.device if generator is not None else x.device
    if kind == "gaussian":
        v = torch.randn(x.shape, generator=generator, device=device, dtype=x.dtype)
    elif kind == "rademacher":
        bits = torch.randint(0, 2, x.shape, generator=generator, device=device)
        v = (bits * 2 - 1).to(x.dtype)
    else:
        raise ValueError(f"probe must be 'gaussian' or 'rademacher', got {kind!r}")
    return v.to(x.device)


def roulette_tail_probability(
    j: int, *, dist: str = "geometric", p: float = 0.5, lam: float = 2.0
) -> float:
    """``P(N ≥ j)`` for the roulette count ``N``.

    ``geometric``: N on {1, 2, …} with P(N = n) = p(1−p)^{n−1}, so P(N ≥ j) = (1−p)^{j−1}
    (rtqichen/residual-flows ``geometric_1mcdf``); ``poisson``: N ~ Poisson(λ),
    P(N ≥ j) = 1 − Σ_{i<j} e^{−λ} λ^i / i!.

    Arguments:
        j: term index past the exact terms, ``j ≥ 1``.
        dist: ``"geometric"`` or ``"poisson"``.
        p: geometric success probability (default 0.5, Residual Flows block default [code]).
        lam: Poisson rate (default 2.0, Residual Flows ``train_img.py`` [code]).

    Returns:
        The probability as a Python float.
    """
    if dist == "geometric":
        return (1.0 - p) ** max(j - 1, 0)
    if dist == "poisson":
        cdf = sum(math.exp(-lam) * lam**i / math.factorial(i) for i in range(j))
        return max(1.0 - cdf, 0.0)
    raise ValueError(f"dist must be 'geometric' or 'poisson', got {dist!r}")


def roulette_weights(
    batch: int,
    *,
    n_exact: int,
    dist: str = "geometric",
    p: float = 0.5,
    lam: float = 2.0,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Per-sample Russian-roulette term weights ``w`` of shape ``(batch, n_exact + max N)``.

    ``w_m = 1`` for ``m ≤ n_exact``; for ``m = n_exact + j``, ``w_m = 1[N_b ≥ j]/P(N ≥ j)``, one
    ``N_b`` per sample, so ``E[w_m] = 1`` for every m and the weighted series is unbiased.

    Arguments:
        batch: number of samples B.
        n_exact: number of always-included terms (default of the block: 2, Residual Flows [code]).
        dist, p, lam: the count distribution (see :func:`roulette_tail_probability`).
        generator: RNG for the counts.
        device: device of the result.
        dtype: dtype of the result.

    Returns:
        ``(B, n)`` weights.

    References:
        Chen et al., Residual Flows, arXiv:1906.02735, §3.1.
    """
    if dist == "geometric":
        if not 0.0 < p <= 1.0:
            raise ValueError(f"p must be in (0, 1], got {p}")
        gen_device = generator.device if generator is not None else "cpu"
        counts = torch.empty(batch, dtype=torch.float64, device=gen_device)
        counts.geometric_(p, generator=generator)
    elif dist == "poisson":
        if not lam > 0.0:
            raise ValueError(f"lam must be > 0, got {lam}")
        gen_device = generator.device if generator is not None else "cpu"
        rate = torch.full((batch,), float(lam), dtype=torch.float64, device=gen_device)
        counts = torch.poisson(rate, generator=generator)
    else:
        raise ValueError(f"dist must be 'geometric' or 'poisson', got {dist!r}")
    if n_exact < 0:
        raise ValueError(f"n_exact must be >= 0, got {n_exact}")
    counts = counts.cpu()
    n_extra = int(counts.max().item()) if batch else 0
    w = torch.ones(batch, n_exact + n_extra, dtype=torch.float64)
    for j in range(1, n_extra + 1):
        prob = roulette_tail_probability(j, dist=dist, p=p, lam=lam)
        w[:, n_exact + j - 1] = (counts >= j).double() / prob
    return w.to(device=device, dtype=dtype)


def _vjp(gx: Tensor, x: Tensor, w: Tensor, create_graph: bool) -> Tensor:
    return torch.autograd.grad(gx, x, w, retain_graph=True, create_graph=create_graph)[0]


def _dot(a: Tensor, b: Tensor, dtype: torch.dtype) -> Tensor:
    return (a.to(dtype) * b.to(dtype)).flatten(1).sum(1)


def hutchinson_logdet(
    gx: Tensor, x: Tensor, v: Tensor, weights: Tensor, *, create_graph: bool = False
) -> Tensor:
    """Weighted power series with Hutchinson traces: ``Σ_m (−1)^{m+1} w_m vᵀJ^m v / m``.

    ``vᵀJ^m`` is built by ``m`` chained vector–Jacobian products through the graph of ``gx``.

    Arguments:
        gx: ``g(x)``, same shape as ``x``, with a graph back to ``x``.
        x: the input (requires grad), ``(B, ...)``.
        v: the probe, shaped like ``x``.
        weights: ``(B, n)`` term weights (ones for the truncated series).
        create_graph: keep the graph of every product so the result is differentiable.

    Returns:
        ``(B,)`` estimate of ``ln det(I + J_g)`` (float32, or float64 for float64 inputs).
    """
    acc = _acc_dtype(x)
    total = torch.zeros(x.shape[0], dtype=acc, device=x.device)
    w = v
    for m in range(1, weights.shape[1] + 1):
        w = _vjp(gx, x, w, create_graph)
        coef = weights[:, m - 1].to(acc) * ((-1) ** (m + 1) / m)
        total = total + coef * _dot(w, v, acc)
    return total


def neumann_logdet(gx: Tensor, x: Tensor, v: Tensor, weights: Tensor) -> Tensor:
    """Same value as :func:`hutchinson_logdet`, with the Neumann-series gradient attached.

    The value ``Σ_m (−1)^{m+1} w_m vᵀJ^m v / m`` and the vector
    ``n = Σ_{k=0}^{n−1} (−1)^k w_{k+1} vᵀJ^k`` are accumulated without a graph; then
    ``s = nᵀ J v`` is formed by one vector–Jacobian product with ``create_graph=True`` and the
    result is ``value + s − s.detach()``: the value is the log-det estimate and its gradient is
    ``nᵀ (∂J) v``, an unbiased estimate of ``tr((I+J)^{-1} ∂J) = ∂ ln det(I+J)`` when the weights
    have unit mean. Memory is that of one backward, whatever the number of terms.

    Arguments:
        gx: ``g(x)`` with a graph back to ``x``.
        x: the input (requires grad).
        v: the probe.
        weights: ``(B, n)`` term weights.

    Returns:
        ``(B,)`` log-det estimate carrying the Neumann gradient.

    References:
        Chen et al., Residual Flows, arXiv:1906.02735, §3.2 (eq. 8).
    """
    acc = _acc_dtype(x)
    n_terms = weights.shape[1]
    with torch.no_grad():
        value = torch.zeros(x.shape[0], dtype=acc, device=x.device)
        neumann = v * _per_sample(weights[:, 0], v)
        w = v
        for m in range(1, n_terms + 1):
            w = _vjp(gx, x, w, False)
            coef = weights[:, m - 1].to(acc) * ((-1) ** (m + 1) / m)
            value = value + coef * _dot(w, v, acc)
            if m < n_terms:
                neumann = neumann + ((-1) ** m) * _per_sample(weights[:, m], w) * w
    surrogate = _dot(_vjp(gx, x, neumann, True), v, acc)
    return value + (surrogate - surrogate.detach())


def jacobian_matrix(gx: Tensor, x: Tensor, *, create_graph: bool = False) -> Tensor:
    """Full per-sample Jacobian ``J[b, i, j] = ∂g(x)_b,i / ∂x_b,j`` by D vector–Jacobian products.

    Assumes ``g`` acts on each sample independently (no batch statistics).

    Arguments:
        gx: ``g(x)`` with a graph back to ``x``, shape ``(B, ...)`` with D elements per sample.
        x: the input (requires grad), same per-sample size D.
        create_graph: keep the graph (for gradients of functions of J).

    Returns:
        ``(B, D, D)`` tensor.
    """
    batch = x.shape[0]
    flat = gx.reshape(batch, -1)
    rows = []
    for i in range(flat.shape[1]):
        grad = torch.autograd.grad(
            flat[:, i].sum(), x, retain_graph=True, create_graph=create_graph
        )[0]
        rows.append(grad.reshape(batch, -1))
    return torch.stack(rows, dim=1)


def exact_series_logdet(jac: Tensor, n_terms: int) -> Tensor:
    """Truncated series with exact traces: ``Σ_{m=1..n} (−1)^{m+1} tr(J^m)/m``.

    Arguments:
        jac: ``(B, D, D)`` Jacobians.
        n_terms: number of terms n ≥ 1.

    Returns:
        ``(B,)`` in float32 (float64 for float64 input).

    References:
        rtqichen/residual-flows ``exact_trace`` test helper [code].
    """
    acc = torch.float64 if jac.dtype == torch.float64 else torch.float32
    jac = jac.to(acc)
    total = torch.zeros(jac.shape[0], dtype=acc, device=jac.device)
    power = jac
    for m in range(1, n_terms + 1):
        if m > 1:
            power = power @ jac
        total = total + ((-1) ** (m + 1) / m) * torch.diagonal(power, dim1=-2, dim2=-1).sum(-1)
    return total


def exact_logdet(jac: Tensor) -> Tensor:
    """``ln|det(I + J)|`` by ``torch.linalg.slogdet`` (reference for tests, small D).

    Arguments:
        jac: ``(B, D, D)`` Jacobians of g.

    Returns:
        ``(B,)`` in float32 (float64 for float64 input).
    """
    acc = torch.float64 if jac.dtype == torch.float64 else torch.float32
    eye = torch.eye(jac.shape[-1], dtype=acc, device=jac.device)
    return torch.linalg.slogdet(eye + jac.to(acc)).logabsdet


def truncation_bound(dim: int, coeff: float, n_terms: int) -> float:
    """Bound on the truncation error of the n-term series: ``d·Σ_{k>n} c^k/k``.

    Equals ``−d·(ln(1−c) + Σ_{k=1..n} c^k/k)`` (Behrmann et al., arXiv:1811.00995, Thm 3).

    Arguments:
        dim: dimension d.
        coeff: Lipschitz bound c < 1 of g.
        n_terms: number of series terms n.

    Returns:
        The bound as a Python float.
    """
    if not 0.0 <= coeff < 1.0:
        raise ValueError(f"coeff must be in [0, 1), got {coeff}")
    head = sum(coeff**k / k for k in range(1, n_terms + 1))
    return max(dim * (-math.log1p(-coeff) - head), 0.0)
