"""The candidate-term filter shared by domain mining and seed expansion: :func:`is_good_term`.

Basic rules plus the author's optional strict rules (spec §2.4 item 6) of Su Jianlin's DataFountain
electric-power entry.

References:
    - Su Jianlin, "基于“词向量+Matrix67平滑”的领域词汇挖掘" (DataFountain), https://kexue.fm/archives/6540
"""

from __future__ import annotations

import itertools
import unicodedata

__all__ = ["DEFAULT_STOP_CHARS", "is_good_term"]

#: Function characters that never start or end a term (the basic filter's "stop characters").
DEFAULT_STOP_CHARS = "的了着是这那之其与及或"

# Author's strict filter, summarised (spec §2.4 item 6); representative lists, not his full ones.
_DEGREE_CHARS = "较很越增多少大小长短高低好差的了这那到"
_GENERIC_SUFFIXES = (
    "问题", "市场", "管理", "工作", "情况", "方面", "方法", "方式", "过程", "水平", "能力", "时间",
    "时候", "地方", "部门", "单位", "人员", "领域", "内容", "结果", "原因", "作用", "影响", "因素",
    "措施", "标准", "要求", "目标", "计划", "活动", "服务", "情形", "状况", "条件", "关系",
)  # fmt: skip
_PREFIXES = ("考虑", "一个", "这个", "那个", "进行", "通过", "根据", "对于", "关于", "由于")
_DEGREE_WORDS = ("博士", "硕士", "学士", "本科", "专科")
_NUMERALS = set("零〇一二三四五六七八九十百千万亿两几")


def _is_han(ch: str) -> bool:
    return "\u4e00" <= ch <= "\u9fa5"


def is_good_term(
    term: str,
    *,
    min_length: int = 2,
    max_length: int | None = None,
    allow_digits: bool = False,
    stop_chars: str = DEFAULT_STOP_CHARS,
    strict: bool = False,
) -> bool:
    """Whether ``term`` is a plausible domain term (the default, pluggable candidate filter).

    Basic rules: ``min_length ≤ len ≤ max_length``; no punctuation, symbol, space or control
    character (Unicode categories P*, S*, Z*, C*); no digit unless ``allow_digits``; neither first
    nor last character in ``stop_chars`` (function characters: 的了着是这那之其与及或).

    ``strict=True`` adds the author's rules (spec §2.4 item 6, summarised with representative
    lists): at least one Han character; none of 较很越增多少大小长短高低好差的了这那到; no generic
    noun suffix (问题, 市场, 管理, …), no prefix like 考虑/一个/进行, no degree word (博士, …); no
    character repeated back to back; not a two-character numeral (十万, 两千); not containing
    进一步. (His "rare component glyphs only" rule needs a glyph list and is not reproduced.)

    Arguments:
        term: candidate word.
        min_length, max_length: length bounds in characters (default 2 and none).
        allow_digits: accept digits (default False).
        stop_chars: characters a term may not start or end with.
        strict: add the author's rules.

    Returns:
        True when the term passes.

    References:
        https://kexue.fm/archives/6540 (``is_good``).
    """
    n = len(term)
    if n == 0 or n < min_length or (max_length is not None and n > max_length):
        return False
    for ch in term:
        cat = unicodedata.category(ch)
        if cat[0] in "PSZC":
            return False
        if not allow_digits and cat[0] == "N":
            return False
    if term[0] in stop_chars or term[-1] in stop_chars:
        return False
    if not strict:
        return True
    if not any(_is_han(ch) for ch in term):
        return False
    if any(ch in _DEGREE_CHARS for ch in term) or "进一步" in term:
        return False
    if term.endswith(_GENERIC_SUFFIXES) or term.startswith(_PREFIXES):
        return False
    if any(w in term for w in _DEGREE_WORDS):
        return False
    if any(a == b for a, b in itertools.pairwise(term)):
        return False
    return not (n == 2 and all(ch in _NUMERALS for ch in term))
