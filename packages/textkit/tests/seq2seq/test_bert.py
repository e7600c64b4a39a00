"""BertUniLM, load_bert and save_bert without optional dependencies (spec §8 semantics 1–4, 6)."""

from __future__ import annotations

import json

import pytest
import torch

from kexue.textkit.seq2seq.bert import (
    BertConfig,
    BertUniLM,
    load_bert,
    read_state_dict,
    save_bert,
    tf_name_to_hf,
)
from kexue.textkit.seq2seq.decoding import UniLMDecoder, unilm_next_logits
from kexue.textkit.seq2seq.transformer import KVCache, seq2seq_loss
from kexue.textkit.tasks.generation import seq2seq_target_loss
from kexue.textkit.tasks.qa_data import Seq2SeqBatch

pytestmark = pytest.mark.usefixtures("one_thread")

CFG = dict(
    vocab_size=50,
    hidden_size=16,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=24,
    max_position_embeddings=40,
)


def _model(seed: int = 0, **kw) -> BertUniLM:
    torch.manual_seed(seed)
    m = BertUniLM(BertConfig(**CFG), **kw).eval()
    with torch.no_grad():  # re-randomise: BERT's init hides swapped biases and LN mix-ups
        for name, p in m.named_parameters():
            if "dense" in name and ("gamma_dense" in name or "beta_dense" in name):
                continue
            p.copy_((1.0 if name.endswith("LayerNorm.weight") else 0.0) + 0.3 * torch.randn_like(p))
    return m


def _batch():
    x = torch.tensor([[2, 5, 9, 13, 3, 7, 8, 3], [2, 6, 11, 3, 4, 3, 0, 0]])
    seg = torch.tensor([[0, 0, 0, 0, 0, 1, 1, 1], [0, 0, 0, 0, 1, 1, 0, 0]])
    valid = x != 0
    return x, seg, valid


