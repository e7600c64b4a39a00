"""Training loops: the warm-up sets the class means by k-means; the k-means helper is exact on blobs."""

from __future__ import annotations

import torch

from kexue.vae import ClusteringVAE, adjusted_rand_index, fit_cluster_vae
from kexue.vae._kmeans import kmeans


def test_kmeans_recovers_separated_blobs_and_prefers_the_lowest_inertia() -> None:
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    labels = torch.arange(3).repeat_interleave(40)
    x = centres[labels] + 0.3 * torch.randn(120, 2, generator=g)
    c, pred, inertia = kmeans(x, 3, generator=g)
    assert adjusted_rand_index(pred, labels) == 1.0
    manual = sum(float((x[pred == k] - c[k]).pow(2).sum()) for k in range(3))
    assert abs(inertia - manual) < 1e-6 * max(1.0, manual)


def test_warmup_then_kmeans_means_then_clustering_steps() -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.rand(60, 1, 8, 8, generator=g)
    torch.manual_seed(0)
    model = ClusteringVAE(clusters=3, latent=2, hidden=(16,), classifier_hidden=8)
    losses = fit_cluster_vae(model, x, warmup=5, steps=1, batch=20, seed=0, warmup_shift=1)
    assert len(losses) == 6 and all(torch.isfinite(torch.tensor(losses)))
    assert model.means.detach().abs().sum().item() > 0  # no longer the zero init
    # without a warm-up the means start at zero and one Adam step (lr 1e-3) moves them ≤ ~1e-3
    torch.manual_seed(0)
    other = ClusteringVAE(clusters=3, latent=2, hidden=(16,), classifier_hidden=8)
    fit_cluster_vae(other, x, steps=1, batch=20, seed=0)
    assert other.means.detach().abs().max().item() < 2e-3
