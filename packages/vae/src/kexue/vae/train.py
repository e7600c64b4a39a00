"""Training loops and evaluations on digits-sized data (explicit seeds, CPU-friendly).

Every loop draws its batches (and any augmentation or dequantisation noise) from a
``torch.Generator`` seeded by ``seed``, and seeds torch's global RNG for the model's own draws, so
a run is reproducible on CPU. They return the per-step losses as a list of floats.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from ._kmeans import kmeans
from ._validation import check_choice, check_int
from .clustering import (
    adjusted_rand_index,
    clusters_used,
    hungarian_accuracy,
    normalized_mutual_info,
    purity,
)
from .data import random_shift
from .elbo import reparameterize
from .glann import GLANN, GLO
from .likelihood import bits_per_dim, dequantize
from .models import ClusteringVAE, GaussianVAE

__all__ = [
    "evaluate_clustering",
    "evaluate_likelihood",
    "fit_cluster_vae",
    "fit_glann",
    "fit_glo",
    "fit_vae",
]

LamSchedule = Callable[[int], float]


def _step(opt: torch.optim.Optimizer, loss: Tensor) -> float:
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.detach().item()


def _batches(n: int, batch: int, steps: int, gen: torch.Generator):
    for _ in range(steps):
        yield torch.randint(0, n, (min(batch, n),), generator=gen)


StepLoss = Callable[[int, Tensor, torch.Generator], Tensor]


def _train(
    opt: torch.optim.Optimizer,
    n: int,
    loss_of: StepLoss,
    *,
    steps: int,
    batch: int,
    seed: int,
    after: Callable[[], None] | None = None,
) -> list[float]:
    """The loop every ``fit_*`` shares: batches of indices into ``n`` rows drawn from a generator
    seeded by ``seed`` (torch's global RNG seeded too), ``loss_of(step, idx, gen)``, one Adam step,
    then ``after()``. Returns the per-step losses."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    losses = []
    for step, idx in enumerate(_batches(n, batch, check_int(steps, "steps"), gen)):
        losses.append(_step(opt, loss_of(step, idx, gen)))
        if after is not None:
            after()
    return losses


def fit_vae(
    model: GaussianVAE,
    x: Tensor,
    *,
    steps: int = 4000,
    batch: int = 100,
    lr: float = 1e-3,
    seed: int = 0,
    data: str = "dequantized",
    n_levels: int = 17,
) -> list[float]:
    """Train a :class:`GaussianVAE` on the negative ELBO (analytic KL) with Adam.

    Arguments:
        x: integer pixels ``(N, ...)`` in 0..n−1 for ``data="dequantized"`` (fresh noise each
            step, y = (x + u)/n: the data of the bits/dim tables); otherwise float data used as is
            (``"as_is"``: e.g. binarised images for a Bernoulli decoder).
    """
    check_choice(data, "data", ("dequantized", "as_is"))

    def loss_of(step: int, idx: Tensor, gen: torch.Generator) -> Tensor:
        xb = x[idx]
        if data == "dequantized":
            xb = dequantize(xb, n_levels=n_levels, generator=gen)
        return model.loss(xb, generator=gen)

    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses = _train(opt, x.shape[0], loss_of, steps=steps, batch=batch, seed=seed)
    model.eval()
    return losses


def _class_means(
    model: ClusteringVAE, x: Tensor, labels: Tensor | None, gen: torch.Generator
) -> None:
    """Set the class means from the encoder means of ``x``: the per-label mean code, or (no
    labels) k-means with 10 inits."""
    with torch.no_grad():
        mu = torch.cat([model.encode(x[i : i + 512])[0] for i in range(0, x.shape[0], 512)])
        if labels is None:
            centres, _, _ = kmeans(mu, model.clusters, generator=gen)
        else:
            onehot = torch.nn.functional.one_hot(labels, model.clusters).to(mu.dtype)
            centres = onehot.T @ mu / onehot.sum(0).clamp_min(1)[:, None]
        model.means.copy_(centres.to(model.means.dtype))


def _fit_classifier(
    model: ClusteringVAE, x: Tensor, labels: Tensor, steps: int, batch: int, lr: float, gen
) -> None:
    """Cross-entropy steps of the classifier alone on sampled codes of ``x`` towards ``labels``."""
    if model.classifier is None or not steps:
        return
    opt = torch.optim.Adam(model.classifier.parameters(), lr=lr)
    for idx in _batches(x.shape[0], batch, steps, gen):
        with torch.no_grad():
            z = reparameterize(*model.encode(x[idx]), generator=gen)
        _step(opt, torch.nn.functional.cross_entropy(model.classifier(z), labels[idx]))


def fit_cluster_vae(
    model: ClusteringVAE,
    x: Tensor,
    *,
    steps: int = 6000,
    batch: int = 100,
    lr: float = 1e-3,
    seed: int = 0,
    shift: int = 0,
    lam: LamSchedule | None = None,
    warmup: int = 0,
    warmup_shift: int = 0,
    cluster_lam: float | None = None,
    init_labels: Tensor | None = None,
    classifier_steps: int = 0,
    restart_optimizer: bool = False,
) -> list[float]:
    """Train a :class:`ClusteringVAE` with Adam (the author's recipe: batch 100, lr 1e-3).

    Arguments:
        x: float images ``(N, ...)`` in [0, 1].
        steps: steps of the clustering loss (after the warm-up).
        shift: random translation augmentation of up to ``shift`` pixels (0 = off).
        lam: optional schedule step → λ (default: the model's constant λ).
        warmup: steps of plain VAE training first (KL to N(0, I), λ as above), after which the
            class means are set from the encoder means of ``x`` — the pretraining of VaDE / DEC
            (spec §2.5); 0 = the post's recipe (means start at zero).
        warmup_shift: random translations of up to this many pixels during the warm-up only.
        cluster_lam: λ of the clustering phase (after the warm-up; default: as ``lam``). A lower
            λ weights the KL_y terms more, pulling the codes to their class means.
        init_labels: ``(N,)`` a partition of ``x`` from any clustering that uses no labels (e.g.
            :func:`kexue.vae.gmm_partition`): after the warm-up each class mean is the mean code
            of its part. ``None`` (default): k-means (10 inits) on the encoder means.
        classifier_steps: after the warm-up, cross-entropy steps of the classifier alone towards
            ``init_labels`` on sampled codes (0 = off), so the clustering phase starts from that
            partition rather than from a uniform c(y|z).
        restart_optimizer: reset Adam's moments when the clustering phase starts (the digits
            recipe does; default False, 0.1.0's single optimiser run).
    """
    if init_labels is not None and init_labels.shape != (x.shape[0],):
        raise ValueError(f"init_labels must be ({x.shape[0]},), got {tuple(init_labels.shape)}")
    total = check_int(warmup, "warmup", minimum=0) + check_int(steps, "steps")
    classifier_steps = check_int(classifier_steps, "classifier_steps", minimum=0)

    def loss_of(step: int, idx: Tensor, gen: torch.Generator) -> Tensor:
        if warmup and step == warmup:
            if restart_optimizer:
                opt.state.clear()
            _class_means(model, x, init_labels, gen)
            if init_labels is not None:
                _fit_classifier(model, x, init_labels, classifier_steps, batch, lr, gen)
        s = warmup_shift if step < warmup else shift
        xb = random_shift(x[idx], s, generator=gen) if s else x[idx]
        lam_now = None if lam is None else lam(step)
        if step < warmup:
            return model.vae_loss(xb, lam=lam_now, generator=gen)
        if cluster_lam is not None:
            lam_now = cluster_lam
        return model.loss(xb, lam=lam_now, generator=gen)

    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses = _train(opt, x.shape[0], loss_of, steps=total, batch=batch, seed=seed)
    model.eval()
    return losses


def fit_glo(
    glo: GLO,
    x: Tensor,
    *,
    steps: int = 3000,
    batch: int = 128,
    lr_generator: float = 1e-3,
    lr_codes: float = 1e-2,
    seed: int = 0,
) -> list[float]:
    """Train GLO's generator and codes jointly (GLANN code: Adam β = (0.5, 0.999), code lr 0.01,
    generator lr 0.001), projecting the codes after every step. ``x``: the images of the code
    table's rows, in order."""
    if x.shape[0] != glo.codes.shape[0]:
        raise ValueError(f"x has {x.shape[0]} images but the code table {glo.codes.shape[0]} rows")
    opt = torch.optim.Adam(
        [
            {"params": glo.generator.parameters(), "lr": lr_generator},
            {"params": [glo.codes], "lr": lr_codes},
        ],
        betas=(0.5, 0.999),
    )
    return _train(
        opt, x.shape[0], lambda step, idx, gen: glo.loss(x[idx], idx),
        steps=steps, batch=batch, seed=seed, after=glo.project_,
    )  # fmt: skip


def fit_glann(
    glann: GLANN,
    *,
    steps: int = 2000,
    batch: int = 128,
    pool: int = 512,
    lr: float = 1e-3,
    seed: int = 0,
) -> list[float]:
    """Fit GLANN's IMLE mapper to the (frozen) GLO codes: per step a batch of codes against a
    pool of ``pool`` mapped samples."""
    codes = glann.glo.codes.detach()
    opt = torch.optim.Adam(glann.mapper.parameters(), lr=lr)
    return _train(
        opt, codes.shape[0], lambda step, idx, gen: glann.imle_loss(codes[idx], pool=pool, generator=gen),
        steps=steps, batch=batch, seed=seed,
    )  # fmt: skip


@torch.no_grad()
def evaluate_clustering(pred: Tensor, target: Tensor) -> dict[str, Any]:
    """Hungarian ACC, purity, NMI (arithmetic), ARI and the number of clusters used."""
    return {
        "acc": hungarian_accuracy(pred, target),
        "purity": purity(pred, target),
        "nmi": normalized_mutual_info(pred, target),
        "ari": adjusted_rand_index(pred, target),
        "clusters_used": clusters_used(pred),
    }


@torch.no_grad()
def evaluate_likelihood(
    model: GaussianVAE,
    y: Tensor,
    *,
    ks: tuple[int, ...] = (10, 100, 1000),
    chunk: int = 100,
    seed: int = 0,
    num_dims: int = 64,
    n_levels: int = 17,
) -> dict[str, float]:
    """Mean bits/dim of the ELBO (analytic KL) and of IWAE-k for each k, on fixed data ``y``
    (already dequantised or binarised: every model of a table must see the same ``y``)."""
    gen = torch.Generator().manual_seed(seed)
    model.eval()

    def bpd(log_p: Tensor) -> float:
        return float(bits_per_dim(log_p.double(), num_dims=num_dims, n_levels=n_levels).mean())

    out = {"elbo": bpd(model.elbo(y, generator=gen))}
    for k in ks:
        out[f"iwae_{k}"] = bpd(model.log_likelihood(y, k=k, chunk=chunk, generator=gen))
    return out
