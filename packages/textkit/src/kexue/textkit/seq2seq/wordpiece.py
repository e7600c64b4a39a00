"""BERT WordPiece tokenisation through ``tokenizers``, built offline from a ``vocab.txt``.

``compat="hf"`` (default) is Google's / HF's BERT tokenizer (spec §3.1): clean the text (drop
NUL, U+FFFD and every category-C character but ``\\t \\n \\r``; whitespace → space), a space
around each CJK ideograph, lower-casing and accent stripping when configured, punctuation split
off (ASCII 33–47, 58–64, 91–96, 123–126 and category P*), then greedy longest-match WordPiece
(``##`` continuations; a word over ``max_input_chars_per_word`` characters, or with any
unmatched position, is one ``[UNK]``). Special tokens written in the text stay whole. It equals
``transformers.BertTokenizer`` (``nfc=True``: its legacy slow tokenizer, which NFC-normalises
first) and ``tokenizers.BertWordPieceTokenizer`` (``nfc=False``).

``compat="bert4keras"`` reproduces ``bert4keras.tokenizers.Tokenizer`` where it differs (spec
§3.2): only Cc/Cf characters are dropped (private-use, unassigned and surrogate characters stay,
so their word becomes ``[UNK]``), words up to 200 characters are split, and special-token
strings in the text are split like any text (``[CLS]`` → ``[``, ``cl``, ``##s``, ``]``).

Token ↔ character offsets (:meth:`WordPieceTokenizer.offsets`) index the ORIGINAL text, as
bert4keras's ``rematch`` does. :meth:`WordPieceTokenizer.decode` joins CJK without spaces.

References: google-research/bert ``tokenization.py``; bert4keras ``tokenizers.py``;
https://kexue.fm/archives/7115 (the reading-comprehension example's simplified vocabulary).
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["SPECIAL_TOKENS", "WordPieceTokenizer", "is_cjk", "is_punctuation"]

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
_CJK = (
    (0x4E00, 0x9FFF),
    (0x3400, 0x4DBF),
    (0x20000, 0x2A6DF),
    (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F),
    (0x2B820, 0x2CEAF),
    (0xF900, 0xFAFF),
    (0x2F800, 0x2FA1F),
)


def is_cjk(ch: str) -> bool:
    """Whether ``ch`` is a CJK ideograph in BERT's ranges (spec §3.1 step 2)."""
    cp = ord(ch)
    return any(a <= cp <= b for a, b in _CJK)


def is_punctuation(ch: str) -> bool:
    """BERT's punctuation: ASCII non-alphanumeric symbols or Unicode category P*."""
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def _read_vocab(vocab: str | Path | Sequence[str] | Mapping[str, int]) -> list[str]:
    if isinstance(vocab, Mapping):
        tokens = sorted(vocab, key=vocab.__getitem__)
        if [vocab[t] for t in tokens] != list(range(len(tokens))):
            raise ValueError("vocab mapping ids must be 0..V-1")
        return tokens
    if isinstance(vocab, (str, Path)):
        p = Path(vocab)
        if p.is_dir():
            p = p / "vocab.txt"
        return [line.rstrip("\r\n") for line in p.read_text(encoding="utf-8").splitlines()]
    return [str(t) for t in vocab]


def _bert4keras_clean(text: str) -> tuple[str, list[int]]:
    """bert4keras's cleaning (drop NUL, U+FFFD, Cc and Cf but keep \\t \\n \\r), with the index
    in ``text`` of every kept character."""
    out, index = [], []
    for i, ch in enumerate(text):
        if ch in "\t\n\r":
            out.append(" ")
        elif ch in "\x00\ufffd" or unicodedata.category(ch) in ("Cc", "Cf"):
            continue
        else:
            out.append(ch)
        index.append(i)
    return "".join(out), index


