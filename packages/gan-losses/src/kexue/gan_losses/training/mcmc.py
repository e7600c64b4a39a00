"""Langevin dynamics, MALA and a replay buffer for sampling energy models (posts 6331, 6612).

The energy is any callable ``U: (B, ...) -> (B,)`` (or ``(B, 1)``): an energy network on images,
or ``z ↦ U(G(z))`` for latent-space sampling (post 6331's "better truncation trick"; that energy
of ``z`` is exact only for a generator with unit Jacobian determinant). Each sample's energy must
depend on that sample only (no batch norm in U), because gradients are taken of ``U.sum()``.

Two parametrisations of the Langevin step, kept apart on purpose:

- :func:`langevin_sample` (principled, samples ``∝ e^{−U}`` as ε → 0):
  ``x ← x − (ε/2)∇U(x) + √ε ξ``. For ``U = ‖x‖²/2`` its stationary variance is
  ``1/(1 − ε/4)`` (1.00251 at ε = 0.01): the discretisation bias that MALA removes.
- :func:`decoupled_langevin_sample` (IGEBM ``train.py``): ``x ← x + σξ``; ``g = clip(∇U(x), ±c)``;
  ``x ← clamp(x − step·g)``. Step and noise are unrelated, so it is **not** a sampler of
  ``e^{−U}``: for ``U = ‖x‖²/2`` (no clip, no clamp) the stationary variance is
  ``(1−s)²σ²/(1 − (1−s)²)`` = 0.001231 at s = 0.01, σ = 0.005 (noise first, as IGEBM; the
  gradient-first order gives ``σ²/(1 − (1−s)²)`` = 0.001256), not 1.

:func:`mala_sample` adds the Metropolis–Hastings correction with the proposal density
``log q(x'|x) = −‖x' − x + (ε/2)∇U(x)‖² / (2ε)``. MEG's sampler uses a non-squared norm and post
6331 writes ``q(z̃_t)`` for ``q(z_t)`` and drops the ½ on ε; neither is ported.

All samplers run under ``torch.enable_grad()`` (callable inside ``no_grad``), never touch the
parameters' ``.grad``, and return **detached** samples (negatives carry no gradient).

References:
    https://kexue.fm/archives/6331, https://kexue.fm/archives/6612; Roberts & Tweedie (1996) for
    MALA; Du & Mordatch, arXiv 1903.08689 (``openai/ebm_code_release``); Kumar et al., arXiv
    1901.08508 (MEG).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor

from .._validation import check_batched, check_positive, finite_checks_enabled, per_sample_flat

__all__ = [
    "MALAResult",
    "ReplayBuffer",
    "decoupled_langevin_sample",
    "langevin_sample",
    "mala_sample",
]

EnergyFn = Callable[[Tensor], Tensor]


def _randn(like: Tensor, generator: torch.Generator | None) -> Tensor:
    if generator is None:
        return torch.randn_like(like)
    noise = torch.randn(like.shape, generator=generator, device=generator.device, dtype=like.dtype)
    return noise.to(like.device)


def _exponential(n: int, like: Tensor, generator: torch.Generator | None) -> Tensor:
    """``n`` Exp(1) draws, i.e. ``−log u`` for ``u ~ U(0, 1)`` (no transcendental kernel call)."""
    device = generator.device if generator is not None else like.device
    out = torch.empty(n, device=device, dtype=like.dtype).exponential_(generator=generator)
    return out.to(like.device)


def _energy_and_grad(energy_fn: EnergyFn, x: Tensor) -> tuple[Tensor, Tensor]:
    """``U(x)`` as ``(B,)`` and ``∇_x U(x)``, both detached; parameters' ``.grad`` untouched."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        u = energy_fn(x)
        if not isinstance(u, Tensor):
            raise ValueError(f"energy_fn must return a tensor, got {type(u).__name__}")
        if u.dim() == 2 and u.shape[1] == 1:
            u = u.squeeze(1)
        if u.dim() != 1 or u.shape[0] != x.shape[0]:
            raise ValueError(
                f"energy_fn must return one energy per sample, (B,) or (B, 1) with B = "
                f"{x.shape[0]}; got shape {tuple(u.shape)}"
            )
        grad = None
        if u.requires_grad:
            (grad,) = torch.autograd.grad(u.sum(), x, allow_unused=True)
        if grad is None:
            raise ValueError("energy_fn(x) does not depend on x through autograd")
    return u.detach(), grad.detach()


