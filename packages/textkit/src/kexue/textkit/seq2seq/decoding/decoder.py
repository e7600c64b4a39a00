"""Autoregressive decoding with bert4keras semantics: greedy, beam search, top-k/top-p sampling.

:class:`AutoRegressiveDecoder` reproduces ``bert4keras.snippets.AutoRegressiveDecoder`` (spec §2.6):

- ``predict(inputs, output_ids, states)`` (the hook) returns the next-token distribution of the
  last position of every row, as probabilities (``rtype="probas"``, possibly unnormalised, e.g. a
  vote) or logits (``rtype="logits"``). Temperature ``T``: logits → ``softmax(z / T)``; probas →
  ``p^{1/T}`` renormalised (probas with ``T = 1`` are passed on unnormalised, as bert4keras does).
  Beam search works on ``log(p + 1e-12)``.
- ``beam_search(inputs, topk, min_ends)``: cumulative log-probabilities, top-k over the flattened
  (beams × vocab); once the length (start token included, as in bert4keras) reaches ``minlen``,
  if the BEST beam ends with an end id and contains end ids ≥ ``min_ends`` times it is returned
  at once, otherwise finished beams are dropped and ``k`` shrinks by their number (bert4keras
  sets ``k`` to the beams left, the same thing whenever ``topk ≤ V``; a ``topk > V``, which
  bert4keras cannot run, keeps growing the beam to ``topk``); at ``maxlen`` the best beam is
  returned. Ties in the top-k follow ``torch.topk`` (bert4keras: ``argpartition``; neither
  promises an order). No length penalty and no pool of finished hypotheses — unlike HF
  ``generate``, which keeps ``num_beams`` alive, pools finished ones scored ``sum_logprob / len^length_penalty`` and
  stops per ``early_stopping``. Opt-in here: ``length_penalty=α`` switches to that pooled rule
  (``k`` stays ``topk``, an item stops when its best pooled ``score/len^α`` ≥ its best live
  beam's), and ``prefix_allowed_fn(item, ids)`` restricts tokens like HF's
  ``prefix_allowed_tokens_fn``.
- ``random_sample(n, topk, topp)``: ``n`` samples per input; top-k filter, renormalise, then
  nucleus (the smallest most-probable set reaching mass ``p``; the first token is always kept),
  renormalise, sample (``torch.Generator``); finished samples move out; ``n`` sequences returned.
- ``greedy``: argmax each step with the same stop rule (= ``beam_search(topk=1)``; not in
  bert4keras). Greedy here equals HF ``generate(do_sample=False, num_beams=1)`` except that HF
  stops at the first end token (no ``min_ends``). HF's repetition penalty, no-repeat n-grams,
  bad words and min new tokens are opt-in (``processors=``, :mod:`.logits_process`).

Everything is batched over independent inputs (a list of tensors with a leading batch axis
``B``; one result per input, equal to decoding it alone). A ``states`` object (e.g. a
:class:`~kexue.textkit.seq2seq.transformer.KVCache`) is reordered with the rows, so cached
decoding (:class:`UniLMDecoder`) gives the same outputs as full recomputation.

References: bert4keras ``snippets.AutoRegressiveDecoder``; https://kexue.fm/archives/7115;
nucleus sampling arXiv:1904.09751.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from .._attention import KVCache
from ._hook_check import _HookCheck
from .beam import beam_search_loop, reorder
from .filters import _invalid_rows
from .logits_process import LogitsProcessors
from .sample import random_sample_loop
from .unilm_logits import unilm_next_logits

__all__ = ["AutoRegressiveDecoder", "UniLMDecoder"]

Predict = Callable[[list[Tensor], Tensor, Any], Any]


class AutoRegressiveDecoder:
    """bert4keras-style decoder around a ``predict`` hook (see the module docstring).

    Either subclass and override :meth:`predict`, or pass ``predict_fn``.

    Arguments:
        start_id: token every output starts with (None = start empty), e.g. a [CLS]/BOS id.
        end_id: end token id, or several (a sequence); any of them ends a sequence and counts
            towards ``min_ends``.
        maxlen: maximum number of decoding steps.
        minlen: no stop before ``output_ids`` has this many tokens (start token included, as
            bert4keras; default 1). End tokens may still be generated before it (they just do
            not stop the sequence); HF's ``min_length`` masks them instead.
        rtype: what ``predict`` returns: ``"probas"`` (default, bert4keras) or ``"logits"``.
        vocab_size: if given, ``end_id`` is checked against it at once (else on the first step).
        predict_fn: ``(inputs, output_ids, states) -> scores`` or ``(scores, states)``.
        processors: opt-in HF constraints (:class:`~.logits_process.LogitsProcessors`:
            repetition penalty, no-repeat n-grams, bad words, min new tokens); None = off.

    ``predict`` gets ``inputs`` (a list of ``(N, ...)`` tensors, one row per live sequence),
    ``output_ids`` ``(N, t)`` and ``states``, and returns ``(N, V)`` scores of the next token.

    References: bert4keras ``AutoRegressiveDecoder``; spec §2.6.
    """

    def __init__(
        self,
        *,
        start_id: int | None,
        end_id: int | Sequence[int],
        maxlen: int,
        minlen: int = 1,
        rtype: str = "probas",
        vocab_size: int | None = None,
        predict_fn: Predict | None = None,
        processors: LogitsProcessors | None = None,
    ) -> None:
        if maxlen < 1:
            raise ValueError(f"maxlen must be >= 1, got {maxlen}")
        if minlen < 0:
            raise ValueError(f"minlen must be >= 0, got {minlen}")
        if rtype not in ("probas", "logits"):
            raise ValueError(f"rtype must be 'probas' or 'logits', got {rtype!r}")
        ends = [end_id] if isinstance(end_id, int) else [int(e) for e in end_id]
        if not ends:
            raise ValueError("end_id must name at least one token")
        self.start_id, self.end_ids = start_id, ends
        self.maxlen, self.minlen, self.rtype = maxlen, minlen, rtype
        self.predict_fn, self.processors = predict_fn, processors
        self.vocab_size = vocab_size
        if vocab_size is not None:
            self._check_ids(vocab_size)

    # -- the hook --------------------------------------------------------------------------------
    def predict(self, inputs: list[Tensor], output_ids: Tensor, states: Any) -> Any:
        """Next-token scores ``(N, V)`` (or ``(scores, states)``) for every row; override it."""
        if self.predict_fn is None:
            raise NotImplementedError("override predict() or pass predict_fn")
        return self.predict_fn(inputs, output_ids, states)

    # -- helpers shared by the loops -----------------------------------------------------------
    @property
    def first_len(self) -> int:
        """Tokens every output starts with (1 with a ``start_id``, else 0)."""
        return 0 if self.start_id is None else 1

    def first_output_ids(self, n: int, device: torch.device) -> Tensor:
        """``(n, first_len)`` initial output ids."""
        if self.start_id is None:
            return torch.zeros(n, 0, dtype=torch.long, device=device)
        return torch.full((n, 1), self.start_id, dtype=torch.long, device=device)

    def end_ids_tensor(self, device: torch.device) -> Tensor:
        """The end ids as a long tensor (for ``torch.isin``)."""
        return torch.tensor(self.end_ids, dtype=torch.long, device=device)

    def _check_ids(self, vocab: int) -> None:
        bad = [e for e in self.end_ids if not 0 <= e < vocab]
        if bad:
            raise ValueError(f"end_id {bad} outside the vocabulary [0, {vocab})")
        if self.start_id is not None and not 0 <= self.start_id < vocab:
            raise ValueError(f"start_id {self.start_id} outside the vocabulary [0, {vocab})")

    def _call_hook(
        self, inputs: list[Tensor], output_ids: Tensor, states: Any
    ) -> tuple[Tensor, Any]:
        """The hook's ``(N, V)`` scores (fp32 at least) and states, shape-checked."""
        out = self.predict(inputs, output_ids, states)
        pred, states = out if isinstance(out, tuple) else (out, None)
        if pred.dim() != 2 or pred.shape[0] != output_ids.shape[0]:
            raise ValueError(
                f"predict returned shape {tuple(pred.shape)}, expected (N, V) with N = "
                f"{output_ids.shape[0]} rows"
            )
        if self.vocab_size is None:
            self._check_ids(pred.shape[1])
            self.vocab_size = pred.shape[1]
        pred = pred.float() if pred.dtype in (torch.float16, torch.bfloat16) else pred
        return pred, states

    def step_scores(
        self,
        inputs: list[Tensor],
        output_ids: Tensor,
        states: Any,
        temperature: float,
        rtype: str,
    ) -> tuple[Tensor, Any]:
        """Call the hook and convert to ``rtype`` (bert4keras ``wraps``): returns (scores, states)."""
        pred, states = self._call_hook(inputs, output_ids, states)
        if self.processors is not None:  # HF domains: raw logits, or log-softmax for beams
            z = pred if self.rtype == "logits" else torch.log(pred + 1e-12)
            if rtype == "logits":
                return self._process(
                    inputs, output_ids, torch.log_softmax(z / temperature, -1)
                ), states
            return torch.softmax(self._process(inputs, output_ids, z) / temperature, -1), states
        if self.rtype == "logits":
            probas = torch.softmax(pred / temperature, dim=-1)
        elif temperature != 1:
            probas = pred.pow(1.0 / temperature)
            probas = probas / probas.sum(dim=-1, keepdim=True)
        else:
            probas = pred
        if rtype == "probas":
            return probas, states
        return torch.log(probas + 1e-12), states

    def context_prefix(self, inputs: list[Tensor]) -> tuple[Tensor, Tensor] | None:
        """``(ids, valid)`` the decoder's source contributes to a ``context="all"`` processor
        context (None: unknown; :class:`UniLMDecoder` returns its right-padded source)."""
        return None

    def _process(self, inputs: list[Tensor], output_ids: Tensor, z: Tensor) -> Tensor:
        proc = self.processors
        prefix = self.context_prefix(inputs) if proc.context == "all" else None  # type: ignore[union-attr]
        return proc.apply(z, output_ids, prefix, self.first_len, self.end_ids)  # type: ignore[union-attr]

    @staticmethod
    def _check_inputs(inputs: Sequence[Tensor]) -> list[Tensor]:
        if isinstance(inputs, Tensor):
            inputs = [inputs]
        inputs = list(inputs)
        if not inputs:
            raise ValueError("inputs is empty: pass a list of (B, ...) tensors")
        b = inputs[0].shape[0] if inputs[0].dim() else 0
        for i, x in enumerate(inputs):
            if x.dim() == 0 or x.shape[0] != b:
                raise ValueError(
                    f"inputs[{i}] shape {tuple(x.shape)}: every input needs the batch axis B = {b}"
                )
        if b == 0:
            raise ValueError("inputs has batch size 0")
        if inputs[0].dim() >= 2 and inputs[0].shape[1] == 0:
            raise ValueError(f"inputs[0] shape {tuple(inputs[0].shape)}: empty source")
        return inputs

    @staticmethod
    def _check_common(temperature: float, min_ends: int) -> None:
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        if min_ends < 1:
            raise ValueError(f"min_ends must be >= 1, got {min_ends}")

    def _greedy_step(
        self, inputs: list[Tensor], output_ids: Tensor, states: Any
    ) -> tuple[Tensor, Tensor, Tensor, Any]:
        """(scores, invalid rows, argmax tokens, states) of one greedy step. A logits hook is
        argmaxed on its (processed) logits, as HF does: softmax is monotone, so no V-wide
        softmax, and one reduction gives both the argmax and the validity (a NaN, a +inf or an
        all ``-inf`` row has a non-finite maximum)."""
        if self.rtype != "logits":
            scores, states = self.step_scores(inputs, output_ids, states, 1.0, "probas")
            return scores, _invalid_rows(scores), scores.argmax(dim=-1), states
        z, states = self._call_hook(inputs, output_ids, states)
        if self.processors is not None:
            z = self._process(inputs, output_ids, z)
        best, tokens = z.max(dim=-1)
        return z, ~torch.isfinite(best), tokens, states

    # -- decoding methods ------------------------------------------------------------------------
    def greedy(
        self,
        inputs: Sequence[Tensor],
        *,
        states: Any = None,
        min_ends: int = 1,
    ) -> list[Tensor]:
        """Argmax decoding (= ``beam_search(topk=1)``); one ``(t,)`` long tensor per input.

        Arguments:
            inputs: list of ``(B, ...)`` tensors (B independent inputs).
            states: initial state for the hook (e.g. None → the hook builds a cache).
            min_ends: end tokens a finished sequence must contain.

        Returns:
            ``B`` 1-D tensors (start token included if set, end token included if reached).
        """
        inputs = self._check_inputs(inputs)
        self._check_common(1.0, min_ends)
        b, device = inputs[0].shape[0], inputs[0].device
        owner = torch.arange(b, device=device)
        output_ids = self.first_output_ids(b, device)
        end_ids = self.end_ids_tensor(device)
        end_counts = torch.zeros(b, dtype=torch.long, device=device)
        results: list[Tensor | None] = [None] * b
        check = _HookCheck()
        for step in range(self.maxlen):
            scores, bad, tokens, states = self._greedy_step(inputs, output_ids, states)
            output_ids = torch.cat((output_ids, tokens[:, None]), dim=1)
            is_end = torch.isin(tokens, end_ids)
            end_counts = end_counts + is_end.long()
            if output_ids.shape[1] < self.minlen:
                check.defer(bad, step)  # no host sync in this step
            else:
                done = is_end & (end_counts >= min_ends)
                if check.with_done(bad, scores, step, done):  # the step's one host sync
                    for r in done.nonzero(as_tuple=True)[0].tolist():
                        results[int(owner[r])] = output_ids[r]
                    index = (~done).nonzero(as_tuple=True)[0]
                    if index.numel() == 0:
                        break
                    owner, output_ids, end_counts = (
                        owner[index],
                        output_ids[index],
                        end_counts[index],
                    )
                    inputs = [x.index_select(0, index) for x in inputs]
                    states = reorder(states, index)
        check.finish(step)
        for r, item in enumerate(owner.tolist()):
            if results[item] is None:
                results[item] = output_ids[r]
        return results  # type: ignore[return-value]

    def beam_search(
        self,
        inputs: Sequence[Tensor],
        topk: int,
        *,
        states: Any = None,
        temperature: float = 1.0,
        min_ends: int = 1,
        length_penalty: float | None = None,
        prefix_allowed_fn: Callable[[int, Tensor], Sequence[int] | Tensor] | None = None,
        num_return_sequences: int = 1,
    ) -> list[Tensor] | list[list[Tensor]]:
        """Beam search with bert4keras's stop rule (module docstring); one result per input.

        Arguments:
            inputs: list of ``(B, ...)`` tensors (B independent inputs).
            topk: beam width (≥ 1).
            states: initial hook state.
            temperature: see the module docstring (default 1).
            min_ends: end tokens the returned beam must contain (default 1).
            length_penalty: None (default) = bert4keras (no penalty, return the best beam as soon
                as it ends); ``α`` = HF-style pooled finished hypotheses scored ``score/len^α``.
            prefix_allowed_fn: ``(item, output_ids (t,)) -> allowed token ids (or a (V,) bool
                mask)``; other tokens get score ``-inf``.
            num_return_sequences: ``r > 1`` returns the best ``r ≤ topk`` pooled hypotheses per
                input (a list of lists; needs ``length_penalty``).

        Returns:
            ``B`` 1-D long tensors.
        """
        if topk < 1:
            raise ValueError(f"topk must be >= 1, got {topk}")
        options = dict(length_penalty=length_penalty, prefix_allowed_fn=prefix_allowed_fn)
        loop_args = (inputs, topk, states, temperature, min_ends)
        return self._run(beam_search_loop, *loop_args, num_return=num_return_sequences, **options)

    def random_sample(
        self,
        inputs: Sequence[Tensor],
        n: int,
        *,
        topk: int | None = None,
        topp: float | None = None,
        states: Any = None,
        temperature: float = 1.0,
        min_ends: int = 1,
        generator: torch.Generator | None = None,
        draw: str = "live",
    ) -> list[list[Tensor]]:
        """``n`` samples per input with optional top-k then top-p filtering (bert4keras order).

        Arguments:
            inputs: list of ``(B, ...)`` tensors.
            n: samples per input.
            topk: keep the ``topk`` most probable tokens (None = all).
            topp: nucleus mass in ``(0, 1]`` (None = no nucleus filter).
            states: initial hook state.
            temperature: see the module docstring.
            min_ends: end tokens a finished sample must contain.
            generator: source of randomness (None = torch's global generator).
            draw: ``"live"`` (default, bert4keras) draws only for unfinished samples;
                ``"all"`` keeps drawing (and discarding) a token for finished ones, as HF
                ``generate`` does, so that a seed gives HF's samples token for token
                (:mod:`.sample`), and returns them in row order.

        Returns:
            For each input a list of ``n`` 1-D tensors: with ``draw="live"`` finished samples in
            the order they finished, then the unfinished ones (as bert4keras); with
            ``draw="all"`` in row order (HF's ``num_return_sequences`` grouping).
        """
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        if topk is not None and topk < 1:
            raise ValueError(f"topk must be >= 1, got {topk}")
        if topp is not None and not 0.0 < topp <= 1.0:
            raise ValueError(f"topp must lie in (0, 1], got {topp}")
        if draw not in ("live", "all"):
            raise ValueError(f"draw must be 'live' or 'all', got {draw!r}")
        options = dict(topk=topk, topp=topp, generator=generator, draw=draw)
        return self._run(random_sample_loop, inputs, n, states, temperature, min_ends, **options)

    def _run(
        self,
        loop: Callable[..., Any],
        inputs: Sequence[Tensor],
        width: int,
        states: Any,
        temperature: float,
        min_ends: int,
        **options: Any,
    ) -> Any:
        """Check what every decoding method takes, then run its loop (``.beam``, ``.sample``)."""
        inputs = self._check_inputs(inputs)
        self._check_common(temperature, min_ends)
        kw = dict(states=states, temperature=temperature, min_ends=min_ends)
        return loop(self, inputs, width, **kw, **options)


