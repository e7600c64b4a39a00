"""Tests for kexue.gan_losses.losses.relativistic: RSGAN, RaSGAN, RaLSGAN, RaHinge, all-gather means."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.nn.functional as F
from _ganvalues import FAKE, REAL, TOL, mean, relu, sp
from hypothesis import given, settings
from hypothesis import strategies as st

from kexue.gan_losses.losses import relativistic

# Hand-written per-pair values: name -> (function, per-pair formula of (r_i, f_i, r̄, f̄)).
CASES = {
    "rsgan_d": (relativistic.rsgan_discriminator_loss, lambda r, f, rb, fb: sp(-(r - f))),
    "rsgan_g": (relativistic.rsgan_generator_loss, lambda r, f, rb, fb: sp(-(f - r))),
    "rasgan_d": (
        relativistic.rasgan_discriminator_loss,
        lambda r, f, rb, fb: 0.5 * (sp(-(r - fb)) + sp(f - rb)),
    ),
    "rasgan_g": (
        relativistic.rasgan_generator_loss,
        lambda r, f, rb, fb: 0.5 * (sp(r - fb) + sp(-(f - rb))),
    ),
    "ralsgan_d": (
        relativistic.ralsgan_discriminator_loss,
        lambda r, f, rb, fb: 0.5 * ((r - fb - 1) ** 2 + (f - rb + 1) ** 2),
    ),
    "ralsgan_g": (
        relativistic.ralsgan_generator_loss,
        lambda r, f, rb, fb: 0.5 * ((r - fb + 1) ** 2 + (f - rb - 1) ** 2),
    ),
    "rahinge_d": (
        relativistic.rahinge_discriminator_loss,
        lambda r, f, rb, fb: 0.5 * (relu(1 - (r - fb)) + relu(1 + (f - rb))),
    ),
    "rahinge_g": (
        relativistic.rahinge_generator_loss,
        lambda r, f, rb, fb: 0.5 * (relu(1 + (r - fb)) + relu(1 - (f - rb))),
    ),
}
RA_NAMES = [n for n in CASES if n.startswith("ra")]
PAIRS = [
    (relativistic.rsgan_discriminator_loss, relativistic.rsgan_generator_loss),
    (relativistic.rasgan_discriminator_loss, relativistic.rasgan_generator_loss),
    (relativistic.ralsgan_discriminator_loss, relativistic.ralsgan_generator_loss),
    (relativistic.rahinge_discriminator_loss, relativistic.rahinge_generator_loss),
]


def _expected(name: str, real: list[float], fake: list[float], reduction: str) -> torch.Tensor:
    formula = CASES[name][1]
    rb, fb = mean(real), mean(fake)
    values = [formula(r, f, rb, fb) for r, f in zip(real, fake)]
    if reduction == "mean":
        return torch.tensor(mean(values), dtype=torch.float64)
    if reduction == "sum":
        return torch.tensor(math.fsum(values), dtype=torch.float64)
    return torch.tensor(values, dtype=torch.float64)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("energy", [False, True])
@pytest.mark.parametrize("name", list(CASES))
def test_fixed_values(name: str, energy: bool, reduction: str) -> None:
    fn = CASES[name][0]
    # Energy sign: the author's D is the negated canonical score.
    real = [-x for x in REAL] if energy else REAL
    fake = [-x for x in FAKE] if energy else FAKE
    out = fn(
        torch.tensor(real, dtype=torch.float64),
        torch.tensor(fake, dtype=torch.float64),
        energy=energy,
        reduction=reduction,
    )
    torch.testing.assert_close(out, _expected(name, REAL, FAKE, reduction), **TOL)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("rsgan_d", math.log(2)),
        ("rsgan_g", math.log(2)),
        ("rasgan_d", math.log(2)),
        ("rasgan_g", math.log(2)),
        ("ralsgan_d", 1.0),
        ("ralsgan_g", 1.0),
        ("rahinge_d", 1.0),
        ("rahinge_g", 1.0),
    ],
)
def test_zero_logits(name: str, value: float) -> None:
    z = torch.zeros(6)
    out = CASES[name][0](z, z)
    torch.testing.assert_close(out, torch.tensor(value), rtol=0, atol=1e-7)


@pytest.mark.parametrize(("d_fn", "g_fn"), PAIRS)
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_swapping_real_and_fake_maps_d_onto_g(d_fn, g_fn, reduction: str) -> None:
    g = torch.Generator().manual_seed(1)
    r = torch.randn(5, generator=g, dtype=torch.float64)
    f = torch.randn(5, generator=g, dtype=torch.float64)
    torch.testing.assert_close(
        g_fn(r, f, reduction=reduction), d_fn(f, r, reduction=reduction), **TOL
    )


@pytest.mark.parametrize(
    "fn", [relativistic.rsgan_discriminator_loss, relativistic.rsgan_generator_loss]
)
def test_rsgan_raises_on_unequal_batches(fn) -> None:
    with pytest.raises(ValueError, match="same batch size"):
        fn(torch.zeros(4), torch.zeros(3))


@pytest.mark.parametrize("name", RA_NAMES)
def test_ra_unequal_batches(name: str) -> None:
    fn = CASES[name][0]
    real, fake = REAL, FAKE[:3]
    rb, fb = mean(real), mean(fake)
    # With unequal batches: mean = E_real[real half] + E_fake[fake half], halves hand-written.
    terms = {
        "rasgan_d": (lambda r: 0.5 * sp(-(r - fb)), lambda f: 0.5 * sp(f - rb)),
        "rasgan_g": (lambda r: 0.5 * sp(r - fb), lambda f: 0.5 * sp(-(f - rb))),
        "ralsgan_d": (lambda r: 0.5 * (r - fb - 1) ** 2, lambda f: 0.5 * (f - rb + 1) ** 2),
        "ralsgan_g": (lambda r: 0.5 * (r - fb + 1) ** 2, lambda f: 0.5 * (f - rb - 1) ** 2),
        "rahinge_d": (lambda r: 0.5 * relu(1 - (r - fb)), lambda f: 0.5 * relu(1 + (f - rb))),
        "rahinge_g": (lambda r: 0.5 * relu(1 + (r - fb)), lambda f: 0.5 * relu(1 - (f - rb))),
    }[name]
    expected = mean([terms[0](r) for r in real]) + mean([terms[1](f) for f in fake])
    out = fn(torch.tensor(real, dtype=torch.float64), torch.tensor(fake, dtype=torch.float64))
    torch.testing.assert_close(out, torch.tensor(expected, dtype=torch.float64), **TOL)
    with pytest.raises(ValueError, match="reduction='none'"):
        fn(torch.tensor(real), torch.tensor(fake), reduction="none")


def _reference(name: str, r: torch.Tensor, f: torch.Tensor, rb, fb) -> torch.Tensor:
    """Independent torch transcription of the spec table (mean reduction)."""
    return {
        "rsgan_d": lambda: F.softplus(-(r - f)).mean(),
        "rsgan_g": lambda: F.softplus(-(f - r)).mean(),
        "rasgan_d": lambda: 0.5 * (F.softplus(-(r - fb)).mean() + F.softplus(f - rb).mean()),
        "rasgan_g": lambda: 0.5 * (F.softplus(r - fb).mean() + F.softplus(-(f - rb)).mean()),
        "ralsgan_d": lambda: 0.5 * (((r - fb - 1) ** 2).mean() + ((f - rb + 1) ** 2).mean()),
        "ralsgan_g": lambda: 0.5 * (((r - fb + 1) ** 2).mean() + ((f - rb - 1) ** 2).mean()),
        "rahinge_d": lambda: 0.5 * (F.relu(1 - (r - fb)).mean() + F.relu(1 + (f - rb)).mean()),
        "rahinge_g": lambda: 0.5 * (F.relu(1 + (r - fb)).mean() + F.relu(1 - (f - rb)).mean()),
    }[name]()


@pytest.mark.parametrize("name", [n for n in CASES if n.endswith("_g")])
def test_generator_loss_has_gradient_wrt_real_scores(name: str) -> None:
    g = torch.Generator().manual_seed(3)
    r = (torch.randn(6, generator=g, dtype=torch.float64) * 0.5).requires_grad_()
    f = (torch.randn(6, generator=g, dtype=torch.float64) * 0.5).requires_grad_()
    CASES[name][0](r, f).backward()
    r_ref = r.detach().clone().requires_grad_()
    f_ref = f.detach().clone().requires_grad_()
    _reference(name, r_ref, f_ref, r_ref.mean(), f_ref.mean()).backward()
    assert r.grad.abs().sum() > 1e-3  # the real-term half is kept
    torch.testing.assert_close(r.grad, r_ref.grad, **TOL)
    torch.testing.assert_close(f.grad, f_ref.grad, **TOL)


@pytest.mark.parametrize("name", RA_NAMES)
def test_all_gather_is_a_no_op_without_process_group(name: str) -> None:
    assert not dist.is_initialized()
    r, f = torch.tensor(REAL), torch.tensor(FAKE)
    fn = CASES[name][0]
    torch.testing.assert_close(fn(r, f, all_gather=True), fn(r, f), rtol=0, atol=0)
    torch.testing.assert_close(
        relativistic.batch_mean(r[:, None], all_gather=True), r.mean(), rtol=0, atol=0
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("name", list(CASES))
def test_dtypes(name: str, dtype: torch.dtype) -> None:
    r64, f64 = torch.tensor(REAL, dtype=torch.float64), torch.tensor(FAKE, dtype=torch.float64)
    fn = CASES[name][0]
    r, f = r64.to(dtype), f64.to(dtype)
    out = fn(r, f, reduction="none")
    assert out.dtype == torch.float32  # half-precision scores are promoted to fp32
    ref = fn(r.double(), f.double(), reduction="none")
    torch.testing.assert_close(out.double(), ref, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", list(CASES))
def test_bad_inputs(name: str) -> None:
    fn = CASES[name][0]
    with pytest.raises(ValueError, match="real_scores"):
        fn(torch.zeros(4, 2), torch.zeros(4))
    with pytest.raises(ValueError, match="fake_scores"):
        fn(torch.zeros(4), torch.zeros(4, 1, 1))
    with pytest.raises(ValueError, match="reduction"):
        fn(torch.zeros(4), torch.zeros(4), reduction="batchmean")


@settings(max_examples=20, deadline=None)
@given(batch=st.integers(1, 6), seed=st.integers(0, 2**16), column=st.booleans())
def test_reductions_and_shapes(batch: int, seed: int, column: bool) -> None:
    g = torch.Generator().manual_seed(seed)
    r = torch.randn(batch, generator=g, dtype=torch.float64) * 2
    f = torch.randn(batch, generator=g, dtype=torch.float64) * 2
    shape = (batch, 1) if column else (batch,)
    for name, (fn, _) in CASES.items():
        none = fn(r.view(shape), f.view(shape), reduction="none")
        assert none.shape == (batch,)
        torch.testing.assert_close(none, _expected(name, r.tolist(), f.tolist(), "none"), **TOL)
        torch.testing.assert_close(fn(r, f, reduction="sum"), none.sum(), **TOL)
        torch.testing.assert_close(fn(r, f), none.mean(), **TOL)
        torch.testing.assert_close(fn(-r, -f, energy=True, reduction="none"), none, **TOL)


# ------------------------------------------------------------------ distributed (2 x gloo)

WORLD = 2
N_REAL, N_FAKE = 8, 6


def _full_batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(7)
    return (
        torch.randn(N_REAL, generator=g, dtype=torch.float64),
        torch.randn(N_FAKE, generator=g, dtype=torch.float64),
    )


def _dist_worker(rank: int, world: int, init_method: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=init_method, rank=rank, world_size=world)
    try:
        real, fake = _full_batch()
        r_local = real.chunk(WORLD)[rank]
        f_local = fake.chunk(WORLD)[rank]
        results = {}
        for name in RA_NAMES:
            r = r_local.clone().requires_grad_()
            f = f_local.clone().requires_grad_()
            loss = CASES[name][0](r, f, all_gather=True)
            loss.backward()
            results[name] = (loss.detach(), r.grad, f.grad)
        # Unequal per-rank batch sizes: rank 0 holds 5 scores, rank 1 holds 3.
        split = real[:5] if rank == 0 else real[5:]
        results["batch_mean"] = relativistic.batch_mean(split, all_gather=True)
        torch.save(results, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_all_gather_two_process_gloo_equals_full_batch(tmp_path: Path, run_ranks) -> None:
    run_ranks(__file__, tmp_path, world=WORLD)
    per_rank = [torch.load(tmp_path / f"rank{k}.pt") for k in range(WORLD)]
    real, fake = _full_batch()
    for name in RA_NAMES:
        fn = CASES[name][0]
        full = fn(real, fake)
        # Equal per-rank batches: the average of the per-rank losses is the full-batch loss.
        torch.testing.assert_close((per_rank[0][name][0] + per_rank[1][name][0]) / 2, full, **TOL)
        # Local gradients: the other rank's contribution to each mean is a constant.
        for k in range(WORLD):
            r = real.chunk(WORLD)[k].clone().requires_grad_()
            f = fake.chunk(WORLD)[k].clone().requires_grad_()
            r_other = torch.cat([c for j, c in enumerate(real.chunk(WORLD)) if j != k])
            f_other = torch.cat([c for j, c in enumerate(fake.chunk(WORLD)) if j != k])
            rb = (r.sum() + r_other.sum()) / N_REAL
            fb = (f.sum() + f_other.sum()) / N_FAKE
            _reference(name, r, f, rb, fb).backward()
            torch.testing.assert_close(per_rank[k][name][1], r.grad, **TOL)
            torch.testing.assert_close(per_rank[k][name][2], f.grad, **TOL)
        # Without all-gather each rank would use its own means: a different value.
        local = fn(real.chunk(WORLD)[0], fake.chunk(WORLD)[0])
        assert not torch.allclose(local, per_rank[0][name][0], rtol=1e-6, atol=1e-9)
    for k in range(WORLD):
        torch.testing.assert_close(per_rank[k]["batch_mean"], real.mean(), **TOL)


if __name__ == "__main__":
    from kexue.testing import worker_main

    worker_main(_dist_worker)
