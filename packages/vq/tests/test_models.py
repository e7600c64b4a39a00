"""Reference models: VQVAE and VQVAE2 shapes, token interface, presets, losses, training."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from kexue.vq.models import PRESETS, VQVAE, VQVAE2, VQVAELoss


def _tiny(**kw: object) -> VQVAE:
    opts: dict = {"hidden": 16, "res_blocks": 1, "downsample": 1, "num_codes": 16, "code_dim": 8}
    opts.update(kw)
    return VQVAE(1, **opts)


def _tiny2(**kw: object) -> VQVAE2:
    opts: dict = {"hidden": 16, "res_blocks": 1, "downsample": 1, "num_codes": 16, "code_dim": 8}
    opts.update(kw)
    return VQVAE2(3, **opts)


def _images(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


# --------------------------------------------------------------------------------------------------
# Shapes and the token interface
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("downsample", "size"), [(1, (8, 8)), (2, (16, 12)), (3, (16, 16))])
def test_vqvae_output_and_token_shapes(downsample: int, size: tuple[int, int]) -> None:
    model = VQVAE(3, hidden=16, res_blocks=1, downsample=downsample, num_codes=10, code_dim=4)
    x = _images(2, 3, *size)
    x_hat, out = model(x)
    grid = (size[0] // 2**downsample, size[1] // 2**downsample)
    assert x_hat.shape == x.shape and x_hat.dtype == x.dtype
    assert out.indices.shape == (2, *grid) and out.indices.dtype == torch.int64
    assert out.quantized.shape == (2, 4, *grid)
    tokens = model.encode(x)
    assert tokens.shape == (2, *grid) and tokens.dtype == torch.int64
    assert int(tokens.min()) >= 0 and int(tokens.max()) < 10
    assert model.decode_indices(tokens).shape == x.shape


def test_vqvae2_output_and_token_shapes() -> None:
    model = VQVAE2(3, hidden=16, res_blocks=1, downsample=2, num_codes=12, code_dim=8)
    x = _images(2, 3, 32, 24)
    x_hat, (top, bottom) = model(x)
    assert x_hat.shape == x.shape
    assert top.indices.shape == (2, 4, 3) and bottom.indices.shape == (2, 8, 6)
    assert top.quantized.shape == (2, 8, 4, 3) and bottom.quantized.shape == (2, 8, 8, 6)
    t, b = model.encode(x)
    assert t.shape == (2, 4, 3) and b.shape == (2, 8, 6)
    assert model.decode_indices(t, b).shape == x.shape


def test_decode_indices_reproduces_forward_in_eval_mode() -> None:
    """The token interface is the forward pass split in two: decode(encode(x)) == forward(x)."""
    model = _tiny(output_activation="sigmoid").eval()
    x = _images(5, 1, 8, 8)
    with torch.no_grad():
        x_hat, out = model(x)
    tokens = model.encode(x)
    torch.testing.assert_close(tokens, out.indices, rtol=0, atol=0)
    with torch.no_grad():
        torch.testing.assert_close(model.decode_indices(tokens), x_hat, rtol=1e-6, atol=1e-6)

    model2 = _tiny2().eval()
    x2 = _images(3, 3, 8, 8, seed=1)
    with torch.no_grad():
        x2_hat, (top, bottom) = model2(x2)
        t, b = model2.encode(x2)
        torch.testing.assert_close(t, top.indices, rtol=0, atol=0)
        torch.testing.assert_close(b, bottom.indices, rtol=0, atol=0)
        torch.testing.assert_close(model2.decode_indices(t, b), x2_hat, rtol=1e-6, atol=1e-6)


def test_encode_leaves_the_codebook_and_modes_unchanged() -> None:
    model = _tiny()  # EMA codebook (decay 0.99): a training-mode forward would update it
    model.train()
    before = {k: v.clone() for k, v in model.quantizer.state_dict().items()}
    model.encode(_images(4, 1, 8, 8))
    assert model.training and model.quantizer.training
    for key, value in model.quantizer.state_dict().items():
        if key != "initted":
            torch.testing.assert_close(value, before[key], rtol=0, atol=0)
    model(_images(4, 1, 8, 8))  # the training forward does move it
    assert not torch.equal(model.quantizer.embed, before["embed"])


# --------------------------------------------------------------------------------------------------
# Presets and losses
# --------------------------------------------------------------------------------------------------


def test_su2019_preset() -> None:
    model = VQVAE(3, preset="su2019", hidden=16, res_blocks=1)
    q = model.quantizer
    assert model.num_codes == 64 and q.num_codes == 64
    assert q.beta == 0.25 and q.codebook_weight == 1.0 and q.decay is None
    assert q.reduction == "mean" and model.reconstruction_loss == "mean"
    assert q.embed.requires_grad  # learned codebook, no EMA
    assert float(q.codebook.detach().abs().max()) <= 0.05  # Keras "uniform" U(-0.05, 0.05)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    x_hat, out = model(_images(2, 3, 16, 16) * 2 - 1)
    assert float(x_hat.detach().abs().max()) < 1.0  # tanh output for data in [-1, 1]
    assert out.indices.shape == (2, 4, 4)


def test_paper_and_su2023_presets_and_overrides() -> None:
    paper = VQVAE(3, preset="paper", hidden=16)
    assert paper.num_codes == 512 and paper.quantizer.dim == 64
    assert paper.quantizer.beta == 0.25 and paper.quantizer.decay == 0.99
    su = VQVAE(3, preset="su2023", hidden=16, res_blocks=1)
    assert su.num_codes == 1296 == 6**4 and su.quantizer.decay is None
    assert su.quantizer.reduction == "sum_per_sample"
    assert su.reconstruction_loss == "sum_per_sample"
    assert any(isinstance(m, torch.nn.SiLU) for m in su.modules())
    # Explicit arguments and vq_kwargs override the preset.
    model = VQVAE(3, preset="su2019", num_codes=8, hidden=16, res_blocks=1, beta=0.5)
    assert model.num_codes == 8 and model.quantizer.beta == 0.5
    assert set(PRESETS) == {"paper", "su2019", "su2023"}


@pytest.mark.parametrize("preset", ["su2019", "su2023"])
def test_loss_is_reconstruction_plus_quantizer_terms(preset: str) -> None:
    """Hand formulas: mean MSE (su2019) or summed per image (su2023), plus the codebook and
    0.25 × commitment terms with the same reduction, for a learned codebook."""
    model = VQVAE(1, preset=preset, hidden=16, res_blocks=1, downsample=1, code_dim=8).eval()
    x = _images(3, 1, 8, 8) * 2 - 1
    res = model.loss(x)
    assert isinstance(res, VQVAELoss)
    with torch.no_grad():
        z = model.encoder(x)
        e = model.quantizer.lookup(res.quantizer_output.indices)
    if preset == "su2019":
        recon = F.mse_loss(res.output, x)
        sq = (z - e).pow(2).mean()
    else:
        recon = (res.output - x).pow(2).sum() / 3
        sq = (z - e).pow(2).sum() / 3
    torch.testing.assert_close(res.reconstruction, recon, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(res.quantizer, (1.0 + 0.25) * sq, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(res.total, recon + 1.25 * sq, rtol=1e-5, atol=1e-7)


def test_vqvae2_loss_sums_both_levels() -> None:
    model = _tiny2()
    x = _images(2, 3, 8, 8)
    res = model.loss(x)
    top, bottom = res.quantizer_output
    torch.testing.assert_close(res.quantizer, top.loss + bottom.loss, rtol=0, atol=0)
    torch.testing.assert_close(
        res.total, F.mse_loss(res.output, x) + top.loss + bottom.loss, rtol=1e-6, atol=1e-7
    )


# --------------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------------


@pytest.fixture
def one_thread():
    """Training tests run on one intra-op thread (restored after): on a busy 2-core machine this
    is several times faster than two contending threads, and the numbers are reproducible."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _fit(model: torch.nn.Module, x: torch.Tensor, steps: int, lr: float) -> list[float]:
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        res = model.loss(x)
        opt.zero_grad()
        res.total.backward()
        opt.step()
        losses.append(float(res.reconstruction.detach()))
    return losses


