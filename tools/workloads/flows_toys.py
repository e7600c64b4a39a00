"""Shared pieces of the 2-D toy benchmark and the demo's density grid (spec flows-splines §6.1).

- **Data** (FFJORD ``inf_train_gen`` conventions): ``moons`` (sklearn ``make_moons(noise=0.1)``
  × 2 + (−1, −0.2)), ``8gaussians`` (centres at radius 4 in the 8 compass directions, noise
  N(0, 0.5²), all divided by 1.414), ``checkerboard`` (x₁ ~ U(−2, 2), x₂ = U(0, 1) −
  2·Bernoulli(½) + (⌊x₁⌋ mod 2), both × 2). Fresh samples every step; a seeded test set.
- **Floors** (cross-entropy ≥ entropy): checkerboard ln 32 = 3.466 nats; 8gaussians
  ≈ ln 8 + ln(2πe·0.125) = 2.838 nats; moons has no closed form.
- **Models** at ≈ 22k parameters: kexue NSF-AR (``nsf(2)``: 3 MADE spline layers, hidden
  (64, 64), K = 8, B = 5), kexue NSF-coupling (3 spline couplings, MLP 2×72), kexue affine MAF
  (``maf(2)``), zuko ``NSF(2)`` defaults, normflows ``AutoregressiveRationalQuadraticSpline``
  × 3 (1 residual block of 48, K = 8, B = 3).
- **Training**: Adam with cosine decay, the same batches for every model trained together
  (lockstep, alternating order), per-step wall times recorded.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn

from tools.workloads.flows_digits import lockstep_step

__all__ = [
    "DATASETS",
    "FLOORS",
    "MODELS",
    "ToyModel",
    "build_toy",
    "count_parameters",
    "sample_toy",
    "test_nll",
    "train_toys",
]

DATASETS: tuple[str, ...] = ("moons", "8gaussians", "checkerboard")
FLOORS: dict[str, float | None] = {
    "moons": None,
    "8gaussians": math.log(8) + 0.5 * 2 * math.log(2 * math.pi * math.e * 0.125),
    "checkerboard": math.log(32.0),
}
MODELS: tuple[str, ...] = (
    "kexue NSF-AR",
    "kexue NSF-coupling",
    "kexue MAF (affine)",
    "zuko NSF",
    "normflows AR-RQS",
)


def sample_toy(name: str, n: int, *, generator: torch.Generator) -> Tensor:
    """``n`` points (n, 2) float32 of the toy density ``name``."""
    if name == "moons":
        from sklearn.datasets import make_moons

        seed = int(torch.randint(2**31 - 1, (1,), generator=generator))
        x = make_moons(n_samples=n, noise=0.1, random_state=seed)[0].astype(np.float32)
        return torch.from_numpy(x * 2 + np.array([-1.0, -0.2], dtype=np.float32))
    if name == "8gaussians":
        s = 1.0 / math.sqrt(2)
        centres = 4.0 * torch.tensor(
            [(1, 0), (-1, 0), (0, 1), (0, -1), (s, s), (s, -s), (-s, s), (-s, -s)]
        )
        k = torch.randint(8, (n,), generator=generator)
        x = centres[k] + 0.5 * torch.randn(n, 2, generator=generator)
        return (x / 1.414).float()
    if name == "checkerboard":
        x1 = torch.rand(n, generator=generator) * 4 - 2
        x2 = torch.rand(n, generator=generator) - 2.0 * torch.randint(2, (n,), generator=generator)
        x2 = x2 + torch.floor(x1) % 2
        return (torch.stack([x1, x2], dim=1) * 2).float()
    raise ValueError(f"name must be one of {DATASETS}, got {name!r}")


class ToyModel:
    """One density model behind ``log_prob(x (B, 2)) -> (B,)`` and ``sample(n)``."""

    def __init__(self, name: str, module: nn.Module, log_prob: Callable[[Tensor], Tensor]):
        self.name, self.module, self._log_prob = name, module, log_prob

    def log_prob(self, x: Tensor) -> Tensor:
        return self._log_prob(x)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def build_toy(name: str, *, seed: int) -> ToyModel:
    """Model ``name`` (one of :data:`MODELS`), parameters seeded by ``seed``."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    if name.startswith("kexue"):
        from kexue.flows.builders.autoregressive import maf, nsf

        if name == "kexue NSF-AR":
            m = nsf(2, transforms=3, hidden=(64, 64), generator=gen)
        elif name == "kexue NSF-coupling":
            m = nsf(2, transforms=3, hidden=(72, 72), kind="coupling", generator=gen)
        else:
            m = maf(2, transforms=3, hidden=(64, 64), generator=gen)
        return ToyModel(name, m, m.log_prob)
    if name == "zuko NSF":
        import zuko

        m = zuko.flows.NSF(2, transforms=3, hidden_features=(64, 64))
        return ToyModel(name, m, lambda x: m().log_prob(x))
    if name == "normflows AR-RQS":
        import normflows as nf

        flows = [
            nf.flows.AutoregressiveRationalQuadraticSpline(
                2, 1, 48, num_bins=8, tail_bound=3, permute_mask=True
            )
            for _ in range(3)
        ]
        m = nf.NormalizingFlow(nf.distributions.DiagGaussian(2, trainable=False), flows)
        return ToyModel(name, m, m.log_prob)
    raise ValueError(f"name must be one of {MODELS}, got {name!r}")


@dataclass
class ToyResult:
    name: str
    step_s: list[float] = field(default_factory=list)
    nonfinite_steps: int = 0


def train_toys(
    models: Sequence[ToyModel],
    dataset: str,
    *,
    steps: int,
    batch: int = 512,
    lr: float = 1e-3,
    seed: int = 0,
) -> list[ToyResult]:
    """Lockstep training: same batches, alternating order; Adam + cosine decay; −log p loss."""
    gen = torch.Generator().manual_seed(10_000 + seed)
    opts = [torch.optim.Adam(m.module.parameters(), lr=lr) for m in models]
    scheds = [torch.optim.lr_scheduler.CosineAnnealingLR(o, steps) for o in opts]
    results = [ToyResult(m.name) for m in models]
    for m in models:
        m.module.train()
    for step in range(steps):
        x = sample_toy(dataset, batch, generator=gen)
        lockstep_step(
            step, models, opts, results, lambda m, x=x: -m.log_prob(x).mean(),
            after=lambda i: scheds[i].step(),
        )  # fmt: skip
    return results


def test_nll(model: ToyModel, x_test: Tensor, *, batch: int = 20_000) -> float:
    """Mean −log p over ``x_test`` (nats), eval mode, no gradients."""
    model.module.eval()
    total = 0.0
    with torch.no_grad():
        for start in range(0, len(x_test), batch):
            total += float(-model.log_prob(x_test[start : start + batch]).double().sum())
    return total / len(x_test)
