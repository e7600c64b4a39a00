"""Every quantiser kind in the VQ-VAE / VQ-VAE-2 models: a training step, the token round trip and
the factory's checks (``make_quantizer``)."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from kexue.vq import FSQ, LFQ, QUANTIZER_KINDS, VQVAE, VQVAE2, SimVQ, make_quantizer

_KWARGS: dict[str, dict[str, Any]] = {
    "vq": {},
    "fsq": {"levels": [4, 4]},
    "lfq": {},
    "simvq": {},
    "residual_vq": {"num_quantizers": 2},
    "residual_fsq": {"levels": [4, 4], "num_quantizers": 2},
    "residual_lfq": {"num_quantizers": 2},
}


def _small(**kw: Any) -> dict[str, Any]:
    return {"hidden": 8, "res_blocks": 1, "downsample": 1, "num_codes": 16, "code_dim": 6, **kw}


@pytest.mark.parametrize("kind", QUANTIZER_KINDS)
def test_vqvae_trains_a_step_and_round_trips_tokens(kind: str) -> None:
    torch.manual_seed(0)
    model = VQVAE(1, quantizer=kind, **_small(), **_KWARGS[kind])
    assert model.num_codes == 16
    x = torch.rand(4, 1, 8, 8)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    before = [p.detach().clone() for p in model.parameters()]
    loss = model.loss(x)
    assert torch.isfinite(loss.total) and loss.output.shape == x.shape
    opt.zero_grad()
    loss.total.backward()
    opt.step()
    assert any(not torch.equal(b, p) for b, p in zip(before, model.parameters(), strict=True))
    model.eval()
    tokens = model.encode(x)
    stages = _KWARGS[kind].get("num_quantizers")
    assert tokens.shape == (4, 4, 4) + ((stages,) if stages else ())
    with torch.no_grad():
        x_hat, _ = model(x)
        torch.testing.assert_close(model.decode_indices(tokens), x_hat, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", ["fsq", "lfq", "simvq", "residual_fsq"])
def test_vqvae2_trains_a_step(kind: str) -> None:
    torch.manual_seed(1)
    model = VQVAE2(1, quantizer=kind, **_small(), **_KWARGS[kind])
    x = torch.rand(2, 1, 8, 8)
    loss = model.loss(x)
    loss.total.backward()
    assert torch.isfinite(loss.total)
    model.eval()
    top, bottom = model.encode(x)
    with torch.no_grad():
        x_hat, _ = model(x)
        torch.testing.assert_close(model.decode_indices(top, bottom), x_hat, rtol=1e-5, atol=1e-5)


def test_factory_builds_the_named_quantisers() -> None:
    assert isinstance(make_quantizer("simvq", 8, 4), SimVQ)
    fsq = make_quantizer("fsq", 256, 4)
    assert isinstance(fsq.quantizer, FSQ) and fsq.num_codes == 240  # FSQ_LEVELS[8] = [8, 6, 5]
    lfq = make_quantizer("lfq", 64, 4)
    assert isinstance(lfq.quantizer, LFQ) and lfq.quantizer.bits == 6
    out = lfq(torch.randn(2, 4, 3, 5))
    assert out.quantized.shape == (2, 4, 3, 5) and out.indices.shape == (2, 3, 5)


def test_factory_and_model_errors() -> None:
    with pytest.raises(ValueError, match="quantizer must be one of"):
        make_quantizer("pq", 16, 4)
    with pytest.raises(ValueError, match="power of 2"):
        make_quantizer("lfq", 100, 4)
    with pytest.raises(ValueError, match="levels="):
        make_quantizer("fsq", 100, 4)
    with pytest.raises(ValueError, match="num_quantizers"):
        make_quantizer("residual_lfq", 16, 4)
    with pytest.raises(ValueError, match="layout or dim"):
        make_quantizer("lfq", 16, 4, dim=3)
    model = VQVAE(1, quantizer="residual_lfq", num_quantizers=2, **_small())
    with pytest.raises(ValueError, match=r"\(B, h, w, 2\)"):
        model.decode_indices(torch.zeros(1, 4, 4, dtype=torch.long))
    # a preset's VQ options are not forced on another quantiser
    assert VQVAE(1, preset="su2019", quantizer="lfq", num_codes=16).config["vq"] == {}
