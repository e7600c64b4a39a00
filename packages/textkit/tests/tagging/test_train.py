"""Tests of kexue.textkit.tagging.train: vocabulary, batching, the train loop and evaluation."""

from __future__ import annotations

import pytest
import torch

from kexue.textkit.tagging.schemes import LabelSet, ner_labels, spans_to_tags, words_to_bmes
from kexue.textkit.tagging.taggers import bilstm_crf_tagger, cnn_crf_tagger
from kexue.textkit.tagging.train import (
    CharVocab,
    encode_tagged,
    evaluate_cws,
    evaluate_ner,
    predict_tags,
    train_tagger,
)

pytestmark = pytest.mark.usefixtures("one_thread")


# ------------------------------------------------------------------------------------------------
# CharVocab
# ------------------------------------------------------------------------------------------------


def test_vocab_order_min_count_and_size() -> None:
    vocab = CharVocab.build(["ccb", "bca", "c"], min_count=1)
    assert vocab.chars == ["c", "b", "a"]  # counts 4, 2, 1
    assert len(vocab) == 5 and vocab.encode("abcz") == [4, 3, 2, CharVocab.UNK]
    assert CharVocab.build(["ccb", "bca", "c"], min_count=2).chars == ["c", "b"]
    assert CharVocab.build(["ccb", "bca", "c"], max_size=1).chars == ["c"]
    assert CharVocab.build(["ba"]).chars == ["a", "b"]  # ties by code point


def test_vocab_round_trip_and_unk() -> None:
    text = "人民日报：１９９８年新年讲话"
    vocab = CharVocab.build([text])
    ids = vocab.encode(text)
    assert min(ids) >= 2 and vocab.decode(ids) == text
    assert vocab.decode(vocab.encode("人民X")) == "人民\ufffd"
    assert vocab.decode([CharVocab.PAD, *ids[:2], CharVocab.PAD]) == text[:2]
    again = CharVocab.from_dict(vocab.to_dict())
    assert again.chars == vocab.chars and again.encode(text) == ids
    assert "人" in vocab and "X" not in vocab


def test_vocab_bad_input() -> None:
    with pytest.raises(ValueError, match="min_count"):
        CharVocab.build(["ab"], min_count=0)
    with pytest.raises(ValueError, match="chars"):
        CharVocab(["ab"])
    with pytest.raises(ValueError, match="distinct"):
        CharVocab(["a", "a"])
    with pytest.raises(ValueError, match="ids"):
        CharVocab(["a"]).decode([3])


def test_encode_tagged_checks_lengths() -> None:
    vocab = CharVocab.build(["abc"])
    labels = LabelSet(["O", "B-X", "I-X"])
    assert encode_tagged(vocab, labels, ["ab"], [["B-X", "I-X"]]) == [([2, 3], [1, 2])]
    with pytest.raises(ValueError, match=r"tags\[0\]"):
        encode_tagged(vocab, labels, ["ab"], [["O"]])
    with pytest.raises(ValueError, match="tags has"):
        encode_tagged(vocab, labels, ["ab", "c"], [["O", "O"]])


# ------------------------------------------------------------------------------------------------
# Training
# ------------------------------------------------------------------------------------------------

TYPES = ("PER", "LOC")


def _toy_ner(n: int, seed: int) -> tuple[list[str], list[list[str]]]:
    """Random sentences over 12 letters; entities are 'xy…' runs typed by their first letter."""
    gen = torch.Generator().manual_seed(seed)
    letters = "abcdefghijkl"
    texts, tags = [], []
    for _ in range(n):
        length = int(torch.randint(6, 14, (1,), generator=gen))
        chars = [letters[int(i)] for i in torch.randint(2, 12, (length,), generator=gen)]
        spans = []
        start = int(torch.randint(0, length - 3, (1,), generator=gen))
        size = int(torch.randint(2, 4, (1,), generator=gen))
        typ = int(torch.randint(0, 2, (1,), generator=gen))
        chars[start] = letters[typ]  # 'a' starts PER, 'b' starts LOC
        spans.append((start, start + size, TYPES[typ]))
        texts.append("".join(chars))
        tags.append(spans_to_tags(spans, length, scheme="BIO"))
    return texts, tags


def _fit(model: torch.nn.Module, texts, tags, labels, *, steps_epochs: int, seed: int = 0):
    vocab = CharVocab.build(texts)
    pairs = encode_tagged(vocab, labels, texts, tags)
    result = train_tagger(
        model,
        pairs,
        epochs=steps_epochs,
        lr=2e-2,
        batch_size=5,
        lr_schedule="constant",
        generator=torch.Generator().manual_seed(seed),
    )
    return vocab, result


