"""Stateful quantisers with masks and quantizer dropout under 2 gloo processes (issue 14 item 5).

Each rank quantises its half of a global padded batch; the EMA state (and k-means init) must be
identical on both ranks and equal to one process on the concatenated batch: VectorQuantizer
(k-means + EMA), ResidualVQ (per-sample dropout: the draws are keyed on the global sample index,
no collective), ResidualVQ with a shared codebook, GroupedVQ and GroupedResidualVQ. A last run
has rank 1 fully padded (k-means init, threshold restart): no hang, identical state, finite.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from kexue.vq import GroupedResidualVQ, GroupedVQ, QuantizerDropout, ResidualVQ, VectorQuantizer

WORLD, STEPS, PER_RANK, T, D = 2, 3, 3, 5, 4


def _make() -> dict[str, torch.nn.Module]:
    torch.manual_seed(0)
    return {
        "vq": VectorQuantizer(8, D, decay=0.8, kmeans_init=True, kmeans_iters=3, backend="torch"),
        "rvq_dropout": ResidualVQ(
            3, 8, D, decay=0.8, dropout=QuantizerDropout(1.0, seed=5), backend="torch"
        ),
        "rvq_shared": ResidualVQ(3, 8, D, decay=0.8, shared_codebook=True, backend="torch"),
        "gvq": GroupedVQ(2, 8, D, decay=0.8, backend="torch"),
        "grvq": GroupedResidualVQ(
            2, 2, 8, D, decay=0.8, dropout=QuantizerDropout(0.7, seed=1), backend="torch"
        ),
    }


def _global_batches() -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(42)
    out = []
    for _ in range(STEPS):
        x = torch.randn(WORLD * PER_RANK, T, D, generator=g)
        lens = torch.randint(1, T + 1, (WORLD * PER_RANK,), generator=g)
        out.append((x, lens))
    return out


def _run(quantizers: dict[str, torch.nn.Module], rank: int | None) -> dict[str, dict]:
    for x, lens in _global_batches():
        if rank is not None:
            part = slice(rank * PER_RANK, (rank + 1) * PER_RANK)
            x, lens = x[part], lens[part]
        for q in quantizers.values():
            q(x, lens=lens)
    return {
        name: {k: v.clone() for k, v in q.state_dict().items()} for name, q in quantizers.items()
    }


def _masked_rank_run(rank: int) -> dict:
    torch.manual_seed(0)
    vq = VectorQuantizer(4, D, decay=0.8, kmeans_init=True, dead_code_threshold=0.5)
    for x, _ in _global_batches():
        part = x[rank * PER_RANK : (rank + 1) * PER_RANK]
        lens = torch.full((PER_RANK,), T if rank == 0 else 0)
        vq(part, lens=lens)
    return {k: v.clone() for k, v in vq.state_dict().items()}


def _collectives_per_step(dropout: QuantizerDropout | None) -> int:
    """Collectives one training step of a 3-stage ResidualVQ issues (counted by patching dist)."""
    torch.manual_seed(0)
    rvq = ResidualVQ(3, 8, D, decay=0.8, dropout=dropout, backend="torch")
    x = torch.randn(PER_RANK, T, D)
    rvq(x)  # first step: the initial codebook broadcast
    calls = []
    names = ("all_reduce", "broadcast", "all_gather", "barrier")
    real = {name: getattr(dist, name) for name in names}
    for name in names:
        setattr(
            dist, name, lambda *a, _f=real[name], _n=name, **k: (calls.append(_n), _f(*a, **k))[1]
        )
    try:
        rvq(x)
    finally:
        for name in names:
            setattr(dist, name, real[name])
    return len(calls)


def _worker(rank: int, world: int, init_method: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=init_method, rank=rank, world_size=world)
    try:
        torch.set_num_threads(1)
        result = {"states": _run(_make(), rank), "masked_rank": _masked_rank_run(rank)}
        result["collectives"] = [
            _collectives_per_step(None),
            _collectives_per_step(QuantizerDropout(1.0, seed=rank)),
        ]
        torch.save(result, Path(out_dir) / f"rank{rank}.pt")
        dist.barrier()
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory, run_ranks) -> list[dict]:
    out = tmp_path_factory.mktemp("vq_masks_ddp")
    run_ranks(__file__, out, world=WORLD, timeout=120)
    return [torch.load(out / f"rank{r}.pt") for r in range(WORLD)]


@pytest.mark.slow
def test_masked_stateful_quantisers_equal_one_process(results: list[dict]) -> None:
    single = _run(_make(), None)
    initial = {name: q.state_dict() for name, q in _make().items()}
    for name, state in single.items():
        s0, s1 = results[0]["states"][name], results[1]["states"][name]
        for key, value in state.items():
            assert torch.equal(s0[key], s1[key]), (name, key)
            if value.is_floating_point():
                torch.testing.assert_close(s0[key], value, atol=1e-5, rtol=1e-5, msg=(name, key))
            else:
                assert torch.equal(s0[key], value), (name, key)
        moved = any(
            not torch.equal(value, initial[name][key])
            for key, value in state.items()
            if value.is_floating_point()
        )
        assert moved, name  # not vacuous


@pytest.mark.slow
def test_dropout_issues_no_collective(results: list[dict]) -> None:
    for r in results:
        plain, dropped = r["collectives"]
        assert plain == dropped == 3  # one EMA all-reduce per stage, none for the dropout draw


@pytest.mark.slow
def test_fully_masked_rank_neither_hangs_nor_diverges(results: list[dict]) -> None:
    s0, s1 = results[0]["masked_rank"], results[1]["masked_rank"]
    for key in s0:
        assert torch.equal(s0[key], s1[key]), key
        if s0[key].is_floating_point():
            assert bool(torch.isfinite(s0[key]).all()), key


if __name__ == "__main__":
    from kexue.testing import worker_main

    worker_main(_worker)
