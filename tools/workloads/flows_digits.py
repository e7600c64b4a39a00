"""Shared pieces of the flows benchmark and demo: digits data, models, training, bits/dim.

Used by ``tools/bench/flows/quality.py`` (the quality benchmark behind ``packages/flows/BENCHMARKS.md``)
and ``tools/demos/flows.py`` (the demo section); one copy of the pipeline, so both report numbers
from the same code.

- **Data.** scikit-learn's digits: 1797 images 8×8 with values 0..16 (17 grey levels), as
  integer tensors (B, 1, 8, 8); a fixed split ``train_test_split(test_size=0.2,
  random_state=0)`` (1437 train / 360 test).
- **Dequantisation.** y = (x + u)/17, u ~ U(0, 1) per pixel, y ∈ [0, 1) (spec §1.2 with
  n = 17 levels on the range (0, 1)). Fresh noise every training step.
- **Bits/dim.** bpd = −(log p_Y(y) − D·ln 17)/(D·ln 2), D = 64, computed here from each model's
  log-density for every library alike (:func:`bits_per_dim`). :func:`check_kexue_bpd` checks
  that kexue's own ``Flow.bpd`` / ``MultiScaleFlow.bpd`` gives the same number.
- **Models.** NICE, RealNVP, Glow and i-ResNet from :mod:`kexue.flows.models`, and normflows'
  Glow (``GlowBlock`` + ``MultiscaleFlow`` with learned diagonal Gaussian priors per level, the
  layout of normflows' Glow example) of the same levels / steps / hidden width.
- **Training.** Adam, the same batches and the same dequantisation noise for every model trained
  together (:func:`train` runs them in lockstep, alternating which goes first, so that load on
  the machine hits them alike); per-step wall times are recorded.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

__all__ = [
    "DIMS",
    "MODEL_NAMES",
    "N_LEVELS",
    "Density",
    "Sizes",
    "TrainResult",
    "bits_per_dim",
    "build",
    "check_kexue_bpd",
    "count_parameters",
    "dequantize",
    "evaluate",
    "independent_gaussian_bpd",
    "load_digits_split",
    "lockstep_step",
    "train",
    "uniform_bpd",
]

N_LEVELS = 17  # digits pixels are 0..16
SHAPE = (1, 8, 8)
DIMS = 64
MODEL_NAMES: tuple[str, ...] = ("NICE", "RealNVP", "Glow", "i-ResNet", "normflows Glow")


@dataclass(frozen=True)
class Sizes:
    """Model sizes and training budget (shared by every model of a run)."""

    steps: int = 1500
    batch: int = 64
    lr: float = 1e-3
    eval_draws: int = 4  # dequantisation draws averaged for the test bpd
    nice_hidden: int = 256
    nice_depth: int = 3
    realnvp_hidden: int = 32
    realnvp_blocks: int = 1
    glow_levels: int = 3
    glow_steps: int = 8
    glow_hidden: int = 64
    iresnet_blocks: int = 4
    iresnet_hidden: int = 128


# --------------------------------------------------------------------------------------------------
# Data and bits/dim
# --------------------------------------------------------------------------------------------------


def load_digits_split(*, test_size: float = 0.2, random_state: int = 0) -> tuple[Tensor, Tensor]:
    """scikit-learn digits as integer tensors (B, 1, 8, 8), values 0..16: (train, test)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    images = load_digits().images.astype("int64")
    train, test = train_test_split(images, test_size=test_size, random_state=random_state)
    return (
        torch.from_numpy(train).reshape(-1, *SHAPE),
        torch.from_numpy(test).reshape(-1, *SHAPE),
    )