@pytest.mark.parametrize(
    "vq", [{"decay": 0.9}, {"decay": None, "dead_code_threshold": 0.5}], ids=["ema", "learned"]
)
def test_vqvae_overfits_a_tiny_batch(vq: dict, one_thread: None) -> None:
    """8 uniform-noise 8×8 images (MSE of a constant 0.5 guess: 1/12 ≈ 0.083): 150 Adam steps
    bring the training MSE below 0.01 (measured 0.0008–0.0030 over seeds 0–2), with an EMA or
    a learned codebook (the latter with restarts: its N(0, 1) init is far from the latents)."""
    torch.manual_seed(0)
    model = _tiny(hidden=32, num_codes=32, code_dim=8, output_activation="sigmoid", **vq)
    x = _images(8, 1, 8, 8)
    losses = _fit(model, x, steps=150, lr=3e-3)
    assert losses[0] > 0.06
    assert losses[-1] < 0.01


def test_vqvae2_overfits_a_tiny_batch(one_thread: None) -> None:
    """4 noise images, 200 steps: training MSE < 0.01 (measured 0.0009–0.0012, seeds 0–2)."""
    torch.manual_seed(0)
    model = _tiny2(hidden=32, decay=0.9, output_activation="sigmoid")
    x = _images(4, 3, 8, 8)
    losses = _fit(model, x, steps=200, lr=3e-3)
    assert losses[0] > 0.06
    assert losses[-1] < 0.01