class _FiniteWatch:
    """Device-side record of the first step whose energy or gradient was non-finite.

    One ``isfinite`` reduction per step, no host sync inside the loop; :meth:`raise_if_bad` syncs
    once at the end. Off when the package's finite checks are off.
    """

    def __init__(self, device: torch.device) -> None:
        self.enabled = finite_checks_enabled()
        self.first_bad = torch.full((), -1, dtype=torch.int64, device=device)

    def observe(self, step: int, u: Tensor, grad: Tensor) -> None:
        if self.enabled:
            bad = ~(torch.isfinite(u).all() & torch.isfinite(grad).all())
            self.first_bad = torch.where(bad & (self.first_bad < 0), step, self.first_bad)

    def raise_if_bad(self) -> None:
        if self.enabled and (step := int(self.first_bad)) >= 0:
            raise ValueError(
                f"energy_fn returned a non-finite energy or gradient at step {step} (0-based); the "
                "samples would be NaN/inf. Disable this check with "
                "kexue.gan_losses.set_finite_checks(False)."
            )


def _check_start(x: object, n_steps: int) -> Tensor:
    x = check_batched(x, "x", min_dim=1)
    if not x.is_floating_point():
        raise ValueError(f"x must be a floating-point tensor, got dtype {x.dtype}")
    if not isinstance(n_steps, int) or n_steps < 0:
        raise ValueError(f"n_steps must be an int >= 0, got {n_steps!r}")
    return x.detach()


