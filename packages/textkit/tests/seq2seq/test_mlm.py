"""Whole-word masking, word spans, the MLM loss and the pretraining loop (spec §8 semantics 5–6)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from kexue.textkit.seq2seq.mlm import IGNORE_INDEX, mlm_loss, whole_word_mask, word_spans
from kexue.textkit.seq2seq.pretrain import TextFileStream, WholeWordMaskCollator, pretrain_mlm
from kexue.textkit.seq2seq.wordpiece import WordPieceTokenizer

pytestmark = pytest.mark.usefixtures("one_thread")

MASK, V = 4, 100


def _word_batch(rows: int = 200, length: int = 128, seed: int = 0):
    """Random word lengths 1–4 per row, specials (word −1) at both ends and some pads."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, V, (rows, length), generator=g)
    word_ids = torch.full((rows, length), -1)
    for b in range(rows):
        pos, w = 1, 0
        end = length - 1 - int(torch.randint(0, 20, (1,), generator=g))
        while pos < end:
            n = int(torch.randint(1, 5, (1,), generator=g))
            word_ids[b, pos : min(pos + n, end)] = w
            pos, w = pos + n, w + 1
    return ids, word_ids


def test_whole_words_are_masked_together_at_the_rate_with_80_10_10() -> None:
    ids, word_ids = _word_batch(rows=400)
    n_words = sum(len(set(r[r >= 0].tolist())) for r in word_ids)
    assert n_words > 17_000
    chosen_words, tokens, kinds = 0, 0, torch.zeros(3)
    for rep in range(6):  # ≥ 1e5 words in all
        inputs, labels = whole_word_mask(
            ids, word_ids, mask_id=MASK, vocab_size=V, generator=torch.Generator().manual_seed(rep)
        )
        chosen = labels != IGNORE_INDEX
        assert not chosen[word_ids < 0].any()  # specials / pads never chosen
        assert torch.equal(labels[chosen], ids[chosen])
        for b in range(ids.shape[0]):
            for w in word_ids[b][chosen[b]].unique().tolist():  # all tokens of a chosen word
                assert chosen[b][word_ids[b] == w].all()
            chosen_words += word_ids[b][chosen[b]].unique().numel()
        tokens += int(chosen.sum())
        kinds += torch.tensor(
            [
                float((inputs[chosen] == MASK).sum()),
                float((inputs[chosen] == ids[chosen]).sum()),
                float(((inputs[chosen] != MASK) & (inputs[chosen] != ids[chosen])).sum()),
            ]
        )
    rate = chosen_words / (6 * n_words)
    assert abs(rate - 0.15) < 0.005, rate
    # χ² of [MASK] / kept / random against 80/10/10 (a random id may equal the original: ~1 %)
    expected = torch.tensor([0.8, 0.1 + 0.1 / (V - 5), 0.1 * (1 - 1 / (V - 5))]) * tokens
    chi2 = float(((kinds - expected) ** 2 / expected).sum())
    assert chi2 < 13.8, (kinds, expected)  # 2 dof, p = 0.001


def test_budget_policy_respects_max_predictions_and_skips_overflowing_words() -> None:
    ids, word_ids = _word_batch(rows=50, seed=1)
    _, labels = whole_word_mask(
        ids,
        word_ids,
        mask_id=MASK,
        vocab_size=V,
        policy="budget",
        max_predictions=10,
        generator=torch.Generator().manual_seed(0),
    )
    counts = (labels != IGNORE_INDEX).sum(1)
    assert int(counts.max()) <= 10 and int(counts.min()) >= 7  # words ≤ 4 tokens fill ≥ 7
    for b in range(ids.shape[0]):
        chosen = labels[b] != IGNORE_INDEX
        for w in word_ids[b][chosen].unique().tolist():
            assert chosen[word_ids[b] == w].all()


def test_word_spans_map_segmenter_words_to_tokens(tmp_path) -> None:
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *"北京欢迎你很好", "ok", "##ay", "，"]
    tok = WordPieceTokenizer(vocab)
    text = "北京欢迎你，okay 很好"
    ids, offsets = tok.encode_with_offsets(text)
    words = word_spans(text, offsets, lambda t: ["北京", "欢迎", "你", "，", "okay", "很好"])
    assert [tok.vocab[i] for i in ids] == [
        "北",
        "京",
        "欢",
        "迎",
        "你",
        "，",
        "ok",
        "##ay",
        "很",
        "好",
    ]
    assert words == [0, 0, 1, 1, 2, 3, 4, 4, 5, 5]
    with pytest.raises(ValueError, match="not found"):
        word_spans(text, offsets, lambda t: ["上海"])
    # the collator: [CLS]/[SEP]/pads are never labelled
    seg = {text: ["北京", "欢迎", "你", "，", "okay", "很好"], "你很好": ["你", "很好"]}
    coll = WholeWordMaskCollator(tok, seg.__getitem__, rate=0.5)
    batch = coll([text, "你很好"])
    assert batch["inputs"].shape == (2, 12) and batch["mask"][1].sum() == 5
    assert (batch["labels"][:, 0] == IGNORE_INDEX).all() and batch["labels"][1, 4:].eq(-100).all()


def test_mlm_loss_on_gathered_positions_equals_the_full_logits_loss(tiny_bert) -> None:
    model = tiny_bert(V, layers=1)
    ids, word_ids = _word_batch(rows=4, length=20, seed=2)
    mask = word_ids >= 0
    mask[:, 0] = True
    inputs, labels = whole_word_mask(
        ids,
        word_ids,
        mask_id=MASK,
        vocab_size=V,
        rate=0.3,
        generator=torch.Generator().manual_seed(0),
    )
    full = model(inputs, key_padding_mask=mask, bidirectional=True)
    ref = F.cross_entropy(full.view(-1, V), labels.view(-1), ignore_index=IGNORE_INDEX)
    got = mlm_loss(model, inputs, labels, key_padding_mask=mask)
    assert torch.allclose(got, ref, atol=1e-6)


def test_streaming_pretraining_lowers_the_loss(tmp_path, tiny_bert) -> None:
    chars = "北京欢迎你上海很好天气今明我们他"
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars]
    tok = WordPieceTokenizer(vocab)
    lines = ["北京欢迎你", "上海天气很好", "今天天气很好", "明天我们欢迎他们"] * 30
    for i in range(2):
        (tmp_path / f"part{i}.txt").write_text("\n".join(lines[i::2]) + "\n\n", encoding="utf-8")
    stream = TextFileStream(sorted(tmp_path.glob("*.txt")), repeat=True, shuffle_buffer=16)
    first = [line for _, line in zip(range(3), stream, strict=False)]
    assert all(line in lines for line in first)
    coll = WholeWordMaskCollator(tok, generator=torch.Generator().manual_seed(0), rate=0.3)
    loader = torch.utils.data.DataLoader(stream, batch_size=8, collate_fn=coll)
    model = tiny_bert(len(vocab), hidden=32, heads=4, ffn=64, positions=16)  # trained below
    log = pretrain_mlm(
        model, loader, lr=5e-3, warmup_steps=5, max_steps=50, log_every=10, progress=False
    )
    assert log.steps == 50 and log.stopped_by == "max_steps"
    assert log.losses[-1] < 0.6 * log.losses[0], log.losses
