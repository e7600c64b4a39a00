"""Stateful quantisers under torch.distributed, 2 gloo processes on CPU (spec §2.11; §4 item 12;
issue 14 item 5). One launch of the two ranks serves every test of this file.

1. EMA: each rank quantises its half of a global batch; counts and sums are all-reduced in one
   collective, so both ranks hold bitwise-identical codebooks and EMA buffers, equal to a single
   process on the concatenated batch. Rank 1 starts from a different random codebook: the first
   training step broadcasts rank 0's.
2. k-means init + EMA + dead-code restart (threshold and LRU) with different data on each rank:
   no hang (lucidrains#25, #105), and the identical restart on both ranks (lucidrains#205).
3. Masks and quantizer dropout: each rank quantises its half of a global padded batch; the EMA
   state (and k-means init) must be identical on both ranks and equal to one process on the
   concatenated batch: VectorQuantizer (k-means + EMA), ResidualVQ (per-sample dropout: the draws
   are keyed on the global sample index, no collective), ResidualVQ with a shared codebook,
   GroupedVQ and GroupedResidualVQ. A last run has rank 1 fully padded (k-means init, threshold
   restart): no hang, identical state, finite.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from kexue.vq import GroupedResidualVQ, GroupedVQ, QuantizerDropout, ResidualVQ, VectorQuantizer
from kexue.vq.restart import DeadCodeRestart

WORLD = 2
STEPS = 4
NUM_CODES, DIM, PER_RANK = 8, 3, 16


def _global_batches() -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(123)
    return [torch.randn(WORLD * PER_RANK, DIM, generator=g) for _ in range(STEPS)]


def _ema_vq(seed: int) -> VectorQuantizer:
    torch.manual_seed(seed)
    return VectorQuantizer(NUM_CODES, DIM, decay=0.9, backend="torch")


def _restart_vqs() -> dict[str, VectorQuantizer]:
    torch.manual_seed(0)
    return {
        "threshold": VectorQuantizer(
            NUM_CODES, DIM, decay=0.5, kmeans_init=True, dead_code_threshold=0.8, backend="torch"
        ),
        "lru": VectorQuantizer(
            NUM_CODES,
            DIM,
            decay=0.5,
            kmeans_init=True,
            backend="torch",
            restart=DeadCodeRestart("lru", timeout=2, noise=0.05),
        ),
    }


def _restart_data(rank: int, step: int) -> torch.Tensor:
    # different data per rank; from step 1 on each rank's data sits in a small region, so codes
    # fitted to the first batch die and get restarted
    g = torch.Generator().manual_seed(1000 * rank + step)
    x = torch.randn(PER_RANK, DIM, generator=g)
    return x if step == 0 else 0.05 * x + (3.0 if rank == 0 else -3.0)


def _recording(step_, store: list[torch.Tensor]):
    def wrapped(*args, **kwargs):
        dead = step_(*args, **kwargs)
        store.append(dead.clone())
        return dead

    return wrapped


MASK_STEPS, MASK_PER_RANK, T, D = 3, 3, 5, 4


def _masked_quantizers() -> dict[str, torch.nn.Module]:
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


def _padded_batches() -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(42)
    out = []
    for _ in range(MASK_STEPS):
        x = torch.randn(WORLD * MASK_PER_RANK, T, D, generator=g)
        lens = torch.randint(1, T + 1, (WORLD * MASK_PER_RANK,), generator=g)
        out.append((x, lens))
    return out


def _run_masked(quantizers: dict[str, torch.nn.Module], rank: int | None) -> dict[str, dict]:
    for x, lens in _padded_batches():
        if rank is not None:
            part = slice(rank * MASK_PER_RANK, (rank + 1) * MASK_PER_RANK)
            x, lens = x[part], lens[part]
        for q in quantizers.values():
            q(x, lens=lens)
    return {
        name: {k: v.clone() for k, v in q.state_dict().items()} for name, q in quantizers.items()
    }


def _masked_rank_run(rank: int) -> dict:
    torch.manual_seed(0)
    vq = VectorQuantizer(4, D, decay=0.8, kmeans_init=True, dead_code_threshold=0.5)
    for x, _ in _padded_batches():
        part = x[rank * MASK_PER_RANK : (rank + 1) * MASK_PER_RANK]
        lens = torch.full((MASK_PER_RANK,), T if rank == 0 else 0)
        vq(part, lens=lens)
    return {k: v.clone() for k, v in vq.state_dict().items()}


def _collectives_per_step(dropout: QuantizerDropout | None) -> int:
    """Collectives one training step of a 3-stage ResidualVQ issues (counted by patching dist)."""
    torch.manual_seed(0)
    rvq = ResidualVQ(3, 8, D, decay=0.8, dropout=dropout, backend="torch")
    x = torch.randn(MASK_PER_RANK, T, D)
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
        vq = _ema_vq(seed=rank)  # different initial codebooks: the first step must broadcast
        for batch in _global_batches():
            vq(batch[rank * PER_RANK : (rank + 1) * PER_RANK])
        result = {"ema": {k: v.clone() for k, v in vq.state_dict().items()}}

        vqs = _restart_vqs()
        history: dict[str, list[torch.Tensor]] = {name: [] for name in vqs}
        masks: dict[str, list[torch.Tensor]] = {name: [] for name in vqs}
        for name, q in vqs.items():
            q.restart.step_ = _recording(q.restart.step_, masks[name])
        for step in range(STEPS):
            x = _restart_data(rank, step)
            for name, q in vqs.items():
                q(x)
                history[name].append(torch.cat([q.embed.flatten(), q.cluster_size]).clone())
        result["restart"] = {
            name: {"state": dict(q.state_dict()), "history": history[name], "masks": masks[name]}
            for name, q in vqs.items()
        }
        result["states"] = _run_masked(_masked_quantizers(), rank)
        result["masked_rank"] = _masked_rank_run(rank)
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
    out = tmp_path_factory.mktemp("vq_ddp")
    run_ranks(__file__, out, world=WORLD, timeout=150)
    return [torch.load(out / f"rank{r}.pt") for r in range(WORLD)]


@pytest.mark.slow
def test_ddp_ema_identical_and_equal_to_single_process(results: list[dict]) -> None:
    states = [r["ema"] for r in results]
    for key in states[0]:
        assert torch.equal(states[0][key], states[1][key]), key
    single = _ema_vq(seed=0)
    start = single.embed.clone()
    for batch in _global_batches():
        single(batch)
    assert not torch.equal(single.embed, start)  # the codebook moved: not vacuous
    for key, value in single.state_dict().items():
        torch.testing.assert_close(states[0][key], value, atol=1e-5, rtol=1e-5, msg=key)


@pytest.mark.slow
def test_ddp_kmeans_ema_restart_same_on_both_ranks(results: list[dict]) -> None:
    for name in ("threshold", "lru"):
        r0, r1 = (r["restart"][name] for r in results)
        for key in r0["state"]:
            assert torch.equal(r0["state"][key], r1["state"][key]), (name, key)
        for step, (h0, h1) in enumerate(zip(r0["history"], r1["history"], strict=True)):
            assert torch.equal(h0, h1), (name, step)
        for step, (m0, m1) in enumerate(zip(r0["masks"], r1["masks"], strict=True)):
            assert torch.equal(m0, m1), (name, step)
        assert any(bool(m.any()) for m in r0["masks"]), name  # restarts did happen
    # the replacements were drawn on rank 0 (its data sits near +3, rank 1's near −3)
    thr = results[1]["restart"]["threshold"]
    for mask, hist in zip(thr["masks"], thr["history"], strict=True):
        codes = hist[: NUM_CODES * DIM].reshape(NUM_CODES, DIM)
        assert torch.all((codes[mask] - 3.0).abs() < 0.5)
        assert torch.all(hist[NUM_CODES * DIM :][mask] == 0.8)  # EMA reset: N = threshold


@pytest.mark.slow
def test_masked_stateful_quantisers_equal_one_process(results: list[dict]) -> None:
    single = _run_masked(_masked_quantizers(), None)
    initial = {name: q.state_dict() for name, q in _masked_quantizers().items()}
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