# --------------------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------------------


def test_bad_inputs_raise() -> None:
    model = _tiny()
    with pytest.raises(ValueError, match="x"):
        model(_images(2, 3, 8, 8))  # 3 channels for in_channels=1
    with pytest.raises(ValueError, match="x"):
        model(_images(2, 1, 7, 8))  # not a multiple of 2
    with pytest.raises(ValueError, match="x"):
        model(_images(1, 8, 8))
    with pytest.raises(ValueError, match="indices"):
        model.decode_indices(torch.full((1, 4, 4), 16))
    with pytest.raises(ValueError, match="indices"):
        model.decode_indices(torch.zeros(1, 4, 4))
    with pytest.raises(ValueError, match="preset"):
        VQVAE(1, preset="su")
    with pytest.raises(ValueError, match="layout"):
        VQVAE(1, layout="channels_last")
    with pytest.raises(ValueError, match="output_activation"):
        VQVAE(1, output_activation="relu")
    model2 = _tiny2()
    with pytest.raises(ValueError, match="x"):
        model2(_images(1, 3, 6, 8))  # VQ-VAE-2 with downsample=1 needs multiples of 4
    with pytest.raises(ValueError, match="bottom"):
        model2.decode_indices(torch.zeros(1, 2, 2, dtype=torch.long), torch.zeros(1, 2, 2).long())


# --------------------------------------------------------------------------------------------------
# VQ-VAE on scikit-learn's digits (issue 3)
# --------------------------------------------------------------------------------------------------


def test_vqvae_on_sklearn_digits(one_thread: None) -> None:
    """A small VQ-VAE learns scikit-learn's 8×8 digits with a well-used codebook.

    Data: the 1797 bundled digits (nothing downloaded), pixels /16 → [0, 1]; fixed split in the
    file's order: the first 1437 images train, the last 360 test. Model: VQVAE(1, hidden=32,
    res_blocks=1, downsample=1, K=32, D=16), sigmoid output, EMA codebook (γ = 0.99) with
    dead-code restart at EMA count < 1; 300 Adam steps (lr 3e-3, batch 64) — about 2.5 CPU-s on
    one thread. Each image becomes a 4 × 4 grid of tokens.

    Thresholds, measured over seeds 0–3 on the reference path (test MSE 0.0072–0.0084,
    codebook perplexity on the test tokens 24.0–28.5, usage 32/32):

    - test MSE < 0.015, about 1.8× the worst seed. The yardsticks: predicting the mean training
      image gives 0.0737 (5× the threshold), and the same model without dead-code restart
      collapses onto 2 of its 32 codes (perplexity ≈ 2) and reaches only 0.030 (2× the threshold).
    - perplexity > 12 (half the worst seed; a collapsed codebook has ≈ 2, a uniform one 32) and
      usage ≥ 0.75 (24 of 32 codes used on the test set; collapsed: 2 of 32).
    """
    datasets = pytest.importorskip("sklearn.datasets")
    images = torch.tensor(datasets.load_digits().images, dtype=torch.float32) / 16.0
    x = images.unsqueeze(1)
    train, test = x[:1437], x[1437:]
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    model = VQVAE(
        1,
        hidden=32,
        res_blocks=1,
        downsample=1,
        num_codes=32,
        code_dim=16,
        output_activation="sigmoid",
        decay=0.99,
        dead_code_threshold=1.0,
    )
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(300):
        batch = train[torch.randint(0, len(train), (64,), generator=gen)]
        res = model.loss(batch)
        opt.zero_grad()
        res.total.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        x_hat, out = model(test)
    mse = float(F.mse_loss(x_hat, test))
    counts = torch.bincount(out.indices.flatten(), minlength=32).double()
    p = counts / counts.sum()
    perplexity = float(torch.exp(-(p[p > 0] * p[p > 0].log()).sum()))
    usage = float((counts > 0).double().mean())
    mean_image_mse = float(F.mse_loss(train.mean(0, keepdim=True).expand_as(test), test))
    assert mean_image_mse == pytest.approx(0.0737, abs=1e-3)
    assert mse < 0.015, mse
    assert perplexity > 12.0, perplexity
    assert usage >= 0.75, usage
    # The quantiser's own statistic agrees with the brute-force perplexity of the same tokens.
    assert float(out.stats["perplexity"]) == pytest.approx(perplexity, rel=1e-4)