def langevin_sample(
    energy_fn: EnergyFn,
    x: Tensor,
    *,
    n_steps: int,
    epsilon: float,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Unadjusted Langevin dynamics ``x ← x − (ε/2)∇U(x) + √ε ξ``, ``ξ ~ N(0, I)``.

    Arguments:
        energy_fn: ``U``, ``(B, ...) -> (B,)`` or ``(B, 1)``.
        x: initial states ``(B, ...)`` (e.g. from :class:`ReplayBuffer`); not modified.
        n_steps: number of steps K (post 6612: 20–50 [unverified]).
        epsilon: ε (post 6612: about 1/200 [unverified]; MEG: ε = 2α = 0.02).
        generator: seeds the noise.

    Returns:
        Detached samples, shape and dtype of ``x``. A non-finite energy or gradient at any step
        raises ``ValueError`` naming the step (checked on device, one host sync at the end).

    References:
        https://kexue.fm/archives/6612, https://kexue.fm/archives/6331.
    """
    x = _check_start(x, n_steps)
    check_positive(epsilon, "epsilon")
    scale = math.sqrt(epsilon)
    watch = _FiniteWatch(x.device)
    for step in range(n_steps):
        u, grad = _energy_and_grad(energy_fn, x)
        watch.observe(step, u, grad)
        x = x - 0.5 * epsilon * grad.to(x.dtype) + scale * _randn(x, generator)
    watch.raise_if_bad()
    return x


def decoupled_langevin_sample(
    energy_fn: EnergyFn,
    x: Tensor,
    *,
    n_steps: int,
    step_size: float = 10.0,
    noise_std: float = 0.005,
    grad_clip: float | None = 0.01,
    clamp: tuple[float, float] | None = (0.0, 1.0),
    generator: torch.Generator | None = None,
) -> Tensor:
    """IGEBM's Langevin step with decoupled step size and noise (not a sampler of ``e^{−U}``).

    Per step, in IGEBM's order: ``x ← x + σξ``; ``g = clip(∇U(x), −c, c)`` element-wise;
    ``x ← x − step·g``; ``x ← clamp(x, lo, hi)``.

    Arguments:
        energy_fn: ``U``, ``(B, ...) -> (B,)`` or ``(B, 1)``.
        x: initial states ``(B, ...)``; not modified.
        n_steps: K; 60 for CIFAR-10, 50 for ImageNet-128 (flag default 20) [code].
        step_size: ``step_lr`` = 10 (CIFAR-10), 100 (ImageNet-128), flag default 1 [code].
        noise_std: σ = 0.005 [code].
        grad_clip: ``c`` = 0.01 (``proj_norm``, element-wise) [code]; None disables.
        clamp: ``(lo, hi)`` = (0, 1), images in [0, 1] [code]; None disables.
        generator: seeds the noise.

    Returns:
        Detached samples, shape and dtype of ``x``. A non-finite energy or gradient at any step
        raises ``ValueError`` naming the step (checked on device, one host sync at the end).

    References:
        https://kexue.fm/archives/6612; ``openai/ebm_code_release`` ``train.py``.
    """
    x = _check_start(x, n_steps)
    check_positive(step_size, "step_size")
    check_positive(noise_std, "noise_std", allow_zero=True)
    if grad_clip is not None:
        check_positive(grad_clip, "grad_clip")
    if clamp is not None and not (len(clamp) == 2 and clamp[0] < clamp[1]):
        raise ValueError(f"clamp must be (lo, hi) with lo < hi or None, got {clamp!r}")
    watch = _FiniteWatch(x.device)
    for step in range(n_steps):
        if noise_std:
            x = x + noise_std * _randn(x, generator)
        u, grad = _energy_and_grad(energy_fn, x)
        watch.observe(step, u, grad)
        if grad_clip is not None:
            grad = grad.clamp(-grad_clip, grad_clip)
        x = x - step_size * grad.to(x.dtype)
        if clamp is not None:
            x = x.clamp(clamp[0], clamp[1])
    watch.raise_if_bad()
    return x


class MALAResult(NamedTuple):
    """Result of :func:`mala_sample`: detached ``samples`` and the ``acceptance_rate`` (scalar
    tensor, mean over chains and steps)."""

    samples: Tensor
    acceptance_rate: Tensor


def _log_proposal(x_to: Tensor, x_from: Tensor, grad_from: Tensor, epsilon: float) -> Tensor:
    """``log q(x_to | x_from) = −‖x_to − x_from + (ε/2)∇U(x_from)‖² / (2ε)`` up to a constant."""
    diff = per_sample_flat(x_to - x_from + 0.5 * epsilon * grad_from)
    return -diff.pow(2).sum(dim=1) / (2.0 * epsilon)


def mala_sample(
    energy_fn: EnergyFn,
    x: Tensor,
    *,
    n_steps: int,
    epsilon: float,
    generator: torch.Generator | None = None,
) -> MALAResult:
    """Metropolis-adjusted Langevin: Langevin proposals accepted by Metropolis–Hastings.

    Proposal ``x' = x − (ε/2)∇U(x) + √ε ξ``, accepted per chain with probability

    .. math:: \\min\\Big(1, \\exp\\big(U(x) - U(x') + \\log q(x|x') - \\log q(x'|x)\\big)\\Big),
        \\quad \\log q(b|a) = -\\frac{\\|b - a + \\frac ε2∇U(a)\\|^2}{2ε}

    The chain leaves ``e^{−U}`` exactly invariant for any ε (only the acceptance rate drops).

    Arguments:
        energy_fn: ``U``, ``(B, ...) -> (B,)`` or ``(B, 1)``; e.g. ``lambda z: E(G(z))`` in latent
            space (MEG: ε = 2α = 0.02).
        x: initial states ``(B, ...)``; not modified.
        n_steps: number of proposals per chain.
        epsilon: ε.
        generator: seeds the proposals and the accept/reject draws.

    Returns:
        :class:`MALAResult` (detached samples, acceptance rate).

    References:
        https://kexue.fm/archives/6331 (with its typos corrected); arXiv 1901.08508.
    """
    x = _check_start(x, n_steps)
    check_positive(epsilon, "epsilon")
    scale = math.sqrt(epsilon)
    u, grad = _energy_and_grad(energy_fn, x)
    start = _FiniteWatch(x.device)  # the start must be finite; a non-finite proposal is rejected
    start.observe(0, u, grad)
    start.raise_if_bad()
    accepted = torch.zeros((), dtype=torch.float64, device=x.device)
    for _ in range(n_steps):
        proposal = x - 0.5 * epsilon * grad.to(x.dtype) + scale * _randn(x, generator)
        u_prop, grad_prop = _energy_and_grad(energy_fn, proposal)
        log_alpha = (
            u
            - u_prop
            + _log_proposal(x, proposal, grad_prop, epsilon)
            - _log_proposal(proposal, x, grad, epsilon)
        )
        # u < α  <=>  −log u > −log α; a NaN log α rejects
        accept = _exponential(x.shape[0], log_alpha, generator) > -log_alpha
        mask = accept.view(-1, *([1] * (x.dim() - 1)))
        x = torch.where(mask, proposal, x)
        grad = torch.where(mask, grad_prop, grad)
        u = torch.where(accept, u_prop, u)
        accepted = accepted + accept.sum()
    rate = accepted / max(n_steps * x.shape[0], 1)
    return MALAResult(samples=x, acceptance_rate=rate.to(torch.float32))


class ReplayBuffer:
    """IGEBM's replay buffer of past chain ends, a FIFO ring on a fixed device and dtype.

    ``sample(n, init_fn)`` starts each of ``n`` chains from a uniformly drawn stored state, except
    with probability ``reinit_fraction`` (and always while empty) from ``init_fn`` (fresh noise);
    ``push(x)`` stores detached chain ends, overwriting the oldest once full.

    Arguments:
        capacity: number of stored states, 10 000 [code].
        reinit_fraction: probability of a fresh start, 0.05 (a chain starts from the buffer when
            ``u > 0.05``) [code].
        device, dtype: where the states live; default: those of the first pushed batch.
        generator: seeds which chains restart and which states are drawn (``init_fn`` draws its
            own noise).

    References:
        https://kexue.fm/archives/6612; ``openai/ebm_code_release`` ``train.py``.
    """

    def __init__(
        self,
        capacity: int = 10_000,
        *,
        reinit_fraction: float = 0.05,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        if not isinstance(capacity, int) or capacity < 1:
            raise ValueError(f"capacity must be an int >= 1, got {capacity!r}")
        if not 0.0 <= reinit_fraction <= 1.0:
            raise ValueError(f"reinit_fraction must be in [0, 1], got {reinit_fraction}")
        self.capacity = capacity
        self.reinit_fraction = float(reinit_fraction)
        self.device = torch.device(device) if device is not None else None
        self.dtype = dtype
        self.generator = generator
        self._storage: Tensor | None = None
        self._size = 0
        self._next = 0

    def __len__(self) -> int:
        return self._size

    def _index_device(self) -> torch.device:
        return self.generator.device if self.generator is not None else torch.device("cpu")

    def push(self, x: Tensor) -> None:
        """Store the detached batch ``x`` ``(B, ...)``; the oldest states go first once full."""
        x = check_batched(x, "x", min_dim=1).detach()
        if self._storage is None:
            device = self.device if self.device is not None else x.device
            dtype = self.dtype if self.dtype is not None else x.dtype
            self.device, self.dtype = device, dtype
            self._storage = torch.empty((self.capacity, *x.shape[1:]), device=device, dtype=dtype)
        elif x.shape[1:] != self._storage.shape[1:]:
            raise ValueError(
                f"x must have per-sample shape {tuple(self._storage.shape[1:])} like the stored "
                f"states, got {tuple(x.shape[1:])}"
            )
        x = x[-self.capacity :].to(device=self.device, dtype=self.dtype)
        idx = (self._next + torch.arange(x.shape[0], device=self.device)) % self.capacity
        self._storage[idx] = x
        self._next = (self._next + x.shape[0]) % self.capacity
        self._size = min(self._size + x.shape[0], self.capacity)

    def _fresh(self, k: int, init_fn: Callable[[int], Tensor]) -> Tensor:
        fresh = init_fn(k)
        if not isinstance(fresh, Tensor) or fresh.shape[0] != k:
            shape = tuple(fresh.shape) if isinstance(fresh, Tensor) else type(fresh).__name__
            raise ValueError(f"init_fn({k}) must return a tensor of batch {k}, got {shape}")
        if self._storage is not None and fresh.shape[1:] != self._storage.shape[1:]:
            raise ValueError(
                f"init_fn({k}) must return per-sample shape {tuple(self._storage.shape[1:])}, "
                f"got {tuple(fresh.shape[1:])}"
            )
        return fresh.detach().to(
            device=self.device if self.device is not None else fresh.device,
            dtype=self.dtype if self.dtype is not None else fresh.dtype,
        )

    def sample(self, n: int, init_fn: Callable[[int], Tensor]) -> Tensor:
        """``n`` chain starts: stored states, each replaced by ``init_fn`` with probability
        ``reinit_fraction`` (all from ``init_fn`` while the buffer is empty).

        Arguments:
            n: number of chains.
            init_fn: ``k -> (k, ...)`` fresh starts, e.g. uniform noise.

        Returns:
            ``(n, ...)`` detached, on the buffer's device and dtype.
        """
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be an int >= 1, got {n!r}")
        if self._storage is None or self._size == 0:
            return self._fresh(n, init_fn)
        dev = self._index_device()
        idx = torch.randint(self._size, (n,), generator=self.generator, device=dev)
        restart = torch.rand(n, generator=self.generator, device=dev) < self.reinit_fraction
        out = self._storage[idx.to(self._storage.device)].clone()
        k = int(restart.sum())
        if k:
            out[restart.to(out.device)] = self._fresh(k, init_fn)
        return out
