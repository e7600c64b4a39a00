"""Allowed-transition constraints for CRF decoding: BIO, IOB1, BIOES (BIOUL) and BMES.

:func:`allowed_transitions` builds a :class:`Constraints` (allowed start tags, allowed end tags and
the allowed tag bigrams) from a tagging scheme and the label list, with AllenNLP's semantics
(``allennlp.modules.conditional_random_field.allowed_transitions``). The CRF applies them at decode
time as −1e4 scores (and in training only with ``constrain_training=True``).
:meth:`Constraints.boundary` gives the author's (bert4keras ``ViterbiDecoder``) boundary-only form:
``starts``/``ends`` lists and every bigram allowed.

Label parsing: ``"O"`` is the outside tag; any other label is ``prefix + rest`` with ``prefix``
its first character (upper-cased) and ``rest`` the entity part (``"B-PER"`` → ``B``, ``"-PER"``);
``I-X`` may only follow ``B-X``/``I-X`` of the same entity, and so on. In BIOES, ``E``/``S`` and
``L``/``U`` are synonyms (BIOUL is the same scheme).

References:
    - AllenNLP, ``allowed_transitions`` / ``is_transition_allowed`` (Apache-2.0), semantics only.
    - Su Jianlin, https://kexue.fm/archives/5542 (CRF; the author's decoder applies start/end
      rules only at decode time).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = [
    "CONSTRAINT_SCHEMES",
    "FORBIDDEN_SCORE",
    "Constraints",
    "allowed_transitions",
    "constrained_scores",
]

FORBIDDEN_SCORE = -1e4
"""Score given to a disallowed start, end or transition (spec §1: −1e4, never −inf)."""

CONSTRAINT_SCHEMES = ("BIO", "IOB1", "BIOES", "BIOUL", "BMES")
"""Schemes accepted by :func:`allowed_transitions` (BIOUL = BIOES)."""

_PREFIXES = {
    "BIO": set("BIO"),
    "IOB1": set("BIO"),
    "BIOES": set("BIOLU"),
    "BMES": set("BMES"),
}


@dataclass(frozen=True)
class Constraints:
    """Allowed first tags, last tags and tag bigrams of a decoded path.

    Arguments:
        allowed_start: (K,) bool, tags a path may start with.
        allowed_end: (K,) bool, tags a path may end with.
        allowed: (K, K) bool, ``allowed[i, j]`` = the bigram i → j may occur.

    References:
        AllenNLP ``allowed_transitions``; https://kexue.fm/archives/5542
    """

    allowed_start: Tensor
    allowed_end: Tensor
    allowed: Tensor

    def __post_init__(self) -> None:
        k = self.allowed.shape[0] if self.allowed.dim() == 2 else -1
        if self.allowed.shape != (k, k) or self.allowed.dtype != torch.bool:
            raise ValueError(
                f"allowed must be a (K, K) bool tensor, got {tuple(self.allowed.shape)}"
            )
        for name in ("allowed_start", "allowed_end"):
            v = getattr(self, name)
            if v.shape != (k,) or v.dtype != torch.bool:
                raise ValueError(f"{name} must be a ({k},) bool tensor, got {tuple(v.shape)}")

    @property
    def num_tags(self) -> int:
        """K, the number of tags."""
        return self.allowed.shape[0]

    @classmethod
    def boundary(
        cls,
        num_tags: int,
        *,
        starts: Sequence[int] | None = None,
        ends: Sequence[int] | None = None,
    ) -> Constraints:
        """The author's boundary rules (bert4keras ``ViterbiDecoder(trans, starts, ends)``).

        Arguments:
            num_tags: K.
            starts: tag ids a path may start with (default: all). NER in the author's examples
                uses ``[0]`` ([CLS] labelled O); CWS allows the b/s ids.
            ends: tag ids a path may end with (default: all).

        Returns:
            Constraints with every bigram allowed.
        """
        if num_tags < 1:
            raise ValueError(f"num_tags must be ≥ 1, got {num_tags}")

        def ids(name: str, values: Sequence[int] | None) -> Tensor:
            out = torch.zeros(num_tags, dtype=torch.bool)
            if values is None:
                return ~out
            for v in values:
                if not 0 <= int(v) < num_tags:
                    raise ValueError(f"{name} ids must lie in [0, {num_tags}), got {v}")
                out[int(v)] = True
            return out

        allowed = torch.ones(num_tags, num_tags, dtype=torch.bool)
        return cls(ids("starts", starts), ids("ends", ends), allowed)

    def to(self, device: torch.device | str) -> Constraints:
        """The same constraints on ``device``."""
        return Constraints(
            self.allowed_start.to(device), self.allowed_end.to(device), self.allowed.to(device)
        )


def _split(label: str, scheme: str) -> tuple[str, str]:
    if label == "O" and scheme != "BMES":
        return "O", ""
    prefix, entity = label[:1].upper(), label[1:]
    if scheme == "BIOES":
        prefix = {"E": "L", "S": "U"}.get(prefix, prefix)
    if prefix not in _PREFIXES[scheme] or (prefix == "O" and entity):
        raise ValueError(f"label {label!r} in labels is not a {scheme} tag")
    return prefix, entity


def _allowed(scheme: str, frm: tuple[str, str] | None, to: tuple[str, str] | None) -> bool:
    """AllenNLP's ``is_transition_allowed``; ``None`` = START (as frm) or END (as to)."""
    if frm is None and to is None:
        return False
    if frm is None:  # START → to
        first = {"BIOES": "OBU", "BIO": "OB", "IOB1": "OI", "BMES": "BS"}[scheme]
        return to[0] in first
    if to is None:  # frm → END
        last = {"BIOES": "OLU", "BIO": "OBI", "IOB1": "OBI", "BMES": "ES"}[scheme]
        return frm[0] in last
    (fp, fe), (tp, te) = frm, to
    same = fe == te
    if scheme == "BIOES":
        return (fp in "OLU" and tp in "OBU") or (fp in "BI" and tp in "IL" and same)
    if scheme == "BIO":
        return tp in "OB" or (tp == "I" and fp in "BI" and same)
    if scheme == "IOB1":
        return tp in "OI" or (tp == "B" and fp in "BI" and same)
    # BMES
    return (tp in "BS" and fp in "ES") or (tp in "ME" and fp in "BM" and same)