class UniLMDecoder(AutoRegressiveDecoder):
    """Decoder whose hook runs a :class:`~kexue.textkit.seq2seq.transformer.UniLMTransformer`
    or a :class:`~kexue.textkit.seq2seq.bert.BertUniLM` (anything with ``vocab_size``,
    ``forward_hidden(tokens, segments, *, key_padding_mask, position_ids, cond, cache)`` and
    ``logits(hidden, cond)``).

    ``inputs = [source (B, L) long right-padded, lengths (B,) long]`` plus optionally
    ``cond (B, d_c)`` for a CLN model. In seq2seq mode (default) the source is segment 0 and the
    generated tokens segment 1 (UniLM mask); with ``seq2seq=False`` the model is a plain causal
    LM continuing the source. Generated tokens continue each row's own positions
    (``lengths[b] + t``), so a padded batch decodes like its rows alone.

    With ``use_cache=True`` (default) the state is a :class:`KVCache`: the first step encodes
    the source once, later steps feed only the newest token; ``use_cache=False`` recomputes the
    whole sequence every step (the reference the cache is tested against).

    Arguments:
        model: the transformer (put it in eval mode for deterministic decoding).
        start_id, end_id, maxlen, minlen: as :class:`AutoRegressiveDecoder`.
        use_cache: incremental decoding with a KV cache.
        seq2seq: UniLM segments (True) or causal LM (False).
        processors: opt-in HF constraints (see :class:`AutoRegressiveDecoder`).
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        start_id: int | None,
        end_id: int | Sequence[int],
        maxlen: int,
        minlen: int = 1,
        use_cache: bool = True,
        seq2seq: bool = True,
        processors: LogitsProcessors | None = None,
    ) -> None:
        super().__init__(
            start_id=start_id,
            end_id=end_id,
            maxlen=maxlen,
            minlen=minlen,
            rtype="logits",
            vocab_size=model.vocab_size,
            processors=processors,
        )
        self.model, self.use_cache, self.seq2seq = model, use_cache, seq2seq

    def _check_inputs(self, inputs: Sequence[Tensor]) -> list[Tensor]:  # type: ignore[override]
        inputs = super()._check_inputs(inputs)
        if len(inputs) not in (2, 3):
            raise ValueError(
                f"inputs must be [source, lengths] or [source, lengths, cond], got {len(inputs)} tensors"
            )
        source, lengths = inputs[0], inputs[1]
        if source.dim() != 2:
            raise ValueError(f"inputs[0] (source) must be (B, L), got {tuple(source.shape)}")
        if lengths.dim() != 1 or int(lengths.min()) < 1 or int(lengths.max()) > source.shape[1]:
            raise ValueError(
                f"inputs[1] (lengths) must be (B,) in [1, {source.shape[1]}] (empty source?), "
                f"got {lengths.tolist()}"
            )
        return inputs

    def context_prefix(self, inputs: list[Tensor]) -> tuple[Tensor, Tensor]:
        """The right-padded source and its validity (for ``context="all"`` processors)."""
        source, lengths = inputs[0], inputs[1]
        return source, torch.arange(source.shape[1], device=source.device) < lengths[:, None]

    @torch.no_grad()
    def predict(self, inputs: list[Tensor], output_ids: Tensor, states: Any) -> Any:
        """Logits of the next token for every row (see the class)."""
        source, lengths = inputs[0], inputs[1]
        cond = inputs[2] if len(inputs) > 2 else None
        n, src_len = source.shape
        t = output_ids.shape[1]
        dev = source.device
        if not self.use_cache:
            logits = unilm_next_logits(
                self.model, source, lengths, output_ids, seq2seq=self.seq2seq, cond=cond
            )
            return logits, None
        if states is None:  # encode the source once, with room for the whole answer
            states = KVCache(reserve=self.maxlen)
            valid = torch.arange(src_len, device=dev)[None, :] < lengths[:, None]
            seg_src = torch.zeros_like(source) if self.seq2seq else None
            hidden = self.model.forward_hidden(
                source, seg_src, key_padding_mask=valid, cond=cond, cache=states
            )
            if t == 0:
                last = hidden[torch.arange(n, device=dev), lengths - 1]
                return self.model.logits(last, cond), states
            new = output_ids
        else:
            new = output_ids[:, -1:]
        segs = torch.ones_like(new) if self.seq2seq else None
        hidden = self.model.forward_hidden(new, segs, cond=cond, cache=states)
        return self.model.logits(hidden[:, -1], cond), states
