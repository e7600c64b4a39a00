"""Fixed feature / channel permutations (reverse, random, given): logdet 0, exact inverse (spec §2.1).

References:
    - Dinh et al., NICE arXiv:1410.8516 (reverse shuffle); https://kexue.fm/archives/5776
    - Kingma & Dhariwal, Glow arXiv:1807.03039 (random shuffle); https://kexue.fm/archives/6482
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
from torch import Tensor

from kexue.flows.base import FlowLayer, check_features_dim, zero_logdet
from kexue.flows.layers.reshape import _check_dim_size

__all__ = ["Permutation"]


def _not_a_permutation(p: Tensor, features: int) -> str | None:
    """Why ``p`` is not a permutation of ``range(features)``, or None if it is one."""
    if p.is_floating_point() or p.is_complex() or p.dtype == torch.bool:
        return f"must be an integer tensor, got dtype {p.dtype}"
    if tuple(p.shape) != (features,):
        return f"must have shape ({features},), got {tuple(p.shape)}"
    if not torch.equal(torch.sort(p.cpu().long()).values, torch.arange(features)):
        return f"must be a permutation of range({features}), got {p.tolist()}"
    return None


class Permutation(FlowLayer):
    """Permute features (or channels) along ``dim``: ``y = x.index_select(dim, perm)``; logdet 0.

    Arguments:
        features: size of ``dim`` (D for vectors, C for images).
        mode: ``"reverse"`` (default; NICE/Su's shuffle, openai/glow ``flow_permutation=0``),
            ``"random"`` (a fixed random shuffle drawn from ``generator``; Su's Glow,
            openai ``flow_permutation=1``) or ``"fixed"`` (the given ``perm``).
        perm: the permutation for ``mode="fixed"`` (a sequence or 1-D integer tensor).
        dim: permuted dimension; default 1.
        generator: randomness for ``mode="random"``.

    The permutation and its inverse are saved as buffers, so a ``state_dict`` round trip
    restores a random permutation exactly. Loading checks them: ``perm`` must be a permutation of
    ``range(features)`` and ``inv_perm`` its inverse, else ``load_state_dict`` raises.

    References:
        Dinh et al., NICE arXiv:1410.8516; Kingma & Dhariwal, Glow arXiv:1807.03039;
        https://kexue.fm/archives/5776
    """

    perm: Tensor
    inv_perm: Tensor

    def __init__(
        self,
        features: int,
        *,
        mode: Literal["reverse", "random", "fixed"] = "reverse",
        perm: Sequence[int] | Tensor | None = None,
        dim: int = 1,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        check_features_dim(features, dim)
        if mode == "reverse":
            p = torch.arange(features - 1, -1, -1)
        elif mode == "random":
            p = torch.randperm(features, generator=generator)
        elif mode == "fixed":
            if perm is None:
                raise ValueError("perm is required for mode='fixed'")
            p = torch.as_tensor(perm, dtype=torch.long).flatten()
            if bad := _not_a_permutation(p, features):
                raise ValueError(f"perm {bad}")
        else:
            raise ValueError(f"mode must be 'reverse', 'random' or 'fixed', got {mode!r}")
        if perm is not None and mode != "fixed":
            raise ValueError(f"perm is only used with mode='fixed', got mode={mode!r}")
        self.features = features
        self.mode = mode
        self.dim = dim
        self.register_buffer("perm", p.to(torch.long))
        self.register_buffer("inv_perm", torch.argsort(p).to(torch.long))

    def _load_from_state_dict(
        self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any
    ) -> None:
        error_msgs: list[str] = args[-1]
        perm, inv = state_dict.get(prefix + "perm"), state_dict.get(prefix + "inv_perm")
        bad = None
        if isinstance(perm, Tensor) and (why := _not_a_permutation(perm, self.features)):
            bad = f"{prefix}perm {why}"
        elif isinstance(perm, Tensor) and isinstance(inv, Tensor):
            if tuple(inv.shape) != (self.features,) or not torch.equal(
                inv.cpu().long(), torch.argsort(perm.cpu().long())
            ):
                bad = f"{prefix}inv_perm is not the inverse of {prefix}perm"
        if bad is not None:  # load_state_dict raises with it; the buffers are left unchanged
            error_msgs.append(bad)
            return
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _permute(self, x: Tensor, idx: Tensor, name: str) -> tuple[Tensor, Tensor]:
        _check_dim_size(x, self.dim, self.features, name, even=False)
        return x.index_select(self.dim, idx), zero_logdet(x)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``x.index_select(dim, perm)``, logdet 0."""
        return self._permute(x, self.perm, "x")

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``y.index_select(dim, argsort(perm))``, logdet 0."""
        return self._permute(y, self.inv_perm, "y")

    def extra_repr(self) -> str:
        return f"features={self.features}, mode={self.mode!r}, dim={self.dim}"
