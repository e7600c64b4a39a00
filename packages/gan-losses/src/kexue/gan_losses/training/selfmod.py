"""SELF-MOD: self-modulated batch normalisation for the generator (post 6549).

Every BN of G becomes ``h_out = ĥ·(γ(z) + 1) + β(z)``, ``ĥ`` the affine-free batch-normalised
input and ``γ``, ``β`` two separate 2-layer MLPs of the latent ``z`` (Chen et al., arXiv
1810.01365). The author's version (``bojone/o-gan`` ``o_gan_celeba_sm_4x4.py``): BN with
``center=False, scale=False``; ``Dense(hidden=z_dim, relu) → Dense(channels)`` for β and for γ;
output ``ĥ·(γ+1) + β``; used on every BN of G, including the one after the first dense-reshape.
He reports ~50% faster convergence and better FID for O-GAN (post 6549).

Conditional variant (post 6549): feed ``z' = z + E(c) + E'(c) ⊗ z`` instead of ``z``
(:class:`ConditionalLatent`).

References:
    https://kexue.fm/archives/6549; Chen et al., "On Self Modulation for Generative Adversarial
    Networks", arXiv 1810.01365.
"""

from __future__ import annotations

from torch import Tensor, nn

from .._validation import check_tensor

__all__ = ["ConditionalLatent", "SelfModulatedBatchNorm"]


