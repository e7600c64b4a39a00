"""Character sequence taggers: gated dilated CNN and BiLSTM encoders with a CRF or softmax head.

The CNN encoder follows the couplet post (spec §2.11): Embedding → Dropout → a stack of gated
residual convolutions

    o = Conv1D_{2d}(x),  g = σ(o[:d]),  y = x ⊙ g + o[d:] ⊙ (1 − g),

here with dilations (1, 2, 4, …) so that a few blocks see a wide window (receptive field
1 + (k − 1)·Σ dilations). Padding never leaks into real positions: every block zeroes the padded
steps of its input before the convolution and of its output after it, so a sentence's outputs
are the same alone as in a right-padded batch. The BiLSTM baseline runs on packed sequences.
Both feed a linear layer giving per-character emissions (B, T, K), scored either by a
linear-chain CRF (:class:`kexue.textkit.crf.CRF`) or by an independent softmax per character.

References:
    Su Jianlin, "用 CNN 做对联" (couplets with a CNN, sequence labelling with gated convolutions),
    https://kexue.fm/archives/6270; Dauphin et al., "Language Modeling with Gated Convolutional
    Networks", arXiv 1612.08083 (gated convolutions); Yu & Koltun, "Multi-Scale Context
    Aggregation by Dilated Convolutions", arXiv 1511.07122; Huang, Xu & Yu, "Bidirectional
    LSTM-CRF Models for Sequence Tagging", arXiv 1508.01991; Strubell et al., "Fast and Accurate
    Entity Recognition with Iterated Dilated Convolutions", arXiv 1702.02098 (ID-CNN-CRF).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._checks import (
    DeviceChecks,
    check_positive_int,
    check_reduction,
    reduce,
    require_prefix_mask,
)
from .crf.module import CRF

__all__ = [
    "BiLSTMEncoder",
    "CharCNNEncoder",
    "GatedConvBlock",
    "SequenceTagger",
    "bilstm_crf_tagger",
    "cnn_crf_tagger",
]

Head = Literal["crf", "softmax"]


def _check_dropout(name: str, value: float) -> None:
    if not 0.0 <= float(value) < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value!r}")


def _check_embedding(vocab_size: int, dim: int, dropout: float, padding_idx: int) -> None:
    """The checks of an encoder's embedding front-end (Embedding → Dropout)."""
    check_positive_int("vocab_size", vocab_size)
    check_positive_int("dim", dim)
    _check_dropout("dropout", dropout)
    if not 0 <= padding_idx < vocab_size:
        raise ValueError(f"padding_idx must be in [0, {vocab_size}), got {padding_idx}")


def _check_ids_mask(checks: DeviceChecks, char_ids: Tensor, mask: Tensor | None) -> Tensor:
    """Validate (B, T) ids and a right-padded bool mask: shapes now, values on ``checks`` (read
    back by the caller, once); return the mask (all true when None)."""
    if not isinstance(char_ids, Tensor) or char_ids.dim() != 2:
        shape = tuple(char_ids.shape) if isinstance(char_ids, Tensor) else type(char_ids).__name__
        raise ValueError(f"char_ids must be a (B, T) tensor, got {shape}")
    if char_ids.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"char_ids must be an integer tensor, got {char_ids.dtype}")
    if char_ids.shape[1] == 0:
        raise ValueError("char_ids has T = 0 steps; sequences must not be empty")
    if mask is None:
        return torch.ones_like(char_ids, dtype=torch.bool)
    if mask.shape != char_ids.shape:
        raise ValueError(
            f"mask shape {tuple(mask.shape)} does not match char_ids shape {tuple(char_ids.shape)}"
        )
    if mask.dtype != torch.bool:
        raise ValueError(f"mask must be a bool tensor, got {mask.dtype}")
    if char_ids.shape[0]:
        require_prefix_mask(checks, mask)
    return mask


def _checked_mask(char_ids: Tensor, mask: Tensor | None) -> Tensor:
    """:func:`_check_ids_mask` read back at once (the encoders' own public entries)."""
    checks = DeviceChecks()
    mask = _check_ids_mask(checks, char_ids, mask)
    checks.read()
    return mask


