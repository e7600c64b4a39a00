"""`VectorQuantizer` (spec §2.1–§2.7, §2.10; §4 items 4, 5, 11): STE, losses, layouts, stats, state."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.func import functional_call

from kexue.vq.quantizer import QUANTIZER_PRESETS, QuantizerOutput, VectorQuantizer


def _brute_force(z: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    d = ((z.double()[:, None, :] - codebook.double()[None, :, :]) ** 2).sum(-1)
    return d.argmin(dim=1)


def test_forward_equals_codebook_rows_exactly_and_brute_force_argmin() -> None:
    g = torch.Generator().manual_seed(0)
    vq = VectorQuantizer(16, 5).eval()
    z = torch.randn(40, 5, generator=g)
    out = vq(z)
    assert isinstance(out, QuantizerOutput)
    assert out.indices.dtype == torch.int64 and out.indices.shape == (40,)
    assert torch.equal(out.indices, _brute_force(z, vq.codebook))
    assert torch.equal(out.quantized, vq.codebook[out.indices])  # exact, not approximately
    assert torch.equal(vq.lookup(out.indices), out.quantized)


def test_ste_gradient_is_identity_plus_commitment_gradient() -> None:
    g = torch.Generator().manual_seed(1)
    vq = VectorQuantizer(8, 3, beta=0.25, decay=None).double().eval()
    z = torch.randn(10, 3, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(10, 3, generator=g, dtype=torch.float64)
    out = vq(z)
    ((out.quantized * w).sum() + out.losses["commitment"]).backward()
    e = vq.codebook.detach()[out.indices]
    expected = w + 2 * 0.25 * (z.detach() - e) / z.numel()
    torch.testing.assert_close(z.grad, expected, atol=1e-12, rtol=0)


def test_gradcheck_commitment_wrt_z_and_codebook_loss_wrt_codebook() -> None:
    g = torch.Generator().manual_seed(2)
    vq = VectorQuantizer(6, 3, decay=None, codebook_weight=0.7, beta=0.3).double().eval()
    with torch.no_grad():
        vq.embed.copy_(4.0 * torch.randn(6, 3, generator=g, dtype=torch.float64))
    # inputs near distinct codes, far from any tie, so small perturbations keep the assignment
    idx = torch.tensor([0, 1, 2, 3, 4, 5, 0, 2])
    z = vq.embed.detach()[idx] + 0.1 * torch.randn(8, 3, generator=g, dtype=torch.float64)
    z.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: vq(t).losses["commitment"], (z,))
    cb = vq.embed.detach().clone().requires_grad_(True)

    def codebook_loss(c: torch.Tensor) -> torch.Tensor:
        return functional_call(vq, {"embed": c}, (z.detach(),)).losses["codebook"]

    assert torch.autograd.gradcheck(codebook_loss, (cb,))


def test_loss_terms_route_gradients_and_match_hand_formulas() -> None:
    g = torch.Generator().manual_seed(3)
    vq = VectorQuantizer(8, 4, decay=None, beta=0.25, codebook_weight=1.0).eval()
    z = torch.randn(6, 4, generator=g, requires_grad=True)
    out = vq(z)
    e = vq.codebook.detach()[out.indices]
    sq = (z.detach() - e) ** 2
    torch.testing.assert_close(out.losses["commitment"], 0.25 * sq.mean(), atol=1e-7, rtol=1e-6)
    torch.testing.assert_close(out.losses["codebook"], sq.mean(), atol=1e-7, rtol=1e-6)
    torch.testing.assert_close(out.loss, 1.25 * sq.mean(), atol=1e-7, rtol=1e-6)
    # vqtorch convention (1 − β_v)·commit + β_v·codebook with β_v = 1/(1 + 0.25) = 0.8
    beta_v = 1 / (1 + 0.25)
    ratio = out.losses["commitment"] / out.losses["codebook"]
    torch.testing.assert_close(ratio, torch.tensor((1 - beta_v) / beta_v), atol=1e-6, rtol=1e-6)

    out.losses["codebook"].backward(retain_graph=True)
    assert z.grad is None and vq.embed.grad is not None and vq.embed.grad.abs().sum() > 0
    vq.embed.grad = None
    out.losses["commitment"].backward()
    assert vq.embed.grad is None and z.grad is not None and z.grad.abs().sum() > 0

    summed = VectorQuantizer(8, 4, decay=None, reduction="sum_per_sample").eval()
    summed.load_state_dict(vq.state_dict())
    x = torch.randn(3, 5, 4, generator=g)  # B = 3 samples of 5 vectors
    out_s = summed(x)
    sq = (x - summed.codebook.detach()[out_s.indices]) ** 2
    torch.testing.assert_close(
        out_s.losses["commitment"], 0.25 * sq.sum() / 3, atol=1e-6, rtol=1e-6
    )
    torch.testing.assert_close(out_s.losses["codebook"], sq.sum() / 3, atol=1e-6, rtol=1e-6)


def test_ema_mode_has_no_codebook_loss_and_updates_only_in_training() -> None:
    g = torch.Generator().manual_seed(4)
    vq = VectorQuantizer(8, 4, decay=0.9)
    assert "embed" in dict(vq.named_buffers()) and not list(vq.parameters())
    z = torch.randn(32, 4, generator=g)
    vq.eval()
    before = {k: v.clone() for k, v in vq.state_dict().items()}
    out = vq(z)
    assert out.losses["codebook"].item() == 0.0
    for key, value in vq.state_dict().items():
        assert torch.equal(value, before[key]), key
    vq.train()
    vq(z)
    assert not torch.equal(vq.embed, before["embed"])
    assert vq.cluster_size.dtype == torch.float32 and vq.embed_avg.dtype == torch.float32
    # the EMA step by hand
    idx = out.indices
    counts = torch.bincount(idx, minlength=8).float()
    n = 0.9 * before["cluster_size"] + 0.1 * counts
    m = 0.9 * before["embed_avg"] + 0.1 * torch.zeros(8, 4).index_add_(0, idx, z)
    torch.testing.assert_close(vq.cluster_size, n, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(vq.embed_avg, m, atol=1e-6, rtol=1e-6)
    smoothed = (n + 1e-5) / (n.sum() + 8e-5) * n.sum()
    torch.testing.assert_close(vq.embed, m / smoothed[:, None], atol=1e-6, rtol=1e-6)


def test_cosine_metric_assigns_by_cosine_and_keeps_unit_codes() -> None:
    g = torch.Generator().manual_seed(5)
    vq = VectorQuantizer(12, 6, metric="cosine", decay=0.8)
    z = 3.0 * torch.randn(50, 6, generator=g)
    out = vq(z)
    zn = torch.nn.functional.normalize(z, dim=-1)
    torch.testing.assert_close(vq.embed.norm(dim=-1), torch.ones(12), atol=1e-6, rtol=0)
    vq.eval()
    out = vq(z)
    cos = zn @ vq.codebook.T
    assert torch.equal(out.indices, cos.argmax(dim=1))
    torch.testing.assert_close(out.quantized, vq.codebook[out.indices], atol=0, rtol=0)
    sq = (zn - vq.codebook[out.indices]) ** 2
    torch.testing.assert_close(out.losses["commitment"], 0.25 * sq.mean(), atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("norm", [False, True])
def test_codebook_dim_projection(norm: bool) -> None:
    g = torch.Generator().manual_seed(6)
    vq = VectorQuantizer(10, 16, codebook_dim=4, projection_norm=norm, decay=None)
    assert vq.codebook.shape == (10, 4)
    assert (vq.project_norm is not None) is norm
    x = torch.randn(2, 5, 16, generator=g, requires_grad=True)
    out = vq(x)
    assert out.quantized.shape == x.shape and out.indices.shape == (2, 5)
    expected = vq.project_out(vq.codebook[out.indices])
    torch.testing.assert_close(out.quantized, expected, atol=1e-6, rtol=1e-6)
    out.quantized.sum().backward()  # the STE reaches project_in and x
    assert vq.project_in.weight.grad is not None and vq.project_in.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="projection_norm"):
        VectorQuantizer(10, 16, projection_norm=True)


def test_stats_perplexity_usage_and_dead_codes() -> None:
    vq = VectorQuantizer(8, 3, decay=0.5, dead_code_threshold=0.0).eval()
    out = vq(vq.codebook.clone())  # every code once: uniform usage
    torch.testing.assert_close(out.stats["perplexity"], torch.tensor(8.0), atol=1e-5, rtol=0)
    assert out.stats["usage"].item() == 1.0
    out = vq(vq.codebook[2:3].repeat(5, 1))  # one code only
    torch.testing.assert_close(out.stats["perplexity"], torch.tensor(1.0), atol=1e-6, rtol=0)
    assert out.stats["usage"].item() == pytest.approx(1 / 8)
    # usage by brute force on a random assignment
    g = torch.Generator().manual_seed(10)
    z = torch.randn(20, 3, generator=g)
    out = vq(z)
    used = len(set(out.indices.tolist()))
    assert out.stats["usage"].item() == pytest.approx(used / 8)
    # dead codes: no threshold configured → EMA count below 1e-2·init_count (DEAD_FLOOR)
    vq.train()
    for _ in range(8):  # decay 0.5: an unused code's count is 0.5^8 < 1e-2 after 8 steps
        out = vq(vq.codebook[:3].clone())
    brute = sum(1 for n in vq.cluster_size.tolist() if n < 1e-2)
    assert brute == 5 and out.stats["dead_codes"].item() == 5
    # with a threshold, dead = EMA count below it (checked in eval: no restart runs)
    thr = VectorQuantizer(8, 3, decay=0.5, dead_code_threshold=0.6).eval()
    sizes = torch.tensor([0.0, 0.59, 0.6, 0.61, 2.0, 0.1, 5.0, 0.7])
    thr.cluster_size.copy_(sizes)
    out = thr(torch.randn(4, 3, generator=g))
    assert out.stats["dead_codes"].item() == sum(1 for n in sizes.tolist() if n < 0.6) == 3


def test_layouts_channels_first_and_last_agree() -> None:
    g = torch.Generator().manual_seed(7)
    cf = VectorQuantizer(9, 4, layout="channels_first").eval()
    cl = VectorQuantizer(9, 4).eval()
    cl.load_state_dict(cf.state_dict())
    img = torch.randn(2, 4, 3, 5, generator=g)  # (B, D, H, W)
    out_cf = cf(img)
    out_cl = cl(img.permute(0, 2, 3, 1))
    assert out_cf.quantized.shape == img.shape and out_cf.indices.shape == (2, 3, 5)
    assert torch.equal(out_cf.indices, out_cl.indices)
    assert torch.equal(out_cf.quantized, out_cl.quantized.permute(0, 3, 1, 2))
    assert torch.equal(cf.lookup(out_cf.indices), out_cf.quantized)
    seq = torch.randn(2, 7, 4, generator=g)  # (B, T, D)
    assert cl(seq).indices.shape == (2, 7)
    assert torch.equal(cl(seq).indices.reshape(-1), cl(seq.reshape(-1, 4)).indices)


def test_bad_inputs_raise_naming_the_argument() -> None:
    vq = VectorQuantizer(4, 3, layout="channels_first")
    with pytest.raises(ValueError, match=r"x has shape \(2, 5, 6\).*channels_first.*D = 3"):
        vq(torch.randn(2, 5, 6))
    with pytest.raises(ValueError, match=r"x has shape \(2, 4\).*channels_last.*D = 3"):
        VectorQuantizer(4, 3)(torch.randn(2, 4))
    bad = torch.randn(2, 3, 4)
    bad[1, 2, 3] = float("nan")
    with pytest.raises(ValueError, match="x contains NaN"):
        vq(bad)
    with pytest.raises(ValueError, match="layout"):
        VectorQuantizer(4, 3, layout="nhwc")
    with pytest.raises(ValueError, match="preset"):
        VectorQuantizer(4, 3, preset="nope")
    with pytest.raises(ValueError, match="codebook must have shape"):
        vq.load_codebook(torch.randn(5, 3))
    with pytest.raises(ValueError, match="indices"):
        vq.lookup(torch.tensor([0, 4]))


def test_state_dict_round_trip() -> None:
    g = torch.Generator().manual_seed(8)
    vq = VectorQuantizer(8, 4, codebook_dim=2, dead_code_threshold=0.5)
    for _ in range(3):
        vq(torch.randn(16, 4, generator=g))
    fresh = VectorQuantizer(8, 4, codebook_dim=2, dead_code_threshold=0.5)
    fresh.load_state_dict(vq.state_dict())
    for key, value in vq.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value), key
    x = torch.randn(10, 4, generator=g)
    vq.eval()
    fresh.eval()
    assert torch.equal(vq(x).quantized, fresh(x).quantized)


def test_load_codebook_resets_ema_consistently() -> None:
    vq = VectorQuantizer(5, 2, init_count=3.0)
    new = torch.arange(10.0).reshape(5, 2)
    vq.load_codebook(new)
    assert torch.equal(vq.codebook, new)
    assert torch.equal(vq.cluster_size, torch.full((5,), 3.0))
    assert torch.equal(vq.embed_avg, 3.0 * new)
    assert bool(vq.initted)


def test_presets() -> None:
    assert QUANTIZER_PRESETS["paper"] == {"beta": 0.25, "decay": 0.99, "eps": 1e-5}
    su = VectorQuantizer(64, 8, preset="su_compat")
    assert su.decay is None and su.beta == 0.25 and su.codebook_weight == 1.0
    assert isinstance(su.embed, torch.nn.Parameter) and su.embed.abs().max() <= 0.05
    lu = VectorQuantizer(32, 8, preset="lucidrains_compat")
    assert lu.decay == 0.8 and lu.beta == 1.0
    custom = VectorQuantizer(32, 8, preset="lucidrains_compat", beta=0.5)
    assert custom.beta == 0.5 and custom.decay == 0.8
    paper = VectorQuantizer(32, 8, preset="paper")
    assert (paper.beta, paper.decay, paper.eps) == (0.25, 0.99, 1e-5)


@settings(max_examples=20, deadline=None)
@given(
    lead=st.lists(st.integers(1, 3), min_size=1, max_size=3),
    dim=st.integers(1, 5),
    codes=st.integers(1, 9),
    first=st.booleans(),
)
def test_shapes_property(lead: list[int], dim: int, codes: int, first: bool) -> None:
    layout = "channels_first" if first else "channels_last"
    vq = VectorQuantizer(codes, dim, layout=layout).eval()
    shape = (lead[0], dim, *lead[1:]) if first else (*lead, dim)
    x = torch.randn(shape)
    out = vq(x)
    assert out.quantized.shape == x.shape
    assert out.indices.shape == ((lead[0], *lead[1:]) if first else tuple(lead))
    assert torch.equal(vq.lookup(out.indices), out.quantized)
    assert int(out.indices.max()) < codes


def test_kmeans_init_with_fewer_samples_than_codes_raises() -> None:
    pytest.importorskip("kexue.vq.kmeans")
    vq = VectorQuantizer(16, 2, kmeans_init=True)
    with pytest.raises(ValueError, match="num_codes"):
        vq(torch.randn(4, 2))
    assert not bool(vq.initted)


def test_kmeans_init_fewer_samples_repeat_fallback_warns_and_uses_every_sample() -> None:
    x = torch.randn(4, 2, generator=torch.Generator().manual_seed(5))
    vq = VectorQuantizer(16, 2, kmeans_init=True, kmeans_on_few_samples="repeat")
    with pytest.warns(UserWarning):
        vq(x)
    assert bool(vq.initted)
    # every sample seeds (at least) one code, so each is quantised to itself up to the noise
    d = torch.cdist(x.double(), vq.codebook.double()).min(dim=1).values
    assert float(d.max()) < 0.1
    with pytest.raises(ValueError, match="kmeans_on_few_samples"):
        VectorQuantizer(16, 2, kmeans_on_few_samples="pad")


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_triton_backend_matches_torch_backend(metric: str) -> None:
    """The quantiser through the Triton kernels (interpreter on CPU) equals the reference path."""
    pytest.importorskip("triton")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    g = torch.Generator().manual_seed(9)
    ref = VectorQuantizer(12, 4, metric=metric, decay=0.9, backend="torch").to(device)
    tri = VectorQuantizer(12, 4, metric=metric, decay=0.9, backend="triton").to(device)
    tri.load_state_dict(ref.state_dict())
    x = torch.randn(24, 4, generator=g).to(device)
    out_ref, out_tri = ref(x), tri(x)
    assert torch.equal(out_ref.indices, out_tri.indices)
    assert torch.equal(out_ref.quantized, out_tri.quantized)
    torch.testing.assert_close(tri.cluster_size, ref.cluster_size, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(tri.embed_avg, ref.embed_avg, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(tri.embed, ref.embed, atol=1e-5, rtol=1e-5)


def test_lookup_demands_integer_indices_in_range() -> None:
    vq = VectorQuantizer(4, 3)
    with pytest.raises(
        ValueError, match=r"integer tensor .*not bool.*got torch\.bool of shape \(2, 2\)"
    ):
        vq.lookup(torch.ones(2, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"got torch\.float32 of shape \(3,\)"):
        vq.lookup(torch.zeros(3))
    with pytest.raises(
        ValueError,
        match=r"indices must lie in \[0, 4\) or be -1, got range \[0, 4\] \(shape \(2,\)\)",
    ):
        vq.lookup(torch.tensor([0, 4]))
    with pytest.raises(ValueError, match=r"got range \[-2, 2\]"):
        vq.lookup(torch.tensor([-2, 2]))
    # -1 (padded position / dropped stage) is the zero vector
    assert torch.equal(
        vq.lookup(torch.tensor([-1, 2])), torch.stack([torch.zeros(3), vq.codebook[2]])
    )
    assert torch.equal(vq.lookup(torch.tensor([1, 3], dtype=torch.int32)), vq.codebook[[1, 3]])
