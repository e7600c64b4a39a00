"""Dead-code restart (spec §2.5; §4 item 9): revival, EMA reset (lucidrains#45), no-op, LRU."""

from __future__ import annotations

import pytest
import torch

from kexue.vq.quantizer import VectorQuantizer
from kexue.vq.restart import DeadCodeRestart


def _is_row_of(rows: torch.Tensor, batch: torch.Tensor) -> bool:
    return bool(all((batch == r).all(dim=1).any() for r in rows))


def test_threshold_mode_replaces_dead_codes_and_resets_ema() -> None:
    g = torch.Generator().manual_seed(0)
    restart = DeadCodeRestart("threshold", threshold=2.0)
    restart.setup_(6)
    codebook = torch.randn(6, 3, generator=g)
    cluster_size = torch.tensor([5.0, 1.0, 2.0, 0.1, 3.0, 1.99])
    embed_avg = codebook * cluster_size[:, None]
    batch = torch.randn(10, 3, generator=g)
    old = codebook.clone()
    dead = restart.step_(
        codebook,
        batch,
        counts=torch.zeros(6),
        cluster_size=cluster_size,
        embed_avg=embed_avg,
        generator=torch.Generator().manual_seed(1),
    )
    expected_dead = torch.tensor([False, True, False, True, False, True])
    assert torch.equal(dead, expected_dead)
    assert torch.equal(codebook[~dead], old[~dead])
    assert _is_row_of(codebook[dead], batch)
    torch.testing.assert_close(cluster_size[dead], torch.full((3,), 2.0), atol=0, rtol=0)
    torch.testing.assert_close(embed_avg[dead], 2.0 * codebook[dead], atol=0, rtol=0)
    torch.testing.assert_close(cluster_size[~dead], torch.tensor([5.0, 2.0, 3.0]), atol=0, rtol=0)


def test_threshold_zero_is_a_no_op() -> None:
    g = torch.Generator().manual_seed(2)
    restart = DeadCodeRestart("threshold", threshold=0.0)
    codebook = torch.randn(4, 2, generator=g)
    cluster_size, embed_avg = torch.zeros(4), torch.zeros(4, 2)
    before = (codebook.clone(), cluster_size.clone(), embed_avg.clone())
    dead = restart.step_(
        codebook,
        torch.randn(3, 2),
        counts=torch.zeros(4),
        cluster_size=cluster_size,
        embed_avg=embed_avg,
    )
    assert not dead.any()
    for now, then in zip((codebook, cluster_size, embed_avg), before, strict=True):
        assert torch.equal(now, then)
    # and in the quantiser: training with threshold 0 equals training without restart
    vq_a = VectorQuantizer(6, 2, dead_code_threshold=0.0)
    vq_b = VectorQuantizer(6, 2)
    vq_b.load_state_dict(vq_a.state_dict())
    for _ in range(3):
        x = torch.randn(8, 2, generator=g)
        vq_a(x)
        vq_b(x)
    assert torch.equal(vq_a.embed, vq_b.embed)


def test_lru_countdown_resets_on_use_and_replaces_with_noise() -> None:
    g = torch.Generator().manual_seed(3)
    restart = DeadCodeRestart("lru", timeout=3, noise=0.01)
    restart.setup_(4)
    assert torch.equal(restart.countdown, torch.full((4,), 3))
    codebook = torch.randn(4, 2, generator=g)
    cluster_size = torch.ones(4)
    embed_avg = codebook.clone()
    batch = 100.0 + torch.randn(5, 2, generator=g)
    used = torch.tensor([1.0, 0.0, 2.0, 0.0])
    old = codebook.clone()
    for step in range(2):
        dead = restart.step_(
            codebook,
            batch,
            counts=used if step == 0 else torch.tensor([0.0, 0, 1, 0]),
            cluster_size=cluster_size,
            embed_avg=embed_avg,
            init_count=1.5,
        )
        assert not dead.any()
    assert torch.equal(restart.countdown, torch.tensor([2, 1, 3, 1]))
    dead = restart.step_(
        codebook,
        batch,
        counts=torch.tensor([0.0, 0, 0, 5]),
        cluster_size=cluster_size,
        embed_avg=embed_avg,
        init_count=1.5,
        generator=torch.Generator().manual_seed(4),
    )
    assert torch.equal(dead, torch.tensor([False, True, False, False]))
    assert torch.equal(restart.countdown, torch.tensor([1, 3, 2, 3]))
    assert torch.equal(codebook[~dead], old[~dead])
    # re-seeded near batch vectors: within the mutation noise, not exactly equal
    dist = torch.cdist(codebook[dead], batch).min(dim=1).values
    assert torch.all(dist > 0) and torch.all(dist < 0.1)
    torch.testing.assert_close(cluster_size, torch.tensor([1.0, 1.5, 1.0, 1.0]), atol=0, rtol=0)
    torch.testing.assert_close(embed_avg[dead], 1.5 * codebook[dead], atol=0, rtol=0)


