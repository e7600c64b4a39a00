"""FSQ and residual FSQ: grids against closed forms, exhaustive index round trips, STE gradients,
masks, projections, the residual error bound and argument checks (spec vq-modern.md §2.1–2.2)."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from kexue.vq import FSQ, FSQ_LEVELS, MAX_IMPLICIT_CODES, QuantizerOutput, ResidualFSQ


def _grid(levels: int, bound: str) -> list[float]:
    if bound == "symmetric":
        return [-1 + 2 * k / (levels - 1) for k in range(levels)]
    half = levels // 2
    return [(k - half) / half for k in range(levels)]


@pytest.mark.parametrize(
    ("level", "bound"),
    [(3, "paper"), (4, "paper"), (5, "paper"), (8, "paper"), (2, "symmetric"), (4, "symmetric")],
)
def test_bound_gives_exactly_the_closed_form_levels(level: int, bound: str) -> None:
    fsq = FSQ([level], bound=bound)
    z = torch.linspace(-12, 12, 200_001, dtype=torch.float64).unsqueeze(-1)
    values = sorted(set(fsq.quantize(z).squeeze(-1).tolist()))
    assert values == pytest.approx(_grid(level, bound), abs=1e-12)
    assert len(values) == level


def test_even_grid_is_asymmetric_and_odd_grid_contains_zero() -> None:
    assert _grid(4, "paper") == [-1.0, -0.5, 0.0, 0.5]  # never reaches +1
    assert _grid(8, "paper")[-1] == 0.75
    assert _grid(5, "paper") == [-1.0, -0.5, 0.0, 0.5, 1.0]


def test_paper_thresholds_match_closed_form_for_l4() -> None:
    # b(z) = h·tanh(z + s) − o crosses m + ½ at z = artanh((m + ½ + o)/h) − s.
    h, o = 3 * 1.001 / 2, 0.5
    s = math.atanh(o / h)
    thresholds = [math.atanh((m + 0.5 + o) / h) - s for m in (-2, -1, 0)]
    assert thresholds == pytest.approx([-1.150, -0.346, 0.457], abs=1e-3)  # spec §2.1 [measured]
    fsq = FSQ([4])
    for t, (below, above) in zip(thresholds, [(-1.0, -0.5), (-0.5, 0.0), (0.0, 0.5)], strict=True):
        z = torch.tensor([[t - 1e-6], [t + 1e-6]], dtype=torch.float64)
        assert fsq.quantize(z).squeeze(-1).tolist() == [below, above]


def test_small_closed_form_cases() -> None:
    fsq = FSQ([3, 4])
    z = torch.tensor([[0.0, 0.0], [50.0, 50.0], [-50.0, -50.0]])
    out = fsq(z)
    assert out.quantized.tolist() == [[0.0, 0.0], [1.0, 0.5], [-1.0, -1.0]]
    # digits (1, 2), (2, 3), (0, 0); basis (1, 3)
    assert out.indices.tolist() == [1 + 2 * 3, 2 + 3 * 3, 0]
    assert out.indices.dtype == torch.int64
    assert out.loss.item() == 0.0 and out.losses == {}
    assert isinstance(out, QuantizerOutput)


def test_level_tables_match_the_paper() -> None:
    assert {b: math.prod(v) for b, v in FSQ_LEVELS.items()} == {
        8: 240,
        10: 1000,
        12: 4375,
        14: 15360,
        16: 64000,
    }
    assert all(
        abs(math.log2(math.prod(v)) - b) < 0.2 for b, v in FSQ_LEVELS.items()
    )  # ≈ 2^b, not ≤


@pytest.mark.parametrize("bound", ["paper", "symmetric"])
@pytest.mark.parametrize("levels", [[8, 6, 5], [3, 4, 5, 8], [8, 8, 8, 5, 5, 5]])
def test_exhaustive_index_code_round_trip(levels: list[int], bound: str) -> None:
    fsq = FSQ(levels, bound=bound)
    book = fsq.implicit_codebook()
    assert book.shape == (math.prod(levels), len(levels))
    # itertools.product oracle: the last dim varies slowest, so reverse for first-dim-least-significant.
    oracle = [
        tuple(reversed(p)) for p in itertools.product(*[_grid(L, bound) for L in reversed(levels)])
    ]
    torch.testing.assert_close(book, torch.tensor(oracle, dtype=torch.float32), rtol=0, atol=1e-6)
    indices = torch.arange(fsq.num_codes)
    assert torch.equal(fsq.codes_to_indices(book), indices)
    assert torch.equal(fsq.indices_to_codes(fsq.codes_to_indices(book)), book)


def test_quantized_equals_lookup_bitwise_and_random_inputs_hit_every_code() -> None:
    g = torch.Generator().manual_seed(0)
    fsq = FSQ(FSQ_LEVELS[8])
    x = torch.randn(50_000, 3, generator=g) * 2
    out = fsq(x)
    assert torch.equal(out.quantized, fsq.lookup(out.indices))
    assert out.stats["usage"].item() == 1.0
    assert (
        120 < out.stats["perplexity"].item() <= 240
    )  # Gaussian inputs: non-uniform, all codes used


def test_ste_gradient_is_the_closed_form_derivative() -> None:
    levels = [3, 4, 8]
    fsq = FSQ(levels)
    z = torch.randn(64, 3, dtype=torch.float64, requires_grad=True)
    fsq.quantize(z).sum().backward()
    lv = torch.tensor(levels, dtype=torch.float64)
    h = (lv - 1) * 1.001 / 2
    s = torch.atanh(torch.where(lv % 2 == 0, 0.5, 0.0) / h)
    expected = h / torch.cosh(z.detach() + s) ** 2 / torch.div(lv, 2, rounding_mode="floor")
    torch.testing.assert_close(z.grad, expected, rtol=1e-12, atol=1e-12)


def test_rounding_is_straight_through_identity() -> None:
    fsq = FSQ([5], bound="symmetric", hard_clamp=True)
    z = torch.tensor([[-0.9], [-0.1], [0.3], [0.77]], dtype=torch.float64, requires_grad=True)
    fsq.quantize(
        z
    ).sum().backward()  # (2/(L−1))·floor_STE((L−1)(z+1)/2 + ½) − 1 has slope 1 inside ±1
    assert z.grad.tolist() == [[1.0], [1.0], [1.0], [1.0]]


def test_bf16_input_gives_the_indices_of_its_fp32_upcast() -> None:
    x = torch.randn(4096, 4).to(torch.bfloat16)
    fsq = FSQ(FSQ_LEVELS[10])
    out = fsq(x)
    assert out.quantized.dtype == torch.bfloat16
    assert torch.equal(out.indices, fsq(x.float()).indices)


@settings(max_examples=40, deadline=None)
@given(
    levels=st.lists(st.integers(3, 9), min_size=1, max_size=4),
    batch=st.lists(st.integers(1, 4), min_size=0, max_size=3),
    bound=st.sampled_from(["paper", "symmetric"]),
    seed=st.integers(0, 2**16),
)
def test_shapes_ranges_and_round_trip(
    levels: list[int], batch: list[int], bound: str, seed: int
) -> None:
    fsq = FSQ(levels, bound=bound)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(*batch, len(levels), generator=g) * 3
    out = fsq(x)
    assert out.quantized.shape == x.shape and out.indices.shape == tuple(batch)
    assert bool(((out.indices >= 0) & (out.indices < fsq.num_codes)).all())
    assert torch.equal(fsq.indices_to_codes(out.indices), out.quantized)
    assert torch.equal(fsq.codes_to_indices(out.quantized), out.indices)


def test_projection_and_num_codebooks_shapes_and_gradients() -> None:
    fsq = FSQ([8, 5, 5, 5], dim=16, num_codebooks=2)
    x = torch.randn(2, 7, 16)
    out = fsq(x)
    assert out.quantized.shape == (2, 7, 16) and out.indices.shape == (2, 7, 2)
    out.quantized.square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in fsq.parameters())
    torch.testing.assert_close(fsq.lookup(out.indices), out.quantized)
    plain = FSQ([5, 5], num_codebooks=3)
    assert plain.dim == 6 and not plain.has_projection
    assert plain(torch.randn(4, 6)).indices.shape == (4, 3)


def test_mask_pads_with_minus_one_and_the_input() -> None:
    fsq = FSQ([5, 5, 5])
    x = torch.randn(3, 10, 3)
    mask = torch.arange(10) < torch.tensor([10, 4, 0]).unsqueeze(-1)
    out, ref = fsq(x, mask=mask), fsq(x[mask])
    assert bool((out.indices[~mask] == -1).all())
    assert torch.equal(out.quantized[~mask], x[~mask])
    assert torch.equal(out.indices[mask], ref.indices)
    assert out.stats == ref.stats
    assert fsq.lookup(torch.tensor([-1])).tolist() == [[0.0, 0.0, 0.0]]


def test_implicit_codebook_refuses_huge_grids() -> None:
    fsq = FSQ([2] * 25, bound="symmetric")
    assert fsq.num_codes > MAX_IMPLICIT_CODES
    with pytest.raises(ValueError, match="force=True"):
        fsq.implicit_codebook()


@pytest.mark.parametrize(
    ("levels", "q", "measured"),
    [([5, 5, 5], 3, 0.0100), ([8, 8], 2, 0.017857), ([4, 4, 4], 4, 0.005208)],
)
def test_residual_fsq_meets_the_error_bound_and_improves_per_stage(
    levels: list[int], q: int, measured: float
) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(100_000, len(levels), generator=g, dtype=torch.float64)
    c = torch.tensor([L / (L - 1) for L in levels], dtype=torch.float64)
    y = torch.tanh(x / c) * c
    errors = []
    for stages in range(1, q + 1):
        out = ResidualFSQ(levels, stages)(x)
        assert out.indices.shape == (100_000, stages)
        err = (y - out.quantized).abs()
        bound = torch.tensor(
            [1 / ((L - 1) * L ** (stages - 1)) for L in levels], dtype=torch.float64
        )
        assert bool((err <= bound + 1e-12).all())
        errors.append(err.square().mean().item())
    assert all(a > b for a, b in itertools.pairwise(errors))
    assert max(1 / ((L - 1) * L ** (q - 1)) for L in levels) == pytest.approx(measured, abs=1e-6)


@pytest.mark.parametrize("q", [1, 2, 4])
def test_residual_fsq_gradient_is_one_ste_whatever_the_number_of_stages(q: int) -> None:
    """grad="stack": ∂out/∂y = I, so ∂out/∂x = diag(1 − (y/c)²), the soft clamp's derivative,
    for every Q; grad="per_stage" (lucidrains) adds an I per stage whose scaled residual lies inside
    the hard clamp: Q times as much for inputs where every stage is inside."""
    levels = [5, 4, 8]
    g = torch.Generator().manual_seed(q)
    x = (torch.randn(256, 3, generator=g, dtype=torch.float64) * 0.7).requires_grad_()
    w = torch.randn(256, 3, generator=g, dtype=torch.float64)
    c = torch.tensor([L / (L - 1) for L in levels], dtype=torch.float64)
    clamp_slope = 1 - (torch.tanh(x.detach() / c)) ** 2
    stack = ResidualFSQ(levels, q)
    (grad,) = torch.autograd.grad((stack(x).quantized * w).sum(), x)
    torch.testing.assert_close(grad, w * clamp_slope, rtol=1e-12, atol=0)
    per_stage = ResidualFSQ(levels, q, grad="per_stage")
    out = per_stage(x)
    (grad_ps,) = torch.autograd.grad((out.quantized * w).sum(), x)
    assert torch.equal(out.quantized, stack(x).quantized)  # same forward values
    # stage q is inside its hard clamp iff |r_q| ≤ L^(−q); count them per element
    y = torch.tanh(x.detach() / c) * c
    residual, inside = y, torch.zeros_like(y)
    for stage in range(q):
        scale = torch.tensor(levels, dtype=torch.float64) ** (-stage)
        inside += (residual / scale).abs() <= 1
        residual = residual - per_stage.fsq.quantize(residual / scale) * scale
    torch.testing.assert_close(grad_ps, w * clamp_slope * inside, rtol=1e-12, atol=0)
    if q > 1:
        assert bool((inside == q).float().mean() > 0.5)  # most elements: Q times the stack's


def test_residual_fsq_lookup_projection_and_mask() -> None:
    rfsq = ResidualFSQ([5, 5, 5], 3, dim=8)
    x = torch.randn(4, 6, 8)
    mask = torch.rand(4, 6) > 0.3
    out = rfsq(x, mask=mask)
    assert out.quantized.shape == (4, 6, 8) and out.indices.shape == (4, 6, 3)
    assert bool((out.indices[~mask] == -1).all()) and torch.equal(out.quantized[~mask], x[~mask])
    torch.testing.assert_close(rfsq.lookup(out.indices)[mask], out.quantized[mask])
    out.quantized.sum().backward()
    assert all(p.grad is not None for p in rfsq.parameters())


@pytest.mark.parametrize(
    ("build", "name"),
    [
        (lambda: FSQ([1, 5]), "levels"),
        (lambda: FSQ([]), "levels"),
        (lambda: FSQ([2, 5]), "levels"),
        (lambda: FSQ([5], bound="round"), "bound"),
        (lambda: FSQ([5], dim=0), "dim"),
        (lambda: FSQ([5], num_codebooks=0), "num_codebooks"),
        (lambda: FSQ([5, 5])(torch.randn(3, 4)), "x"),
        (lambda: FSQ([5, 5])(torch.ones(3, 2, dtype=torch.int64)), "x"),
        (lambda: FSQ([5, 5])(torch.randn(3, 2), mask=torch.ones(4, dtype=torch.bool)), "mask"),
        (lambda: FSQ([5, 5])(torch.randn(3, 2), mask=torch.ones(3)), "mask"),
        (lambda: FSQ([5, 5]).codes_to_indices(torch.zeros(3)), "codes"),
        (lambda: FSQ([5, 5]).indices_to_codes(torch.zeros(3)), "indices"),
        (lambda: ResidualFSQ([5, 5], 0), "num_quantizers"),
        (lambda: ResidualFSQ([5, 5], 2, dim=-1), "dim"),
        (lambda: ResidualFSQ([5, 5], 2, grad="sum"), "grad"),
    ],
)
def test_bad_arguments_name_the_argument(build, name: str) -> None:
    with pytest.raises(ValueError, match=rf"^{name} "):
        build()


def test_stats_are_computed_on_first_access_and_equal_the_eager_ones() -> None:
    from kexue.vq._masking import IndexStats, index_stats

    fsq = FSQ([5, 4, 3], num_codebooks=2)
    x = torch.randn(6, 50, 6, generator=torch.Generator().manual_seed(3))
    mask = torch.arange(50) < torch.tensor([50, 20, 0, 7, 50, 1]).unsqueeze(-1)
    out = fsq(x, mask=mask)
    assert isinstance(out.stats, IndexStats) and out.stats._values is None  # nothing computed yet
    eager = index_stats(out.indices, fsq.num_codes)
    assert set(out.stats) == {"perplexity", "usage"} and len(out.stats) == 2
    assert dict(out.stats) == eager and out.stats == eager
    assert out.stats._values is not None  # computed once, then kept
    extra = IndexStats(out.indices, fsq.num_codes, {"rotation_fallback": torch.tensor(2.0)})
    assert list(extra) == ["perplexity", "usage", "rotation_fallback"]
    assert extra["rotation_fallback"].item() == 2.0 and extra._values is None
