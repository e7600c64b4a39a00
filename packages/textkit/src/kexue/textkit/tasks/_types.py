"""Private typing helpers shared by the seq2seq task modules."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

__all__: list[str] = []


class TokenizerLike(Protocol):
    """What the task helpers need of a tokenizer (``SentencePieceTokenizer`` has it)."""

    pad_id: int
    bos_id: int
    eos_id: int

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: Sequence[int]) -> str: ...
