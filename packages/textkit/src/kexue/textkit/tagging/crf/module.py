"""The linear-chain CRF as an ``nn.Module``: loss, log-partition, Viterbi / n-best decode, marginals.

Built on :mod:`kexue.textkit.tagging.crf.functional`: each public method checks its inputs once
(in the module's own layout, with one device→host read-back) and calls the trusted cores. Options beyond pytorch-crf: the author's variant
without start/end scores (``use_start_end=False``, bert4keras ``ConditionalRandomField``), his
``lr_multiplier``, scheme constraints at decode time (:mod:`kexue.textkit.constraints`), marginals,
n-best decoding, tensor outputs (no Python lists, no ``.item()``), and weight import from
pytorch-crf (:meth:`CRF.from_pytorch_crf`).

References:
    - Su Jianlin, https://kexue.fm/archives/5542 (CRF, with the Keras layer).
    - kmkurn/pytorch-crf v0.7.2 (API and initialisation U(−0.1, 0.1) followed here).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from .._checks import DeviceChecks, check_positive_int, check_reduction
from ..constraints import Constraints, constrained_scores
from ._check import Prepared, check_inputs, require_finite_params
from ._dispatch import LOG_PARTITION_ALGORITHMS, check_algorithm, register_spread
from .functional import (
    decode_core,
    log_z_core,
    marginals_core,
    nbest_core,
    nll_core,
    register_lengths,
)

_NAMES = ("transitions", "start_transitions", "end_transitions")

__all__ = ["CRF"]


class CRF(nn.Module):
    """Linear-chain conditional random field over K tags.

    Path score S(y) = start[y_1] + Σ_t h_t[y_t] + Σ_t A[y_{t−1}, y_t] + end[y_L]; the loss is the
    NLL log Z − S(y*). ``forward`` returns that *loss* (like the author's layer); pytorch-crf's
    ``forward`` returns the log-likelihood, available here as :meth:`log_likelihood`.

    Arguments:
        num_tags: K.
        use_start_end: learn start/end scores (default True, as pytorch-crf / AllenNLP);
            False = the author's layer (transitions only).
        lr_multiplier: m; the parameters are stored divided by m and used multiplied by m, so
            the effective learning rate grows ≈ m (Adam) or m² (SGD). Default 1.0; the author's
            BERT NER example uses 1000 [bert4keras].
        constraints: optional :class:`~kexue.textkit.constraints.Constraints`; applied when
            decoding (forbidden = −1e4), and in training too when ``constrain_training``.
        constrain_training: also apply ``constraints`` to the loss, log-partition and marginals
            (default False, as AllenNLP and the author).
        algorithm: log-partition algorithm of the loss, ``log_partition`` and ``marginals``:
            ``"auto"`` (default), ``"lse"`` (the log-semiring reference) or ``"matmul"`` (see
            :func:`~kexue.textkit.tagging.crf.functional.crf_log_partition`). Decoding always
            uses Viterbi's ``"auto"``.
        batch_first: inputs are (B, T, ...) (default True); False = (T, B, ...) like
            pytorch-crf's default; outputs follow the same layout.

    Examples:
        >>> crf = CRF(5)
        >>> h, tags = torch.randn(2, 7, 5), torch.randint(0, 5, (2, 7))
        >>> crf(h, tags).shape, crf.decode(h).shape
        (torch.Size([]), torch.Size([2, 7]))

    References:
        https://kexue.fm/archives/5542; Lafferty et al. 2001 (ICML).
    """

    def __init__(
        self,
        num_tags: int,
        *,
        use_start_end: bool = True,
        lr_multiplier: float = 1.0,
        constraints: Constraints | None = None,
        constrain_training: bool = False,
        algorithm: str = "auto",
        batch_first: bool = True,
    ) -> None:
        super().__init__()
        check_positive_int("num_tags", num_tags)
        if not lr_multiplier > 0:
            raise ValueError(f"lr_multiplier must be > 0, got {lr_multiplier}")
        check_algorithm(algorithm, LOG_PARTITION_ALGORITHMS)
        if constraints is not None and constraints.num_tags != num_tags:
            raise ValueError(
                f"constraints are for {constraints.num_tags} tags, num_tags is {num_tags}"
            )
        self.num_tags = num_tags
        self.use_start_end = use_start_end
        self.lr_multiplier = float(lr_multiplier)
        self.constrain_training = constrain_training
        self.algorithm = algorithm
        self.batch_first = batch_first
        self.raw_transitions = nn.Parameter(torch.empty(num_tags, num_tags))
        if use_start_end:
            self.raw_start = nn.Parameter(torch.empty(num_tags))
            self.raw_end = nn.Parameter(torch.empty(num_tags))
        else:
            self.register_parameter("raw_start", None)
            self.register_parameter("raw_end", None)
        for name in ("allowed_start", "allowed_end", "allowed"):
            value = None if constraints is None else getattr(constraints, name).clone()
            self.register_buffer(name, value)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Effective parameters ~ U(−0.1, 0.1) (pytorch-crf's initialisation)."""
        for p in (self.raw_transitions, self.raw_start, self.raw_end):
            if p is not None:
                with torch.no_grad():
                    p.uniform_(-0.1, 0.1).div_(self.lr_multiplier)

    def extra_repr(self) -> str:
        return (
            f"num_tags={self.num_tags}, use_start_end={self.use_start_end}, "
            f"lr_multiplier={self.lr_multiplier:g}, constrained={self.allowed is not None}, "
            f"constrain_training={self.constrain_training}, algorithm={self.algorithm!r}"
        )

    # ------------------------------------------------------------------ effective parameters

    @property
    def transitions(self) -> Tensor:
        """Effective (K, K) transitions = stored · lr_multiplier."""
        return self.raw_transitions * self.lr_multiplier

    @property
    def start_transitions(self) -> Tensor | None:
        """Effective (K,) start scores (None when ``use_start_end=False``)."""
        return None if self.raw_start is None else self.raw_start * self.lr_multiplier

    @property
    def end_transitions(self) -> Tensor | None:
        """Effective (K,) end scores (None when ``use_start_end=False``)."""
        return None if self.raw_end is None else self.raw_end * self.lr_multiplier

    def _params(self, constrained: bool) -> dict[str, Any]:
        a, start, end = self.transitions, self.start_transitions, self.end_transitions
        if constrained and self.allowed is not None:
            a, start, end = constrained_scores(
                a, start, end, allowed_start=self.allowed_start, allowed_end=self.allowed_end,
                allowed_transitions=self.allowed,
            )  # fmt: skip
        return {"start": start, "end": end, "transitions": a}

    def _checked(self, emissions: Tensor, mask: Tensor | None, tags: Tensor | None = None, *,
                 constrained: bool, spread: bool = False, lengths: bool = False
                 ) -> tuple[Prepared, dict]:  # fmt: skip
        """Check inputs in the module's layout (one read-back); batch-first trusted tensors."""
        checks = DeviceChecks()
        p = self._params(constrained)
        x = check_inputs(checks, emissions, p["transitions"], mask, p["start"], p["end"], tags,
                         batch_first=self.batch_first, num_tags=self.num_tags, names=_NAMES)  # fmt: skip
        if spread:
            register_spread(checks, self.algorithm, x.a, x.end)
        register_lengths(checks, x.mask, per_row=lengths)
        return x, checks.read()

    def _out(self, x: Tensor) -> Tensor:
        """(B, T, ...) → the module's layout."""
        return x if self.batch_first else x.transpose(0, 1)

    # ------------------------------------------------------------------ trusted core (taggers)

    def _register_checks(self, checks: DeviceChecks) -> dict[str, Any]:
        """For a caller that checks its own inputs: add this CRF's checks (finite parameters,
        the ``"auto"`` spread) to ``checks``; return the parameters to pass to :meth:`_nll_core`."""
        p = self._params(self.constrain_training)
        require_finite_params(checks, dict(zip(_NAMES, (p["transitions"], p["start"], p["end"]))))
        register_spread(checks, self.algorithm, p["transitions"], p["end"])
        return p

    @staticmethod
    def _trusted(emissions: Tensor, mask: Tensor, params: dict[str, Any],
                 tags: Tensor | None = None) -> Prepared:  # fmt: skip
        """Batch-first checked inputs as the cores take them (emissions zeroed at pads)."""
        dtype = torch.promote_types(emissions.dtype, torch.float32)
        start, end = params["start"], params["end"]
        return Prepared(
            h=torch.where(mask.unsqueeze(-1), emissions.to(dtype), 0.0),
            mask=mask,
            a=params["transitions"].to(dtype),
            start=None if start is None else start.to(dtype),
            end=None if end is None else end.to(dtype),
            tags=None if tags is None else tags.long().masked_fill(~mask, 0),
        )

    def _nll_core(self, emissions: Tensor, tags: Tensor, mask: Tensor, reduction: str,
                  facts: dict, params: dict[str, Any]) -> Tensor:  # fmt: skip
        """NLL of trusted batch-first inputs (``facts`` from the caller's one read-back, with
        ``steps`` or ``lengths`` and the spread of :meth:`_register_checks`)."""
        x = self._trusted(emissions, mask, params, tags)
        return nll_core(x, facts, self.algorithm, reduction)

    def _decode_core(self, emissions: Tensor, mask: Tensor, lengths: list[int], pad_tag: int
                     ) -> Tensor:  # fmt: skip
        """Viterbi of trusted batch-first inputs with host-side ``lengths``; (B, T) tags (the
        constraints apply, as in :meth:`decode`)."""
        x = self._trusted(emissions, mask, self._params(True))
        return decode_core(x, {"lengths": lengths}, pad_tag)[0]

    # ------------------------------------------------------------------ training

    def forward(
        self, emissions: Tensor, tags: Tensor, mask: Tensor | None = None, reduction: str = "mean"
    ) -> Tensor:
        """NLL loss log Z − S(y*) (see :func:`~kexue.textkit.tagging.crf.functional.crf_nll`).

        Arguments:
            emissions: (B, T, K); tags: (B, T) long; mask: (B, T) bool right-padded prefix mask
                (time-major (T, B, ...) with ``batch_first=False``).
            reduction: ``"none" | "sum" | "mean" (default) | "token_mean"``.

        Returns:
            The loss, (B,) for ``"none"`` else a scalar.
        """
        check_reduction(reduction)
        x, facts = self._checked(emissions, mask, tags, constrained=self.constrain_training,
                                 spread=True)  # fmt: skip
        return nll_core(x, facts, self.algorithm, reduction)

    def nll(
        self, emissions: Tensor, tags: Tensor, mask: Tensor | None = None, reduction: str = "mean"
    ) -> Tensor:
        """Same as :meth:`forward` (the NLL loss)."""
        return self.forward(emissions, tags, mask, reduction)

    def log_likelihood(
        self, emissions: Tensor, tags: Tensor, mask: Tensor | None = None, reduction: str = "sum"
    ) -> Tensor:
        """Log-likelihood S(y*) − log Z with pytorch-crf's semantics (default reduction ``sum``;
        ``token_mean`` divides the sum by the number of unmasked tokens).

        Returns:
            (B,) for ``"none"`` else a scalar.
        """
        return -self.forward(emissions, tags, mask, reduction)

    def log_partition(self, emissions: Tensor, mask: Tensor | None = None) -> Tensor:
        """(B,) log Z (constrained only with ``constrain_training``)."""
        x, facts = self._checked(emissions, mask, constrained=self.constrain_training,
                                 spread=True)  # fmt: skip
        return log_z_core(x, facts, self.algorithm)

    def marginals(self, emissions: Tensor, mask: Tensor | None = None) -> Tensor:
        """(B, T, K) unary marginals P(y_t = j), 0 at padded positions (detached)."""
        x, facts = self._checked(emissions, mask, constrained=self.constrain_training,
                                 spread=True)  # fmt: skip
        return self._out(marginals_core(x, facts, self.algorithm))

    # ------------------------------------------------------------------ decoding

    def decode_with_scores(
        self,
        emissions: Tensor,
        mask: Tensor | None = None,
        *,
        nbest: int | None = None,
        pad_tag: int = 0,
    ) -> tuple[Tensor, Tensor]:
        """Viterbi (or n-best) paths and their scores, with the constraints applied.

        Arguments:
            emissions: (B, T, K); mask: (B, T) bool (default all true).
            nbest: None for the single best path, else the number of paths.
            pad_tag: value at padded positions (default 0).

        Returns:
            ``(tags, scores)``: (B, T) and (B,), or (B, nbest, T) and (B, nbest); time-major
            layout (``batch_first=False``): (T, B) and (T, B, nbest).
        """
        check_positive_int("nbest", nbest, allow_none=True)
        # the −1e4 constraints, if any, always apply when decoding
        x, facts = self._checked(emissions, mask, constrained=True, lengths=nbest is None)
        if nbest is None:
            tags, scores = decode_core(x, facts, pad_tag)
            return self._out(tags), scores
        tags, scores = nbest_core(x, facts, nbest, pad_tag)
        return (tags if self.batch_first else tags.permute(2, 0, 1)), scores

    def decode(
        self,
        emissions: Tensor,
        mask: Tensor | None = None,
        *,
        nbest: int | None = None,
        pad_tag: int = 0,
    ) -> Tensor:
        """Best tag paths as a tensor: (B, T), or (B, nbest, T) (see :meth:`decode_with_scores`)."""
        return self.decode_with_scores(emissions, mask, nbest=nbest, pad_tag=pad_tag)[0]

    # ------------------------------------------------------------------ interop

    @classmethod
    def from_pytorch_crf(cls, module: nn.Module, **kwargs: Any) -> CRF:
        """A CRF with the weights of a ``torchcrf.CRF`` (kmkurn/pytorch-crf) copied in.

        Keeps its ``batch_first`` flag (pytorch-crf defaults to time-major, False) unless given
        in ``kwargs``; other keyword options are passed to the constructor (not
        ``use_start_end``: pytorch-crf always has start/end scores).

        Arguments:
            module: a ``torchcrf.CRF`` (anything with ``num_tags``, ``transitions``,
                ``start_transitions``, ``end_transitions``).

        Returns:
            The new CRF, on the module's device and dtype.
        """
        for attr in ("num_tags", "transitions", "start_transitions", "end_transitions"):
            if not hasattr(module, attr):
                raise ValueError(f"module has no {attr!r}: not a pytorch-crf CRF")
        kwargs.setdefault("batch_first", bool(getattr(module, "batch_first", False)))
        crf = cls(int(module.num_tags), use_start_end=True, **kwargs)
        ref = module.transitions
        crf.to(device=ref.device, dtype=ref.dtype)
        with torch.no_grad():
            m = crf.lr_multiplier
            crf.raw_transitions.copy_(module.transitions / m)
            crf.raw_start.copy_(module.start_transitions / m)
            crf.raw_end.copy_(module.end_transitions / m)
        return crf
