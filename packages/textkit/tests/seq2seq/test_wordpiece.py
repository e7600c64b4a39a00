"""WordPieceTokenizer: parity with transformers' BERT tokenizers, bert4keras differences, offsets,
decode, the simplified vocabulary and the saved files (spec §8 parity 4)."""

from __future__ import annotations

import pytest

from kexue.textkit.seq2seq.wordpiece import WordPieceTokenizer, is_cjk, is_punctuation

WORDS = ["hello", "world", "bert", "un", "##aff", "##able", "café", "cafe", "ok", "a", "b"]
WORDS += ["Hello", "World", "BERT", "Café", "Paris", "run", "##ning", "é", "e", "the", "cat"]
TEXTS = [
    "北京欢迎你，我爱自然语言处理。",
    "Hello World! unaffable running cats",
    "BERT在北京 runs 很快: 3.14 + 2 = 5?",
    "“引号”（括号）【书名】——破折号……省略",
    "ＦＵＬＬ　ｗｉｄｔｈ　全角１２３",
    "emoji 😀 ok😀ok 👍🏽 表情",
    "a\u00a0b\u3000c\u200bd\u2028e",
    "ctrl\x00a\x07b\x1bc\ufffdd\te\nf\rg",
    "private \ue000 use \U000f0000 end",
    "한국어 日本語のかな カタカナ",
    "cafe\u0301 Café CAFÉ",
    "ext-B 𠀀𠀁 字",
    "x" * 120 + " tail",
    "[CLS] literal [SEP] and [MASK] here",
    "",
    "   ",
]


def _vocab() -> list[str]:
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = sorted({c for t in TEXTS for c in t if is_cjk(c) or is_punctuation(c)})
    ascii_ = [chr(c) for c in range(33, 127)]
    vocab = specials + WORDS + ascii_ + ["##" + c for c in "abcdefghijklmnopqrstuvwxyz"]
    return list(dict.fromkeys(vocab + chars + ["x" * 3, "##x", "##xx"]))


@pytest.fixture(scope="module")
def vocab_file(tmp_path_factory):
    p = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    p.write_text("\n".join(_vocab()) + "\n", encoding="utf-8")
    return p


@pytest.mark.parametrize("lower", [True, False])
def test_ids_equal_transformers_bert_tokenizers(vocab_file, lower) -> None:
    transformers = pytest.importorskip("transformers")
    fast = transformers.BertTokenizer(str(vocab_file), do_lower_case=lower)
    legacy = transformers.BertTokenizerLegacy(str(vocab_file), do_lower_case=lower)
    ours = WordPieceTokenizer(vocab_file, do_lower_case=lower)
    ours_nfc = WordPieceTokenizer(vocab_file, do_lower_case=lower, nfc=True)
    for text in TEXTS:
        got = ours.encode(text)
        assert got == fast.encode(text, add_special_tokens=False), text
        assert ours_nfc.encode(text) == legacy.encode(text, add_special_tokens=False), text
        assert ours.tokenize(text) == fast.tokenize(text), text
    # the NFC gap (spec §3.3): cased, decomposed é is [UNK] in Rust, é in the legacy tokenizer
    if not lower:
        assert ours.tokenize("cafe\u0301") == ["[UNK]"]
        assert ours_nfc.tokenize("cafe\u0301") == ["café"]


def test_offsets_equal_tokenizers_and_index_the_original_text(vocab_file) -> None:
    tokenizers = pytest.importorskip("tokenizers")
    ref = tokenizers.BertWordPieceTokenizer(str(vocab_file), lowercase=True)
    ours = WordPieceTokenizer(vocab_file)
    for text in TEXTS:
        enc = ref.encode(text, add_special_tokens=False)
        assert ours.offsets(text) == [tuple(o) for o in enc.offsets], text
    text = "BERT在北京 runs"
    spans = ours.offsets(text)
    assert [text[a:b] for a, b in spans] == ["BERT", "在", "北", "京", "run", "s"]


def test_bert4keras_compat_rows(vocab_file) -> None:
    hf = WordPieceTokenizer(vocab_file)
    b4k = WordPieceTokenizer(vocab_file, compat="bert4keras")
    # private-use characters: removed by HF, kept by bert4keras (the word becomes [UNK])
    assert hf.tokenize("ok\ue000ok") == ["ok", "##o", "##k"]
    assert b4k.tokenize("ok\ue000ok") == ["[UNK]"]
    # words over 100 characters: [UNK] in HF, split by bert4keras (limit 200)
    assert hf.tokenize("x" * 120) == ["[UNK]"]
    assert b4k.tokenize("x" * 120) == ["xxx"] + ["##xx"] * 58 + ["##x"]
    # literal special tokens stay whole in HF only
    assert hf.tokenize("[CLS]") == ["[CLS]"]
    assert b4k.tokenize("[CLS]") == ["[", "c", "##l", "##s", "]"]
    # Cc / Cf characters are dropped by both; offsets still index the original text
    text = "a\x07b\u200bc 北京"
    assert b4k.tokenize(text) == hf.tokenize(text)
    assert b4k.tokenize(text) == ["a", "##b", "##c", "北", "京"]
    assert b4k.offsets(text) == hf.offsets(text) == [(0, 1), (2, 3), (4, 5), (6, 7), (7, 8)]


def test_specials_pair_decode_and_interface(vocab_file) -> None:
    tok = WordPieceTokenizer(vocab_file)
    assert (tok.pad_id, tok.unk_id, tok.bos_id, tok.eos_id, tok.mask_id) == (0, 1, 2, 3, 4)
    ids, segs = tok.encode_pair("北京欢迎你", "hello world")
    assert ids[0] == tok.bos_id and ids.count(tok.eos_id) == 2
    assert segs == [0] * 7 + [1] * 3
    ids, segs = tok.encode_pair("北京欢迎你北京欢迎你", "你好", maxlen=8)
    assert len(ids) == 8 and segs.count(1) == 3
    assert (
        tok.decode(tok.encode("北京欢迎你，我爱自然语言处理。")) == "北京欢迎你，我爱自然语言处理。"
    )
    assert tok.decode(tok.encode("hello world 北京")) == "hello world北京"
    assert tok.decode(tok.encode("unaffable")) == "unaffable"
    assert tok.encode_batch(TEXTS[:3]) == [tok.encode(t) for t in TEXTS[:3]]


def test_simplified_vocab_drops_unreachable_tokens_and_saves(tmp_path, vocab_file) -> None:
    tok = WordPieceTokenizer(vocab_file)
    extra = WordPieceTokenizer([*tok.vocab, "北京", "##京", "，。", "##ab"])
    small, keep = extra.simplified()
    assert "北京" not in small.vocab and "##京" not in small.vocab and "，。" not in small.vocab
    assert "##ab" in small.vocab and "[MASK]" not in small.vocab
    assert small.vocab[:4] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
    assert [extra.vocab[i] for i in keep] == small.vocab
    text = "北京欢迎你 hello"
    assert small.tokenize(text) == extra.tokenize(text)
    tok.save_pretrained(tmp_path)
    back = WordPieceTokenizer.from_pretrained(tmp_path)
    assert back.vocab == tok.vocab and back.do_lower_case
    transformers = pytest.importorskip("transformers")
    hf = transformers.BertTokenizer.from_pretrained(tmp_path)
    assert (hf.cls_token_id, hf.sep_token_id, hf.mask_token_id) == (2, 3, 4)
    assert hf.encode("北京 hello", add_special_tokens=False) == tok.encode("北京 hello")
