"""Sharding under a real 2-process gloo group (spec §2.13, §3.2), with 3 DataLoader workers each.

Rank and world size are read from ``torch.distributed`` (not passed), so this checks the
automatic path: over both ranks × 3 workers, every item is yielded exactly once.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from kexue.keras_compat.data import DataGenerator, ShardedIterable, ShuffleBuffer
from kexue.keras_compat.data_padding import sequence_padding
from kexue.testing import gloo_group

WORLD = 2
N = 47

pytestmark = pytest.mark.filterwarnings("ignore:This DataLoader will create:UserWarning")


class _Batches(DataGenerator):
    def __iter__(self, random: bool = False):
        for batch in self.batches(random):
            yield sequence_padding(batch)


def _worker(rank: int, world: int, init_method: str, out_dir: str) -> None:
    with gloo_group(rank, world, init_method):
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


@pytest.mark.slow
def test_ddp_2_ranks_x_3_workers_every_item_exactly_once(tmp_path: Path, run_ranks) -> None:
    run_ranks(__file__, tmp_path, world=WORLD)
    results = [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD)]
    for key in ("plain", "shuffled", "generator"):
        per_rank = [res[key] for res in results]
        assert sorted(per_rank[0] + per_rank[1]) == list(range(N)), key
        assert {len(p) for p in per_rank} == {23, 24}, key  # ranks split the data evenly
    # rank r gets the items with (i mod 6) // 3 == r: the shard index is rank * workers + id
    assert sorted(results[0]["plain"]) == [i for i in range(N) if i % 6 < 3]


if __name__ == "__main__":
    from kexue.testing import worker_main

    worker_main(_worker)