class GatedConvBlock(nn.Module):
    """Gated residual 1-D convolution (couplet post): y = x ⊙ g + h ⊙ (1 − g).

    ``o = Conv1D_{2d}(x)`` with "same" padding and dilation δ; ``g = σ(o[:d])`` (the gate),
    ``h = o[d:]`` (the candidate, with dropout in training when ``dropout > 0``). Where the mask
    is false the input is zeroed before the convolution and the output is zeroed after it, so
    padded steps never reach real ones (exactly as if the sequence were alone and zero-padded).
    With the gate at 1 the block is the identity.

    Arguments:
        dim: channels d of input and output.
        kernel_size: odd kernel width (default 3, the post's).
        dilation: dilation δ ≥ 1 (the post uses 1; the CNN tagger stacks 1, 2, 4, …).
        dropout: dropout on the candidate h (default 0.0; the post has none inside blocks).

    Shapes: ``x`` (B, T, d), ``mask`` (B, T) bool or None → (B, T, d).

    References:
        https://kexue.fm/archives/6270; Dauphin et al. arXiv 1612.08083.
    """

    def __init__(
        self, dim: int, *, kernel_size: int = 3, dilation: int = 1, dropout: float = 0.0
    ) -> None:
        super().__init__()
        check_positive_int("dim", dim)
        check_positive_int("kernel_size", kernel_size)
        check_positive_int("dilation", dilation)
        _check_dropout("dropout", dropout)
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd for 'same' padding, got {kernel_size}")
        self.dim = dim
        self.conv = nn.Conv1d(
            dim, 2 * dim, kernel_size, dilation=dilation, padding=dilation * (kernel_size - 1) // 2
        )
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """Apply the gated block (see the class docstring); ``x`` (B, T, d) → (B, T, d)."""
        if x.dim() != 3 or x.shape[-1] != self.dim:
            raise ValueError(f"x must be (B, T, {self.dim}), got shape {tuple(x.shape)}")
        if mask is not None:
            if mask.shape != x.shape[:2]:
                raise ValueError(
                    f"mask shape {tuple(mask.shape)} does not match x's (B, T) {tuple(x.shape[:2])}"
                )
            keep = mask.unsqueeze(-1).to(x.dtype)
            x = x * keep
        o = self.conv(x.transpose(1, 2)).transpose(1, 2)
        gate = torch.sigmoid(o[..., : self.dim])
        candidate = self.dropout(o[..., self.dim :])
        y = x * gate + candidate * (1.0 - gate)
        return y * keep if mask is not None else y


class CharCNNEncoder(nn.Module):
    """Embedding → Dropout → gated residual dilated conv blocks (couplet post, spec §2.11).

    Arguments:
        vocab_size: number of character ids (including PAD = ``padding_idx`` and UNK).
        dim: embedding and channel width d (default 128).
        num_blocks: number of :class:`GatedConvBlock` (default 4; the post uses 6).
        kernel_size: odd kernel width (default 3, the post's).
        dilations: one dilation per block; default ``2 ** (i % 3)``, i.e. 1, 2, 4, 1, 2, 4, …
            (the post uses 1 throughout).
        dropout: dropout after the embedding (default 0.25, the post's).
        block_dropout: dropout on each block's candidate (default 0.0).
        padding_idx: id of PAD, whose embedding stays zero (default 0).

    Shapes: ``char_ids`` (B, T) long, ``mask`` (B, T) bool → (B, T, d); ``output_dim`` = d.
    Receptive field: 1 + (kernel_size − 1)·Σ dilations characters.

    References:
        https://kexue.fm/archives/6270; Strubell et al. arXiv 1702.02098.
    """

    def __init__(
        self,
        vocab_size: int,
        *,
        dim: int = 128,
        num_blocks: int = 4,
        kernel_size: int = 3,
        dilations: Sequence[int] | None = None,
        dropout: float = 0.25,
        block_dropout: float = 0.0,
        padding_idx: int = 0,
    ) -> None:
        super().__init__()
        _check_embedding(vocab_size, dim, dropout, padding_idx)
        check_positive_int("num_blocks", num_blocks)
        if dilations is None:
            dilations = [2 ** (i % 3) for i in range(num_blocks)]
        dilations = list(dilations)
        if len(dilations) != num_blocks:
            raise ValueError(
                f"dilations has {len(dilations)} entries but num_blocks is {num_blocks}"
            )
        self.padding_idx = padding_idx
        self.output_dim = dim
        self.dilations = tuple(dilations)
        self.receptive_field = 1 + (kernel_size - 1) * sum(dilations)
        self.embedding = nn.Embedding(vocab_size, dim, padding_idx=padding_idx)
        self.dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            GatedConvBlock(dim, kernel_size=kernel_size, dilation=d, dropout=block_dropout)
            for d in dilations
        )

    def forward(self, char_ids: Tensor, mask: Tensor | None = None) -> Tensor:
        """Encode ``char_ids`` (B, T) under ``mask`` (B, T) → features (B, T, d), 0 at pads."""
        return self._encode(char_ids, _checked_mask(char_ids, mask), None)

    def _encode(self, char_ids: Tensor, mask: Tensor, lengths: list[int] | None) -> Tensor:
        """Trusted core of :meth:`forward` (checked inputs; ``lengths`` unused)."""
        h = self.dropout(self.embedding(char_ids))
        for block in self.blocks:
            h = block(h, mask)
        return h


