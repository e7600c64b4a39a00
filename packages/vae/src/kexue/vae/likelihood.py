"""Likelihood evaluation: the IWAE bound, importance-sampled log p(x), bits/dim.

The IWAE bound L_k = E log (1/k)Σ_i p(x, z_i)/q(z_i|x), z_i ~ q(·|x) i.i.d., is non-decreasing in
k and tends to log p(x) (bounded weights); L_1 is the sampled-KL ELBO. It is evaluated in log
space (logsumexp: linear-space averages of the weights underflow) and chunked over k (k×B×D
memory otherwise). Post 5383's reading: any proposal would do, q(z|x) is used because it is
concentrated; train with IWAE only when the encoder does not matter (its gradient SNR falls like
1/√k, Rainforth et al.).

Bits/dim are those of ``kexue-flows`` (the same dequantisation and constant, written here again
so that kexue-vae does not depend on kexue-flows): y = lo + w·(x + u)/n, u ~ U(0, 1)^D, and
bpd = −(log p(y) − D·ln(n/w))/(D·ln 2); sklearn digits: n = 17, D = 64, (0, 1).

References:
    Burda et al., Importance Weighted Autoencoders, arXiv:1509.00519; Rainforth et al.,
    arXiv:1802.04537; https://kexue.fm/archives/5383; Theis et al., arXiv:1511.01844.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from ._validation import Reduction, check_batched, check_int, check_reduction, reduce
from .elbo import gaussian_log_prob

__all__ = ["bits_per_dim", "dequantize", "iwae_bound", "log_likelihood_is"]


def iwae_bound(
    log_px_z: Tensor, log_pz: Tensor, log_qz_x: Tensor, *, reduction: Reduction = "none"
) -> Tensor:
    """IWAE bound from k importance samples: logsumexp_i(log w_i) − log k, per data point.

    Arguments:
        log_px_z, log_pz, log_qz_x: ``(k, B)``: log p(x|z_i), log p(z_i), log q(z_i|x) at
            z_i ~ q(·|x).
        reduction: "none" (default, ``(B,)``: a bound per data point), "mean" or "sum".

    Returns:
        L_k in nats (a lower bound on log p(x)).

    References:
        Burda et al., arXiv:1509.00519, eq. 8.
    """
    check_reduction(reduction)
    for name, t in (("log_px_z", log_px_z), ("log_pz", log_pz), ("log_qz_x", log_qz_x)):
        check_batched(t, name)
        if t.dim() != 2 or t.shape != log_px_z.shape:
            raise ValueError(
                f"log_px_z, log_pz and log_qz_x must all be (k, B), got {tuple(log_px_z.shape)}, "
                f"{tuple(log_pz.shape)} and {tuple(log_qz_x.shape)}"
            )
    log_w = log_px_z + log_pz - log_qz_x
    return reduce(torch.logsumexp(log_w, dim=0) - math.log(log_w.shape[0]), reduction)


@torch.no_grad()
def log_likelihood_is(
    x: Tensor,
    encode: Callable[[Tensor], tuple[Tensor, Tensor]],
    log_px_z: Callable[[Tensor, Tensor], Tensor],
    *,
    k: int = 1000,
    chunk: int = 100,
    prior_mu: Tensor | None = None,
    prior_logvar: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Importance-sampled log p(x) with the encoder as proposal (the IWAE-k bound), per sample.

    Draws k samples z_i ~ q(z|x) = N(μ(x), σ²(x)) in chunks of ``chunk`` and keeps a running
    logsumexp in float64, so memory is chunk×B×D and nothing underflows. Runs under
    ``torch.no_grad()``; put models with BatchNorm/dropout in eval mode first.

    Arguments:
        x: ``(B, ...)`` data (dequantised for continuous decoders).
        encode: x → ``(μ, log σ²)``, each ``(B, d)``.
        log_px_z: ``(x_rep, z)`` → ``(n,)`` per-sample decoder log-likelihood, for ``x_rep``
            ``(n, ...)`` (rows of x repeated chunk-major) and ``z`` ``(n, d)``.
        k: number of importance samples (1000 default; Burda et al. evaluate with 5000).
        chunk: samples per chunk (memory ∝ chunk·B).
        prior_mu, prior_logvar: a diagonal Gaussian prior, broadcastable to ``(d,)``; default
            N(0, I).
        generator: for the draws.

    Returns:
        ``(B,)`` float64 lower bounds on log p(x) in nats ("IWAE-k").
    """
    check_batched(x, "x")
    k = check_int(k, "k")
    chunk = check_int(chunk, "chunk")
    mu, logvar = encode(x)
    if mu.dim() != 2 or mu.shape != logvar.shape or mu.shape[0] != x.shape[0]:
        raise ValueError(
            f"encode(x) must return (mu, logvar) of shape (B, d) with B = {x.shape[0]}, got "
            f"{tuple(mu.shape)} and {tuple(logvar.shape)}"
        )
    zero = torch.zeros((), dtype=mu.dtype, device=mu.device)
    pm = zero if prior_mu is None else prior_mu
    plv = zero if prior_logvar is None else prior_logvar
    b, d = mu.shape
    std = torch.exp(0.5 * logvar)
    parts = []
    done = 0
    while done < k:
        c = min(chunk, k - done)
        eps = torch.randn((c, b, d), generator=generator, dtype=mu.dtype, device=mu.device)
        z = (mu + std * eps).reshape(c * b, d)
        mu_r, lv_r = mu.repeat(c, 1), logvar.repeat(c, 1)
        x_r = x.repeat(c, *([1] * (x.dim() - 1)))
        lw = log_px_z(x_r, z) + gaussian_log_prob(z, pm, plv) - gaussian_log_prob(z, mu_r, lv_r)
        parts.append(torch.logsumexp(lw.reshape(c, b).double(), dim=0))
        done += c
    return torch.logsumexp(torch.stack(parts), dim=0) - math.log(k)


