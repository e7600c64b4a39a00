"""A small digits classifier whose hidden layer is the feature space of the sample metrics.

FD / KID / PRDC need a feature net; ImageNet networks cannot be downloaded here and do not fit
8×8 digits anyway. ``DigitsFeatureNet`` (spec §2.10): conv 3×3 1→32 ReLU → conv 3×3 s2 32→64 ReLU
→ Linear→64 ReLU (**features**) → Linear→10, trained deterministically on the train split in
seconds on a CPU. The metric net uses seed 0 and the default widths; GLANN's perceptual distance
uses an *independent* net (seed 1, other widths), and the "leaky" benchmark row reuses the metric
net as the loss, to measure the author's objection that FID and the loss share a network.
No weights are shipped: :func:`train_feature_net` retrains them (same seed, same numbers).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._validation import check_int

__all__ = ["DigitsFeatureNet", "extract_features", "train_feature_net"]


class DigitsFeatureNet(nn.Module):
    """conv 3×3 1→c₁ ReLU → conv 3×3 s2 c₁→c₂ ReLU → Linear→f ReLU (features) → Linear→classes.

    Arguments:
        widths: (c₁, c₂), default (32, 64).
        features: f, default 64.
        classes: default 10.
        image_size: H = W of the inputs, default 8.
    """

    def __init__(
        self,
        widths: Sequence[int] = (32, 64),
        features: int = 64,
        classes: int = 10,
        image_size: int = 8,
    ) -> None:
        super().__init__()
        c1, c2 = (int(w) for w in widths)
        self.conv1 = nn.Conv2d(1, c1, 3, padding=1)
        self.conv2 = nn.Conv2d(c1, c2, 3, stride=2, padding=1)
        side = (image_size + 1) // 2
        self.fc = nn.Linear(c2 * side * side, features)
        self.head = nn.Linear(features, classes)

    def taps(self, x: Tensor) -> list[Tensor]:
        """The activations after each ReLU: ``[conv1, conv2, features]``."""
        h1 = F.relu(self.conv1(x))
        h2 = F.relu(self.conv2(h1))
        return [h1, h2, F.relu(self.fc(h2.flatten(1)))]

    def features(self, x: Tensor) -> Tensor:
        """The feature vector ``(B, f)`` (the hidden layer before the classifier head)."""
        return self.taps(x)[-1]

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


def train_feature_net(
    x: Tensor,
    y: Tensor,
    *,
    seed: int = 0,
    widths: Sequence[int] = (32, 64),
    features: int = 64,
    steps: int = 1500,
    batch: int = 128,
    lr: float = 1e-3,
) -> DigitsFeatureNet:
    """Train :class:`DigitsFeatureNet` with Adam and cross-entropy; returns it frozen, in eval mode.

    Arguments:
        x: ``(N, 1, H, W)`` images in [0, 1]; y: ``(N,)`` int labels.
        seed: initialisation and batch order (deterministic on CPU).
        widths, features: net sizes.
        steps, batch, lr: Adam budget (1500 × 128 ≈ 130 epochs of the 1437 train images).
    """
    check_int(steps, "steps")
    if x.dim() != 4 or y.shape != (x.shape[0],):
        raise ValueError(
            f"x must be (N, 1, H, W) and y (N,), got {tuple(x.shape)} and {tuple(y.shape)}"
        )
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = DigitsFeatureNet(widths, features, int(y.max()) + 1, x.shape[-1])
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    net.train()
    for _ in range(steps):
        idx = torch.randint(0, x.shape[0], (min(batch, x.shape[0]),), generator=gen)
        loss = F.cross_entropy(net(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


@torch.no_grad()
def extract_features(net: DigitsFeatureNet, x: Tensor, *, batch: int = 512) -> Tensor:
    """Features of ``x`` ``(N, f)`` as float64 (what FD / KID / PRDC take)."""
    out = [net.features(x[i : i + batch]).double() for i in range(0, x.shape[0], batch)]
    return torch.cat(out)
