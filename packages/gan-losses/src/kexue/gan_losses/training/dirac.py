"""The 2-D Dirac GAN: training dynamics as an ODE (post 6583, "the third stage").

Setting (spec §2.9): the real data is the single point ``x_r = 0`` in R², the generator is the
single point ``x_f = θ ∈ R²`` and the critic is linear, ``D(x) = φ·x`` with ``φ ∈ R²`` (for the
hard-Lipschitz WGAN, ``D(x) = φ·x / ‖φ‖``). Hence ``r = D(x_r) = 0``, ``f = D(x_f) = φ·θ`` and
``∇_x D = φ`` everywhere, so every gradient penalty is a function of ``φ`` alone. Training is
the ODE of simultaneous gradient descent on both losses (both minimised, as everywhere in this
package)::

    dφ/dt = -∇_φ L_D(φ, θ)        dθ/dt = -∇_θ L_G(φ, θ)

The right-hand sides, derived from the package's losses (canonical sign, mean over a batch of 1):

``"wgan_gp"``  L_D = f - r + λ(‖φ‖ - c)², L_G = -f::

    dφ/dt = -θ - 2λ(1 - c/‖φ‖) φ          dθ/dt = φ

  (``c = 0``: ``-θ - 2λφ``, a damped rotation, converges; ``c = 1``: ends on the circle
  ``‖φ‖ = 1``). With ``gradient_penalty(center=c, weight=λ)``; ``r1_penalty(gamma)`` is the
  ``c = 0`` case with ``γ = 2λ`` (``γ/2·‖φ‖²``).

``"gan_qp"``  Δ = r - f = -φ·θ, L_D = -Δ + Δ²/(2λd) (x_f detached), L_G = r - f::

    dφ/dt = -θ - (φ·θ) θ / (λ d)          dθ/dt = φ

  with ``d = d(x_r, x_f)`` chosen by ``distance``: ``"euclidean"`` ‖θ‖ (the derivation),
  ``"rms"`` ‖θ‖/√2 and ``"l1"`` (|θ₁|+|θ₂|)/2 (the package's ``gan_qp_distance`` with
  ``norm="l2"`` / ``"l1"``, means over the N = 2 coordinates), or ``"author"``: ‖φ‖, what
  ``gan_numeric.py`` writes (its ``norm`` variable is the norm of φ, not a distance between the
  samples). The choice moves the reference values only in the third digit (§ below).

``"ns_sgan"``  L_D = sp(-r) + sp(f), L_G = sp(-f) (non-saturating); ``p = σ(φ·θ)``::

    dφ/dt = -p θ                          dθ/dt = (1 - p) φ

``"sgan"`` the saturating G, L_G = -sp(f): ``dθ/dt = p φ``.

``"wgan_lipschitz"``  D(x) = φ·x/‖φ‖ (a hard 1-Lipschitz critic, as spectral normalisation
gives), L_D = f - r, L_G = -f::

    dφ/dt = -θ/‖φ‖ + (φ·θ) φ/‖φ‖³         dθ/dt = φ/‖φ‖

``weight_decay = w`` adds ``½ w ‖φ‖²`` to L_D (L2 decay on D, the recipe of post 6583):
``dφ/dt -= w φ``; the author uses ``w = 0.1`` with GAN-QP.

Reference values (RK4, h = 0.01, φ₀ = (0.1, 0.2), θ₀ = (0.2, 0.1); spec §2.9), all reproduced
by :func:`integrate_dirac_gan`: WGAN-GP c = 0, λ = 0.1, T = 40: ‖θ‖ = 0.0024; c = 1: ‖φ‖ = 1.001,
‖θ‖ = 0.970; GAN-QP λ = 1, T = 40: ‖θ‖ = 0.170 ("euclidean" and "author"; 0.173 with "rms" or
"l1"); GAN-QP + decay 0.1, T = 70: ‖θ‖ = 0.0058 ("euclidean"; 0.0055 "rms", 0.0054 "l1"); NS-SGAN,
T = 100: ‖θ‖ = 0.161.

References:
    https://kexue.fm/archives/6583 and ``bojone/gan`` ``gan_numeric.py`` (d4010d1);
    Mescheder et al., "Which Training Methods for GANs do actually Converge?", arXiv 1801.04406.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

__all__ = [
    "DiracGANKind",
    "DiracGANTrajectory",
    "dirac_gan_vector_field",
    "integrate_dirac_gan",
]

DiracGANKind = Literal["wgan_gp", "gan_qp", "ns_sgan", "sgan", "wgan_lipschitz"]
QPDistance = Literal["euclidean", "rms", "l1", "author"]

_KINDS = ("wgan_gp", "gan_qp", "ns_sgan", "sgan", "wgan_lipschitz")
_DISTANCES = ("euclidean", "rms", "l1", "author")
# λ defaults of gan_numeric.py: WGAN-GP lamb = 0.1, GAN-QP lamb = 1.
_DEFAULT_LAM = {"wgan_gp": 0.1, "gan_qp": 1.0}

_State = tuple[float, float, float, float]
_Field = Callable[[_State], _State]


@dataclass(frozen=True)
class DiracGANTrajectory:
    """A Dirac-GAN trajectory: times ``t (n+1,)``, critic ``phi (n+1, 2)``, generator ``theta (n+1, 2)``."""

    t: Tensor
    phi: Tensor
    theta: Tensor

    @property
    def phi_norm(self) -> Tensor:
        """``‖φ(t)‖``, shape ``(n+1,)``."""
        return self.phi.norm(dim=1)

    @property
    def theta_norm(self) -> Tensor:
        """``‖θ(t)‖`` (distance of the generator from the real point), shape ``(n+1,)``."""
        return self.theta.norm(dim=1)


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def _make_field(
    kind: str, *, lam: float | None, center: float, weight_decay: float, distance: str
) -> _Field:
    """Validate the options once and return a fast pure-Python right-hand side."""
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {_KINDS}, got {kind!r}")
    if distance not in _DISTANCES:
        raise ValueError(f"distance must be one of {_DISTANCES}, got {distance!r}")
    if weight_decay < 0 or not math.isfinite(weight_decay):
        raise ValueError(f"weight_decay must be a finite number >= 0, got {weight_decay}")
    if lam is None:
        lam = _DEFAULT_LAM.get(kind, 0.0)
    if kind in ("wgan_gp", "gan_qp") and not (lam > 0 and math.isfinite(lam)):
        raise ValueError(f"lam must be a finite number > 0 for kind={kind!r}, got {lam}")
    wd = float(weight_decay)

    def wgan_gp(s: _State) -> _State:
        p1, p2, t1, t2 = s
        n = math.hypot(p1, p2)
        # (1 - c/‖φ‖)φ; at φ = 0 with c != 0 the direction is undefined: take the zero subgradient.
        k = 2.0 * lam * (1.0 - center / n) if n > 0 else (2.0 * lam if center == 0 else 0.0)
        return (-t1 - k * p1 - wd * p1, -t2 - k * p2 - wd * p2, p1, p2)

    def gan_qp(s: _State) -> _State:
        p1, p2, t1, t2 = s
        if distance == "euclidean":
            d = math.hypot(t1, t2)
        elif distance == "rms":
            d = math.hypot(t1, t2) / math.sqrt(2.0)
        elif distance == "l1":
            d = 0.5 * (abs(t1) + abs(t2))
        else:  # "author": gan_numeric.py divides by the norm of φ
            d = math.hypot(p1, p2)
        dot = p1 * t1 + p2 * t2
        k = dot / (lam * d) if d > 0 else 0.0  # the term vanishes in the limit d -> 0
        return (-t1 - k * t1 - wd * p1, -t2 - k * t2 - wd * p2, p1, p2)

    def sgan(s: _State) -> _State:
        p1, p2, t1, t2 = s
        p = _sigmoid(p1 * t1 + p2 * t2)
        g = 1.0 - p if kind == "ns_sgan" else p
        return (-p * t1 - wd * p1, -p * t2 - wd * p2, g * p1, g * p2)

    def wgan_lipschitz(s: _State) -> _State:
        p1, p2, t1, t2 = s
        n = math.hypot(p1, p2)
        if n == 0:
            raise ValueError("wgan_lipschitz is undefined at phi = 0 (D = phi·x/‖phi‖)")
        dot = p1 * t1 + p2 * t2
        return (
            -t1 / n + dot * p1 / n**3 - wd * p1,
            -t2 / n + dot * p2 / n**3 - wd * p2,
            p1 / n,
            p2 / n,
        )

    return {
        "wgan_gp": wgan_gp,
        "gan_qp": gan_qp,
        "ns_sgan": sgan,
        "sgan": sgan,
        "wgan_lipschitz": wgan_lipschitz,
    }[kind]


def _as_point(x: Tensor | Sequence[float], name: str) -> tuple[float, float]:
    t = torch.as_tensor(x, dtype=torch.float64).detach().cpu()
    if t.shape != (2,):
        raise ValueError(f"{name} must be a point in R^2 of shape (2,), got shape {tuple(t.shape)}")
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} must be finite, got {t.tolist()}")
    return float(t[0]), float(t[1])


def dirac_gan_vector_field(
    kind: DiracGANKind,
    phi: Tensor | Sequence[float],
    theta: Tensor | Sequence[float],
    *,
    lam: float | None = None,
    center: float = 1.0,
    weight_decay: float = 0.0,
    distance: QPDistance = "euclidean",
) -> tuple[Tensor, Tensor]:
    """Right-hand side ``(dφ/dt, dθ/dt)`` of the 2-D Dirac-GAN training ODE.

    ``dφ/dt = -∇_φ L_D``, ``dθ/dt = -∇_θ L_G`` for ``D(x) = φ·x``, ``x_r = 0``, ``x_f = θ``; the
    formulas per ``kind`` are in the module docstring.

    Arguments:
        kind: ``"wgan_gp"``, ``"gan_qp"``, ``"ns_sgan"``, ``"sgan"`` (saturating G) or
            ``"wgan_lipschitz"``.
        phi: critic weights ``(2,)``.
        theta: generator point ``(2,)``.
        lam: penalty weight λ of ``"wgan_gp"`` (default 0.1) or GAN-QP's λ (default 1), the
            values of ``gan_numeric.py``; ignored by the other kinds.
        center: gradient-penalty centre c of ``"wgan_gp"`` (1 = WGAN-GP, 0 = zero-centred).
        weight_decay: L2 decay w on φ (adds ``½w‖φ‖²`` to L_D); the author's 0.1 for GAN-QP.
        distance: GAN-QP's ``d(x_r, x_f)``: ``"euclidean"`` (‖θ‖), ``"rms"``, ``"l1"`` (the
            package's ``norm="l2"`` / ``"l1"``) or ``"author"`` (‖φ‖, as ``gan_numeric.py``).

    Returns:
        ``(dphi, dtheta)``, two float64 tensors of shape ``(2,)``.

    References:
        https://kexue.fm/archives/6583; arXiv 1801.04406.
    """
    field = _make_field(kind, lam=lam, center=center, weight_decay=weight_decay, distance=distance)
    out = field((*_as_point(phi, "phi"), *_as_point(theta, "theta")))
    v = torch.tensor(out, dtype=torch.float64)
    return v[:2], v[2:]


def _rk4_step(f: _Field, s: _State, h: float) -> _State:
    k1 = f(s)
    k2 = f(tuple(a + 0.5 * h * b for a, b in zip(s, k1)))  # type: ignore[arg-type]
    k3 = f(tuple(a + 0.5 * h * b for a, b in zip(s, k2)))  # type: ignore[arg-type]
    k4 = f(tuple(a + h * b for a, b in zip(s, k3)))  # type: ignore[arg-type]
    return tuple(
        a + h / 6.0 * (b1 + 2.0 * b2 + 2.0 * b3 + b4)
        for a, b1, b2, b3, b4 in zip(s, k1, k2, k3, k4)
    )  # type: ignore[return-value]


def _euler_step(f: _Field, s: _State, h: float) -> _State:
    return tuple(a + h * b for a, b in zip(s, f(s)))  # type: ignore[return-value]


def integrate_dirac_gan(
    kind: DiracGANKind,
    *,
    T: float,
    h: float = 0.01,
    phi0: Tensor | Sequence[float] = (0.1, 0.2),
    theta0: Tensor | Sequence[float] = (0.2, 0.1),
    method: Literal["rk4", "euler"] = "rk4",
    lam: float | None = None,
    center: float = 1.0,
    weight_decay: float = 0.0,
    distance: QPDistance = "euclidean",
    max_steps: int = 1_000_000,
) -> DiracGANTrajectory:
    """Integrate the 2-D Dirac-GAN ODE with fixed steps from ``t = 0`` to ``T``.

    ``method="euler"`` is exactly simultaneous gradient descent with learning rate ``h``
    (``φ ← φ - h∇_φL_D``, ``θ ← θ - h∇_θL_G``); ``"rk4"`` is the classical fourth-order
    Runge–Kutta scheme, used for the spec's reference values. Euler inflates pure rotations
    by ``√(1 + h²ω²)`` per step, so orbits spiral slowly outwards under it.

    Arguments:
        kind: see :func:`dirac_gan_vector_field`.
        T: final time (> 0); ``round(T / h)`` steps are taken.
        h: step size (> 0); default 0.01 (spec §2.9).
        phi0: initial critic weights, default (0.1, 0.2) (``gan_numeric.py``).
        theta0: initial generator point, default (0.2, 0.1) (``gan_numeric.py``).
        method: ``"rk4"`` (default) or ``"euler"``.
        lam, center, weight_decay, distance: see :func:`dirac_gan_vector_field`.
        max_steps: refuse more than this many steps (default 10⁶; the steps are Python
            loops): ``T=1, h=1e-9`` would otherwise silently start 10⁹ of them.

    Returns:
        A :class:`DiracGANTrajectory` with ``t (n+1,)``, ``phi (n+1, 2)`` and ``theta (n+1, 2)``
        in float64, row 0 being the initial state.

    Example:
        >>> traj = integrate_dirac_gan("wgan_gp", center=0.0, lam=0.1, T=40.0)
        >>> round(float(traj.theta_norm[-1]), 4)
        0.0024

    References:
        https://kexue.fm/archives/6583; ``bojone/gan`` ``gan_numeric.py``.
    """
    if not (h > 0 and math.isfinite(h)):
        raise ValueError(f"h must be a finite number > 0, got {h}")
    if not (T > 0 and math.isfinite(T)):
        raise ValueError(f"T must be a finite number > 0, got {T}")
    if method not in ("rk4", "euler"):
        raise ValueError(f"method must be 'rk4' or 'euler', got {method!r}")
    n = max(1, round(T / h))
    if n > max_steps:
        raise ValueError(
            f"T / h = {T} / {h} asks for {n} integration steps, more than max_steps={max_steps}; "
            "increase h, decrease T, or raise max_steps"
        )
    field = _make_field(kind, lam=lam, center=center, weight_decay=weight_decay, distance=distance)
    step = _rk4_step if method == "rk4" else _euler_step
    s: _State = (*_as_point(phi0, "phi0"), *_as_point(theta0, "theta0"))
    states = [s]
    for _ in range(n):
        s = step(field, s, h)
        states.append(s)
    y = torch.tensor(states, dtype=torch.float64)
    if not bool(torch.isfinite(y).all()):
        raise ValueError(
            f"the {kind!r} trajectory diverged to inf/NaN; reduce h (got h={h}) or T (got T={T})"
        )
    t = torch.arange(n + 1, dtype=torch.float64) * h
    return DiracGANTrajectory(t=t, phi=y[:, :2], theta=y[:, 2:])
