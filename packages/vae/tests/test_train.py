"""Training loops: the warm-up sets the class means by k-means or from given labels; the k-means
helper and the GMM partition are exact on blobs."""

from __future__ import annotations

import pytest
import torch

from kexue.vae import ClusteringVAE, adjusted_rand_index, fit_cluster_vae, gmm_partition
from kexue.vae._kmeans import kmeans


def _blobs(g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    labels = torch.arange(3).repeat_interleave(40)
    return centres[labels] + 0.3 * torch.randn(120, 2, generator=g), labels


def test_kmeans_recovers_separated_blobs_and_prefers_the_lowest_inertia() -> None:
    g = torch.Generator().manual_seed(0)
    x, labels = _blobs(g)
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


def test_gmm_partition_recovers_separated_blobs() -> None:
    pytest.importorskip("sklearn")
    x, labels = _blobs(torch.Generator().manual_seed(2))
    pred = gmm_partition(x, 3, n_init=2, reg_covar=1e-3, seed=0)
    assert pred.shape == (120,) and pred.dtype == torch.int64
    assert adjusted_rand_index(pred, labels) == 1.0


def test_init_labels_set_each_class_mean_to_the_mean_code_of_its_part() -> None:
    g = torch.Generator().manual_seed(3)
    x = torch.rand(30, 1, 8, 8, generator=g)
    labels = torch.arange(3).repeat(10)
    torch.manual_seed(0)
    model = ClusteringVAE(clusters=3, latent=2, hidden=(16,), classifier_hidden=8)
    # lr 0: no parameter moves, so the means are exactly the per-part mean codes of the model
    fit_cluster_vae(
        model, x, warmup=2, steps=1, batch=10, lr=0.0, init_labels=labels, classifier_steps=3
    )
    with torch.no_grad():
        mu = model.encode(x)[0]
    expected = torch.stack([mu[labels == k].mean(0) for k in range(3)])
    torch.testing.assert_close(model.means.detach(), expected)
    with pytest.raises(ValueError, match="init_labels"):
        fit_cluster_vae(model, x, warmup=1, steps=1, init_labels=labels[:5])