class BiLSTMEncoder(nn.Module):
    """Embedding → Dropout → bidirectional LSTM on packed sequences → Dropout.

    Arguments:
        vocab_size: number of character ids (including PAD and UNK).
        dim: embedding width (default 128).
        hidden: LSTM units per direction (default 128); ``output_dim`` = 2·hidden.
        num_layers: stacked LSTM layers (default 1).
        dropout: dropout after the embedding and after the LSTM (default 0.25).
        padding_idx: id of PAD (default 0).

    Shapes: ``char_ids`` (B, T) long, ``mask`` (B, T) bool → (B, T, 2·hidden), 0 at pads. The
    sequences are packed by length, so padding never enters the recurrence in either direction.

    References:
        Huang, Xu & Yu, arXiv 1508.01991; Lample et al., arXiv 1603.01360.
    """

    def __init__(
        self,
        vocab_size: int,
        *,
        dim: int = 128,
        hidden: int = 128,
        num_layers: int = 1,
        dropout: float = 0.25,
        padding_idx: int = 0,
    ) -> None:
        super().__init__()
        _check_embedding(vocab_size, dim, dropout, padding_idx)
        check_positive_int("hidden", hidden)
        check_positive_int("num_layers", num_layers)
        self.padding_idx = padding_idx
        self.output_dim = 2 * hidden
        self.embedding = nn.Embedding(vocab_size, dim, padding_idx=padding_idx)
        self.dropout = nn.Dropout(dropout)
        self.lstm = nn.LSTM(
            dim, hidden, num_layers=num_layers, batch_first=True, bidirectional=True
        )

    def forward(self, char_ids: Tensor, mask: Tensor | None = None) -> Tensor:
        """Encode ``char_ids`` (B, T) under ``mask`` (B, T) → features (B, T, 2·hidden)."""
        return self._encode(char_ids, _checked_mask(char_ids, mask), None)

    def _encode(self, char_ids: Tensor, mask: Tensor, lengths: list[int] | None) -> Tensor:
        """Trusted core of :meth:`forward`; ``lengths``: the rows' lengths if already on the host
        (else read from ``mask``, one synchronisation)."""
        x = self.dropout(self.embedding(char_ids))
        lengths = mask.sum(1).cpu() if lengths is None else torch.tensor(lengths)
        packed = nn.utils.rnn.pack_padded_sequence(
            x, lengths, batch_first=True, enforce_sorted=False
        )
        out, _ = self.lstm(packed)
        out, _ = nn.utils.rnn.pad_packed_sequence(
            out, batch_first=True, total_length=char_ids.shape[1]
        )
        return self.dropout(out)