@pytest.mark.parametrize(
    "build",
    [
        lambda v, k: cnn_crf_tagger(v, k, dim=32, num_blocks=3, dropout=0.0),
        lambda v, k: cnn_crf_tagger(v, k, dim=32, num_blocks=3, dropout=0.0, head="softmax"),
        lambda v, k: bilstm_crf_tagger(v, k, dim=16, hidden=16, dropout=0.0),
    ],
    ids=["cnn-crf", "cnn-softmax", "bilstm-crf"],
)
def test_tiny_model_overfits_ten_sentences(build) -> None:
    texts, tags = _toy_ner(10, seed=1)
    labels = LabelSet(ner_labels(TYPES))
    model = build(14, len(labels))
    vocab, result = _fit(model, texts, tags, labels, steps_epochs=20)
    assert result.steps == 40 and result.epochs == 20.0
    assert result.losses[-1] < 0.05 * result.losses[0]
    assert predict_tags(model, vocab, labels, texts) == tags
    report = evaluate_ner(model, vocab, labels, texts, tags)
    assert report.micro.f1 == pytest.approx(1.0)
    assert set(report.per_type) == set(TYPES)


def test_cws_model_overfits_and_scores() -> None:
    words = [["人民", "日报", "发表"], ["新年", "讲话"], ["江", "泽民", "主席", "讲话"]]
    texts = ["".join(w) for w in words]
    tags = [words_to_bmes(w) for w in words]
    labels = LabelSet(["B", "M", "E", "S"])
    model = cnn_crf_tagger(20, 4, dim=16, num_blocks=2, dropout=0.0)
    vocab, _ = _fit(model, texts, tags, labels, steps_epochs=20)
    report = evaluate_cws(model, vocab, labels, texts, words, train_words={"人民", "日报"})
    assert report.f1 == pytest.approx(1.0) and report.oov_recall == pytest.approx(1.0)


def test_training_is_deterministic_with_a_seed() -> None:
    texts, tags = _toy_ner(20, seed=2)
    labels = LabelSet(ner_labels(TYPES))
    states, losses = [], []
    for _ in range(2):
        torch.manual_seed(0)
        model = cnn_crf_tagger(
            14, len(labels), dim=16, num_blocks=2, dropout=0.3, block_dropout=0.1
        )
        _, result = _fit(model, texts, tags, labels, steps_epochs=3, seed=5)
        states.append(model.state_dict())
        losses.append(result.losses)
    assert losses[0] == losses[1]
    for key in states[0]:
        assert torch.equal(states[0][key], states[1][key]), key
    # the forked RNG leaves the global stream alone
    torch.manual_seed(0)
    expected = torch.rand(1)
    torch.manual_seed(0)
    model = cnn_crf_tagger(14, len(labels), dim=8, num_blocks=1)
    torch.manual_seed(0)
    _fit(model, texts, tags, labels, steps_epochs=1, seed=5)
    assert torch.equal(torch.rand(1), expected)


def test_max_seconds_stops_and_dev_losses() -> None:
    texts, tags = _toy_ner(40, seed=3)
    labels = LabelSet(ner_labels(TYPES))
    vocab = CharVocab.build(texts)
    pairs = encode_tagged(vocab, labels, texts, tags)
    model = cnn_crf_tagger(len(vocab), len(labels), dim=8, num_blocks=1, head="softmax")
    result = train_tagger(model, pairs, pairs[:5], epochs=1000, batch_size=4, max_seconds=0.2)
    assert result.stopped_by_time and 1 <= result.steps < 10_000 and result.epochs < 1000
    assert len(result.dev_losses) == len(result.epoch_losses) >= 1
    full = train_tagger(model, pairs, pairs[:5], epochs=2, batch_size=8)
    assert not full.stopped_by_time and full.steps == 10 and len(full.dev_losses) == 2


def test_predict_keeps_order_and_empty_texts() -> None:
    labels = LabelSet(["O", "B-X", "I-X"])

    class EchoTagger(torch.nn.Module):
        """Tags every character with id (char id mod 3): lets the test see the order."""

        def decode(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            return (ids % 3).masked_fill(~mask, 0)

    vocab = CharVocab(list("abcdef"))  # a → 2, b → 3, …
    texts = ["abcd", "", "b", "cab"]
    out = predict_tags(EchoTagger(), vocab, labels, texts, batch_size=2)
    expected = [[labels.labels[i % 3] for i in vocab.encode(t)] for t in texts]
    assert out == expected and out[1] == []


def test_train_bad_arguments() -> None:
    model = cnn_crf_tagger(10, 3, dim=8, head="softmax")
    pairs = [([2, 3], [0, 1])]
    with pytest.raises(ValueError, match="train"):
        train_tagger(model, [])
    with pytest.raises(ValueError, match=r"train\[0\]"):
        train_tagger(model, [([2, 3], [0])])
    with pytest.raises(ValueError, match="epochs"):
        train_tagger(model, pairs, epochs=0)
    with pytest.raises(ValueError, match="lr"):
        train_tagger(model, pairs, lr=-1.0)
    with pytest.raises(ValueError, match="max_seconds"):
        train_tagger(model, pairs, max_seconds=0)
    with pytest.raises(ValueError, match="batch_size"):
        train_tagger(model, pairs, batch_size=0)
    with pytest.raises(ValueError, match="lr_schedule"):
        train_tagger(model, pairs, lr_schedule="cosine")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="gold_tags"):
        evaluate_ner(model, CharVocab(["a"]), LabelSet(["O"]), ["a"], [])