def allowed_transitions(scheme: str, labels: Sequence[str]) -> Constraints:
    """Allowed start tags, end tags and bigrams of a tagging scheme (AllenNLP semantics).

    Arguments:
        scheme: ``"BIO"``, ``"IOB1"``, ``"BIOES"`` (alias ``"BIOUL"``) or ``"BMES"``.
        labels: the label of each tag id, e.g. ``["O", "B-PER", "I-PER"]`` or
            ``["B", "M", "E", "S"]``.

    Returns:
        :class:`Constraints` for K = ``len(labels)`` tags.

    Examples:
        >>> c = allowed_transitions("BIO", ["O", "B-PER", "I-PER"])
        >>> c.allowed[0, 2].item(), c.allowed_start[2].item()
        (False, False)

    References:
        AllenNLP ``allowed_transitions``; https://kexue.fm/archives/5542
    """
    if scheme not in CONSTRAINT_SCHEMES:
        raise ValueError(f"scheme must be one of {CONSTRAINT_SCHEMES}, got {scheme!r}")
    scheme = "BIOES" if scheme == "BIOUL" else scheme
    if isinstance(labels, str) or len(labels) == 0:
        raise ValueError("labels must be a non-empty sequence of label strings")
    parsed = [_split(str(lab), scheme) for lab in labels]
    k = len(parsed)
    allowed = torch.tensor(
        [[_allowed(scheme, parsed[i], parsed[j]) for j in range(k)] for i in range(k)],
        dtype=torch.bool,
    )
    start = torch.tensor([_allowed(scheme, None, p) for p in parsed], dtype=torch.bool)
    end = torch.tensor([_allowed(scheme, p, None) for p in parsed], dtype=torch.bool)
    return Constraints(start, end, allowed)


def constrained_scores(
    transitions: Tensor,
    start: Tensor | None = None,
    end: Tensor | None = None,
    *,
    allowed_start: Tensor | None = None,
    allowed_end: Tensor | None = None,
    allowed_transitions: Tensor | None = None,
) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """CRF scores with the disallowed entries replaced by −1e4 (:data:`FORBIDDEN_SCORE`).

    A missing ``start``/``end`` counts as zeros when its ``allowed_*`` mask is given.

    Arguments:
        transitions: (K, K); start, end: optional (K,).
        allowed_start, allowed_end: optional (K,) bool; allowed_transitions: optional (K, K) bool.

    Returns:
        ``(transitions, start, end)`` (differentiable where allowed).

    References:
        Spec §1 (−1e4, never −inf); AllenNLP ``ConditionalRandomField`` (same constant).
    """
    k = transitions.shape[0]
    checks = (("allowed_start", allowed_start, (k,)), ("allowed_end", allowed_end, (k,)))
    for name, m, shape in (*checks, ("allowed_transitions", allowed_transitions, (k, k))):
        if m is not None and (tuple(m.shape) != shape or m.dtype != torch.bool):
            raise ValueError(f"{name} must be a bool tensor of shape {shape}, got {tuple(m.shape)}")
    dev = transitions.device
    if allowed_transitions is not None:
        transitions = torch.where(allowed_transitions.to(dev), transitions, FORBIDDEN_SCORE)
    if allowed_start is not None:
        base = transitions.new_zeros(k) if start is None else start
        start = torch.where(allowed_start.to(dev), base, FORBIDDEN_SCORE)
    if allowed_end is not None:
        base = transitions.new_zeros(k) if end is None else end
        end = torch.where(allowed_end.to(dev), base, FORBIDDEN_SCORE)
    return transitions, start, end
