"""Network blocks: MLPs for 8×8 digits and the author's MNIST conv encoder/decoder.

``author_conv_encoder`` / ``author_conv_decoder`` follow ``vae_keras_cluster.py`` at c3da14e
(filters 32, 64; per stage Conv 3×3 s2 + Conv 3×3 s1 with LeakyReLU 0.2, mirrored by ConvT s1 +
ConvT s2; a linear Dense to the 7×7×64 map; a final ConvT to 1 channel + sigmoid) for 28×28 inputs.

References:
    ``bojone/vae`` ``vae_keras_cluster.py`` (0fe7a91, c3da14e, 1311e5d); https://kexue.fm/archives/5887.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from torch import Tensor, nn

__all__ = ["MLP", "author_conv_decoder", "author_conv_encoder"]


class MLP(nn.Sequential):
    """Linear layers with an activation between them (none after the last).

    Arguments:
        sizes: ``(in, hidden..., out)``.
        activation: module class, default ``nn.ReLU``.
        flatten: flatten ``(B, ...)`` inputs first (default True).
    """

    def __init__(
        self, sizes: Sequence[int], activation: type[nn.Module] = nn.ReLU, *, flatten: bool = True
    ) -> None:
        if len(sizes) < 2:
            raise ValueError(f"sizes must have at least (in, out), got {tuple(sizes)}")
        layers: list[nn.Module] = [nn.Flatten()] if flatten else []
        for i, (a, b) in enumerate(itertools.pairwise(sizes)):
            layers.append(nn.Linear(a, b))
            if i < len(sizes) - 2:
                layers.append(activation())
        super().__init__(*layers)


class _Unflatten(nn.Module):
    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.shape = shape

    def forward(self, x: Tensor) -> Tensor:
        return x.reshape(x.shape[0], *self.shape)


def author_conv_encoder(out_features: int, filters: Sequence[int] = (32, 64)) -> nn.Sequential:
    """Conv encoder of c3da14e for ``(B, 1, 28, 28)``: per filter count Conv s2 + Conv s1, LReLU 0.2,
    then flatten and a linear head to ``out_features`` (e.g. 2·latent for μ and log σ²)."""
    layers: list[nn.Module] = []
    c = 1
    for f in filters:
        layers += [nn.Conv2d(c, f, 3, stride=2, padding=1), nn.LeakyReLU(0.2)]
        layers += [nn.Conv2d(f, f, 3, stride=1, padding=1), nn.LeakyReLU(0.2)]
        c = f
    layers += [nn.Flatten(), nn.Linear(c * 7 * 7, out_features)]
    return nn.Sequential(*layers)


def author_conv_decoder(latent: int, filters: Sequence[int] = (32, 64)) -> nn.Sequential:
    """Mirror decoder of c3da14e: linear Dense to 7×7×64, per stage ConvT s1 + ConvT s2 (LReLU 0.2),
    ConvT to 1 channel; outputs logits ``(B, 1, 28, 28)`` (apply a sigmoid for the mean)."""
    rev = list(filters)[::-1]
    layers: list[nn.Module] = [nn.Linear(latent, rev[0] * 7 * 7), _Unflatten((rev[0], 7, 7))]
    c = rev[0]
    for f in rev:
        layers += [nn.ConvTranspose2d(c, f, 3, stride=1, padding=1), nn.LeakyReLU(0.2)]
        layers += [
            nn.ConvTranspose2d(f, f, 3, stride=2, padding=1, output_padding=1),
            nn.LeakyReLU(0.2),
        ]
        c = f
    layers.append(nn.ConvTranspose2d(c, 1, 3, stride=1, padding=1))
    return nn.Sequential(*layers)
