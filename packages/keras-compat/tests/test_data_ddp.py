"""Sharding under a real 2-process gloo group (spec §2.13, §3.2), with 3 DataLoader workers each.

Rank and world size are read from ``torch.distributed`` (not passed), so this checks the
automatic path: over both ranks × 3 workers, every item is yielded exactly once.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.utils.data import DataLoader

from kexue.keras_compat.data import DataGenerator, ShardedIterable, ShuffleBuffer
from kexue.keras_compat.data_padding import sequence_padding

WORLD = 2
N = 47

pytestmark = pytest.mark.filterwarnings("ignore:This DataLoader will create:UserWarning")


class _Batches(DataGenerator):
    def __iter__(self, random: bool = False):
        batch = []
        for is_end, item in self.sample(random):
            batch.append(item)
            if len(batch) == self.batch_size or is_end:
                yield sequence_padding(batch)
                batch = []


def _worker(rank: int, port: int, out_dir: str) -> None:
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD
    )
    try:
        torch.set_num_threads(1)
        plain = DataLoader(ShardedIterable(range(N)), batch_size=None, num_workers=3)
        shuffled = DataLoader(
            ShuffleBuffer(ShardedIterable(lambda: iter(range(N))), 4, seed=0),
            batch_size=None,
            num_workers=3,
        )
        gen = _Batches([[i] for i in range(N)], batch_size=4, shuffle=True, seed=5)
        batches = DataLoader(gen, batch_size=None, num_workers=3)
        out = {
            "plain": [int(x) for x in plain],
            "shuffled": [int(x) for x in shuffled],
            "generator": [int(v) for b in batches for v in np.asarray(b).ravel()],
        }
        torch.save(out, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_ddp_2_ranks_x_3_workers_every_item_exactly_once(tmp_path: Path) -> None:
    # fork: pytest's importlib mode makes this module unimportable by name in spawned children.
    ctx = mp.start_processes(
        _worker, args=(_free_port(), str(tmp_path)), nprocs=WORLD, join=False, start_method="fork"
    )
    deadline = time.monotonic() + 60
    while not ctx.join(timeout=1):
        if time.monotonic() > deadline:
            for p in ctx.processes:
                p.kill()
            pytest.fail("DDP workers did not finish within 60 s")
    results = [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD)]
    for key in ("plain", "shuffled", "generator"):
        per_rank = [res[key] for res in results]
        assert sorted(per_rank[0] + per_rank[1]) == list(range(N)), key
        assert {len(p) for p in per_rank} == {23, 24}, key  # ranks split the data evenly
    # rank r gets the items with (i mod 6) // 3 == r: the shard index is rank * workers + id
    assert sorted(results[0]["plain"]) == [i for i in range(N) if i % 6 < 3]
