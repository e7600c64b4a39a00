"""Spline models on scikit-learn digits, for the spline benchmark and the demo (issue 18).

Same data, dequantisation, training loop and bpd formula as :mod:`tools.workloads.flows_digits`
(whose :class:`Density` / ``train`` / ``evaluate`` these models plug into):

- ``"Glow (spline)"``: kexue ``glow(coupling="spline")`` — the affine Glow's layout (ActNorm → LU
  1×1 conv → coupling, conditional split priors, learned top) with rational-quadratic spline
  couplings (K bins on [−5, 5], the ActNorm before each coupling standardises its input). Its
  net's last layer emits 3K − 1 values per transformed channel instead of 2, so at matched
  parameters it is shallower or narrower: :data:`SPLINE_GLOWS` lists the matched variants.
- ``"NSF-AR (flat)"``: kexue ``nsf(64)`` on the flat 64-vector, 3 MADE spline layers (64, 64).
- ``"zuko NSF (flat)"``: zuko ``NSF(64)`` with the same sizes (an outside reference).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from tools.workloads.flows_digits import DIMS, SHAPE, Density

__all__ = ["SPLINE_GLOWS", "SPLINE_MODELS", "build_spline_model"]

# name -> (levels, steps, hidden, bins): ≈ the affine Glow's 311,072 parameters (±5 %)
SPLINE_GLOWS: dict[str, tuple[int, int, int, int]] = {
    "Glow (spline)": (3, 4, 24, 8),
    "Glow (spline, K=8, 8 steps, width 12)": (3, 8, 12, 8),
    "Glow (spline, K=4, 8 steps, width 24)": (3, 8, 24, 4),
}
SPLINE_MODELS: tuple[str, ...] = (*SPLINE_GLOWS, "NSF-AR (flat)", "zuko NSF (flat)")


class _Zuko(nn.Module):
    """A zuko lazy flow behind ``log_prob(x)`` / ``sample(n, ...)``."""

    def __init__(self, flow: nn.Module) -> None:
        super().__init__()
        self.flow = flow

    def log_prob(self, x: Tensor) -> Tensor:
        return self.flow().log_prob(x)

    def sample(
        self, n: int, *, temperature: float = 1.0, generator: torch.Generator | None = None
    ) -> Tensor:
        if generator is not None:
            torch.manual_seed(int(torch.randint(2**31, (1,), generator=generator)))
        return self.flow().sample((n,))


def build_spline_model(name: str, *, seed: int) -> Density:
    """Model ``name`` (one of :data:`SPLINE_MODELS`) with parameters seeded by ``seed``."""
    from kexue.flows.builders.autoregressive import nsf
    from kexue.flows.builders.glow import glow

    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    if name in SPLINE_GLOWS:
        levels, steps, hidden, bins = SPLINE_GLOWS[name]
        m = glow(
            SHAPE,
            levels=levels,
            steps=steps,
            hidden=hidden,
            coupling="spline",
            bins=bins,
            generator=gen,
        )
        return Density(name, m, library="kexue", flat=False)
    if name == "NSF-AR (flat)":
        return Density(name, nsf(DIMS, hidden=(64, 64), generator=gen), library="kexue", flat=True)
    if name == "zuko NSF (flat)":
        import zuko

        m = _Zuko(zuko.flows.NSF(DIMS, transforms=3, hidden_features=(64, 64)))
        return Density(name, m, library="zuko", flat=True)
    raise ValueError(f"name must be one of {SPLINE_MODELS}, got {name!r}")
