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
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    losses = []
    for idx in _batches(x.shape[0], batch, check_int(steps, "steps"), gen):
        xb = (
            dequantize(x[idx], n_levels=n_levels, generator=gen)
            if data == "dequantized"
            else x[idx]
        )
        loss = model.loss(xb, generator=gen)
        losses.append(_step(opt, loss))
    model.eval()
    return losses


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
) -> list[float]:
    """Train a :class:`ClusteringVAE` with Adam (the author's recipe: batch 100, lr 1e-3).

    Arguments:
        x: float images ``(N, ...)`` in [0, 1].
        steps: steps of the clustering loss (after the warm-up).
        shift: random translation augmentation of up to ``shift`` pixels (0 = off).
        lam: optional schedule step → λ (default: the model's constant λ).
        warmup: steps of plain VAE training first (KL to N(0, I), λ as above), after which the
            class means are set by k-means (10 inits) on the encoder means of ``x`` — the
            pretraining of VaDE / DEC (spec §2.5); 0 = the post's recipe (means start at zero).
        warmup_shift: random translations of up to this many pixels during the warm-up only.
        cluster_lam: λ of the clustering phase (after the warm-up; default: as ``lam``). A lower
            λ weights the KL_y terms more, pulling the codes to their class means.
    """
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    losses = []
    total = check_int(warmup, "warmup", minimum=0) + check_int(steps, "steps")
    for step, idx in enumerate(_batches(x.shape[0], batch, total, gen)):
        if warmup and step == warmup:
            with torch.no_grad():
                mu = torch.cat([model.encode(x[i : i + 512])[0] for i in range(0, x.shape[0], 512)])
                centres, _, _ = kmeans(mu, model.clusters, generator=gen)
                model.means.copy_(centres.to(model.means.dtype))
        s = warmup_shift if step < warmup else shift
        xb = random_shift(x[idx], s, generator=gen) if s else x[idx]
        lam_now = None if lam is None else lam(step)
        if step >= warmup and cluster_lam is not None:
            lam_now = cluster_lam
        if step < warmup:
            loss = model.vae_loss(xb, lam=lam_now, generator=gen)
        else:
            loss = model.loss(xb, lam=lam_now, generator=gen)
        losses.append(_step(opt, loss))
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
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    opt = torch.optim.Adam(
        [
            {"params": glo.generator.parameters(), "lr": lr_generator},
            {"params": [glo.codes], "lr": lr_codes},
        ],
        betas=(0.5, 0.999),
    )
    losses = []
    for idx in _batches(x.shape[0], batch, check_int(steps, "steps"), gen):
        losses.append(_step(opt, glo.loss(x[idx], idx)))
        glo.project_()
    return losses


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
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    codes = glann.glo.codes.detach()
    opt = torch.optim.Adam(glann.mapper.parameters(), lr=lr)
    losses = []
    for idx in _batches(codes.shape[0], batch, check_int(steps, "steps"), gen):
        loss = glann.imle_loss(codes[idx], pool=pool, generator=gen)
        losses.append(_step(opt, loss))
    return losses


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
