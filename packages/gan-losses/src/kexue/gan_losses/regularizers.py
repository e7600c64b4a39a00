"""Orthogonality regularisers for weights: BigGAN's off-diagonal penalty and SOM (post 7169).

* BigGAN (Brock et al., arXiv 1809.11096 §3.1): ``R_β(W) = β‖WWᵀ ⊙ (1 − I)‖²_F`` with ``W``
  reshaped to ``(out, −1)``, β = 1e-4, applied to G. It pushes filters towards mutual
  orthogonality without constraining their norms. :func:`inject_orthogonal_gradient_` is the
  BigGAN-PyTorch style update that adds the gradient to ``.grad`` in place, without a graph.
* SOM (Zhang et al., arXiv 2001.01275, as read in post 7169): a data-dependent estimate of the
  angles between filters from the signs of their responses on the layer's input batch.

References:
    https://kexue.fm/archives/7169; arXiv 1809.11096; arXiv 2001.01275.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn

from ._validation import check_finite, check_positive, check_tensor

__all__ = [
    "inject_orthogonal_gradient_",
    "model_orthogonal_regularization",
    "orthogonal_regularization",
    "som_regularization",
    "som_similarity",
]


def _as_matrix(weight: Tensor, name: str) -> Tensor:
    weight = check_tensor(weight, name)
    if weight.dim() < 2:
        raise ValueError(
            f"{name} must have at least 2 dims (out, in, ...), got shape {tuple(weight.shape)}"
        )
    if not weight.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got dtype {weight.dtype}")
    return weight.reshape(weight.shape[0], -1)


def _off_diagonal_gram(w: Tensor) -> Tensor:
    """``WWᵀ ⊙ (1 − I)`` for ``w (out, n)``."""
    gram = w @ w.transpose(0, 1)
    return gram * (1.0 - torch.eye(w.shape[0], dtype=gram.dtype, device=gram.device))


def orthogonal_regularization(weight: Tensor, *, beta: float = 1e-4) -> Tensor:
    """BigGAN orthogonal regulariser of one weight, ``β‖WWᵀ ⊙ (1 − I)‖²_F``.

    Only off-diagonal entries of the Gram matrix are penalised (the filters' norms are free).
    Its gradient is ``4β(WWᵀ ⊙ (1 − I))W``; BigGAN-PyTorch injects half of it, see
    :func:`inject_orthogonal_gradient_`.

    Arguments:
        weight: a weight ``(out, ...)`` with at least 2 dims, reshaped to ``(out, −1)``
            (Linear ``(out, in)``, Conv ``(out, in, k, k)``; for ``ConvTranspose`` the rows are
            the input channels, as BigGAN-PyTorch does).
        beta: strength β; default 1e-4 [BigGAN §3.1].

    Returns:
        A scalar tensor, differentiable w.r.t. ``weight``.

    Example:
        >>> orthogonal_regularization(torch.tensor([[1.0, 0.0], [1.0, 0.0]]))
        tensor(0.0002)

    References:
        Brock et al., arXiv 1809.11096; https://kexue.fm/archives/7169.
    """
    check_positive(beta, "beta", allow_zero=True)
    w = _as_matrix(weight, "weight")
    check_finite(w, "weight")
    return beta * _off_diagonal_gram(w).pow(2).sum()


def _select_weights(
    weights: nn.Module | Iterable[Tensor], exclude: Iterable[Tensor], name: str
) -> list[Tensor]:
    excluded = {id(p) for p in exclude}
    if isinstance(weights, nn.Module):
        candidates = [p for p in weights.parameters() if p.dim() >= 2]
    else:
        candidates = list(weights)
        for i, p in enumerate(candidates):
            _as_matrix(p, f"{name}[{i}]")
    return [p for p in candidates if id(p) not in excluded]


def model_orthogonal_regularization(
    weights: nn.Module | Iterable[Tensor],
    *,
    beta: float = 1e-4,
    exclude: Iterable[Tensor] = (),
) -> Tensor:
    """Sum of :func:`orthogonal_regularization` over a model's weights.

    For a module, every parameter with at least 2 dims is used (biases, BN γ/β and other vectors
    are skipped, as BigGAN-PyTorch's ``ortho``); pass ``exclude`` to skip more (BigGAN skips the
    shared class embedding). For an iterable, exactly the given tensors are used.

    Arguments:
        weights: an ``nn.Module`` (usually G) or an iterable of weight tensors.
        beta: strength β; default 1e-4 [BigGAN §3.1].
        exclude: parameters to skip (matched by identity).

    Returns:
        A scalar tensor (0 when nothing is selected).

    References:
        Brock et al., arXiv 1809.11096.
    """
    check_positive(beta, "beta", allow_zero=True)
    selected = _select_weights(weights, exclude, "weights")
    if not selected:
        return torch.zeros(())
    return torch.stack([orthogonal_regularization(p, beta=beta) for p in selected]).sum()


@torch.no_grad()
def inject_orthogonal_gradient_(
    weights: nn.Module | Iterable[Tensor],
    *,
    beta: float = 1e-4,
    exclude: Iterable[Tensor] = (),
) -> None:
    """Add ``2β(WWᵀ ⊙ (1 − I))W`` to each weight's ``.grad`` in place (BigGAN-PyTorch style).

    Call after ``loss.backward()`` and before ``optimizer.step()``. The injected term is the
    gradient of **½·R_β** (``∂‖WWᵀ ⊙ (1 − I)‖²_F / ∂W = 4(WWᵀ ⊙ (1 − I))W``), so this equals
    adding ``0.5 * model_orthogonal_regularization(...)`` to the loss, the convention of
    BigGAN-PyTorch's ``ortho`` and StudioGAN's ``orthogonalize_model``. It needs no graph and no
    double backward. A weight whose ``.grad`` is ``None`` gets the term as its gradient.

    Arguments:
        weights: an ``nn.Module`` (every parameter with ≥ 2 dims) or an iterable of weights.
        beta: strength β; default 1e-4 [BigGAN §3.1].
        exclude: parameters to skip (matched by identity).

    References:
        Brock et al., arXiv 1809.11096; ``ajbrock/BigGAN-PyTorch`` ``utils.ortho``.
    """
    check_positive(beta, "beta", allow_zero=True)
    for p in _select_weights(weights, exclude, "weights"):
        w = p.detach().reshape(p.shape[0], -1)
        g = (2.0 * beta) * (_off_diagonal_gram(w) @ w)
        g = g.reshape(p.shape).to(p.dtype)
        if p.grad is None:
            p.grad = g.clone()
        else:
            p.grad.add_(g)


def som_similarity(x: Tensor, weight: Tensor, *, gamma: float = 10.0, eps: float = 1e-12) -> Tensor:
    """SOM's filter-similarity matrix ``ϑ = ŶᵀŶ`` with ``Y = tanh(γ·X Wᵀ)``.

    Each column of ``Y (b, k)`` (one filter's responses over the batch) is L2-normalised over the
    **batch**, so ``ϑ (k, k)`` has unit diagonal and ``ϑ_ij ≈ 1 − 2θ_ij/π`` for the angle
    ``θ_ij`` between filters ``i`` and ``j`` (``tanh(γ·)`` is a smooth sign; exact in the
    limit γ → ∞ for inputs symmetric around 0). ``x`` is detached: the regulariser shapes W
    only.

    Arguments:
        x: the layer's input batch ``(b, d)`` (for a conv layer: unfolded patches, e.g. from
            ``F.unfold``, flattened to ``(b·L, in·kh·kw)``).
        weight: the layer's weight in PyTorch layout ``(k, d)`` or ``(k, in, kh, kw)``, reshaped
            to ``(k, −1)``; i.e. the post's ``W (d × k)`` transposed.
        gamma: sharpness γ of the smooth sign; default 10 [post 7169].
        eps: floor of the column norms (a column of zeros stays zero).

    Returns:
        ``ϑ`` of shape ``(k, k)``.

    References:
        https://kexue.fm/archives/7169; Zhang et al., arXiv 2001.01275.
    """
    x = check_tensor(x, "x")
    w = _as_matrix(weight, "weight")
    check_positive(gamma, "gamma")
    if x.dim() != 2:
        raise ValueError(f"x must be a batch of shape (b, d), got shape {tuple(x.shape)}")
    if x.shape[1] != w.shape[1]:
        raise ValueError(
            f"x and weight disagree on the input dim: x shape {tuple(x.shape)} has d={x.shape[1]}, "
            f"weight reshaped to {tuple(w.shape)} has d={w.shape[1]}"
        )
    y = torch.tanh(gamma * (x.detach().to(w.dtype) @ w.transpose(0, 1)))
    y = y / y.norm(dim=0, keepdim=True).clamp_min(eps)
    return y.transpose(0, 1) @ y


def som_regularization(
    x: Tensor,
    weight: Tensor,
    *,
    gamma: float = 10.0,
    lambda1: float = 100.0,
    lambda2: float = 1.0,
    normalize: bool = False,
    eps: float = 1e-12,
) -> Tensor:
    """SOM orthogonality regulariser ``λ₁(Σ_{i≠j} ϑ_ij)² + λ₂ Σ_{i≠j} ϑ_ij²``.

    ``ϑ`` from :func:`som_similarity`. The first term drives the *mean* off-diagonal similarity
    to 0 (filters spread over angles with average π/2); the second shrinks each pair. Gradients
    reach ``weight`` only, never ``x`` (detached).

    Open question (spec §5 q.4): whether the paper normalises the off-diagonal sums by the
    number of pairs ``k(k−1)`` is unverified. ``normalize=False`` (default) is the post's formula
    as written; ``normalize=True`` uses means over the ``k(k−1)`` off-diagonal entries,
    ``λ₁(mean ϑ_ij)² + λ₂ mean ϑ_ij²``, which keeps λ₁, λ₂ meaningful across widths.

    Arguments:
        x: the layer's input batch ``(b, d)``; see :func:`som_similarity`.
        weight: ``(k, d)`` or ``(k, ...)`` weight, PyTorch layout.
        gamma: γ; default 10 [post 7169].
        lambda1: weight of the squared sum; default 100 [post 7169].
        lambda2: weight of the sum of squares; default 1 [post 7169].
        normalize: divide both sums by ``k(k−1)`` (see above); default False.
        eps: floor of the column norms.

    Returns:
        A scalar tensor (0 for a single filter).

    References:
        https://kexue.fm/archives/7169 (the author's reading; he notes the paper muddles its
        D and d); Zhang et al., arXiv 2001.01275.
    """
    check_positive(lambda1, "lambda1", allow_zero=True)
    check_positive(lambda2, "lambda2", allow_zero=True)
    theta = som_similarity(x, weight, gamma=gamma, eps=eps)
    k = theta.shape[0]
    off = theta * (1.0 - torch.eye(k, dtype=theta.dtype, device=theta.device))
    total = off.sum()
    squares = off.pow(2).sum()
    if normalize and k > 1:
        pairs = k * (k - 1)
        total = total / pairs
        squares = squares / pairs
    return lambda1 * total.pow(2) + lambda2 * squares