def dequantize(
    x_int: Tensor,
    *,
    n_levels: int = 17,
    data_range: tuple[float, float] = (0.0, 1.0),
    generator: torch.Generator | None = None,
) -> Tensor:
    """Uniform dequantisation y = lo + (hi − lo)·(x + u)/n, u ~ U(0, 1) per value (as kexue-flows).

    Arguments:
        x_int: integer-valued pixels in {0, …, n − 1} (any dtype).
        n_levels: n (17 for sklearn digits, the default).
        data_range: (lo, hi) of y; default (0, 1).
        generator: for u.

    Returns:
        float tensor of ``x_int``'s shape (float32 unless ``x_int`` is floating).
    """
    n = check_int(n_levels, "n_levels", minimum=2)
    lo, hi = (float(v) for v in data_range)
    if not hi > lo:
        raise ValueError(f"data_range must be (lo, hi) with hi > lo, got {data_range!r}")
    dtype = x_int.dtype if x_int.is_floating_point() else torch.float32
    u = torch.rand(x_int.shape, generator=generator, dtype=dtype, device=x_int.device)
    return lo + (hi - lo) * (x_int.to(dtype) + u) / n


def bits_per_dim(
    log_p: Tensor,
    *,
    num_dims: int = 64,
    n_levels: int = 17,
    data_range: tuple[float, float] = (0.0, 1.0),
) -> Tensor:
    """Bits per dimension of dequantised data: bpd = −(log p(y) − D·ln(n/w))/(D·ln 2).

    Same formula and constant as ``kexue.flows.bits_per_dim``. A uniform density on the
    dequantised cube gives log₂ n (4.0875 for 17 levels).

    Arguments:
        log_p: per-sample log-density (or a lower bound: ELBO, IWAE-k) of y in nats, ``(B,)``.
        num_dims: D (64 for 8×8 digits, the default).
        n_levels: n (17 for digits).
        data_range: (lo, hi) of y, width w = hi − lo; default (0, 1).

    Returns:
        ``(B,)`` bits/dim (an upper bound when ``log_p`` is a lower bound).
    """
    check_int(num_dims, "num_dims")
    n = check_int(n_levels, "n_levels", minimum=2)
    lo, hi = (float(v) for v in data_range)
    if not hi > lo:
        raise ValueError(f"data_range must be (lo, hi) with hi > lo, got {data_range!r}")
    if log_p.dim() != 1:
        raise ValueError(f"log_p must have shape (B,), got {tuple(log_p.shape)}")
    const = num_dims * math.log(n / (hi - lo))
    return -(log_p - const) / (num_dims * math.log(2.0))
