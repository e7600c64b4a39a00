"""Class-conditional pieces: the projection discriminator's scores and the AC-GAN class loss.

- **Projection** (Miyato & Koyama 2018, arXiv 1802.05637): D(x, y) = ψ(φ(x)) + ⟨e_y, φ(x)⟩, with
  φ the feature trunk, ψ the unconditional head and e_y a learned class embedding. The result is
  a ``(B,)`` score for any loss of this package (hinge with spectral norm in the paper's
  experiments).
- **AC-GAN** (Odena et al. 2017, arXiv 1610.09585): D also predicts the class; with L_C the class
  log-likelihood over reals and fakes, D maximises L_S + L_C and G maximises L_C − L_S (L_S the
  source term = any adversarial loss here). StudioGAN's ``AC`` trains the classifier on reals only
  in the D step and applies the fake-side CE in the G step (``cond_lambda`` = 1).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._validation import Reduction, as_scores, check_positive, check_reduction, reduce

__all__ = ["acgan_class_loss", "projection_scores"]


def _check_labels(labels: object, n_classes: int, batch: int, name: str) -> Tensor:
    if (
        not isinstance(labels, Tensor)
        or labels.dim() != 1
        or labels.dtype
        not in (
            torch.int64,
            torch.int32,
            torch.int16,
            torch.uint8,
        )
    ):
        shape = tuple(labels.shape) if isinstance(labels, Tensor) else type(labels).__name__
        raise ValueError(f"{name} must be integer class labels of shape (B,), got {shape}")
    if labels.shape[0] != batch:
        raise ValueError(f"{name} has batch {labels.shape[0]}, expected {batch}")
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= n_classes):
        raise ValueError(
            f"{name} must lie in [0, {n_classes}), got range "
            f"[{int(labels.min())}, {int(labels.max())}]"
        )
    return labels.long()


def projection_scores(
    features: Tensor,
    unconditional_scores: Tensor,
    embedding: nn.Embedding | Tensor,
    labels: Tensor,
) -> Tensor:
    """Projection-discriminator scores ``ψ(φ(x)) + ⟨e_y, φ(x)⟩``, shape ``(B,)``.

    Arguments:
        features: φ(x), ``(B, F)`` (after the trunk's global pooling).
        unconditional_scores: ψ(φ(x)), ``(B,)`` or ``(B, 1)``.
        embedding: the class embedding, an ``nn.Embedding(n_classes, F)`` or its weight
            ``(n_classes, F)`` (spectrally normalised in the paper).
        labels: class indices ``(B,)``.

    Returns:
        ``(B,)`` scores (fp32 at least), ready for any loss of the package.
    """
    psi = as_scores(unconditional_scores, "unconditional_scores")
    weight = embedding.weight if isinstance(embedding, nn.Embedding) else embedding
    if not isinstance(weight, Tensor) or weight.dim() != 2:
        raise ValueError("embedding must be an nn.Embedding or a (n_classes, F) tensor")
    if (
        not isinstance(features, Tensor)
        or features.dim() != 2
        or features.shape[1] != weight.shape[1]
    ):
        got = tuple(features.shape) if isinstance(features, Tensor) else type(features).__name__
        raise ValueError(
            f"features must be (B, F) with F = embedding dim {weight.shape[1]}, got {got}"
        )
    if features.shape[0] != psi.shape[0]:
        raise ValueError(
            f"features and unconditional_scores need the same batch; got {tuple(features.shape)} "
            f"and {tuple(psi.shape)}"
        )
    y = _check_labels(labels, weight.shape[0], features.shape[0], "labels")
    inner = (weight[y].to(psi.dtype) * features.to(psi.dtype)).sum(dim=1)
    return psi + inner


def acgan_class_loss(
    logits_real: Tensor,
    y_real: Tensor,
    logits_fake: Tensor | None = None,
    y_fake: Tensor | None = None,
    *,
    weight: float = 1.0,
    reduction: Reduction = "mean",
) -> Tensor:
    """AC-GAN auxiliary classification loss ``weight·(CE(real) [+ CE(fake)])`` to minimise.

    Arguments:
        logits_real: class logits of D on reals ``(B, n_classes)``; y_real ``(B,)``.
        logits_fake, y_fake: the same on fakes. Passing them in the D step gives the paper's form
            (D classifies both); omitting them gives StudioGAN's ``AC`` D step (reals only). In
            the G step pass the fakes as ``logits_real``/``y_real`` (CE on G's samples).
        weight: ``cond_lambda`` = 1 [StudioGAN].
        reduction: ``"mean"`` (each CE averaged over its batch, then summed), ``"sum"``, or
            ``"none"`` (``(B,)``; needs equal batches when fakes are given).

    Returns:
        A scalar (or ``(B,)``), fp32 at least (cross-entropy of fp16 logits runs in fp32).
    """
    check_positive(weight, "weight", allow_zero=True)
    check_reduction(reduction)
    if (logits_fake is None) != (y_fake is None):
        raise ValueError("pass both logits_fake and y_fake, or neither")

    def ce(logits: Tensor, y: Tensor, name: str) -> Tensor:
        if not isinstance(logits, Tensor) or logits.dim() != 2 or not logits.is_floating_point():
            got = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
            raise ValueError(f"{name} must be float logits (B, n_classes), got {got}")
        labels = _check_labels(y, logits.shape[1], logits.shape[0], f"labels of {name}")
        logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
        return F.cross_entropy(logits, labels, reduction="none")

    terms = [ce(logits_real, y_real, "logits_real")]
    if logits_fake is not None and y_fake is not None:
        terms.append(ce(logits_fake, y_fake, "logits_fake"))
    if reduction == "none":
        if len(terms) == 2 and terms[0].shape != terms[1].shape:
            raise ValueError("reduction='none' needs equal real and fake batches")
        return weight * sum(terms[1:], terms[0])
    total = sum((reduce(t, reduction) for t in terms[1:]), reduce(terms[0], reduction))
    return weight * total
