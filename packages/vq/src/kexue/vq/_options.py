"""Options of :class:`~kexue.vq.quantizer.VectorQuantizer`: presets, defaults and their checks."""

from __future__ import annotations

import math
from typing import Any

from .rotation import ESTIMATORS
from .sampling import SAMPLE_DISTANCES

__all__ = ["QUANTIZER_PRESETS"]

#: Preset values; each replaces an argument only where the caller left it at its default.
QUANTIZER_PRESETS: dict[str, dict[str, Any]] = {
    # VQ-VAE (arXiv:1711.00937): β = 0.25, EMA γ = 0.99, ε = 1e-5.
    "paper": {"beta": 0.25, "decay": 0.99, "eps": 1e-5},
    # bojone/vae vq_vae_keras.py (2019): learned codebook, weights 1 and 0.25, mean-MSE, init
    # U(−0.05, 0.05). Su used 64 codes; num_codes stays the caller's argument.
    "su_compat": {"beta": 0.25, "codebook_weight": 1.0, "reduction": "mean", "decay": None},
    # lucidrains/vector-quantize-pytorch v1.31.0 defaults, rotation trick included.
    "lucidrains_compat": {"decay": 0.8, "beta": 1.0, "estimator": "rotation"},
}
_DEFAULTS: dict[str, Any] = {
    "beta": 0.25,
    "codebook_weight": 1.0,
    "reduction": "mean",
    "decay": 0.99,
    "eps": 1e-5,
    "estimator": "ste",
}


def _validate_options(**o: Any) -> None:
    if o["num_codes"] < 1:
        raise ValueError(f"num_codes must be >= 1, got {o['num_codes']}")
    if o["dim"] < 1:
        raise ValueError(f"dim must be >= 1, got {o['dim']}")
    if o["codebook_dim"] is not None and o["codebook_dim"] < 1:
        raise ValueError(f"codebook_dim must be >= 1 or None, got {o['codebook_dim']}")
    choices = {
        "metric": ("l2", "cosine"),
        "reduction": ("mean", "sum_per_sample"),
        "precision": ("auto", "fp32", "rerank"),
        "backend": ("auto", "triton", "torch"),
        "sync": ("auto", True, False),
    }
    for key, allowed in choices.items():
        if o[key] not in allowed:
            raise ValueError(f"{key} must be one of {allowed}, got {o[key]!r}")
    for key in ("beta", "codebook_weight", "eps", "dead_code_threshold"):
        if not o[key] >= 0:
            raise ValueError(f"{key} must be >= 0, got {o[key]}")
    if o["decay"] is not None and not 0.0 <= o["decay"] < 1.0:
        raise ValueError(f"decay must be in [0, 1) or None, got {o['decay']}")
    if not o["init_count"] > 0:
        raise ValueError(f"init_count must be > 0, got {o['init_count']}")
    if o["kmeans_iters"] < 1:
        raise ValueError(f"kmeans_iters must be >= 1, got {o['kmeans_iters']}")


def _validate_sampling(estimator: str, sample: str, temperature: float, distance: str) -> None:
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")
    if sample not in ("argmax", "gumbel"):
        raise ValueError(f"sample must be 'argmax' or 'gumbel', got {sample!r}")
    if not (
        isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature > 0
    ):
        raise ValueError(f"temperature must be a finite float > 0, got {temperature!r}")
    if distance not in SAMPLE_DISTANCES:
        raise ValueError(f"sample_distance must be one of {SAMPLE_DISTANCES}, got {distance!r}")
