"""SentencePieceTokenizer and train_spm_with_lexicon: round trips, user symbols, BPE/unigram."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from kexue.textkit.seq2seq.tokenizer import SentencePieceTokenizer, train_spm_with_lexicon

TERMS = ["天安门广场", "人民日报", "经济发展"]


def _corpus(n: int = 120, seed: int = 0) -> list[str]:
    """Random sentences over a few words, the TERMS planted in many of them."""
    rng = random.Random(seed)
    filler = ["我们", "在", "北京", "看", "报道", "了", "这件事", "生活", "水平", "提高", "很快"]
    out = []
    for _ in range(n):
        words = [rng.choice(filler) for _ in range(rng.randint(3, 8))]
        if rng.random() < 0.7:
            words.insert(rng.randrange(len(words) + 1), rng.choice(TERMS))
        out.append("".join(words) + rng.choice(["。", "，", "！"]))
    return out


@pytest.fixture(scope="module")
def corpus() -> list[str]:
    return _corpus()


@pytest.mark.parametrize("model_type", ["unigram", "bpe"])
def test_train_round_trip_and_specials(corpus: list[str], model_type: str) -> None:
    tok = SentencePieceTokenizer.train(corpus, vocab_size=60, model_type=model_type)
    assert tok.vocab_size == 60 == len(tok.pieces) == len(tok)
    assert (tok.pad_id, tok.unk_id, tok.bos_id, tok.eos_id) == (0, 1, 2, 3)
    assert tok.pieces[:4] == ["<pad>", "<unk>", "<s>", "</s>"]
    for text in [*corpus[:20], "北京，我们看 报道！"]:
        ids = tok.encode(text)
        assert all(4 <= i < 60 for i in ids)
        assert tok.decode(ids) == text  # identity normalisation: exact round trip
        framed = tok.encode(text, add_bos=True, add_eos=True)
        assert framed == [2, *ids, 3]
        assert tok.decode(framed) == text
        assert tok.decode(framed, skip_special=False) == text  # control pieces decode to ""
    # Merges happened: the corpus needs fewer pieces than characters.
    n_pieces = sum(len(tok.encode(t)) for t in corpus)
    n_chars = sum(len(t) for t in corpus)
    assert n_pieces < 0.8 * n_chars


def test_unknown_characters_map_to_unk(corpus: list[str]) -> None:
    tok = SentencePieceTokenizer.train(corpus, vocab_size=60)
    ids = tok.encode("鑫")
    assert tok.unk_id in ids
    assert "⁇" in tok.decode(ids)


def test_batch_equals_single(corpus: list[str]) -> None:
    tok = SentencePieceTokenizer.train(corpus, vocab_size=60)
    batch = tok.encode_batch(corpus[:10], add_eos=True)
    assert batch == [tok.encode(t, add_eos=True) for t in corpus[:10]]
    assert tok.decode_batch(batch) == corpus[:10]


def test_user_defined_symbols_never_split(corpus: list[str]) -> None:
    symbols = ["人民日报", "天安门广场", "北京看"]
    tok = SentencePieceTokenizer.train(corpus, vocab_size=60, user_defined_symbols=symbols)
    # User symbols take the ids right after the specials.
    assert tok.pieces[4:7] == symbols
    rng = random.Random(1)
    for _ in range(50):
        sym = rng.choice(symbols)
        left = "".join(rng.choice("我们在北京看报道了这件事") for _ in range(rng.randint(0, 5)))
        right = "".join(rng.choice("我们在北京看报道了这件事") for _ in range(rng.randint(0, 5)))
        pieces = tok.encode_as_pieces(left + sym + right)
        assert sym in pieces or sym in [p.lstrip("▁") for p in pieces]
        assert tok.decode(tok.encode(left + sym + right)) == left + sym + right
    # The same text without the symbol option is cut differently for a rare symbol.
    plain = SentencePieceTokenizer.train(corpus, vocab_size=60)
    assert "北京看" not in plain.pieces


def test_iterator_and_file_inputs_give_the_same_model(tmp_path: Path, corpus: list[str]) -> None:
    a = SentencePieceTokenizer.train(iter(corpus), vocab_size=60, num_threads=1)
    f1, f2 = tmp_path / "a.txt", tmp_path / "b.txt"
    f1.write_text("\n".join(corpus[:60]) + "\n", encoding="utf-8")
    f2.write_text("\n".join(corpus[60:]) + "\n", encoding="utf-8")
    b = SentencePieceTokenizer.train([f1, f2], vocab_size=60, num_threads=1)
    assert a.pieces == b.pieces
    c = SentencePieceTokenizer.train(str(f1), vocab_size=40, hard_vocab_limit=False)
    assert c.vocab_size <= 40
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.txt"]  # nothing left


def test_save_load_and_bytes(tmp_path: Path, corpus: list[str]) -> None:
    tok = SentencePieceTokenizer.train(corpus, vocab_size=60)
    path = tok.save(tmp_path / "m.model")
    assert [p.name for p in tmp_path.iterdir()] == ["m.model"]  # temp file replaced
    again = SentencePieceTokenizer.load(path)
    assert again.pieces == tok.pieces
    assert again.encode(corpus[3]) == tok.encode(corpus[3])
    assert SentencePieceTokenizer.from_bytes(tok.to_bytes()).pieces == tok.pieces
    assert tok.piece_to_id(tok.id_to_piece(10)) == 10
    assert tok.is_special(0) and tok.is_special(1) and not tok.is_special(10)


def test_train_spm_with_lexicon_user_symbols(corpus: list[str]) -> None:
    lexicon = {"人民日报": 80, "天安门广场": 40, "经济发展": 60, "京": 999, "我 们": 5}
    tok = train_spm_with_lexicon(corpus, lexicon, vocab_size=60)
    # Most frequent first; single characters and words with spaces are skipped.
    assert tok.pieces[4:7] == ["人民日报", "经济发展", "天安门广场"]
    pieces = tok.encode_as_pieces("在天安门广场看人民日报的经济发展")
    for term in TERMS:
        assert term in [p.lstrip("▁") for p in pieces]
    capped = train_spm_with_lexicon(corpus, lexicon, vocab_size=60, max_symbols=1)
    assert capped.pieces[4] == "人民日报" and "天安门广场" not in capped.pieces[4:6]


def test_train_spm_with_lexicon_seeds(corpus: list[str]) -> None:
    tok = train_spm_with_lexicon(
        corpus, TERMS, as_user_symbols=False, vocab_size=60, hard_vocab_limit=False
    )
    # The seed file replaces sentencepiece's suffix-array candidates: the vocabulary is the
    # specials, the characters and the seed words EM keeps (all three, frequent here).
    multi = {p for p in tok.pieces[4:] if len(p.lstrip("▁")) > 1}
    assert multi == set(TERMS)
    assert not any(tok.is_special(tok.piece_to_id(t)) for t in TERMS)
    with pytest.raises(ValueError, match="model_type"):
        train_spm_with_lexicon(corpus, TERMS, as_user_symbols=False, model_type="bpe")


def test_bad_inputs(tmp_path: Path, corpus: list[str]) -> None:
    with pytest.raises(ValueError, match="model_type"):
        SentencePieceTokenizer.train(corpus, vocab_size=60, model_type="wordpiece")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="vocab_size"):
        SentencePieceTokenizer.train(corpus, vocab_size=1)
    with pytest.raises(ValueError, match="sentencepiece training failed"):
        SentencePieceTokenizer.train(corpus, vocab_size=5000)
    with pytest.raises(ValueError, match="user_defined_symbols"):
        SentencePieceTokenizer.train(corpus, vocab_size=60, user_defined_symbols=["a b"])
    with pytest.raises(ValueError, match="pad_id"):
        SentencePieceTokenizer.train(corpus, vocab_size=60, pad_id=1)
    with pytest.raises(ValueError, match="texts_or_files"):
        SentencePieceTokenizer.train([], vocab_size=60)
    with pytest.raises(ValueError, match="texts_or_files"):
        SentencePieceTokenizer.train(str(tmp_path / "missing.txt"), vocab_size=60)
    bad = tmp_path / "bad.txt"
    bad.write_bytes("好的\n".encode() * 3 + b"\xff\xfe\n")
    with pytest.raises(ValueError, match=r"bad\.txt, line 4"):
        SentencePieceTokenizer.train([bad], vocab_size=60)
    tok = SentencePieceTokenizer.train(corpus, vocab_size=60, bos_id=None)
    assert tok.bos_id == -1
    with pytest.raises(ValueError, match="add_bos"):
        tok.encode("北京", add_bos=True)
    with pytest.raises(ValueError, match="ids"):
        tok.decode([0, 60])
    with pytest.raises(ValueError, match="model_proto"):
        SentencePieceTokenizer(b"")
