"""The digits clustering recipe: a likelihood-selected pixel GMM partition, then the clustering VAE.

Spec §5.1 measured that a full-covariance Gaussian mixture with a covariance floor, keeping the init
with the best log-likelihood, is the strongest unsupervised clustering of 8×8 digits. Here it only
initialises the clustering VAE (after a plain-VAE warm-up, each class mean is the mean code of one
mixture component and the classifier is fitted to the components), and the post's loss trains from
there. The choice among inits uses the training log-likelihood, never the labels.

scikit-learn (``GaussianMixture``) is needed here only: install the ``digits`` extra
(``pip install "kexue-vae[digits]"``).

References:
    https://kexue.fm/archives/5887 (the clustering VAE); VaDE, Jiang et al., arXiv:1611.05148
    (a GMM fitted before joint training).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ._validation import check_int, check_positive
from .models import ClusteringVAE
from .train import fit_cluster_vae

__all__ = ["DIGITS_CLUSTER_FIT", "fit_cluster_vae_digits", "gmm_partition"]

# Loop options of the digits recipe (packages/vae/BENCHMARKS.md, clustering block): a 3000-step
# plain-VAE warm-up on 1-pixel shifted digits (λ = 60), class means from the GMM partition, 500
# classifier steps towards it, then 3000 steps of the post's loss at λ = 10 with Adam restarted.
DIGITS_CLUSTER_FIT: dict[str, Any] = {
    "warmup": 3000,
    "warmup_shift": 1,
    "steps": 3000,
    "cluster_lam": 10.0,
    "classifier_steps": 500,
    "restart_optimizer": True,
}


def gmm_partition(
    x: Tensor, k: int = 10, *, n_init: int = 30, reg_covar: float = 0.05, seed: int = 0
) -> Tensor:
    """Hard labels ``(N,)`` of a full-covariance GMM of the flattened ``x``, best of ``n_init``.

    Arguments:
        x: ``(N, ...)`` data (digits: pixels in [0, 1]).
        k: components.
        n_init: EM runs from different k-means starts; the one with the highest training
            log-likelihood is kept (no labels involved).
        reg_covar: the covariance floor (0.05 on [0, 1] pixels: always-zero pixels of 8×8 digits
            make the plain covariances singular; spec §5.1 used 0.1 on all 1797 images).
        seed: scikit-learn's ``random_state``.
    """
    try:
        from sklearn.mixture import GaussianMixture
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            'gmm_partition needs scikit-learn: pip install "kexue-vae[digits]"'
        ) from exc
    flat = x.detach().reshape(x.shape[0], -1).double().cpu().numpy()
    gm = GaussianMixture(
        check_int(k, "k"),
        covariance_type="full",
        reg_covar=check_positive(reg_covar, "reg_covar"),
        n_init=check_int(n_init, "n_init"),
        random_state=seed,
    ).fit(flat)
    return torch.as_tensor(gm.predict(flat), dtype=torch.int64)


def fit_cluster_vae_digits(
    model: ClusteringVAE, x: Tensor, *, seed: int = 0, n_init: int = 30, **overrides: Any
) -> list[float]:
    """Train ``model`` with the digits recipe: :func:`gmm_partition` of ``x`` (``n_init`` inits,
    ``random_state=seed``) then :func:`kexue.vae.fit_cluster_vae` with
    :data:`DIGITS_CLUSTER_FIT` (``overrides`` replace its entries). Returns the per-step losses.

    Example::

        model = ClusteringVAE.from_preset("digits")
        fit_cluster_vae_digits(model, x_train, seed=0)
        clusters = model.cluster(x_test)
    """
    labels = gmm_partition(x, model.clusters, n_init=n_init, seed=seed)
    options = {**DIGITS_CLUSTER_FIT, **overrides}
    return fit_cluster_vae(model, x, seed=seed, init_labels=labels, **options)