class WordPieceTokenizer:
    """BERT WordPiece with BasicTokenizer semantics and offsets (see the module docstring).

    Arguments:
        vocab: a ``vocab.txt`` path (or its folder), a token list in id order, or ``{token: id}``.
        do_lower_case: lower-case (and strip accents unless ``strip_accents=False``); default
            True (Chinese Google/HFL models are uncased). A warning-free False on a vocabulary
            without capitals turns capitalised words into ``[UNK]``, as HF does.
        strip_accents: None = follow ``do_lower_case`` (HF), True / False force it.
        tokenize_chinese_chars: a space around every CJK ideograph (default True).
        nfc: NFC-normalise first, as ``transformers``' legacy slow tokenizer (default False:
            Google / ``tokenizers`` / bert4keras).
        max_input_chars_per_word: longer words become ``[UNK]`` (default 100; 200 with
            ``compat="bert4keras"``).
        compat: ``"hf"`` or ``"bert4keras"`` (module docstring).

    Interface of :class:`~kexue.textkit.tasks._types.TokenizerLike`: ``pad_id``, ``bos_id``
    (``[CLS]``), ``eos_id`` (``[SEP]``), ``unk_id``, ``mask_id``; :meth:`encode` returns ids
    WITHOUT special tokens.
    """

    def __init__(
        self,
        vocab: str | Path | Sequence[str] | Mapping[str, int],
        *,
        do_lower_case: bool = True,
        strip_accents: bool | None = None,
        tokenize_chinese_chars: bool = True,
        nfc: bool = False,
        max_input_chars_per_word: int | None = None,
        compat: str = "hf",
    ) -> None:
        from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers
        from tokenizers.models import WordPiece

        if compat not in ("hf", "bert4keras"):
            raise ValueError(f"compat must be 'hf' or 'bert4keras', got {compat!r}")
        self.vocab = _read_vocab(vocab)
        self._ids = {t: i for i, t in enumerate(self.vocab)}
        if len(self._ids) != len(self.vocab):
            raise ValueError("vocab has duplicate tokens")
        for t in ("[UNK]", "[CLS]", "[SEP]"):
            if t not in self._ids:
                raise ValueError(f"vocab lacks {t}")
        self.do_lower_case, self.strip_accents = do_lower_case, strip_accents
        self.tokenize_chinese_chars, self.nfc, self.compat = tokenize_chinese_chars, nfc, compat
        if max_input_chars_per_word is None:
            max_input_chars_per_word = 200 if compat == "bert4keras" else 100
        self.max_input_chars_per_word = max_input_chars_per_word
        tok = Tokenizer(
            WordPiece(
                self._ids, unk_token="[UNK]", max_input_chars_per_word=max_input_chars_per_word
            )
        )
        norm = normalizers.BertNormalizer(
            clean_text=compat == "hf",
            handle_chinese_chars=tokenize_chinese_chars,
            strip_accents=strip_accents,
            lowercase=do_lower_case,
        )
        tok.normalizer = normalizers.Sequence([normalizers.NFC(), norm]) if nfc else norm
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok.decoder = decoders.WordPiece(prefix="##")
        if compat == "hf":
            tok.add_special_tokens([t for t in SPECIAL_TOKENS if t in self._ids])
        self._tok = tok

    # -- ids of the special tokens -------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        """Number of tokens ``V``."""
        return len(self.vocab)

    def token_to_id(self, token: str) -> int:
        """Id of ``token`` (``[UNK]``'s when absent)."""
        return self._ids.get(token, self._ids["[UNK]"])

    @property
    def pad_id(self) -> int:
        """``[PAD]`` (0 when the vocabulary has none)."""
        return self._ids.get("[PAD]", 0)

    @property
    def unk_id(self) -> int:
        """``[UNK]``."""
        return self._ids["[UNK]"]

    @property
    def bos_id(self) -> int:
        """``[CLS]``."""
        return self._ids["[CLS]"]

    @property
    def eos_id(self) -> int:
        """``[SEP]``."""
        return self._ids["[SEP]"]

    @property
    def mask_id(self) -> int:
        """``[MASK]`` (raises when the vocabulary has none)."""
        if "[MASK]" not in self._ids:
            raise ValueError("vocab has no [MASK] token")
        return self._ids["[MASK]"]

    # -- encoding ------------------------------------------------------------------------------
    def _encode(self, text: str):
        if self.compat == "bert4keras":
            cleaned, index = _bert4keras_clean(text)
            return self._tok.encode(cleaned, add_special_tokens=False), index
        return self._tok.encode(text, add_special_tokens=False), None

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` WITHOUT ``[CLS]``/``[SEP]``."""
        return list(self._encode(text)[0].ids)

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """:meth:`encode` of many texts (``tokenizers``' parallel batch path for ``"hf"``)."""
        if self.compat == "bert4keras":
            return [self.encode(t) for t in texts]
        return [e.ids for e in self._tok.encode_batch(list(texts), add_special_tokens=False)]

    def tokenize(self, text: str) -> list[str]:
        """Token strings of ``text`` (no specials added)."""
        return list(self._encode(text)[0].tokens)

    def offsets(self, text: str) -> list[tuple[int, int]]:
        """``(start, end)`` character span in ``text`` of every token of :meth:`encode`
        (``text[start:end]`` is the token's source; bert4keras ``rematch``)."""
        return self.encode_with_offsets(text)[1]

    def encode_with_offsets(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        """:meth:`encode` and :meth:`offsets` from one pass."""
        enc, index = self._encode(text)
        spans = [(int(a), int(b)) for a, b in enc.offsets]
        if index is not None:
            spans = [
                (index[a], index[b - 1] + 1) if b > a else (index[a], index[a]) for a, b in spans
            ]
        return list(enc.ids), spans

    def encode_pair(
        self, first: str, second: str | None = None, *, maxlen: int | None = None
    ) -> tuple[list[int], list[int]]:
        """``[CLS] A [SEP] (B [SEP])`` ids and segment ids (0 … 0, 1 … 1); with ``maxlen`` the
        longer side is truncated first (bert4keras ``encode``)."""
        a = self.encode(first)
        b = self.encode(second) if second is not None else []
        if maxlen is not None:
            budget = maxlen - 2 - (1 if second is not None else 0)
            while len(a) + len(b) > max(budget, 0):
                (a if len(a) >= len(b) else b).pop()
        ids = [self.bos_id, *a, self.eos_id]
        segs = [0] * len(ids)
        if second is not None:
            ids += [*b, self.eos_id]
            segs += [1] * (len(b) + 1)
        return ids, segs

    def decode(self, ids: Sequence[int]) -> str:
        """Text of ``ids`` (specials skipped), CJK joined without spaces (bert4keras ``decode``)."""
        tokens = [self.vocab[int(i)] for i in ids if self.vocab[int(i)] not in SPECIAL_TOKENS]
        text = ""
        for token in tokens:
            if token.startswith("##"):
                text += token[2:]
            elif len(token) == 1 and is_cjk(token):
                text += token
            elif len(token) == 1 and is_punctuation(token):
                text += token + " "
            elif text and is_cjk(text[-1]):
                text += token
            else:
                text += " " + token
        text = re.sub(" +", " ", text)
        text = re.sub(r"' (re|m|s|t|ve|d|ll) ", r"'\1 ", text)
        punct = "".join(re.escape(p) for p in "，。！？；：、（）《》“”‘’【】+-/={(<[")
        text = re.sub(f"([{punct}]) ", r"\1", text)
        text = re.sub(r"(\d\.) (\d)", r"\1\2", text)
        return text.strip()

    # -- vocabulary ------------------------------------------------------------------------------
    def simplified(
        self, startswith: Sequence[str] = ("[PAD]", "[UNK]", "[CLS]", "[SEP]")
    ) -> tuple[WordPieceTokenizer, list[int]]:
        """bert4keras's ``load_vocab(simplified=True)``: drop tokens the tokenizer never
        produces (longer than one character with a CJK or punctuation character in the
        ``##``-stripped stem). ``startswith`` tokens come first. Returns ``(tokenizer,
        keep_tokens)`` — pass ``keep_tokens`` to ``load_bert``."""
        keep: list[int] = [self._ids[t] for t in startswith if t in self._ids]
        seen = set(keep)
        for i, t in enumerate(self.vocab):
            if i in seen:
                continue
            stem = t[2:] if t.startswith("##") else t
            if len(t) > 1 and any(is_cjk(c) or is_punctuation(c) for c in stem):
                continue
            keep.append(i)
        new = WordPieceTokenizer(
            [self.vocab[i] for i in keep],
            do_lower_case=self.do_lower_case,
            strip_accents=self.strip_accents,
            tokenize_chinese_chars=self.tokenize_chinese_chars,
            nfc=self.nfc,
            max_input_chars_per_word=self.max_input_chars_per_word,
            compat=self.compat,
        )
        return new, keep

    @classmethod
    def from_pretrained(cls, folder: str | Path, **overrides: object) -> WordPieceTokenizer:
        """``vocab.txt`` plus ``tokenizer_config.json``'s ``do_lower_case``, ``strip_accents``
        and ``tokenize_chinese_chars`` when present; keyword overrides win."""
        p = Path(folder)
        options: dict[str, object] = {}
        cfg = p / "tokenizer_config.json"
        if cfg.exists():
            data = json.loads(cfg.read_text(encoding="utf-8"))
            for key in ("do_lower_case", "strip_accents", "tokenize_chinese_chars"):
                if data.get(key) is not None:
                    options[key] = data[key]
        options.update(overrides)
        return cls(p / "vocab.txt", **options)  # type: ignore[arg-type]

    def save_pretrained(self, folder: str | Path) -> None:
        """Write ``vocab.txt``, ``tokenizer_config.json`` and ``special_tokens_map.json`` as
        ``transformers.BertTokenizer`` reads them (spec §7.1)."""
        p = Path(folder)
        p.mkdir(parents=True, exist_ok=True)
        (p / "vocab.txt").write_text("\n".join(self.vocab) + "\n", encoding="utf-8")
        cfg = {
            "tokenizer_class": "BertTokenizer",
            "do_lower_case": self.do_lower_case,
            "strip_accents": self.strip_accents,
            "tokenize_chinese_chars": self.tokenize_chinese_chars,
            "model_max_length": 512,
        }
        (p / "tokenizer_config.json").write_text(json.dumps(cfg, indent=2) + "\n", "utf-8")
        names = ("pad_token", "unk_token", "cls_token", "sep_token", "mask_token")
        specials = {n: t for n, t in zip(names, SPECIAL_TOKENS, strict=True) if t in self._ids}
        (p / "special_tokens_map.json").write_text(json.dumps(specials, indent=2) + "\n", "utf-8")
