"""Power-function EMA profiles (Karras et al. 2023, "Analyzing and Improving the Training Dynamics
of Diffusion Models", arXiv 2312.02696, EDM2 §3 and Appendix C): σ_rel ↔ γ and the profile algebra
used by post-hoc reconstruction.

A power-function EMA with exponent γ averages θ(τ) over [0, t] with weights ∝ τ^γ:
θ̂_γ(t) = (γ + 1)·t^(−(γ+1))·∫₀ᵗ τ^γ θ(τ) dτ; its width relative to t is
σ_rel = √((γ + 1) / ((γ + 2)²(γ + 3))) (edm2 ``exp_to_std``, paper Eq. 123). The discrete update is
β = (1 − Δt/t)^(γ+1) (edm2 ``power_function_beta``), see :func:`~kexue.keras_compat._ema_warmup.decay_over`.

References:
    Karras et al., arXiv 2312.02696, Algorithms 2 and 3; NVlabs/edm2 ``training/phema.py``.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["SIGMA_REL_MAX", "gamma_to_sigma_rel", "profile_inner", "sigma_rel_to_gamma"]

#: σ_rel of the γ → 0 limit (a uniform average over [0, t]): 1/√12; σ_rel must be below it.
SIGMA_REL_MAX: float = 1.0 / math.sqrt(12.0)


def _check_positive(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def gamma_to_sigma_rel(gamma: float) -> float:
    """σ_rel = √((γ + 1) / ((γ + 2)²(γ + 3))) of the power profile with exponent ``gamma`` > 0
    (edm2 ``exp_to_std``)."""
    g = _check_positive(gamma, "gamma")
    if g <= 0:
        raise ValueError(f"gamma must be > 0, got {gamma!r}")
    return math.sqrt((g + 1.0) / ((g + 2.0) ** 2 * (g + 3.0)))


def sigma_rel_to_gamma(sigma_rel: float) -> float:
    """The exponent γ of the power profile of relative width ``sigma_rel``.

    γ is the largest real root of γ³ + 7γ² + (16 − σ_rel⁻²)γ + (12 − σ_rel⁻²) = 0 (paper Algorithm 2,
    edm2 ``std_to_exp``), polished by Newton steps in float64 (round trip with
    :func:`gamma_to_sigma_rel` to 1e-12). E.g. 0.05 → 16.97, 0.10 → 6.94, 0.15 → 3.56.

    Raises:
        ValueError: unless 0 < σ_rel < 1/√12 ≈ 0.2887 (the γ → 0 limit; γ ≤ 0 is not supported).
    """
    s = _check_positive(sigma_rel, "sigma_rel")
    if not 0.0 < s < SIGMA_REL_MAX:
        raise ValueError(
            f"sigma_rel must lie in (0, 1/sqrt(12) = {SIGMA_REL_MAX:.4f}) (gamma > 0), got {sigma_rel!r}"
        )
    c = s**-2
    roots = np.roots([1.0, 7.0, 16.0 - c, 12.0 - c])
    g = float(max(r.real for r in roots if abs(r.imag) < 1e-6 * max(1.0, abs(r))))
    for _ in range(3):  # Newton on the cubic
        f = ((g + 7.0) * g + 16.0 - c) * g + 12.0 - c
        df = (3.0 * g + 14.0) * g + 16.0 - c
        if df == 0:
            break
        g -= f / df
    return g


def profile_inner(t_a: float, gamma_a: float, t_b: float, gamma_b: float) -> float:
    """⟨p_a, p_b⟩ of two normalised power profiles ending at t_a, t_b with exponents γ_a, γ_b.

    (γ_a + 1)(γ_b + 1)·(t_a/t_b)^e / ((γ_a + γ_b + 1)·max(t_a, t_b)), e = γ_b if t_a < t_b else −γ_a
    (paper Algorithm 3, edm2 ``power_function_correlation``); ⟨p, p⟩ = (γ + 1)²/((2γ + 1)t).
    """
    ratio = t_a / t_b
    e = gamma_b if t_a < t_b else -gamma_a
    num = (gamma_a + 1.0) * (gamma_b + 1.0) * ratio**e
    return num / ((gamma_a + gamma_b + 1.0) * max(t_a, t_b))
