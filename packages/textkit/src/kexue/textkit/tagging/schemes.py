"""Sequence-labelling schemes: spans ↔ tags (BIO, IOB1, BIOES/BIOUL, BMES), word ↔ BMES, label ids.

A span is ``(start, end, type)`` with ``end`` EXCLUSIVE (token or character offsets). A tag is ``"O"``
or a one-letter prefix, optionally followed by ``"-TYPE"``: ``"B-PER"``, ``"I-LOC"``, or a bare
``"B"`` (type ``""``, as in word segmentation). Scheme names (case-insensitive):

| scheme | aliases | prefixes | entity |
| --- | --- | --- | --- |
| ``"BIO"`` | ``"IOB2"`` | B, I | ``B-X I-X*`` |
| ``"IOB1"`` | | B, I | ``I-X I-X*``; ``B-X`` only right after another ``X`` entity |
| ``"BIOES"`` | ``"IOBES"`` | B, I, E, S | ``B-X I-X* E-X`` or ``S-X`` |
| ``"BIOUL"`` | ``"BILOU"`` | B, I, L, U | ``B-X I-X* L-X`` or ``U-X`` |
| ``"BMES"`` | | B, M, E, S | ``B-X M-X* E-X`` or ``S-X`` |

Decoding modes (:func:`tags_to_spans`):

- ``"strict"`` (default; what bert4keras scores and seqeval's ``mode="strict"`` with an explicit
  scheme does): only well-formed entities count. In BIO an entity opens at ``B-X`` and runs over the
  following ``I-X``; an ``I-X`` that does not continue an open ``X`` entity is ignored. In BIOES /
  BIOUL / BMES an entity that opens with ``B-X`` must be closed by ``E-X`` (``L-X``) after only
  ``I-X`` (``M-X``); an unclosed one is dropped.
- ``"conlleval"`` (seqeval's default, the conlleval.pl chunk rules): ``I-X`` after ``O`` or after
  another type opens an entity; ``B-X``/``S-X`` always open one; an entity ends at a type change,
  before ``B``/``S``/``O``, and after ``E``/``S``.

References:
    Ramshaw & Marcus 1995 (IOB1), Tjong Kim Sang & Veenstra 1999 (IOB2/IOE); the conlleval.pl chunk
    rules as implemented by seqeval (``get_entities``, ``scheme.IOB2``/``IOBES`` strict mode).
    bert4keras NER example (strict span sets): https://kexue.fm/archives/6671
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import lru_cache

__all__ = [
    "TAG_SCHEMES",
    "LabelSet",
    "Span",
    "bmes_to_words",
    "ner_labels",
    "normalize_scheme",
    "spans_to_tags",
    "tags_to_spans",
    "words_to_bmes",
]

Span = tuple[int, int, str]
"""An entity or word span: ``(start, end, type)``, ``end`` exclusive."""

# canonical scheme → (begin, inside, end, single) prefixes; None where the scheme has no such tag.
_PREFIXES: dict[str, tuple[str, str, str | None, str | None]] = {
    "BIO": ("B", "I", None, None),
    "IOB1": ("B", "I", None, None),
    "BIOES": ("B", "I", "E", "S"),
    "BIOUL": ("B", "I", "L", "U"),
    "BMES": ("B", "M", "E", "S"),
}
_ALIASES = {"IOB2": "BIO", "IOBES": "BIOES", "BILOU": "BIOUL"}

TAG_SCHEMES: tuple[str, ...] = tuple(_PREFIXES)
"""Canonical scheme names; :func:`normalize_scheme` also accepts IOB2, IOBES and BILOU."""

_MODES = ("strict", "conlleval")


def normalize_scheme(scheme: str) -> str:
    """Return the canonical name of a tagging scheme (``"IOB2"`` → ``"BIO"``, ``"IOBES"`` → ``"BIOES"``).

    Arguments:
        scheme: a scheme name, case-insensitive: BIO, IOB2, IOB1, BIOES, IOBES, BIOUL, BILOU, BMES.

    Returns:
        One of :data:`TAG_SCHEMES`.
    """
    if not isinstance(scheme, str):
        raise ValueError(f"scheme must be a string, got {type(scheme).__name__}")
    name = scheme.upper()
    name = _ALIASES.get(name, name)
    if name not in _PREFIXES:
        known = sorted([*_PREFIXES, *_ALIASES])
        raise ValueError(f"unknown scheme {scheme!r}; expected one of {known}")
    return name


@lru_cache(maxsize=4096)
def _parse(tag: str) -> tuple[str, str]:
    """Split a tag into (prefix, type); ``"O"`` → ("O", "")."""
    if tag == "O":
        return "O", ""
    if not tag or (len(tag) > 1 and tag[1] != "-"):
        raise ValueError(f"tags: cannot parse tag {tag!r} (expected 'O', 'P' or 'P-TYPE')")
    return tag[0], tag[2:]


def _parse_all(tags: Sequence[str], scheme: str) -> list[tuple[str, str]]:
    allowed = {p for p in _PREFIXES[scheme] if p is not None} | {"O"}
    out = []
    for t in tags:
        if not isinstance(t, str):
            raise ValueError(f"tags must be strings, got {type(t).__name__} ({t!r})")
        p, typ = _parse(t)
        if p not in allowed:
            raise ValueError(
                f"tags: tag {t!r} has prefix {p!r}, not allowed in scheme {scheme} "
                f"(allowed: {sorted(allowed)})"
            )
        out.append((p, typ))
    return out


def _check_spans(spans: Iterable[Span], length: int) -> list[Span]:
    if not isinstance(length, int) or length < 0:
        raise ValueError(f"length must be a non-negative int, got {length!r}")
    ordered = sorted(spans, key=lambda s: (s[0], s[1]))
    prev_end = 0
    for s in ordered:
        if len(s) != 3 or not isinstance(s[2], str):
            raise ValueError(f"spans: each span must be (start, end, type: str), got {s!r}")
        start, end, _ = s
        if not (0 <= start < end <= length):
            raise ValueError(f"spans: span {s!r} is empty or outside [0, {length}]")
        if start < prev_end:
            raise ValueError(f"spans: span {s!r} overlaps a previous span")
        prev_end = end
    return ordered


def _tag(prefix: str, typ: str) -> str:
    return f"{prefix}-{typ}" if typ else prefix


def spans_to_tags(spans: Iterable[Span], length: int, scheme: str = "BIO") -> list[str]:
    """Encode non-overlapping spans as a tag sequence.

    Arguments:
        spans: ``(start, end, type)`` with ``end`` exclusive; type ``""`` gives bare tags (``"B"``).
            Any order; overlapping or out-of-range spans raise ValueError.
        length: sequence length.
        scheme: BIO (default), IOB1, BIOES, BIOUL or BMES (aliases: :func:`normalize_scheme`). IOB1
            writes ``B-X`` only on an entity that directly follows another ``X`` entity.

    Returns:
        ``length`` tags; positions outside every span are ``"O"``.
    """
    scheme = normalize_scheme(scheme)
    return _encode_spans(_check_spans(spans, length), length, scheme)


def _encode_spans(ordered: Sequence[Span], length: int, scheme: str) -> list[str]:
    """:func:`spans_to_tags` without validation: spans sorted, disjoint, in range; canonical scheme."""
    b, i, e, s = _PREFIXES[scheme]
    tags = ["O"] * length
    prev_end, prev_type = -1, None
    for start, end, typ in ordered:
        inside = f"{i}-{typ}" if typ else i
        if scheme == "IOB1":
            first = b if prev_end == start and prev_type == typ else i
            tags[start:end] = [f"{first}-{typ}" if typ else first] + [inside] * (end - start - 1)
        elif e is None:  # BIO
            tags[start:end] = [f"{b}-{typ}" if typ else b] + [inside] * (end - start - 1)
        elif end - start == 1:
            tags[start] = _tag(s, typ)  # type: ignore[arg-type]
        else:
            tags[start:end] = [
                f"{b}-{typ}" if typ else b,
                *([inside] * (end - start - 2)),
                _tag(e, typ),
            ]
        prev_end, prev_type = end, typ
    return tags


def _strict_spans(parsed: list[tuple[str, str]], scheme: str) -> list[Span]:
    b, i, e, s = _PREFIXES[scheme]
    n = len(parsed)
    spans: list[Span] = []
    if scheme == "IOB1":
        # I-X opens an entity unless it continues one of type X; B-X opens one only right after a
        # token of type X (the previous token as written). Other B-X are invalid and ignored.
        k = 0
        while k < n:
            p, typ = parsed[k]
            prev_p, prev_t = parsed[k - 1] if k > 0 else ("O", "")
            opens = (p == i) or (p == b and prev_p != "O" and prev_t == typ)
            if not opens:
                k += 1
                continue
            j = k + 1
            while j < n and parsed[j] == (i, typ):
                j += 1
            spans.append((k, j, typ))
            k = j
        return spans
    k = 0
    while k < n:
        p, typ = parsed[k]
        if s is not None and p == s:
            spans.append((k, k + 1, typ))
            k += 1
            continue
        if p != b:
            k += 1
            continue
        j = k + 1
        while j < n and parsed[j] == (i, typ):
            j += 1
        if e is None:  # BIO: the I-run ends the entity
            spans.append((k, j, typ))
            k = j
        elif j < n and parsed[j] == (e, typ):
            spans.append((k, j + 1, typ))
            k = j + 1
        else:  # unclosed: dropped; resume at the token that broke it
            k = j
    return spans


def _conll_spans(parsed: list[tuple[str, str]], scheme: str) -> list[Span]:
    # Map every scheme onto the conlleval letters B, I, E, S.
    b, i, e, s = _PREFIXES[scheme]
    letter = {b: "B", i: "I", "O": "O"}
    if e is not None:
        letter[e] = "E"
    if s is not None:
        letter[s] = "S"
    spans: list[Span] = []
    prev_p, prev_t = "O", ""
    begin = 0
    for k, (p0, typ) in enumerate([*parsed, ("O", "")]):
        p = letter[p0]
        end_chunk = (
            prev_p in ("E", "S")
            or (prev_p in ("B", "I") and p in ("B", "S", "O"))
            or (prev_p != "O" and prev_t != typ)
        )
        start_chunk = (
            p in ("B", "S")
            or (p in ("I", "E") and prev_p in ("E", "S", "O"))
            or (p != "O" and prev_t != typ)
        )
        if end_chunk:
            spans.append((begin, k, prev_t))
        if start_chunk:
            begin = k
        prev_p, prev_t = p, typ
    return spans


def tags_to_spans(tags: Sequence[str], scheme: str = "BIO", mode: str = "strict") -> list[Span]:
    """Decode a tag sequence into spans.

    Arguments:
        tags: tag strings (``"O"``, ``"B-PER"``, bare ``"B"``); a prefix the scheme does not use
            raises ValueError.
        scheme: BIO (default), IOB1, BIOES, BIOUL or BMES (aliases: :func:`normalize_scheme`).
        mode: ``"strict"`` (default; ill-formed entities are ignored, as in seqeval's strict mode)
            or ``"conlleval"`` (``I-X`` after ``O`` or another type opens an entity, as seqeval's
            default). See the module docstring for the exact rules.

    Returns:
        Spans ``(start, end, type)`` in order, ``end`` exclusive, type ``""`` for bare tags.

    References:
        seqeval ``get_entities`` (conlleval) and ``scheme.Tokens`` (strict), used as test oracles.
    """
    scheme = normalize_scheme(scheme)
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
    parsed = _parse_all(tags, scheme)
    if mode == "strict":
        return _strict_spans(parsed, scheme)
    return _conll_spans(parsed, scheme)


def words_to_bmes(words: Iterable[str]) -> list[str]:
    """Per-character BMES tags of a segmented text (``["中国", "人"]`` → ``["B", "E", "S"]``).

    Arguments:
        words: non-empty strings.

    Returns:
        One bare tag per character: ``S`` single-character word, else ``B M* E``.
    """
    tags: list[str] = []
    for w in words:
        if not isinstance(w, str) or not w:
            raise ValueError(f"words must be non-empty strings, got {w!r}")
        n = len(w)
        if n == 1:
            tags.append("S")
        else:
            tags.append("B")
            tags.extend("M" * (n - 2))
            tags.append("E")
    return tags


def bmes_to_words(chars: str | Sequence[str], tags: Sequence[str]) -> list[str]:
    """Join characters into words from BMES tags, leniently.

    A word boundary falls before position k when ``tags[k]`` is ``B`` or ``S``, or ``tags[k-1]`` is
    ``E`` or ``S``. Invalid sequences never raise: an ``M``/``E`` after ``E``/``S`` (or first)
    opens a word, a ``B`` without ``E`` closes at the next boundary. Typed tags (``"B-PER"``) are
    read by their prefix; ``"O"`` acts as ``S``.

    Arguments:
        chars: the text (or a list of character strings), same length as ``tags``.
        tags: BMES tags.

    Returns:
        The words; ``"".join(words) == "".join(chars)``.
    """
    if len(chars) != len(tags):
        raise ValueError(
            f"chars and tags must have the same length, got {len(chars)} and {len(tags)}"
        )
    words: list[str] = []
    cur: list[str] = []
    prev = "S"
    for c, t in zip(chars, tags, strict=True):
        p = _parse(t)[0] if isinstance(t, str) else None
        if p == "O":
            p = "S"
        if p not in ("B", "M", "E", "S"):
            raise ValueError(f"tags: {t!r} is not a BMES tag")
        if cur and (p in ("B", "S") or prev in ("E", "S")):
            words.append("".join(cur))
            cur = []
        cur.append(c)
        prev = p
    if cur:
        words.append("".join(cur))
    return words


def ner_labels(types: Iterable[str], scheme: str = "BIO") -> list[str]:
    """The label list of a typed scheme, ``"O"`` first (id 0), then each type's tags.

    ``ner_labels(["PER", "LOC"])`` → ``["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]``; BIOES adds
    ``E-``, ``S-`` (order B, I, E, S), BIOUL ``L-``, ``U-``, BMES uses B, M, E, S. Types keep the
    given order; an empty type ``""`` gives bare tags.

    Arguments:
        types: distinct entity types.
        scheme: BIO (default), IOB1, BIOES, BIOUL or BMES.

    Returns:
        ``1 + len(types) × (2 or 4)`` labels.
    """
    scheme = normalize_scheme(scheme)
    types = list(types)
    if len(set(types)) != len(types) or not all(isinstance(t, str) for t in types):
        raise ValueError(f"types must be distinct strings, got {types!r}")
    prefixes = [p for p in _PREFIXES[scheme] if p is not None]
    return ["O", *(_tag(p, t) for t in types for p in prefixes)]


class LabelSet:
    """A fixed label ↔ id mapping (ids follow the list order).

    Arguments:
        labels: distinct label strings, e.g. from :func:`ner_labels` (``"O"`` at id 0 there).

    Example:
        >>> ls = LabelSet(ner_labels(["PER"]))
        >>> ls.encode(["B-PER", "O"]), ls.decode([2, 0])
        ([1, 0], ['I-PER', 'O'])
    """

    def __init__(self, labels: Iterable[str]) -> None:
        self._labels: tuple[str, ...] = tuple(labels)
        if not self._labels:
            raise ValueError("labels must not be empty")
        if not all(isinstance(x, str) for x in self._labels):
            raise ValueError(f"labels must be strings, got {self._labels!r}")
        if len(set(self._labels)) != len(self._labels):
            raise ValueError(f"labels must be distinct, got {self._labels!r}")
        self._index = {x: k for k, x in enumerate(self._labels)}

    @property
    def labels(self) -> list[str]:
        """The labels in id order (a fresh list)."""
        return list(self._labels)

    def __len__(self) -> int:
        return len(self._labels)

    def __contains__(self, label: object) -> bool:
        return label in self._index

    def __repr__(self) -> str:
        return f"LabelSet({list(self._labels)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LabelSet) and other._labels == self._labels

    def __hash__(self) -> int:
        return hash(self._labels)

    def encode(self, tags: Iterable[str]) -> list[int]:
        """Map labels to ids; an unknown label raises ValueError naming it.

        Arguments:
            tags: labels.

        Returns:
            Their ids.
        """
        try:
            return [self._index[t] for t in tags]
        except KeyError as err:
            raise ValueError(f"tags: unknown label {err.args[0]!r}") from None

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Map ids (ints, or anything with ``int()``, e.g. a tensor row's items) to labels.

        Arguments:
            ids: ids in ``[0, len(self))``.

        Returns:
            The labels.
        """
        out = []
        n = len(self._labels)
        for i in ids:
            k = int(i)
            if not 0 <= k < n:
                raise ValueError(f"ids: id {k} out of range [0, {n})")
            out.append(self._labels[k])
        return out