def dequantize(x_int: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
    """y = (x + u)/17, u ~ U(0, 1) per pixel (float32, y ∈ [0, 1))."""
    x = x_int.to(torch.float32)
    return (x + torch.rand(x.shape, generator=generator)) / N_LEVELS


def bits_per_dim(log_p_y: Tensor, *, num_dims: int = DIMS, n_levels: int = N_LEVELS) -> Tensor:
    """bpd = −(log p_Y(y) − D·ln n)/(D·ln 2) for y on [0, 1) (spec §1.2)."""
    return -(log_p_y - num_dims * math.log(n_levels)) / (num_dims * math.log(2.0))


def uniform_bpd() -> float:
    """bpd of the uniform model over the 17 levels: log2(17) ≈ 4.087."""
    return math.log2(N_LEVELS)


def independent_gaussian_bpd(train_x: Tensor, test_x: Tensor) -> float:
    """Test bpd of an independent per-pixel Gaussian fitted to dequantised train data.

    Fitted in closed form (mean and variance per pixel of y = (x + 1/2)/17 plus the uniform
    noise variance 1/(12·17²)); evaluated on the test set at y = (x + u)/17 averaged over u
    exactly (E_u[(y − μ)²] = (x + ½)/17 − μ)² + 1/(12·17²)).
    """
    y_train = (train_x.double() + 0.5) / N_LEVELS
    mu = y_train.mean(0)
    var = y_train.var(0, unbiased=False) + 1.0 / (12 * N_LEVELS**2)
    y_test = (test_x.double() + 0.5) / N_LEVELS
    sq = (y_test - mu) ** 2 + 1.0 / (12 * N_LEVELS**2)
    log_p = (-0.5 * sq / var - 0.5 * torch.log(2 * math.pi * var)).reshape(len(test_x), -1).sum(1)
    return float(bits_per_dim(log_p).mean())


# --------------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------------


class Density:
    """A model behind one interface: ``log_prob(y (B,1,8,8)) -> (B,)`` and ``sample``."""

    def __init__(self, name: str, module: nn.Module, *, library: str, flat: bool) -> None:
        self.name, self.module, self.library, self.flat = name, module, library, flat

    def log_prob(self, y: Tensor) -> Tensor:
        """log p_Y(y) per sample (nats), shape (B,), for y of shape (B, 1, 8, 8)."""
        if self.library == "normflows":
            return self.module.log_prob(y, None)
        return self.module.log_prob(y.reshape(len(y), -1) if self.flat else y)

    def sample(self, n: int, *, temperature: float, generator: torch.Generator) -> Tensor:
        """n samples (n, 1, 8, 8) at ``temperature`` (every level's ε scaled by T)."""
        if self.library == "normflows":
            torch.manual_seed(int(torch.randint(2**31, (1,), generator=generator)))
            return self.module.sample(n, temperature=temperature)[0].detach()
        out = self.module.sample(n, temperature=temperature, generator=generator)
        return out.detach().reshape(n, *SHAPE)


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def _normflows_glow(levels: int, steps: int, hidden: int) -> nn.Module:
    """normflows' Glow (its README/example layout) on (1, 8, 8), unconditional priors."""
    import normflows as nf

    c, h, w = SHAPE
    q0, merges, flows = [], [], []
    for i in range(levels):
        ch = c * 2 ** (levels + 1 - i)
        level = [
            nf.flows.GlowBlock(ch, hidden, split_mode="channel", scale=True) for _ in range(steps)
        ]
        level.append(nf.flows.Squeeze())
        flows.append(level)
        if i > 0:
            merges.append(nf.flows.Merge())
            f = 2 ** (levels - i)
            latent = (c * f, h // f, w // f)
        else:
            f = 2**levels
            latent = (c * 2 ** (levels + 1), h // f, w // f)
        q0.append(nf.distributions.DiagGaussian(latent))
    return nf.MultiscaleFlow(q0, flows, merges, class_cond=False)


def build(name: str, sizes: Sizes, *, seed: int) -> Density:
    """Build model ``name`` (one of :data:`MODEL_NAMES`) with parameters seeded by ``seed``."""
    from kexue import flows as models  # the builders are exported at the root

    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    if name == "NICE":
        m = models.nice(
            DIMS, n_couplings=4, hidden=sizes.nice_hidden, depth=sizes.nice_depth, generator=gen
        )
        return Density(name, m, library="kexue", flat=True)
    if name == "RealNVP":
        m = models.realnvp(
            SHAPE, scales=2, couplings=3, hidden=sizes.realnvp_hidden, blocks=sizes.realnvp_blocks
        )
        return Density(name, m, library="kexue", flat=False)
    if name == "Glow":
        m = models.glow(
            SHAPE,
            levels=sizes.glow_levels,
            steps=sizes.glow_steps,
            hidden=sizes.glow_hidden,
            generator=gen,
        )
        return Density(name, m, library="kexue", flat=False)
    if name == "i-ResNet":
        m = models.iresnet(
            DIMS, blocks=sizes.iresnet_blocks, hidden=sizes.iresnet_hidden, generator=gen
        )
        return Density(name, m, library="kexue", flat=True)
    if name == "normflows Glow":
        m = _normflows_glow(sizes.glow_levels, sizes.glow_steps, sizes.glow_hidden)
        return Density(name, m, library="normflows", flat=False)
    raise ValueError(f"name must be one of {MODEL_NAMES}, got {name!r}")


# --------------------------------------------------------------------------------------------------
# Training and evaluation
# --------------------------------------------------------------------------------------------------


@dataclass
class TrainResult:
    """Per-model outcome of :func:`train`."""

    name: str
    step_s: list[float] = field(default_factory=list)  # wall time of every step
    losses: list[float] = field(default_factory=list)  # training bpd per step
    nonfinite_steps: int = 0  # steps skipped for a non-finite loss

    @property
    def train_s(self) -> float:
        """Total training wall time (sum of the step times)."""
        return sum(self.step_s)

    @property
    def median_step_ms(self) -> float:
        """Median step wall time in milliseconds."""
        s = sorted(self.step_s)
        return 1e3 * s[len(s) // 2] if s else float("nan")

    def summary(self) -> dict[str, Any]:
        """JSON-ready numbers: train time, median step, final train bpd (last 20 steps)."""
        return {
            "train_s": round(self.train_s, 2),
            "median_step_ms": round(self.median_step_ms, 2),
            "final_train_bpd": round(sum(self.losses[-20:]) / max(len(self.losses[-20:]), 1), 4),
            "nonfinite_steps": self.nonfinite_steps,
        }


def lockstep_step(
    step: int,
    models: Sequence[Any],
    opts: Sequence[torch.optim.Optimizer],
    results: Sequence[Any],
    loss_of: Callable[[Any], Tensor],
    after: Callable[[int], None] | None = None,
) -> list[float]:
    """One lockstep training step of every model (order alternating with ``step``).

    ``loss_of(model)`` → loss; a non-finite loss skips the update (``results[i].nonfinite_steps``
    += 1), else backward + ``opts[i].step()``; then ``after(i)`` (a scheduler step). The wall
    time of each model's step is appended to ``results[i].step_s``. Returns the losses.
    """
    losses = [math.nan] * len(models)
    order = range(len(models)) if step % 2 == 0 else reversed(range(len(models)))
    for i in order:
        t0 = time.perf_counter()
        loss = loss_of(models[i])
        opts[i].zero_grad(set_to_none=True)
        if torch.isfinite(loss):
            loss.backward()
            opts[i].step()
        else:
            results[i].nonfinite_steps += 1
        if after is not None:
            after(i)
        results[i].step_s.append(time.perf_counter() - t0)
        losses[i] = float(loss.detach())
    return losses


def train(
    models: Sequence[Density],
    train_x: Tensor,
    *,
    sizes: Sizes,
    seed: int,
    tick: Callable[[int], None] | None = None,
) -> list[TrainResult]:
    """Train ``models`` in lockstep: same batches, same noise, alternating order per step.

    Loss: the training bpd (:func:`bits_per_dim` of the batch mean log-density); Adam(lr).
    A step with a non-finite loss is skipped (counted in ``nonfinite_steps``).
    """
    gen = torch.Generator().manual_seed(seed)
    opts = [torch.optim.Adam(m.module.parameters(), lr=sizes.lr) for m in models]
    results = [TrainResult(m.name) for m in models]
    for m in models:
        m.module.train()
    n = len(train_x)
    for step in range(sizes.steps):
        idx = torch.randint(n, (sizes.batch,), generator=gen)
        y = dequantize(train_x[idx], generator=gen)
        losses = lockstep_step(
            step, models, opts, results, lambda m, y=y: bits_per_dim(m.log_prob(y)).mean()
        )
        for r, loss in zip(results, losses):
            r.losses.append(loss)
        if tick is not None:
            tick(1)
    return results


def evaluate(model: Density, test_x: Tensor, *, draws: int, seed: int, batch: int = 512) -> float:
    """Mean test bpd over the test set and ``draws`` fresh dequantisation draws (eval mode)."""
    gen = torch.Generator().manual_seed(seed)
    model.module.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for _ in range(draws):
            for start in range(0, len(test_x), batch):
                y = dequantize(test_x[start : start + batch], generator=gen)
                bpd = bits_per_dim(model.log_prob(y))
                total += float(bpd.double().sum())
                count += len(bpd)
    return total / count


def check_kexue_bpd(model: Density, x_int: Tensor, *, seed: int) -> float:
    """max |kexue ``model.bpd(x, n_levels=17)`` − :func:`bits_per_dim` of its log_prob| (same u).

    Both draw u with a generator seeded alike (``torch.rand(x.shape)``), so the dequantised y
    are equal and the two bpd values must agree to rounding.
    """
    if model.library != "kexue":
        raise ValueError(f"model must be a kexue model, got {model.library!r}")
    model.module.eval()
    x = x_int.reshape(len(x_int), -1) if model.flat else x_int
    with torch.no_grad():
        theirs = model.module.bpd(
            x, n_levels=N_LEVELS, generator=torch.Generator().manual_seed(seed)
        )
        y = dequantize(x, generator=torch.Generator().manual_seed(seed))
        ours = bits_per_dim(model.module.log_prob(y))
    return float((theirs.double() - ours.double()).abs().max())