def test_quantizer_revives_unreachable_code() -> None:
    g = torch.Generator().manual_seed(5)
    vq = VectorQuantizer(4, 2, decay=0.9, dead_code_threshold=0.5)
    with torch.no_grad():
        codebook = torch.tensor([[0.0, 0.0], [1.0, 1.0], [-1.0, 1.0], [1e3, 1e3]])
    vq.load_codebook(codebook)
    revived_at = None
    for step in range(12):
        x = torch.randn(32, 2, generator=g)
        vq(x)
        if vq.embed[3].norm() < 100:
            revived_at = step
            assert _is_row_of(vq.embed[3:4], x)
            assert vq.cluster_size[3].item() == 0.5
            torch.testing.assert_close(vq.embed_avg[3], 0.5 * vq.embed[3], atol=0, rtol=0)
            break
    # N_3 = 0.9^t < 0.5 first at t = 7 (0-based step 6)
    assert revived_at == 6
    vq.eval()
    assert vq(torch.randn(256, 2, generator=g)).stats["usage"].item() > 0.5


def test_restart_in_learned_mode_and_cosine() -> None:
    g = torch.Generator().manual_seed(6)
    vq = VectorQuantizer(
        8, 3, decay=None, metric="cosine", restart=DeadCodeRestart("lru", timeout=1)
    )
    x = torch.randn(4, 3, generator=g)
    out = vq(x)
    used = torch.zeros(8, dtype=torch.bool)
    used[out.indices] = True
    # timeout 1: every unused code was re-seeded from the (normalised) batch
    xn = torch.nn.functional.normalize(x, dim=-1)
    assert _is_row_of(vq.embed.detach()[~used], xn)
    torch.testing.assert_close(vq.embed.detach().norm(dim=-1), torch.ones(8), atol=1e-6, rtol=0)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="mode"):
        DeadCodeRestart("sometimes")
    with pytest.raises(ValueError, match="threshold"):
        DeadCodeRestart(threshold=-1.0)
    with pytest.raises(ValueError, match="timeout"):
        DeadCodeRestart("lru", timeout=0)
    with pytest.raises(ValueError, match="restart or dead_code_threshold"):
        VectorQuantizer(4, 2, dead_code_threshold=1.0, restart=DeadCodeRestart())
    restart = DeadCodeRestart()
    with pytest.raises(ValueError, match="batch"):
        restart.step_(
            torch.zeros(3, 2), torch.zeros(4, 5), counts=torch.zeros(3), cluster_size=torch.ones(3)
        )


def test_restart_in_forward_does_not_corrupt_the_codebook_gradient() -> None:
    """A learned cosine codebook restarted during the forward keeps the pre-restart gradient."""
    g = torch.Generator().manual_seed(7)
    x = torch.randn(4, 3, generator=g)
    plain = VectorQuantizer(8, 3, decay=None, metric="cosine").eval()
    restart = DeadCodeRestart("threshold", threshold=0.5)
    vq = VectorQuantizer(8, 3, decay=None, metric="cosine", restart=restart)
    vq.load_state_dict(plain.state_dict(), strict=False)
    vq.cluster_size.zero_()  # every code dead after this step, the used ones included
    before = vq.embed.detach().clone()
    plain(x).losses["codebook"].backward()
    vq(x).losses["codebook"].backward()
    assert not (vq.embed.detach() == before).all(dim=1).any()  # all rows replaced
    assert plain.embed.grad.abs().sum() > 0
    torch.testing.assert_close(vq.embed.grad, plain.embed.grad, atol=1e-7, rtol=1e-6)
