"""sentencepiece tokenizer: train (unigram or BPE) in memory, encode/decode, save/load.

One wrapper, :class:`SentencePieceTokenizer`, is used by the seq2seq models (part 3) and by the
word-discovery lexicon helper :func:`train_spm_with_lexicon` (part 2, spec §2.13): discovered
terms become ``user_defined_symbols`` (never split) or the seed pieces of unigram training.

Training runs through sentencepiece's ``sentence_iterator`` / ``model_writer`` hooks: the corpus
is streamed from Python (texts or files, read line by line) and the model comes back as bytes, so
no temporary corpus or model file is written (the one exception, the seed-piece file of
``train_spm_with_lexicon(..., as_user_symbols=False)``, lives in a temporary directory that is
removed before the function returns).

Defaults that differ from sentencepiece's own (spec §2.13 lists those):

- special ids ``pad=0, unk=1, bos=2, eos=3`` (sentencepiece: unk 0, bos 1, eos 2, no pad), so that
  a zero-padded batch is padding; pass ``None`` to drop a special piece;
- ``normalization_rule_name="identity"`` and ``remove_extra_whitespaces=False`` (sentencepiece:
  ``nmt_nfkc`` and ``True``): NFKC rewrites the full-width punctuation of Chinese text (，→ ,),
  so ``decode(encode(x)) == x`` would fail for ordinary Chinese sentences; with these two settings
  the round trip is exact for every text whose characters are in the vocabulary.

References:
    Kudo & Richardson 2018, SentencePiece, arXiv:1808.06226; Kudo 2018, subword regularization
    (unigram LM), arXiv:1804.10959; https://github.com/google/sentencepiece/blob/master/doc/options.md
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

__all__ = ["SentencePieceTokenizer", "train_spm_with_lexicon"]

ModelType = Literal["unigram", "bpe", "char", "word"]
PathLike = str | os.PathLike[str]


def _iter_file_lines(paths: Sequence[Path]) -> Iterator[str]:
    """Non-empty lines of UTF-8 files; bad bytes → ValueError naming the file and line."""
    for path in paths:
        with open(path, "rb") as f:
            for lineno, raw in enumerate(f, start=1):
                try:
                    line = raw.decode("utf-8").rstrip("\r\n")
                except UnicodeDecodeError as err:
                    raise ValueError(
                        f"texts_or_files: {path}, line {lineno}: not valid UTF-8 ({err.reason} "
                        f"at byte {err.start} of the line)"
                    ) from None
                if line:
                    yield line


def _as_sentences(texts_or_files: Iterable[str] | Iterable[PathLike] | PathLike) -> Iterator[str]:
    """Lines to train on: one path / a list of ``Path`` → their lines; strings → texts."""
    if isinstance(texts_or_files, (str, os.PathLike)):
        path = Path(texts_or_files)
        if not path.is_file():
            raise ValueError(
                f"texts_or_files: a single string is read as a file name and {path} is not a "
                "file (pass a list of texts to train on texts)"
            )
        return _iter_file_lines([path])
    items = list(texts_or_files)
    if not items:
        raise ValueError("texts_or_files: empty; give texts or file paths to train on")
    if all(isinstance(x, os.PathLike) for x in items):
        paths = [Path(x) for x in items]
        for p in paths:
            if not p.is_file():
                raise ValueError(f"texts_or_files: {p} is not a file")
        return _iter_file_lines(paths)
    if all(isinstance(x, str) for x in items):
        # One sentence per line: sentencepiece treats each iterator item as a sentence.
        return (line for text in items for line in text.splitlines() if line)
    raise ValueError(
        "texts_or_files: give either texts (str) or file paths (pathlib.Path), not a mixture"
    )


class SentencePieceTokenizer:
    """A trained sentencepiece model: encode to ids or pieces, decode, save, load.

    Build one with :meth:`train`, :meth:`load` (a ``.model`` file written by this class or by
    ``spm_train``) or :meth:`from_bytes` (a serialised ``ModelProto``).

    Example:
        >>> tok = SentencePieceTokenizer.train(texts, vocab_size=500)       # doctest: +SKIP
        >>> ids = tok.encode("人民日报社论", add_eos=True)                    # doctest: +SKIP
        >>> tok.decode(ids)                                                 # doctest: +SKIP
        '人民日报社论'

    Arguments:
        model_proto: the serialised model (bytes of a ``.model`` file).

    References:
        Kudo & Richardson 2018, arXiv:1808.06226.
    """

    def __init__(self, model_proto: bytes) -> None:
        import sentencepiece as spm

        if not isinstance(model_proto, (bytes, bytearray)) or not model_proto:
            raise ValueError("model_proto: expected the non-empty bytes of a sentencepiece model")
        self._proto = bytes(model_proto)
        self._sp = spm.SentencePieceProcessor()
        self._sp.LoadFromSerializedProto(self._proto)

    # ------------------------------------------------------------------ construction
    @classmethod
    def train(
        cls,
        texts_or_files: Iterable[str] | Iterable[PathLike] | PathLike,
        *,
        vocab_size: int = 8000,
        model_type: ModelType = "unigram",
        user_defined_symbols: Iterable[str] = (),
        character_coverage: float = 0.9995,
        max_sentencepiece_length: int = 16,
        pad_id: int | None = 0,
        unk_id: int = 1,
        bos_id: int | None = 2,
        eos_id: int | None = 3,
        normalization_rule_name: str = "identity",
        remove_extra_whitespaces: bool = False,
        split_by_whitespace: bool = True,
        byte_fallback: bool = False,
        hard_vocab_limit: bool = True,
        num_threads: int | None = None,
        **options: Any,
    ) -> SentencePieceTokenizer:
        """Train a sentencepiece model in memory on texts or UTF-8 files.

        Arguments:
            texts_or_files: a list/iterable of texts (``str``; each line is one sentence), a list
                of ``pathlib.Path`` files (read line by line, UTF-8), or one file path (``str`` or
                ``Path``). Strings inside a list are always texts: wrap file names in ``Path``.
            vocab_size: pieces in the model, specials and user symbols included (sentencepiece
                default 8000).
            model_type: ``"unigram"`` (default, Kudo 2018), ``"bpe"``, ``"char"`` or ``"word"``.
            user_defined_symbols: pieces that are always kept whole (e.g. discovered terms; spec
                §2.13); they take the ids right after the special pieces.
            character_coverage: share of characters covered by the vocabulary; 0.9995 is
                sentencepiece's default and recommendation for CJK.
            max_sentencepiece_length: longest piece in characters (sentencepiece default 16).
            pad_id, unk_id, bos_id, eos_id: ids of the special pieces (``None`` = no such piece);
                defaults 0/1/2/3 (see the module docstring).
            normalization_rule_name: ``"identity"`` (default here, lossless) or sentencepiece's
                ``"nmt_nfkc"``, ``"nfkc"``, ``"nmt_nfkc_cf"``, ``"nfkc_cf"``.
            remove_extra_whitespaces: collapse runs of spaces and strip the ends (sentencepiece
                default ``True``; ``False`` here, lossless).
            split_by_whitespace: never let a piece cross a space (sentencepiece default).
            byte_fallback: encode out-of-vocabulary characters as UTF-8 byte pieces.
            hard_vocab_limit: ``False`` lets ``vocab_size`` act as an upper bound on small corpora.
            num_threads: trainer threads (default: ``os.cpu_count()``).
            **options: any other trainer flag of sentencepiece's ``options.md`` (e.g.
                ``seed_sentencepieces_file``, ``input_sentence_size``, ``shuffle_input_sentence``).

        Returns:
            The trained tokenizer.

        Raises:
            ValueError: a bad argument, or sentencepiece refused the settings (its message is
                included, e.g. "Vocabulary size is smaller than required_chars").
        """
        import sentencepiece as spm

        if model_type not in ("unigram", "bpe", "char", "word"):
            raise ValueError(
                f"model_type: expected 'unigram', 'bpe', 'char' or 'word', got {model_type!r}"
            )
        if not isinstance(vocab_size, int) or vocab_size < 2:
            raise ValueError(f"vocab_size: expected an int >= 2, got {vocab_size!r}")
        if not 0.0 < character_coverage <= 1.0:
            raise ValueError(f"character_coverage: expected in (0, 1], got {character_coverage}")
        symbols = [str(s) for s in user_defined_symbols]
        for s in symbols:
            if not s or any(ch.isspace() for ch in s):
                raise ValueError(f"user_defined_symbols: {s!r} is empty or contains whitespace")
        if len(set(symbols)) != len(symbols):
            raise ValueError("user_defined_symbols: contains duplicates")
        special = {"pad_id": pad_id, "unk_id": unk_id, "bos_id": bos_id, "eos_id": eos_id}
        ids = [v for v in special.values() if v is not None]
        if len(set(ids)) != len(ids) or any(v < 0 or v >= vocab_size for v in ids):
            raise ValueError(
                f"pad_id/unk_id/bos_id/eos_id: must be distinct ids in [0, vocab_size), got "
                f"{special}"
            )
        sentences = _as_sentences(texts_or_files)
        writer = io.BytesIO()
        kwargs: dict[str, Any] = {
            "vocab_size": vocab_size,
            "model_type": model_type,
            "character_coverage": character_coverage,
            "max_sentencepiece_length": max_sentencepiece_length,
            "normalization_rule_name": normalization_rule_name,
            "remove_extra_whitespaces": remove_extra_whitespaces,
            "split_by_whitespace": split_by_whitespace,
            "byte_fallback": byte_fallback,
            "hard_vocab_limit": hard_vocab_limit,
            "num_threads": num_threads or os.cpu_count() or 1,
            "minloglevel": 2,
            **{k: (-1 if v is None else v) for k, v in special.items()},
            **options,
        }
        if symbols:
            kwargs["user_defined_symbols"] = symbols
        try:
            spm.SentencePieceTrainer.train(
                sentence_iterator=sentences, model_writer=writer, **kwargs
            )
        except RuntimeError as err:
            raise ValueError(f"sentencepiece training failed: {err}") from None
        return cls(writer.getvalue())

    @classmethod
    def from_bytes(cls, model_proto: bytes) -> SentencePieceTokenizer:
        """The tokenizer of a serialised model (the bytes of a ``.model`` file)."""
        return cls(model_proto)

    @classmethod
    def load(cls, path: PathLike) -> SentencePieceTokenizer:
        """Load a ``.model`` file (written by :meth:`save` or by ``spm_train``)."""
        return cls(Path(path).read_bytes())

    def save(self, path: PathLike) -> Path:
        """Write the model to ``path`` atomically (temp file in the same folder + ``os.replace``).

        Returns:
            The path written.
        """
        path = Path(path)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(self._proto)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    def to_bytes(self) -> bytes:
        """The serialised model (what :meth:`save` writes)."""
        return self._proto

    # ------------------------------------------------------------------ vocabulary
    @property
    def vocab_size(self) -> int:
        """Number of pieces (ids are ``0 .. vocab_size - 1``)."""
        return int(self._sp.GetPieceSize())

    def __len__(self) -> int:
        return self.vocab_size

    @property
    def pieces(self) -> list[str]:
        """Every piece, indexed by id."""
        return [self._sp.IdToPiece(i) for i in range(self.vocab_size)]

    @property
    def pad_id(self) -> int:
        """Id of the padding piece, −1 when the model has none."""
        return int(self._sp.pad_id())

    @property
    def unk_id(self) -> int:
        """Id of the unknown piece."""
        return int(self._sp.unk_id())

    @property
    def bos_id(self) -> int:
        """Id of the begin-of-sentence piece, −1 when the model has none."""
        return int(self._sp.bos_id())

    @property
    def eos_id(self) -> int:
        """Id of the end-of-sentence piece, −1 when the model has none."""
        return int(self._sp.eos_id())

    def id_to_piece(self, i: int) -> str:
        """The piece of id ``i`` (ValueError outside ``[0, vocab_size)``)."""
        if not 0 <= i < self.vocab_size:
            raise ValueError(f"i: id {i} outside [0, {self.vocab_size})")
        return str(self._sp.IdToPiece(i))

    def piece_to_id(self, piece: str) -> int:
        """The id of ``piece`` (``unk_id`` when it is not in the vocabulary)."""
        return int(self._sp.PieceToId(piece))

    def is_special(self, i: int) -> bool:
        """Whether id ``i`` is a control or unknown piece (pad, bos, eos, unk)."""
        return bool(self._sp.IsControl(i) or self._sp.IsUnknown(i))

    # ------------------------------------------------------------------ encode / decode
    def encode(self, text: str, *, add_bos: bool = False, add_eos: bool = False) -> list[int]:
        """Ids of ``text``, optionally framed by ``bos_id`` / ``eos_id``."""
        if not isinstance(text, str):
            raise ValueError(f"text: expected str, got {type(text).__name__}")
        self._check_frame(add_bos, add_eos)
        return list(self._sp.Encode(text, add_bos=add_bos, add_eos=add_eos))

    def encode_batch(
        self, texts: Sequence[str], *, add_bos: bool = False, add_eos: bool = False
    ) -> list[list[int]]:
        """:meth:`encode` for each text (one call into sentencepiece)."""
        if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
            raise ValueError("texts: expected a sequence of str")
        self._check_frame(add_bos, add_eos)
        return [list(x) for x in self._sp.Encode(list(texts), add_bos=add_bos, add_eos=add_eos)]

    def encode_as_pieces(self, text: str) -> list[str]:
        """The pieces of ``text`` (strings, ``▁`` marks a preceding space)."""
        if not isinstance(text, str):
            raise ValueError(f"text: expected str, got {type(text).__name__}")
        return list(self._sp.Encode(text, out_type=str))

    def decode(self, ids: Sequence[int], *, skip_special: bool = True) -> str:
        """The text of ``ids``; pad/bos/eos are dropped (``skip_special``), unk shows as ⁇.

        Accepts a list of ints or a 1-D integer tensor/array (anything with ``tolist``).
        """
        seq = ids.tolist() if hasattr(ids, "tolist") else list(ids)
        n = self.vocab_size
        for i in seq:
            if not isinstance(i, int) or not 0 <= i < n:
                raise ValueError(f"ids: {i!r} is not an id in [0, {n})")
        if skip_special:
            drop = {self.pad_id, self.bos_id, self.eos_id} - {-1}
            seq = [i for i in seq if i not in drop]
        return str(self._sp.Decode(seq))

    def decode_batch(
        self, batch: Sequence[Sequence[int]], *, skip_special: bool = True
    ) -> list[str]:
        """:meth:`decode` for each id sequence."""
        return [self.decode(ids, skip_special=skip_special) for ids in batch]

    def _check_frame(self, add_bos: bool, add_eos: bool) -> None:
        if add_bos and self.bos_id < 0:
            raise ValueError("add_bos: the model has no bos piece (trained with bos_id=None)")
        if add_eos and self.eos_id < 0:
            raise ValueError("add_eos: the model has no eos piece (trained with eos_id=None)")

    def __repr__(self) -> str:
        return (
            f"SentencePieceTokenizer(vocab_size={self.vocab_size}, pad_id={self.pad_id}, "
            f"unk_id={self.unk_id}, bos_id={self.bos_id}, eos_id={self.eos_id})"
        )


def train_spm_with_lexicon(
    corpus: Iterable[str] | Iterable[PathLike] | PathLike,
    lexicon: Mapping[str, int] | Iterable[str],
    *,
    as_user_symbols: bool = True,
    vocab_size: int = 8000,
    model_type: ModelType = "unigram",
    max_symbols: int | None = None,
    min_length: int = 2,
    **options: Any,
) -> SentencePieceTokenizer:
    """Train sentencepiece with a discovered lexicon (spec §2.13).

    ``as_user_symbols=True``: the lexicon's words (most frequent first, length ≥ ``min_length``,
    no whitespace) become ``user_defined_symbols``, so they are never split; at most
    ``max_symbols`` of them (default: half of ``vocab_size``, leaving room for the characters the
    model still needs).

    ``as_user_symbols=False``: the words seed unigram training through sentencepiece's
    ``seed_sentencepieces_file`` (lines ``piece<TAB>frequency``; written to a temporary directory
    that is removed afterwards). In sentencepiece 0.2 the seed file *replaces* the suffix-array
    candidates: the vocabulary becomes the characters plus the seed words that EM keeps (EM may
    still prune them), so this is "segment with my lexicon, re-weighted by EM" rather than "add my
    words to the usual candidates". Unigram only (BPE has no seed pieces).

    Arguments:
        corpus: texts or files, as for :meth:`SentencePieceTokenizer.train`.
        lexicon: word → count (e.g. ``WordFinder.words`` or ``discover_ngrams``' output), or
            words in priority order.
        as_user_symbols: see above.
        vocab_size, model_type: as for :meth:`SentencePieceTokenizer.train`.
        max_symbols: cap on the words used (``None``: ``vocab_size // 2`` for user symbols, all
            words for seeding).
        min_length: shortest word used, in characters (single characters are pieces anyway).
        **options: further :meth:`SentencePieceTokenizer.train` options.

    Returns:
        The trained tokenizer.

    References:
        https://kexue.fm/archives/6920 (lexicon discovery);
        https://github.com/google/sentencepiece/blob/master/doc/options.md.
    """
    if isinstance(lexicon, Mapping):
        items = sorted(lexicon.items(), key=lambda kv: (-int(kv[1]), kv[0]))
    else:
        words = list(lexicon)
        items = [(w, len(words) - i) for i, w in enumerate(words)]
    if min_length < 1:
        raise ValueError(f"min_length: expected >= 1, got {min_length}")
    seen: set[str] = set()
    kept: list[tuple[str, int]] = []
    for word, count in items:
        if not isinstance(word, str):
            raise ValueError(f"lexicon: words must be str, got {type(word).__name__}")
        if len(word) < min_length or word in seen or any(ch.isspace() for ch in word):
            continue
        if int(count) <= 0:
            raise ValueError(f"lexicon: count of {word!r} is {count}; counts must be positive")
        seen.add(word)
        kept.append((word, int(count)))
    if max_symbols is not None and max_symbols < 0:
        raise ValueError(f"max_symbols: expected >= 0, got {max_symbols}")
    if as_user_symbols:
        cap = vocab_size // 2 if max_symbols is None else max_symbols
        kept = kept[:cap]
        return SentencePieceTokenizer.train(
            corpus,
            vocab_size=vocab_size,
            model_type=model_type,
            user_defined_symbols=[w for w, _ in kept],
            **options,
        )
    if model_type != "unigram":
        raise ValueError(
            f"model_type: seeding with a lexicon (as_user_symbols=False) needs 'unigram', got "
            f"{model_type!r}; use as_user_symbols=True for BPE"
        )
    if max_symbols is not None:
        kept = kept[:max_symbols]
    with tempfile.TemporaryDirectory(prefix="kexue-spm-") as tmp:
        seed_file = Path(tmp) / "seed_pieces.tsv"
        seed_file.write_text("".join(f"{w}\t{c}\n" for w, c in kept), encoding="utf-8")
        return SentencePieceTokenizer.train(
            corpus,
            vocab_size=vocab_size,
            model_type="unigram",
            seed_sentencepieces_file=str(seed_file),
            **options,
        )
