"""bf16 autocast on CPU (spec §1 Precision; §4 item 13; lucidrains#100, #145, #229)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from kexue.vq.quantizer import VectorQuantizer


@pytest.mark.parametrize("decay", [0.99, None])
@pytest.mark.parametrize("codebook_dim", [None, 4])
@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_bf16_autocast_training_step(
    decay: float | None, codebook_dim: int | None, metric: str
) -> None:
    g = torch.Generator().manual_seed(0)
    encoder, decoder = nn.Linear(6, 8), nn.Linear(8, 6)
    vq = VectorQuantizer(
        16, 8, codebook_dim=codebook_dim, decay=decay, metric=metric, dead_code_threshold=0.5
    )
    params = [*encoder.parameters(), *decoder.parameters(), *vq.parameters()]
    opt = torch.optim.SGD(params, lr=0.1)
    x = torch.randn(32, 6, generator=g)
    for _ in range(2):
        opt.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            z = encoder(x)
            assert z.dtype == torch.bfloat16
            out = vq(z)
            recon = decoder(out.quantized)
            loss = (recon.float() - x).pow(2).mean() + out.loss
        assert out.quantized.dtype == torch.bfloat16  # the input's dtype
        assert out.loss.dtype == torch.float32 and torch.isfinite(loss)
        loss.backward()
        opt.step()
    assert vq.cluster_size.dtype == torch.float32
    assert vq.embed.dtype == torch.float32
    if decay is not None:
        assert vq.embed_avg.dtype == torch.float32
    else:
        assert vq.embed.grad is not None and vq.embed.grad.dtype == torch.float32
    assert encoder.weight.grad is not None and torch.isfinite(encoder.weight.grad).all()
    assert torch.isfinite(vq.embed).all()


def test_fp32_input_under_autocast_keeps_fp32_and_exact_assignment() -> None:
    g = torch.Generator().manual_seed(1)
    vq = VectorQuantizer(32, 5).eval()
    z = torch.randn(50, 5, generator=g)
    plain = vq(z)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        auto = vq(z)
    assert auto.quantized.dtype == torch.float32
    assert torch.equal(auto.indices, plain.indices)  # maths in fp32, not bf16
    assert torch.equal(auto.quantized, plain.quantized)


def test_bf16_input_assignment_matches_fp32_of_the_same_values() -> None:
    g = torch.Generator().manual_seed(2)
    vq = VectorQuantizer(32, 5).eval()
    z = torch.randn(50, 5, generator=g).to(torch.bfloat16)
    out = vq(z)
    ref = vq(z.float())
    assert torch.equal(out.indices, ref.indices)
    assert torch.equal(out.quantized, ref.quantized.to(torch.bfloat16))
