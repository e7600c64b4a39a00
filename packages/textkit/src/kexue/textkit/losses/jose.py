"""JoSE: joint spherical embedding of words, contexts and documents, with Riemannian SGD.

Words u, contexts v and documents d live on the unit sphere S^{D−1}. For a (centre word u, context
word v, document d) triple and a negative word u′ the loss is the hinge

    L = max(0, m − cos(v, u) − cos(d, u) + cos(v, u′) + cos(d, u′)),   m = 0.15 [code, run.sh].

Optimisation is Riemannian SGD on the sphere: the Euclidean gradient ∇f is projected onto the
tangent space, g = (I − xxᵀ)∇f, scaled by 1 + xᵀ∇f/‖∇f‖ = 1 + cos(x, ∇f) ∈ [0, 2] (2 when the
descent direction −∇f points straight inwards, −x, so that the projection alone would under-move;
0 when it points straight outwards, +x, where no move on the sphere helps; paper §5), and the
step is retracted: x ← (x − η·factor·g)/‖x − η·factor·g‖.

References:
    - Su Jianlin, JoSE post: https://kexue.fm/archives/7063
    - Meng et al. 2019, Spherical Text Embedding, arXiv:1911.01196 (code:
      yumeng5/Spherical-Text-Embedding; defaults from its run.sh: dim 100, margin 0.15,
      2 negatives, lr 0.04 with linear decay, window 10, min_count 5, sample 1e-3, 10 iterations).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._common import _check_finite, _check_reduction, _reduce, _shape
from .sampled import NoiseSampler

__all__ = [
    "JoSE",
    "RiemannianSGD",
    "jose_loss",
    "sphere_sgd_step",
    "sphere_step_factor",
    "sphere_tangent_grad",
]


def jose_loss(
    word: Tensor,
    context: Tensor,
    doc: Tensor,
    negatives: Tensor,
    *,
    margin: float = 0.15,
    reduction: str = "mean",
) -> Tensor:
    """JoSE's spherical hinge loss, summed over the negatives of each triple.

    L = Σ_j max(0, m − cos(v, u) − cos(d, u) + cos(v, u′_j) + cos(d, u′_j)). The inputs must be
    unit vectors (cosines are taken as dot products, as the model keeps every row on the sphere);
    the loss and its gradient are exactly zero once the margin is met.

    Arguments:
        word: centre-word vectors u, ``(B, D)``.
        context: context-word vectors v, ``(B, D)``.
        doc: document vectors d, ``(B, D)``.
        negatives: negative-word vectors u′, ``(B, N, D)`` or ``(B, D)`` (N = 1).
        margin: m (default 0.15 [code, run.sh]).
        reduction: ``"mean" | "sum" | "none"`` over B.

    Returns:
        The loss, a scalar or ``(B,)``.

    References:
        arXiv:1911.01196; https://kexue.fm/archives/7063
    """
    _check_reduction(reduction)
    for name, t in (("word", word), ("context", context), ("doc", doc), ("negatives", negatives)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    for name, t in (("word", word), ("context", context), ("doc", doc)):
        if not isinstance(t, Tensor) or t.dim() != 2 or not t.is_floating_point():
            raise ValueError(f"{name} must be a floating (B, D) tensor, got shape {_shape(t)}")
        if t.shape != word.shape:
            raise ValueError(
                f"word, context and doc must share the shape (B, D): word {_shape(word)}, "
                f"{name} {_shape(t)}"
            )
    if negatives.dim() == 2:
        negatives = negatives.unsqueeze(1)
    if (
        negatives.dim() != 3
        or negatives.shape[0] != word.shape[0]
        or negatives.shape[2] != word.shape[1]
    ):
        raise ValueError(
            f"negatives must be (B, N, D) or (B, D) with (B, D) = {_shape(word)}, "
            f"got {_shape(negatives)}"
        )
    if not negatives.is_floating_point():
        raise ValueError(f"negatives must be floating point, got {negatives.dtype}")
    if not margin >= 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    _check_finite(word=word, context=context, doc=doc, negatives=negatives)
    return _reduce(_jose_core(word, context, doc, negatives, margin), reduction)


def _jose_core(
    word: Tensor, context: Tensor, doc: Tensor, negatives: Tensor, margin: float
) -> Tensor:
    """Trusted core of :func:`jose_loss`: per-triple hinge ``(B,)``; ``negatives`` ``(B, N, D)``."""
    pos = (context * word).sum(-1) + (doc * word).sum(-1)  # (B,)
    neg = ((context + doc).unsqueeze(1) * negatives).sum(-1)  # (B, N)
    return F.relu(margin - pos.unsqueeze(1) + neg).sum(1)


def sphere_tangent_grad(x: Tensor, grad: Tensor) -> Tensor:
    """Riemannian gradient on the unit sphere: g = (I − xxᵀ)∇f, row-wise over the last dim.

    Arguments:
        x: points on the sphere ``(..., D)``.
        grad: Euclidean gradient ∇f, same shape.

    Returns:
        g ``(..., D)`` with xᵀg = 0.
    """
    _check_x_grad(x, grad)
    return _tangent_core(x, grad)


def _check_x_grad(x: Tensor, grad: Tensor) -> None:
    """Checked entry of the sphere ops: same shape, finite (one host sync)."""
    if not isinstance(x, Tensor) or not isinstance(grad, Tensor):
        raise TypeError("x and grad must be torch.Tensors")
    if x.shape != grad.shape:
        raise ValueError(f"x and grad must have the same shape, got {_shape(x)}, {_shape(grad)}")
    _check_finite(x=x, grad=grad)


def _tangent_core(x: Tensor, grad: Tensor) -> Tensor:
    return grad - (x * grad).sum(-1, keepdim=True) * x


def sphere_step_factor(x: Tensor, grad: Tensor) -> Tensor:
    """JoSE's step scale 1 + xᵀ∇f/‖∇f‖ ∈ [0, 2] per row (1 where ∇f = 0), shape ``(..., 1)``.

    References:
        arXiv:1911.01196 §5; https://kexue.fm/archives/7063
    """
    _check_x_grad(x, grad)
    return _step_factor_core(x, grad)


def _step_factor_core(x: Tensor, grad: Tensor) -> Tensor:
    gnorm = grad.norm(dim=-1, keepdim=True)
    ratio = (x * grad).sum(-1, keepdim=True) / gnorm.clamp_min(torch.finfo(grad.dtype).tiny)
    # |xᵀ∇f| ≤ ‖x‖‖∇f‖ = ‖∇f‖; clamp only absorbs rounding
    return torch.where(gnorm > 0, 1.0 + ratio.clamp(-1.0, 1.0), torch.ones_like(ratio))


def sphere_sgd_step(x: Tensor, grad: Tensor, lr: float) -> Tensor:
    """One Riemannian SGD step on the sphere: normalise(x − lr·factor·(I − xxᵀ)∇f).

    Rows with a zero gradient are returned unchanged (bit for bit).

    Arguments:
        x: points on the sphere ``(..., D)``.
        grad: Euclidean gradient, same shape.
        lr: step size η.

    Returns:
        The new points ``(..., D)``, unit norm.
    """
    _check_x_grad(x, grad)
    return _sphere_step_core(x, grad, lr)


def _sphere_step_core(x: Tensor, grad: Tensor, lr: float) -> Tensor:
    """Trusted core of :func:`sphere_sgd_step` (used by :class:`RiemannianSGD` every step)."""
    g = _tangent_core(x, grad)
    step = x - lr * _step_factor_core(x, grad) * g
    new = F.normalize(step, dim=-1, eps=1e-12)
    moved = grad.ne(0).any(-1, keepdim=True)
    return torch.where(moved, new, x)


class RiemannianSGD(torch.optim.Optimizer):
    """SGD on the unit sphere for every row (last dim) of every parameter (JoSE §5).

    Each step applies :func:`sphere_sgd_step`; dense and sparse (``nn.Embedding(sparse=True)``)
    gradients are supported, and rows without gradient are untouched. Parameters should start
    on the sphere (:meth:`project_` normalises them). lr decay: use any ``torch.optim.lr_scheduler``
    (JoSE decays linearly to 0).

    Arguments:
        params: parameters or parameter groups.
        lr: step size (default 0.04 [code, run.sh]).

    References:
        arXiv:1911.01196; https://kexue.fm/archives/7063
    """

    def __init__(self, params: Iterable[Tensor] | Iterable[dict], lr: float = 0.04) -> None:
        if not lr >= 0:
            raise ValueError(f"lr must be >= 0, got {lr}")
        super().__init__(params, {"lr": lr})

    @torch.no_grad()
    def project_(self) -> None:
        """Normalise every row of every parameter onto the unit sphere (in place)."""
        for group in self.param_groups:
            for p in group["params"]:
                p.copy_(F.normalize(p, dim=-1, eps=1e-12))

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor | None:  # type: ignore[override]
        """Perform one Riemannian step; ``closure`` (optional) re-evaluates the loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr = group["lr"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                if grad.is_sparse:
                    grad = grad.coalesce()
                    idx = grad.indices()[0]
                    vals = grad.values()
                    p[idx] = _sphere_step_core(p[idx], vals, lr)
                else:
                    p.copy_(_sphere_step_core(p, grad, lr))
        return loss


class JoSE(nn.Module):
    """A small JoSE model: word (u), context (v) and document (d) embeddings on the sphere.

    Arguments:
        num_words: vocabulary size V (word ids 0..V−1).
        num_docs: number of documents.
        dim: embedding dimension (default 100 [code, run.sh]).
        margin: hinge margin (default 0.15 [code, run.sh]).
        generator: optional ``torch.Generator`` for the uniform-on-the-sphere initialisation.

    Returns:
        Module with ``.word``, ``.context``, ``.doc`` parameters (unit rows), ``.loss(...)`` and
        ``.fit(docs, ...)``.

    References:
        arXiv:1911.01196; https://kexue.fm/archives/7063
    """

    def __init__(
        self,
        num_words: int,
        num_docs: int,
        *,
        dim: int = 100,
        margin: float = 0.15,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if num_words < 1 or num_docs < 1 or dim < 2:
            raise ValueError(
                f"need num_words >= 1, num_docs >= 1, dim >= 2, got {num_words}, {num_docs}, {dim}"
            )
        self.margin = margin

        def sphere(n: int) -> nn.Parameter:
            return nn.Parameter(F.normalize(torch.randn(n, dim, generator=generator), dim=1))

        self.word = sphere(num_words)
        self.context = sphere(num_words)
        self.doc = sphere(num_docs)

    def loss(
        self,
        words: Tensor,
        contexts: Tensor,
        docs: Tensor,
        negatives: Tensor,
        *,
        reduction: str = "mean",
    ) -> Tensor:
        """:func:`jose_loss` of ids: words, contexts, docs ``(B,)``, negatives ``(B, N)``.

        Checks the id shapes and ``reduction`` on the host; the embedding rows are the model's
        own, so the loss core runs without value checks (no host sync; out-of-range ids fail in
        the embedding lookup).
        """
        _check_reduction(reduction)
        for name, ids in (("words", words), ("contexts", contexts), ("docs", docs)):
            if not isinstance(ids, Tensor) or ids.dim() != 1 or ids.is_floating_point():
                raise ValueError(f"{name} must be an integer (B,) tensor, got {_shape(ids)}")
            if ids.shape != words.shape:
                raise ValueError(
                    f"words, contexts and docs must share the shape (B,): words "
                    f"{_shape(words)}, {name} {_shape(ids)}"
                )
        if (
            not isinstance(negatives, Tensor)
            or negatives.is_floating_point()
            or negatives.dim() != 2
            or negatives.shape[0] != words.shape[0]
        ):
            raise ValueError(
                f"negatives must be integer ids (B, N) with B = {words.shape[0]}, "
                f"got {_shape(negatives)}"
            )
        per = _jose_core(
            self.word[words],
            self.context[contexts],
            self.doc[docs],
            self.word[negatives],
            self.margin,
        )
        return _reduce(per, reduction)

    @staticmethod
    def triples(docs: Sequence[Sequence[int]], *, window: int = 10) -> Tensor:
        """All (word, context, doc) id triples with |i − j| ≤ window, i ≠ j: ``(M, 3)`` int64."""
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        rows: list[tuple[int, int, int]] = []
        for d, tokens in enumerate(docs):
            n = len(tokens)
            for i in range(n):
                for j in range(max(0, i - window), min(n, i + window + 1)):
                    if j != i:
                        rows.append((tokens[i], tokens[j], d))
        return torch.tensor(rows, dtype=torch.long).reshape(-1, 3)

    def fit(
        self,
        docs: Sequence[Sequence[int]],
        *,
        epochs: int = 10,
        lr: float = 0.04,
        window: int = 10,
        negatives: int = 2,
        batch_size: int = 256,
        noise_power: float = 0.75,
        generator: torch.Generator | None = None,
    ) -> list[float]:
        """Train on documents of word ids with Riemannian SGD, lr decaying linearly to 0.

        Negatives are drawn from unigram^``noise_power`` (:class:`NoiseSampler`). Each minibatch
        minimises the *sum* of the triple losses (as the per-triple SGD of the reference code).

        Arguments:
            docs: one list of word ids per document (ids < num_words, doc index = position).
            epochs: passes over all triples (default 10 [code]).
            lr: initial step size (default 0.04 [code]).
            window: context half-width (default 10 [code]).
            negatives: negatives per triple (default 2 [code]).
            batch_size: triples per step.
            noise_power: exponent of the negative-sampling distribution (default 0.75).
            generator: optional ``torch.Generator`` (shuffling and negatives).

        Returns:
            Mean loss per triple of each epoch.
        """
        if len(docs) != self.doc.shape[0]:
            raise ValueError(f"docs has {len(docs)} documents, the model {self.doc.shape[0]}")
        data = self.triples(docs, window=window)
        if data.numel() == 0:
            raise ValueError("docs yield no (word, context) pairs: every document is too short")
        num_words = self.word.shape[0]
        if int(data[:, :2].max()) >= num_words or int(data[:, :2].min()) < 0:
            raise ValueError(f"word ids in docs must lie in [0, {num_words})")
        counts = torch.bincount(data[:, 0], minlength=num_words).double()
        sampler = NoiseSampler(counts, power=noise_power)
        opt = RiemannianSGD(self.parameters(), lr=lr)
        total_steps = epochs * ((data.shape[0] + batch_size - 1) // batch_size)
        history: list[float] = []
        step = 0
        for _ in range(epochs):
            perm = torch.randperm(data.shape[0], generator=generator)
            epoch_loss = torch.zeros((), dtype=self.word.dtype, device=self.word.device)
            for start in range(0, data.shape[0], batch_size):
                batch = data[perm[start : start + batch_size]]
                neg = sampler.sample((batch.shape[0], negatives), generator=generator)
                for group in opt.param_groups:
                    group["lr"] = lr * max(1.0 - step / total_steps, 1e-4)
                opt.zero_grad()
                loss = self.loss(batch[:, 0], batch[:, 1], batch[:, 2], neg, reduction="sum")
                loss.backward()
                opt.step()
                epoch_loss += loss.detach()  # summed on the device: no host sync per step
                step += 1
            history.append(float(epoch_loss) / data.shape[0])  # one sync per epoch
        return history

    @torch.no_grad()
    def similarity(self, a: Tensor, b: Tensor) -> Tensor:
        """Cosine between word vectors of ids ``a`` and ``b`` (broadcasting like ``a + b``)."""
        return (self.word[a] * self.word[b]).sum(-1)
