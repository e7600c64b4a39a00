"""Two time-scale update rule (TTUR): separate D/G learning rates and step ratios (spec §2.15).

The losses of this package are optimiser-agnostic; TTUR is a recipe: a frozen
:class:`TTURConfig` (learning rates, Adam betas, D and G steps per round, optional L2 decay on D)
and :func:`make_optimizers` / :func:`make_param_groups` to build optimisers from it. The author
calls TTUR an optional tweak on 1:1 alternation (post 6387); his scripts use equal learning rates
with D:G step ratios 1:1, 2:1, 5:1 or 1:2 [code].

References:
    Heusel et al., "GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash
    Equilibrium", arXiv 1706.08500; https://kexue.fm/archives/6387.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["TTURConfig", "make_optimizers", "make_param_groups"]


@dataclass(frozen=True)
class TTURConfig:
    """Learning rates and step ratio for a GAN's two optimisers.

    Arguments:
        lr_d: discriminator learning rate.
        lr_g: generator learning rate.
        betas: Adam-type ``(β₁, β₂)``; passed only to optimisers that accept ``betas``.
        n_dis: D steps per round.
        n_gen: G steps per round (the author's DCGAN-SN and RSGAN-SN use D:G = 1:2).
        weight_decay_d: L2 weight decay on D, the cheap convergence fix of post 6583 (tune it;
            0.1 in the author's Dirac-GAN ODE); default 0.

    Presets are the class methods; ``to_dict`` / ``from_dict`` round-trip exactly.
    """

    lr_d: float = 2e-4
    lr_g: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    n_dis: int = 1
    n_gen: int = 1
    weight_decay_d: float = 0.0

    def __post_init__(self) -> None:
        for name in ("lr_d", "lr_g"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not (value > 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
        betas = tuple(self.betas)
        if len(betas) != 2 or not all(isinstance(b, (int, float)) and 0 <= b < 1 for b in betas):
            raise ValueError(f"betas must be two numbers in [0, 1), got {self.betas!r}")
        object.__setattr__(self, "betas", (float(betas[0]), float(betas[1])))
        for name in ("n_dis", "n_gen"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        wd = self.weight_decay_d
        if not isinstance(wd, (int, float)) or not (wd >= 0 and math.isfinite(wd)):
            raise ValueError(f"weight_decay_d must be a finite number >= 0, got {wd!r}")

    @property
    def d_steps_per_g_step(self) -> float:
        """``n_dis / n_gen`` (5.0 for WGAN-GP's 5:1, 0.5 for the author's DCGAN 1:2)."""
        return self.n_dis / self.n_gen

    @classmethod
    def author_default(cls) -> TTURConfig:
        """Adam(2e-4, β₁ = 0.5) for both nets, D:G = 1:1 (``wgan_div_celeba.py``) [code]."""
        return cls(lr_d=2e-4, lr_g=2e-4, betas=(0.5, 0.999), n_dis=1, n_gen=1)

    @classmethod
    def author_gan_qp(cls) -> TTURConfig:
        """GAN-QP scripts: Adam(2e-4, 0.5), D:G = 2:1 (``bojone/gan-qp``) [code]."""
        return cls(lr_d=2e-4, lr_g=2e-4, betas=(0.5, 0.999), n_dis=2, n_gen=1)

    @classmethod
    def author_wgan_gp(cls) -> TTURConfig:
        """Author's WGAN-GP: Adam(2e-4, 0.5), D:G = 5:1 (``wgan_gp_celeba.py``) [code]."""
        return cls(lr_d=2e-4, lr_g=2e-4, betas=(0.5, 0.999), n_dis=5, n_gen=1)

    @classmethod
    def author_dcgan(cls) -> TTURConfig:
        """Author's DCGAN(-SN) and RSGAN-SN: Adam(2e-4, 0.5), D:G = 1:2 [code]."""
        return cls(lr_d=2e-4, lr_g=2e-4, betas=(0.5, 0.999), n_dis=1, n_gen=2)

    @classmethod
    def wgan_gp_paper(cls) -> TTURConfig:
        """WGAN-GP paper: Adam(1e-4, (0, 0.9)), n_critic = 5 (arXiv 1704.00028) [paper]."""
        return cls(lr_d=1e-4, lr_g=1e-4, betas=(0.0, 0.9), n_dis=5, n_gen=1)

    @classmethod
    def sagan(cls) -> TTURConfig:
        """SAGAN: lr_D 4e-4, lr_G 1e-4, Adam (0, 0.9), 1:1 (arXiv 1805.08318) [unverified]."""
        return cls(lr_d=4e-4, lr_g=1e-4, betas=(0.0, 0.9), n_dis=1, n_gen=1)

    @classmethod
    def biggan(cls) -> TTURConfig:
        """BigGAN 128 px: lr_D 2e-4, lr_G 5e-5, Adam (0, 0.999), 2 D steps per G step
        (arXiv 1809.11096) [unverified]."""
        return cls(lr_d=2e-4, lr_g=5e-5, betas=(0.0, 0.999), n_dis=2, n_gen=1)

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python dict (``betas`` as a list), JSON-serialisable."""
        d = asdict(self)
        d["betas"] = list(self.betas)
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TTURConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise ``ValueError``."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(
                f"data has unknown TTURConfig keys {sorted(unknown)}; known {sorted(known)}"
            )
        kwargs = dict(data)
        if "betas" in kwargs:
            kwargs["betas"] = tuple(kwargs["betas"])
        return cls(**kwargs)


def _params(x: nn.Module | Iterable[Tensor], name: str) -> list[Tensor]:
    params = list(x.parameters()) if isinstance(x, nn.Module) else list(x)
    if not params:
        raise ValueError(f"{name} has no parameters")
    for p in params:
        if not isinstance(p, Tensor):
            raise ValueError(f"{name} must be an nn.Module or an iterable of tensors")
    return params


def _check_disjoint(d: list[Tensor], g: list[Tensor]) -> None:
    shared = {id(p) for p in d} & {id(p) for p in g}
    if shared:
        raise ValueError(
            f"discriminator and generator share {len(shared)} parameter(s); a TTUR split needs "
            "disjoint parameter sets"
        )


def make_param_groups(
    discriminator: nn.Module | Iterable[Tensor],
    generator: nn.Module | Iterable[Tensor],
    config: TTURConfig,
) -> list[dict[str, Any]]:
    """Two parameter groups ``[D, G]`` with ``lr_d`` / ``lr_g`` for a single optimiser.

    For the single-loss trick (post 6387, spec §2.14), where one optimiser updates D and G: under
    Adam or RMSprop, scaling G's loss does not change G's effective learning rate (scale
    invariance), so use these groups for a D/G ratio. ``weight_decay_d`` goes to the D group.

    Returns:
        ``[{"params": ..., "lr": lr_d, "weight_decay": ...}, {"params": ..., "lr": lr_g}]``.
    """
    d = _params(discriminator, "discriminator")
    g = _params(generator, "generator")
    _check_disjoint(d, g)
    group_d: dict[str, Any] = {"params": d, "lr": config.lr_d}
    if config.weight_decay_d:
        group_d["weight_decay"] = config.weight_decay_d
    return [group_d, {"params": g, "lr": config.lr_g}]


def make_optimizers(
    discriminator: nn.Module | Iterable[Tensor],
    generator: nn.Module | Iterable[Tensor],
    config: TTURConfig | None = None,
    optimizer_cls: type[torch.optim.Optimizer] = torch.optim.Adam,
    **optimizer_kwargs: Any,
) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
    """Build ``(opt_d, opt_g)`` from a :class:`TTURConfig`.

    ``betas`` is passed only if ``optimizer_cls`` accepts it (Adam, AdamW, ...; not SGD or
    RMSprop); ``weight_decay_d`` only to D and only when non-zero. Extra keyword arguments go to
    both optimisers.

    Arguments:
        discriminator: D (module or parameters).
        generator: G (module or parameters); must not share parameters with D.
        config: the recipe; default :meth:`TTURConfig.author_default`.
        optimizer_cls: the optimiser class; default ``torch.optim.Adam``.
        **optimizer_kwargs: passed to both optimisers (e.g. ``eps``, ``momentum``, ``alpha``).

    Returns:
        ``(opt_d, opt_g)``.

    Example:
        >>> d, g = nn.Linear(4, 1), nn.Linear(2, 4)
        >>> opt_d, opt_g = make_optimizers(d, g, TTURConfig.sagan())
        >>> opt_d.param_groups[0]["lr"], opt_g.param_groups[0]["lr"]
        (0.0004, 0.0001)

    References:
        Heusel et al., arXiv 1706.08500.
    """
    config = TTURConfig.author_default() if config is None else config
    if not isinstance(config, TTURConfig):
        raise ValueError(f"config must be a TTURConfig, got {type(config).__name__}")
    if not (isinstance(optimizer_cls, type) and issubclass(optimizer_cls, torch.optim.Optimizer)):
        raise ValueError(
            f"optimizer_cls must be a torch.optim.Optimizer subclass, got {optimizer_cls!r}"
        )
    d = _params(discriminator, "discriminator")
    g = _params(generator, "generator")
    _check_disjoint(d, g)
    accepted = inspect.signature(optimizer_cls.__init__).parameters
    common = dict(optimizer_kwargs)
    if "betas" in accepted and "betas" not in common:
        common["betas"] = config.betas
    kwargs_d = dict(common)
    if config.weight_decay_d:
        if "weight_decay" not in accepted:
            raise ValueError(
                f"{optimizer_cls.__name__} takes no weight_decay; weight_decay_d must be 0"
            )
        kwargs_d["weight_decay"] = config.weight_decay_d
    opt_d = optimizer_cls(d, lr=config.lr_d, **kwargs_d)
    opt_g = optimizer_cls(g, lr=config.lr_g, **common)
    return opt_d, opt_g