class SequenceTagger(nn.Module):
    """Encoder → Linear emissions (B, T, K) → CRF or per-character softmax.

    The loss of a sequence is its negative log-likelihood: for ``head="crf"``
    −log p(y | x) = log Z(x) − s(x, y) of the linear-chain CRF; for ``head="softmax"``
    −Σ_t log softmax(e_t)[y_t] over the real steps (pads ignored). ``reduction``: ``"mean"``
    averages the per-sequence NLL over the batch (pytorch-crf's sense), ``"token_mean"`` divides
    the sum by the number of real characters, ``"sum"`` and ``"none"`` (B,) as named.

    Arguments:
        encoder: a module mapping ``(char_ids (B, T), mask (B, T))`` to features (B, T, F), with
            an ``output_dim`` attribute F (e.g. :class:`CharCNNEncoder`, :class:`BiLSTMEncoder`).
        num_tags: number of labels K.
        head: ``"crf"`` (default) or ``"softmax"``.
        crf_kwargs: keyword options of :class:`kexue.textkit.crf.CRF` (e.g. ``constraints``).

    References:
        Lafferty et al. 2001 (CRF); https://kexue.fm/archives/5542 (CRF post);
        https://kexue.fm/archives/6270.
    """

    def __init__(
        self,
        encoder: nn.Module,
        num_tags: int,
        *,
        head: Head = "crf",
        crf_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        check_positive_int("num_tags", num_tags)
        if head not in ("crf", "softmax"):
            raise ValueError(f"head must be 'crf' or 'softmax', got {head!r}")
        features = getattr(encoder, "output_dim", None)
        if not isinstance(features, int):
            raise ValueError("encoder must have an int attribute output_dim (its feature width)")
        if head == "softmax" and crf_kwargs:
            raise ValueError("crf_kwargs given but head is 'softmax'")
        self.encoder = encoder
        self.num_tags = num_tags
        self.head = head
        self.emission = nn.Linear(features, num_tags)
        self.crf: CRF | None = None
        if head == "crf":
            self.crf = CRF(num_tags, **(crf_kwargs or {}))

    def forward(self, char_ids: Tensor, mask: Tensor | None = None) -> Tensor:
        """Emission scores (B, T, K) of ``char_ids`` (B, T) under ``mask`` (B, T)."""
        checks = DeviceChecks()
        mask = _check_ids_mask(checks, char_ids, mask)
        self._register_lengths(checks, mask)
        facts = checks.read()
        return self._emissions(char_ids, mask, facts.get("lengths"))

    def _register_lengths(self, checks: DeviceChecks, mask: Tensor) -> None:
        """Read the row lengths back with the checks (the CRF's loop and packed LSTMs use them)."""
        if self.crf is not None and mask.shape[0] == 0:
            raise ValueError("char_ids has B = 0 sequences: the CRF head needs a non-empty batch")
        if self.crf is not None or isinstance(self.encoder, BiLSTMEncoder):
            checks.vector("lengths", mask.sum(1))

    def _emissions(self, char_ids: Tensor, mask: Tensor, lengths: list[int] | None) -> Tensor:
        """Trusted core: the encoder's core when it has one (no second check), then the linear."""
        core = getattr(self.encoder, "_encode", None)
        if core is not None:
            features = core(char_ids, mask, lengths)
        else:  # a user encoder: its own forward (and its own checks, if any)
            features = self.encoder(char_ids, mask)
        return self.emission(features)

    def loss(
        self,
        char_ids: Tensor,
        tags: Tensor,
        mask: Tensor | None = None,
        *,
        reduction: str = "mean",
    ) -> Tensor:
        """Negative log-likelihood of ``tags`` (B, T) (see the class docstring for reductions).

        One checked entry: ids, mask, tags and the CRF's parameters are validated together and
        read back with one device→host synchronisation (a packed BiLSTM adds one inside
        ``pad_packed_sequence``); the encoder and the CRF then run their trusted cores.
        """
        checks = DeviceChecks()
        mask = _check_ids_mask(checks, char_ids, mask)
        if not isinstance(tags, Tensor) or tags.shape != char_ids.shape:
            raise ValueError(
                f"tags shape {tuple(getattr(tags, 'shape', ()))} does not match char_ids shape "
                f"{tuple(char_ids.shape)}"
            )
        if tags.dtype.is_floating_point or tags.dtype == torch.bool:
            raise ValueError(f"tags must be an integer tensor, got {tags.dtype}")
        check_reduction(reduction)
        in_range = (tags >= 0) & (tags < self.num_tags)
        checks.require(
            (in_range | ~mask).all(), f"tags must be in [0, {self.num_tags}) at unmasked positions"
        )
        self._register_lengths(checks, mask)
        params = None if self.crf is None else self.crf._register_checks(checks)
        facts = checks.read()  # the one synchronisation
        emissions = self._emissions(char_ids, mask, facts.get("lengths"))
        if self.crf is not None:
            return self.crf._nll_core(emissions, tags, mask, reduction, facts, params)
        safe = tags.masked_fill(~mask, 0)
        token_nll = F.cross_entropy(emissions.transpose(1, 2), safe, reduction="none")
        return reduce((token_nll * mask.to(token_nll.dtype)).sum(1), mask, reduction)

    @torch.no_grad()
    def decode(self, char_ids: Tensor, mask: Tensor | None = None, *, pad_tag: int = 0) -> Tensor:
        """Best tag ids (B, T) long: Viterbi for the CRF head, per-step argmax for softmax.

        Padded steps hold ``pad_tag`` (default 0). Runs the encoder in its current mode (call
        ``.eval()`` first to switch dropout off). One check, one read-back.
        """
        checks = DeviceChecks()
        mask = _check_ids_mask(checks, char_ids, mask)
        self._register_lengths(checks, mask)
        lengths = checks.read().get("lengths")
        emissions = self._emissions(char_ids, mask, lengths)
        if self.crf is not None:
            return self.crf._decode_core(emissions, mask, lengths, pad_tag)
        return emissions.argmax(-1).masked_fill(~mask, pad_tag)


def cnn_crf_tagger(
    vocab_size: int,
    num_tags: int,
    *,
    head: Head = "crf",
    crf_kwargs: dict[str, Any] | None = None,
    **encoder_options: Any,
) -> SequenceTagger:
    """A :class:`CharCNNEncoder` tagger with a CRF (default) or softmax head.

    Arguments:
        vocab_size, num_tags: as :class:`CharCNNEncoder` and :class:`SequenceTagger`.
        head, crf_kwargs: as :class:`SequenceTagger`.
        encoder_options: keyword options of :class:`CharCNNEncoder`, whose defaults apply
            (``dim`` 128, ``num_blocks`` 4, ``kernel_size`` 3, ``dilations`` 1, 2, 4, 1, …,
            ``dropout`` 0.25 from the couplet post, ``block_dropout`` 0.0, ``padding_idx`` 0).

    Returns:
        A :class:`SequenceTagger`.

    Examples:
        >>> model = cnn_crf_tagger(100, 7).eval()
        >>> ids, mask = torch.randint(2, 100, (2, 9)), torch.ones(2, 9, dtype=torch.bool)
        >>> model.decode(ids, mask).shape
        torch.Size([2, 9])

    References:
        https://kexue.fm/archives/6270.
    """
    encoder = CharCNNEncoder(vocab_size, **encoder_options)
    return SequenceTagger(encoder, num_tags, head=head, crf_kwargs=crf_kwargs)


def bilstm_crf_tagger(
    vocab_size: int,
    num_tags: int,
    *,
    head: Head = "crf",
    crf_kwargs: dict[str, Any] | None = None,
    **encoder_options: Any,
) -> SequenceTagger:
    """A :class:`BiLSTMEncoder` tagger with a CRF (default) or softmax head (the baseline).

    Arguments and return value as :func:`cnn_crf_tagger`, with ``encoder_options`` those of
    :class:`BiLSTMEncoder` (``dim`` 128, ``hidden`` 128, ``num_layers`` 1, ``dropout`` 0.25,
    ``padding_idx`` 0).

    References:
        Huang, Xu & Yu, arXiv 1508.01991.
    """
    encoder = BiLSTMEncoder(vocab_size, **encoder_options)
    return SequenceTagger(encoder, num_tags, head=head, crf_kwargs=crf_kwargs)
