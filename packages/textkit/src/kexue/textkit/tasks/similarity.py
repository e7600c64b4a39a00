"""The author's sentence-similarity model: char GRU → L2-normalised vector, AM-Softmax over groups.

Synonym groups are the classes. The encoder is char embedding → GRU → last hidden state → L2
normalisation; the classifier is a bias-free Dense with unit-norm class vectors
(:class:`~kexue.textkit.losses.cosine.CosineClassifier`), so its logits are cosines, trained with
AM-Softmax (s = 30, m = 0.35). At inference sentences are ranked by the cosine of their encodings
(:func:`topk_similar`), which also works for groups never seen in training.

References:
    - Su Jianlin, GRU + AM-Softmax sentence similarity: https://kexue.fm/archives/5743
    - Wang et al. 2018, Additive Margin Softmax, arXiv:1801.05599.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence

from ..losses.cosine import CosineClassifier
from ..losses.margin import MarginSoftmaxLoss

__all__ = [
    "GRUSentenceEncoder",
    "SentenceSimilarityModel",
    "retrieval_topk_accuracy",
    "topk_similar",
]


def _shape(t: object) -> str:
    return str(tuple(t.shape)) if isinstance(t, Tensor) else type(t).__name__


class GRUSentenceEncoder(nn.Module):
    """Char embedding → GRU → final hidden state → L2 normalisation.

    Sequences are right-padded with ``pad_id``; the length of a row is its number of non-pad ids,
    which must form a prefix (left padding or an empty row raises ValueError).

    Arguments:
        vocab_size: number of char ids (including ``pad_id``).
        embed_dim: char embedding size (default 128 [unverified, post 5743]).
        hidden_dim: GRU state size (default 128 [unverified, post 5743]).
        pad_id: padding id (default 0).
        bidirectional: concatenate both directions' final states (output 2·hidden_dim).

    Returns:
        Module mapping ``(B, T)`` int64 ids to unit vectors ``(B, H)``.

    References:
        https://kexue.fm/archives/5743
    """

    def __init__(
        self,
        vocab_size: int,
        *,
        embed_dim: int = 128,
        hidden_dim: int = 128,
        pad_id: int = 0,
        bidirectional: bool = False,
    ) -> None:
        super().__init__()
        if vocab_size < 2 or embed_dim < 1 or hidden_dim < 1:
            raise ValueError(
                f"need vocab_size >= 2, embed_dim >= 1, hidden_dim >= 1, got "
                f"{vocab_size}, {embed_dim}, {hidden_dim}"
            )
        if not 0 <= pad_id < vocab_size:
            raise ValueError(f"pad_id must lie in [0, {vocab_size}), got {pad_id}")
        self.pad_id = pad_id
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=pad_id)
        self.gru = nn.GRU(embed_dim, hidden_dim, batch_first=True, bidirectional=bidirectional)
        self.output_dim = hidden_dim * (2 if bidirectional else 1)

    def lengths(self, ids: Tensor) -> Tensor:
        """Validated lengths ``(B,)`` of right-padded ``ids`` ``(B, T)`` (on ``ids.device``)."""
        return torch.tensor(self._checked_lengths(ids), dtype=torch.long, device=ids.device)

    def _checked_lengths(self, ids: Tensor, extra: Sequence[tuple[Tensor, str]] = ()) -> list[int]:
        """Validate ``ids`` (and the caller's ``extra`` (0-d bool flag, message) checks) and return
        the lengths as a host list, all in ONE device→host transfer; the lengths are needed on
        the host anyway by ``pack_padded_sequence``."""
        if not isinstance(ids, Tensor) or ids.dim() != 2 or ids.dtype != torch.int64:
            raise ValueError(f"ids must be an int64 (B, T) tensor, got shape {_shape(ids)}")
        vocab = self.embedding.num_embeddings
        mask = ids != self.pad_id
        lengths = mask.sum(1)
        prefix = torch.arange(ids.shape[1], device=ids.device)[None, :] < lengths[:, None]
        checks = [
            (((ids >= 0) & (ids < vocab)).all(), f"ids must lie in [0, {vocab})"),
            (
                (mask == prefix).all(),
                "ids must be right-padded with pad_id (found a pad before a token)",
            ),
            (
                (lengths > 0).all(),
                "ids has an empty row (all pad_id): every sentence needs a char",
            ),
            *extra,
        ]
        flags = torch.stack([f.reshape(()).to(ids.device) for f, _ in checks]).long()
        host = torch.cat((flags, lengths)).tolist()  # the one host sync
        for ok, (_, message) in zip(host, checks):
            if not ok:
                raise ValueError(message)
        return host[len(checks) :]

    def forward(self, ids: Tensor) -> Tensor:
        """Unit-norm sentence vectors ``(B, H)`` of right-padded char ids ``(B, T)``."""
        return self._encode(ids, self._checked_lengths(ids))

    def _encode(self, ids: Tensor, lengths: list[int]) -> Tensor:
        """Trusted core: ``ids`` validated, ``lengths`` their host lengths."""
        packed = pack_padded_sequence(
            self.embedding(ids), lengths, batch_first=True, enforce_sorted=False
        )
        _, h_n = self.gru(packed)  # (num_directions, B, H), in the original batch order
        h = h_n.transpose(0, 1).reshape(ids.shape[0], self.output_dim)
        return F.normalize(h, dim=-1, eps=1e-12)


class SentenceSimilarityModel(nn.Module):
    """GRU encoder + cosine classifier over synonym groups, trained with a margin softmax.

    Arguments:
        vocab_size: number of char ids.
        num_groups: number of synonym groups (classes) in training.
        embed_dim: char embedding size (default 128).
        hidden_dim: GRU size (default 128).
        pad_id: padding id (default 0).
        kind: margin loss kind (default ``"am"``; ``"softmax"`` and ``"simpler_a"`` are the
            post's other two rows).
        s: scale (default 30 [paper]).
        m: margin (default per kind: 0.35 for AM [paper]).
        generator: optional ``torch.Generator`` for the class-vector initialisation.

    Returns:
        Module with ``encode(ids) -> (B, H)``, ``forward(ids) -> cosines (B, num_groups)`` and
        ``loss(ids, groups)``.

    References:
        https://kexue.fm/archives/5743; arXiv:1801.05599.
    """

    def __init__(
        self,
        vocab_size: int,
        num_groups: int,
        *,
        embed_dim: int = 128,
        hidden_dim: int = 128,
        pad_id: int = 0,
        kind: str = "am",
        s: float = 30.0,
        m: float | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.encoder = GRUSentenceEncoder(
            vocab_size, embed_dim=embed_dim, hidden_dim=hidden_dim, pad_id=pad_id
        )
        self.classifier = CosineClassifier(self.encoder.output_dim, num_groups, generator=generator)
        self.loss_fn = MarginSoftmaxLoss(kind, s=s, m=m)

    def encode(self, ids: Tensor) -> Tensor:
        """Unit sentence vectors ``(B, H)``."""
        return self.encoder(ids)

    def forward(self, ids: Tensor) -> Tensor:
        """Cosines with every group vector, ``(B, num_groups)``."""
        return self.classifier(self.encoder(ids))

    def loss(self, ids: Tensor, groups: Tensor) -> Tensor:
        """Margin-softmax loss of ``ids`` ``(B, T)`` against group ids ``(B,)`` (mean).

        ``ids`` and ``groups`` are validated together in one host sync; the cosines come from the
        model's own classifier, so the loss runs its trusted core (no further sync).
        """
        if not isinstance(groups, Tensor) or groups.dtype != torch.int64:
            raise ValueError(f"groups must be an int64 (B,) tensor, got {_shape(groups)}")
        if not isinstance(ids, Tensor) or ids.dim() != 2:
            raise ValueError(f"ids must be an int64 (B, T) tensor, got shape {_shape(ids)}")
        if groups.shape != (ids.shape[0],):
            raise ValueError(
                f"groups must have shape (B,) with B = ids.shape[0] for ids {_shape(ids)}, "
                f"got {_shape(groups)}"
            )
        c = self.classifier.num_classes
        in_range = ((groups >= 0) & (groups < c)).all()
        lengths = self.encoder._checked_lengths(
            ids, [(in_range, f"groups must lie in [0, {c}) (num_groups)")]
        )
        cos = self.classifier(self.encoder._encode(ids, lengths))
        return self.loss_fn.forward_unchecked(cos, groups)


def topk_similar(
    queries: Tensor,
    keys: Tensor,
    *,
    k: int,
    normalize: bool = True,
    exclude_self: bool = False,
    chunk_size: int = 1024,
) -> tuple[Tensor, Tensor]:
    """Top-k keys by cosine for every query (equal scores: lowest key index first).

    The tie rule applies to bitwise-equal scores; a BLAS matmul may round the scores of two
    identical keys differently (by ~1e-17 in fp64), which then decides their order.

    Arguments:
        queries: ``(Q, D)``.
        keys: ``(N, D)``.
        k: number of neighbours, 1 ≤ k ≤ N (N − 1 with ``exclude_self``).
        normalize: L2-normalise both sides first (default True; set False for unit inputs to
            rank by raw dot product).
        exclude_self: query i is key i (needs Q = N); never return it.
        chunk_size: queries per chunk (bounds memory at chunk_size·N scores).

    Returns:
        ``(scores, indices)``, both ``(Q, k)``, scores descending.

    References:
        https://kexue.fm/archives/5743 (inference ranks by encoder cosine).
    """
    if queries.dim() != 2 or keys.dim() != 2 or queries.shape[1] != keys.shape[1]:
        raise ValueError(
            f"queries (Q, D) and keys (N, D) must share D, got {_shape(queries)}, {_shape(keys)}"
        )
    n = keys.shape[0]
    if exclude_self and queries.shape[0] != n:
        raise ValueError(
            f"exclude_self needs as many queries as keys, got {_shape(queries)}, {_shape(keys)}"
        )
    limit = n - 1 if exclude_self else n
    if not 1 <= k <= limit:
        raise ValueError(f"k must lie in [1, {limit}] for keys of shape {_shape(keys)}, got {k}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    if normalize:
        queries = F.normalize(queries, dim=-1, eps=1e-12)
        keys = F.normalize(keys, dim=-1, eps=1e-12)
    out_s, out_i = [], []
    for start in range(0, queries.shape[0], chunk_size):
        scores = queries[start : start + chunk_size] @ keys.T
        if exclude_self:
            rows = torch.arange(scores.shape[0], device=scores.device)
            scores = scores.clone()
            scores[rows, rows + start] = -torch.inf
        vals, idx = torch.sort(scores, dim=1, descending=True, stable=True)
        out_s.append(vals[:, :k])
        out_i.append(idx[:, :k])
    return torch.cat(out_s), torch.cat(out_i)


def retrieval_topk_accuracy(
    embeddings: Tensor, groups: Tensor, *, ks: Sequence[int] = (1, 5, 10)
) -> dict[int, float]:
    """Leave-one-out retrieval accuracy: share of sentences with a same-group sentence among the
    k most similar *other* sentences (cosine), for each k in ``ks`` (the post's top-1/5/10).

    Arguments:
        embeddings: ``(N, D)`` sentence vectors.
        groups: ``(N,)`` int64 group ids.
        ks: the k values (each ≤ N − 1).

    Returns:
        ``{k: accuracy}``.

    References:
        https://kexue.fm/archives/5743
    """
    if groups.shape != (embeddings.shape[0],):
        raise ValueError(
            f"groups must be (N,) for embeddings {_shape(embeddings)}, got {_shape(groups)}"
        )
    kmax = max(ks)
    _, idx = topk_similar(embeddings, embeddings, k=kmax, exclude_self=True)
    hit = groups[idx] == groups[:, None]
    return {int(k): float(hit[:, :k].any(1).double().mean()) for k in ks}