class _AnyDimBatchNorm(nn.modules.batchnorm._BatchNorm):
    """Affine-free BatchNorm over dim 1 of any ``(B, C, *)`` input (stats over all other dims).

    A ``_BatchNorm`` subclass, so ``nn.SyncBatchNorm.convert_sync_batchnorm`` converts it.
    """

    def _check_input_dim(self, input: Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(
                f"h must be (B, C, ...) with at least 2 dims, got {tuple(input.shape)}"
            )


def _mlp(z_dim: int, hidden: int, out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(z_dim, hidden), nn.ReLU(), nn.Linear(hidden, out))


class SelfModulatedBatchNorm(nn.Module):
    """Self-modulated BatchNorm: ``ĥ·(γ(z) + 1) + β(z)``.

    ``ĥ = (h − μ)/√(σ² + eps)`` with batch statistics in training and running statistics in
    eval (a plain affine-free BatchNorm); ``γ(z) = W₂ relu(W₁z + b₁) + b₂`` and ``β(z)`` likewise,
    separate MLPs, each ``(B, C)``, broadcast over the spatial dims of ``h``.

    Arguments:
        num_features: channels C of ``h``.
        z_dim: dimension of the latent ``z``.
        hidden: hidden width of both MLPs; default ``z_dim`` (the author's code). The SELF-MOD
            paper reportedly uses widths as small as 32 [unverified, spec §5 q.7].
        eps: BN epsilon; default 1e-5 (PyTorch; the author's Keras BN uses 1e-3).
        momentum: running-stat momentum, PyTorch convention; default 0.1 (Keras 0.99 = 0.01
            here). ``None`` = cumulative average.
        track_running_stats: as in ``nn.BatchNorm2d``.
        zero_init: zero the last layer of both MLPs so the module equals affine-free BN at
            initialisation (γ + 1 = 1, β = 0); default False (the author's Keras init).

    Shapes:
        ``h (B, C)`` or ``(B, C, *)`` (e.g. ``(B, C, H, W)``), ``z (B, z_dim)`` → same as ``h``.

    Example:
        >>> import torch
        >>> bn = SelfModulatedBatchNorm(8, z_dim=16)
        >>> bn(torch.randn(4, 8, 5, 5), torch.randn(4, 16)).shape
        torch.Size([4, 8, 5, 5])

    References:
        https://kexue.fm/archives/6549; arXiv 1810.01365; ``bojone/o-gan``.
    """

    def __init__(
        self,
        num_features: int,
        z_dim: int,
        hidden: int | None = None,
        *,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        track_running_stats: bool = True,
        zero_init: bool = False,
    ) -> None:
        super().__init__()
        for value, name in ((num_features, "num_features"), (z_dim, "z_dim")):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        hidden = z_dim if hidden is None else hidden
        if not isinstance(hidden, int) or hidden < 1:
            raise ValueError(f"hidden must be an int >= 1 or None, got {hidden!r}")
        self.num_features = num_features
        self.z_dim = z_dim
        self.hidden = hidden
        self.norm = _AnyDimBatchNorm(
            num_features,
            eps=eps,
            momentum=momentum,
            affine=False,
            track_running_stats=track_running_stats,
        )
        self.gamma = _mlp(z_dim, hidden, num_features)
        self.beta = _mlp(z_dim, hidden, num_features)
        if zero_init:
            for mlp in (self.gamma, self.beta):
                nn.init.zeros_(mlp[-1].weight)
                nn.init.zeros_(mlp[-1].bias)

    def forward(self, h: Tensor, z: Tensor) -> Tensor:
        h = check_tensor(h, "h")
        z = check_tensor(z, "z")
        if h.dim() < 2 or h.shape[1] != self.num_features:
            raise ValueError(
                f"h must be (B, {self.num_features}, ...) for num_features={self.num_features}, "
                f"got shape {tuple(h.shape)}"
            )
        if z.dim() != 2 or z.shape != (h.shape[0], self.z_dim):
            raise ValueError(
                f"z must be (B, z_dim) = ({h.shape[0]}, {self.z_dim}) to match h of shape "
                f"{tuple(h.shape)}, got shape {tuple(z.shape)}"
            )
        h_hat = self.norm(h)
        view = (h.shape[0], self.num_features) + (1,) * (h.dim() - 2)
        gamma = self.gamma(z).reshape(view)
        beta = self.beta(z).reshape(view)
        return h_hat * (gamma + 1) + beta

    def extra_repr(self) -> str:
        return f"num_features={self.num_features}, z_dim={self.z_dim}, hidden={self.hidden}"


class ConditionalLatent(nn.Module):
    """Class-conditional latent for SELF-MOD: ``z' = z + E(c) + E'(c) ⊗ z`` (post 6549).

    ``E``, ``E'`` are class embeddings ``(num_classes, z_dim)``; ``⊗`` is the element-wise
    product. Feed ``z'`` to every :class:`SelfModulatedBatchNorm` (and to G's input if wanted).

    Arguments:
        num_classes: number of classes.
        z_dim: latent dimension.
        zero_init: zero both embeddings so ``z' = z`` at initialisation; default True.

    Shapes:
        ``z (B, z_dim)``, ``c (B,)`` integer labels → ``(B, z_dim)``.

    References:
        https://kexue.fm/archives/6549.
    """

    def __init__(self, num_classes: int, z_dim: int, *, zero_init: bool = True) -> None:
        super().__init__()
        for value, name in ((num_classes, "num_classes"), (z_dim, "z_dim")):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        self.num_classes = num_classes
        self.z_dim = z_dim
        self.shift = nn.Embedding(num_classes, z_dim)
        self.scale = nn.Embedding(num_classes, z_dim)
        if zero_init:
            nn.init.zeros_(self.shift.weight)
            nn.init.zeros_(self.scale.weight)

    def forward(self, z: Tensor, c: Tensor) -> Tensor:
        z = check_tensor(z, "z")
        c = check_tensor(c, "c")
        if z.dim() != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"z must be (B, {self.z_dim}), got shape {tuple(z.shape)}")
        if c.shape != (z.shape[0],) or c.is_floating_point() or c.is_complex():
            raise ValueError(
                f"c must be integer class labels of shape ({z.shape[0]},), got shape "
                f"{tuple(c.shape)} and dtype {c.dtype}"
            )
        if c.numel() and (int(c.min()) < 0 or int(c.max()) >= self.num_classes):
            raise ValueError(
                f"c must lie in [0, {self.num_classes}), got range [{int(c.min())}, {int(c.max())}]"
            )
        return z + self.shift(c) + self.scale(c) * z