def test_save_then_load_is_bit_identical(tmp_path) -> None:
    model = _model()
    save_bert(model, tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["architectures"] == ["BertForMaskedLM"] and cfg["tie_word_embeddings"] is True
    back, report = load_bert(tmp_path)
    assert report.missing == report.unused == report.dropped == []
    for (k, a), (k2, b) in zip(model.state_dict().items(), back.state_dict().items(), strict=True):
        assert k == k2 and torch.equal(a, b), k
    tensors, _ = read_state_dict(tmp_path)
    assert len(tensors) == 5 + 16 * 2 + 5  # no decoder aliases, no pooler


def test_gamma_beta_bin_shards_and_safetensors_give_the_same_model(tmp_path) -> None:
    from safetensors.torch import save_file

    model = _model(1)
    save_bert(model, tmp_path / "st")
    state = {
        k.replace("LayerNorm.weight", "LayerNorm.gamma").replace(
            "LayerNorm.bias", "LayerNorm.beta"
        ): v
        for k, v in model.state_dict().items()
    }
    (tmp_path / "bin").mkdir()
    model.config.to_json(tmp_path / "bin" / "config.json")
    torch.save(state, tmp_path / "bin" / "pytorch_model.bin")
    (tmp_path / "shards").mkdir()
    model.config.to_json(tmp_path / "shards" / "config.json")
    keys = sorted(model.state_dict())
    weight_map = {}
    for i, part in enumerate((keys[: len(keys) // 2], keys[len(keys) // 2 :])):
        name = f"model-0000{i + 1}-of-00002.safetensors"
        save_file({k: model.state_dict()[k].contiguous() for k in part}, tmp_path / "shards" / name)
        weight_map.update(dict.fromkeys(part, name))
    (tmp_path / "shards" / "model.safetensors.index.json").write_text(
        json.dumps({"weight_map": weight_map})
    )
    x, seg, valid = _batch()
    ref = model(x, seg, key_padding_mask=valid)
    for sub in ("st", "bin", "shards"):
        other, report = load_bert(tmp_path / sub)
        assert report.missing == [], sub
        assert torch.equal(other(x, seg, key_padding_mask=valid), ref), sub
    assert len(load_bert(tmp_path / "bin")[1].renamed) == 2 * (1 + 2 * 2 + 1)


def test_keep_tokens_equals_slicing_the_logits(tmp_path) -> None:
    model = _model(2)
    save_bert(model, tmp_path)
    keep = [0, 1, 2, 3, 7, 5, 9, 11, 13, 4, 6, 8]
    small, _ = load_bert(tmp_path, keep_tokens=keep)
    assert small.vocab_size == len(keep)
    x = torch.tensor([[2, 4, 7, 3, 5, 3]])  # ids of the small vocabulary
    seg = torch.tensor([[0, 0, 0, 0, 1, 1]])
    big_x = torch.tensor(keep)[x]
    full = model(big_x, seg)[..., keep]
    assert torch.allclose(small(x, seg), full, atol=1e-6)


def test_tf_names_map_and_load(tmp_path) -> None:
    model = _model(3)
    inverse = {}
    for name in [
        "bert/embeddings/word_embeddings",
        "bert/embeddings/LayerNorm/gamma",
        "bert/encoder/layer_1/attention/self/query/kernel",
        "bert/encoder/layer_0/output/LayerNorm/beta",
        "cls/predictions/output_bias",
        "cls/predictions/transform/dense/kernel",
        "bert/encoder/layer_0/attention/self/query/kernel/adam_m",
    ]:
        mapped = tf_name_to_hf(name)
        if mapped is not None:
            inverse[mapped[0]] = (name, mapped[1])
    assert tf_name_to_hf("global_step") is None
    assert "bert/encoder/layer_0/attention/self/query/kernel/adam_m" not in [
        v[0] for v in inverse.values()
    ]
    assert inverse["bert.encoder.layer.1.attention.self.query.weight"][1] is True
    # a whole TF-named checkpoint: every HF name mapped back by the rules of spec §2.5
    tf = {}
    for k, v in model.state_dict().items():
        n = k.replace(".", "/")
        n = n.replace("layer/", "layer_").replace("LayerNorm/weight", "LayerNorm/gamma")
        n = n.replace("LayerNorm/bias", "LayerNorm/beta")
        if n.endswith("_embeddings/weight"):
            n = n[: -len("/weight")]
        elif n == "cls/predictions/bias":
            n = "cls/predictions/output_bias"
        elif n.endswith("/weight"):
            n, v = n[: -len("/weight")] + "/kernel", v.t()
        tf[n] = v.numpy()
    tf["bert/encoder/layer_0/output/dense/kernel/adam_v"] = tf[
        "bert/encoder/layer_0/output/dense/kernel"
    ]
    back, report = load_bert(tf, config=model.config)
    assert report.missing == [] and report.unused == []
    x, seg, valid = _batch()
    assert torch.equal(back(x, seg, key_padding_mask=valid), model(x, seg, key_padding_mask=valid))


def test_errors_name_the_key(tmp_path) -> None:
    model = _model(4)
    save_bert(model, tmp_path / "ok")
    state = dict(model.state_dict())
    state["cls.predictions.decoder.weight"] = state["bert.embeddings.word_embeddings.weight"] + 1
    with pytest.raises(ValueError, match=r"decoder\.weight"):
        load_bert(state, config=model.config)
    state = dict(model.state_dict())
    state["bert.encoder.layer.0.intermediate.dense.weight"] = torch.zeros(3, 3)
    with pytest.raises(ValueError, match=r"layer.0.intermediate.dense.weight has shape \(3, 3\)"):
        load_bert(state, config=model.config)
    state = {k: v for k, v in model.state_dict().items() if "layer.1.output.dense" not in k}
    with pytest.raises(ValueError, match=r"layer\.1\.output\.dense"):
        load_bert(state, config=model.config)
    body = {k: v for k, v in model.state_dict().items() if not k.startswith("cls.")}
    with pytest.raises(ValueError, match="head='mlm'"):
        load_bert(body, config=model.config, head="mlm")
    _, report = load_bert(body, config=model.config)
    assert report.missing == [
        "cls.predictions.bias",
        "cls.predictions.transform.LayerNorm.bias",
        "cls.predictions.transform.LayerNorm.weight",
        "cls.predictions.transform.dense.bias",
        "cls.predictions.transform.dense.weight",
    ]
    with pytest.raises(ValueError, match="relative_key"):
        BertConfig(**CFG, position_embedding_type="relative_key")
    x, seg, valid = _batch()
    with pytest.raises(ValueError, match="type_vocab_size=2"):
        model(x, seg * 2, key_padding_mask=valid)
    with pytest.raises(ValueError, match="no MLM head"):
        load_bert(tmp_path / "ok", head="none")[0].logits(torch.zeros(1, 16))


def test_unilm_mask_source_states_ignore_the_target_and_cache_equals_recompute() -> None:
    model = _model(5)
    x, seg, valid = _batch()
    h = model.forward_hidden(x, seg, key_padding_mask=valid)
    x2 = x.clone()
    x2[0, 6] = 17  # a target token of row 0
    h2 = model.forward_hidden(x2, seg, key_padding_mask=valid)
    assert torch.equal(h[0, :5], h2[0, :5])  # source rows never see the target
    assert (h[0, 6:] - h2[0, 6:]).abs().max() > 1e-3
    x3 = x.clone()
    x3[1, 6:] = 21  # pads are never seen
    assert torch.allclose(model.forward_hidden(x3, seg, key_padding_mask=valid)[1, :6], h[1, :6])
    # cached decoding = recomputation, with a padded batch
    src = torch.tensor([[2, 5, 9, 3], [2, 6, 3, 0]])
    lengths = torch.tensor([4, 3])
    out = torch.tensor([[7, 8], [4, 9]])
    cache = KVCache()
    model.forward_hidden(src, torch.zeros_like(src), key_padding_mask=src != 0, cache=cache)
    for t in range(2):
        step = model.forward_hidden(
            out[:, t : t + 1], torch.ones(2, 1, dtype=torch.long), cache=cache
        )
        ref = unilm_next_logits(model, src, lengths, out[:, : t + 1])
        assert torch.allclose(model.logits(step[:, -1]), ref, atol=1e-5)
    cached = UniLMDecoder(model, start_id=None, end_id=3, maxlen=6).beam_search([src, lengths], 3)
    plain = UniLMDecoder(model, start_id=None, end_id=3, maxlen=6, use_cache=False)
    ref = plain.beam_search([src, lengths], 3)
    assert all(torch.equal(a, b) for a, b in zip(cached, ref, strict=True))


def test_cln_on_every_layernorm_keeps_the_pretrained_model_at_init(tmp_path) -> None:
    model = _model(6)
    save_bert(model, tmp_path)
    cln, report = load_bert(tmp_path, cond_dim=5, cond_hidden_units=7)
    n_ln = 1 + 2 * CFG["num_hidden_layers"] + 1
    assert len(report.new) == 3 * n_ln and report.missing == []
    x, seg, valid = _batch()
    cond = torch.randn(2, 5) * 3
    ref = model(x, seg, key_padding_mask=valid)
    got = cln(x, seg, key_padding_mask=valid, cond=cond)
    assert (got - ref).abs().max() <= 1e-5  # fp32: CLN's LN vs F.layer_norm rounding only
    got64 = cln.double()(x, seg, key_padding_mask=valid, cond=cond.double())
    assert (got64 - model.double()(x, seg, key_padding_mask=valid)).abs().max() <= 1e-12
    cln.float(), model.float()
    cln.train()
    loss = seq2seq_loss(cln(x, seg, key_padding_mask=valid, cond=cond), x, seg)
    loss.backward()
    grads = [p.grad for n, p in cln.named_parameters() if "gamma_dense" in n or "beta_dense" in n]
    assert len(grads) == 2 * n_ln and all(g is not None and g.abs().max() > 0 for g in grads)
    with pytest.raises(ValueError, match="drop_condition"):
        save_bert(cln, tmp_path / "cln")
    with pytest.warns(UserWarning, match="condition maps"):
        save_bert(cln, tmp_path / "cln", drop_condition=True)
    assert torch.equal(load_bert(tmp_path / "cln")[0](x, seg, key_padding_mask=valid), ref)


def test_target_gather_loss_equals_the_full_logits_loss() -> None:
    model = _model(7)
    x, seg, valid = _batch()
    batch = Seq2SeqBatch(tokens=x, segments=seg, mask=valid, cond=None)
    full = seq2seq_loss(model(x, seg, key_padding_mask=valid), x, seg)
    assert torch.allclose(seq2seq_target_loss(model, batch), full, atol=1e-6)
