"""The gan-losses section's page: Table 1 (every loss on every mixture) and Table 2 (the GAN third
stage over seeds), their scatter grids and HQ-share curves, and the text around them."""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

import torch

from tools.workloads.gan_toy import (
    COVER_MIN,
    HQ_SIGMAS,
    LOSSES,
    MIXTURES,
    Config,
    Mixture,
    RunResult,
    hq_percent,
    metrics_json,
    modes_covered,
)

from .._report import (
    ScatterPanel,
    Section,
    curve_panels,
    figure_html,
    html_table,
    scatter_panels,
    text_table,
)

Lookup = Callable[[str, str, float, int], RunResult]  # (loss, mixture, D weight decay, seed) -> run


def _losses_scatter(
    section: Section,
    cfg: Config,
    seed: int,
    mixtures: list[Mixture],
    get: Callable[[str, Mixture], RunResult],
) -> None:
    """The scatter grid of Table 1: real data, then each loss's raw G, per mixture."""
    grid = []
    for m in mixtures:
        real = m.sample(cfg.plot_samples, torch.Generator().manual_seed(1000 * seed + 5))
        row = [ScatterPanel("real data", real.numpy(), m.centers.numpy(), m.limit)]
        for name in LOSSES:
            r = get(name, m)
            title = f"{name}\n{modes_covered(r.raw)} modes · HQ {hq_percent(r.raw)}%"
            row.append(
                ScatterPanel(
                    title, r.raw_samples[: cfg.plot_samples].numpy(), m.centers.numpy(), m.limit
                )
            )
        grid.append(row)
    section.add_html(
        figure_html(
            scatter_panels(grid),
            alt="generated samples per loss",
            caption=(
                f"Generated samples ({cfg.plot_samples} of the {cfg.eval_samples} evaluation "
                "samples, raw G) after training; red + = mode centres. Rows: 8-ring, 25-grid."
            ),
        )
    )


def _hq_curves_figure(curves: list, *, alt: str, caption: str) -> str:
    """A figure of HQ-share curves (percent of HQ samples per generator step), one panel each."""
    return figure_html(
        curve_panels(curves, xlabel="generator step", ylabel="HQ samples (%)", ylim=(0, 100)),
        alt=alt,
        caption=caption,
    )


def _losses_curves(
    section: Section, cfg: Config, mixtures: list[Mixture], get: Callable[[str, Mixture], RunResult]
) -> None:
    """The HQ-share curves of Table 1's runs, and how to read them."""
    curves = [
        (
            m.title,
            [
                (name, get(name, m).trace_steps, [100 * v for v in get(name, m).trace_raw_hq])
                for name in LOSSES
            ],
        )
        for m in mixtures
    ]
    section.add_html(
        _hq_curves_figure(
            curves,
            alt="share of HQ samples during training per loss",
            caption=(
                f"Share of HQ samples during training (raw G, {cfg.trace_samples} fixed latents, "
                f"every {cfg.trace_every} steps)."
            ),
        )
    )
    section.add_html(
        "<p><b>Reading the curves.</b> A loss that converges shows a rising, then flat curve; "
        "one that orbits the equilibrium (post 6583) shows large swings between successive "
        "evaluations while the samples stay near the data; one that never locks on stays near 0. "
        "WGAN-GP's curve here says little about WGAN-GP: this view gives it 1 critic step per "
        "generator step at lr 1e-3 instead of its paper's 5 at 1e-4 — Table 1 above is the "
        "comparison that uses each loss's own recipe.</p>"
    )


def losses_part(section: Section, cfg: Config, seed: int, lookup: Lookup) -> list[dict[str, Any]]:
    """Table 1 with its scatter grid and training curves; returns the rows for results.json.

    ``lookup(loss, mixture key, D weight decay, seed)`` is the finished run.
    """

    def get(name: str, m: Mixture) -> RunResult:
        return lookup(name, m.key, 0.0, seed)

    mixtures = list(MIXTURES.values())
    _losses_scatter(section, cfg, seed, mixtures, get)
    headers = ["loss", "defaults used"]
    for m in mixtures:
        headers += [f"{m.key} modes", f"{m.key} HQ %", f"{m.key} time s"]
    rows, json_rows = [], []
    for name, loss in LOSSES.items():
        cells: list[Any] = [name, loss.settings]
        for m in mixtures:
            r = get(name, m)
            note = f" (diverged at {r.diverged_at})" if r.diverged_at else ""
            cells += [modes_covered(r.raw) + note, hq_percent(r.raw), f"{r.wall_s:.1f}"]
            json_rows.append(
                {
                    "loss": name,
                    "settings": loss.settings,
                    "mixture": m.key,
                    "seed": seed,
                    "wall_s": round(r.wall_s, 2),
                    "diverged_at": r.diverged_at,
                    "raw_g": metrics_json(r.raw),
                    "ema_g": metrics_json(r.ema),
                }
            )
        rows.append(cells)
    caption = (
        "Table 1b. Same networks, optimiser, steps, batch and seed for every loss; raw G "
        f"({cfg.eval_samples} samples)."
    )
    section.add_html(html_table(headers, rows, caption=caption, numeric_from=2))
    section.text.append(caption + "\n" + text_table(headers, rows))
    _losses_curves(section, cfg, mixtures, get)
    return json_rows


def _variant_row(
    label: str,
    key: str,
    w: float,
    use_ema: bool,
    rs: list[RunResult],
    seeds: list[int],
    cfg: Config,
) -> tuple[list[Any], dict[str, Any]]:
    """One Table 2 row (per-seed modes and HQ %, their mean) and its results.json entry."""
    raw_hq = [100 * r.raw["hq_fraction"] for r in rs]
    ema_hq = [100 * r.ema["hq_fraction"] for r in rs]
    cells: list[Any] = [label, key]
    cells += [
        ", ".join(modes_covered(r.raw) for r in rs),
        ", ".join(f"{v:.1f}" for v in raw_hq),
    ]
    cells.append(f"{sum(raw_hq) / len(rs):.1f}")
    if use_ema:
        cells += [
            ", ".join(modes_covered(r.ema) for r in rs),
            ", ".join(f"{v:.1f}" for v in ema_hq),
        ]
        cells.append(f"{sum(ema_hq) / len(rs):.1f}")
    else:
        cells += ["—", "—", "—"]
    cells.append(f"{sum(r.wall_s for r in rs) / len(rs):.1f}")
    entry = {
        "variant": label,
        "mixture": key,
        "seeds": seeds,
        "d_weight_decay": w,
        "ema_decay": cfg.ema_decay if use_ema else None,
        "wall_s": [round(r.wall_s, 2) for r in rs],
        "raw_g": [metrics_json(r.raw) for r in rs],
        "ema_g": [metrics_json(r.ema) for r in rs] if use_ema else None,
    }
    return cells, entry


def _seed_panels(
    s: int, m: Mixture, variants: list[tuple[str, float, bool]], per_seed: dict, cfg: Config
) -> list[ScatterPanel]:
    """One scatter row: each variant's samples for seed ``s`` (EMA G where it uses the EMA)."""
    row = []
    for label, w, use_ema in variants:
        r = per_seed[s, w]
        samples, metrics, which = (
            (r.ema_samples, r.ema, "EMA G") if use_ema else (r.raw_samples, r.raw, "raw G")
        )
        short = label.replace("weight decay", "wd")
        title = f"{short} · {which} · seed {s}\n{modes_covered(metrics)} modes · HQ {hq_percent(metrics)}%"
        row.append(
            ScatterPanel(title, samples[: cfg.plot_samples].numpy(), m.centers.numpy(), m.limit)
        )
    return row


def _seed_curves(key: str, s: int, plain: RunResult, decayed: RunResult) -> tuple[str, list]:
    """HQ-share curves of seed ``s``: raw (solid) and EMA (dashed) G, plain and with D wd."""
    dashed = {"linestyle": "--", "linewidth": 1.6}
    lines = [
        ("raw G, plain", plain.trace_steps, plain.trace_raw_hq, {"color": "C0"}),
        ("raw G, + D wd", decayed.trace_steps, decayed.trace_raw_hq, {"color": "C1"}),
        ("EMA G, plain", plain.trace_steps, plain.trace_ema_hq, {"color": "C0", **dashed}),
        (
            "EMA G, + D wd",
            decayed.trace_steps,
            decayed.trace_ema_hq,
            {"color": "C1", **dashed},
        ),
    ]
    return (f"{key}, seed {s}", [(a, x, [100 * v for v in y], st) for a, x, y, st in lines])


def _third_stage_figures(section: Section, cfg: Config, grid: list, curves: list) -> None:
    """The third stage's scatter grid, its curves and how to read Table 2."""
    section.add_html(
        figure_html(
            scatter_panels(grid, size=2.3),
            alt="samples of the third-stage variants",
            caption="Samples of each variant and seed: the raw G without EMA, the EMA G with it.",
        )
    )
    section.add_html(
        _hq_curves_figure(
            curves,
            alt="share of HQ samples during training, raw and EMA G",
            caption=(
                f"{cfg.third_stage_loss}: share of HQ samples during training, raw G and EMA G, "
                "with and without the D weight decay."
            ),
        )
    )
    section.add_html(
        "<p><b>Reading Table 2.</b> Solid curves are the raw G, dashed ones its EMA. The EMA "
        f"trails the raw G by about 1/(1 − {cfg.ema_decay:g}) = {1 / (1 - cfg.ema_decay):.0f} "
        "steps, so it helps once the raw G oscillates around a good solution rather than while "
        "it is still improving; the weight decay changes the training path itself, so its run "
        "can succeed or fail where the plain one did the opposite (compare the seeds).</p>"
    )


def third_stage_part(
    section: Section, cfg: Config, seed: int, lookup: Lookup
) -> list[dict[str, Any]]:
    """Table 2 (plain / + D weight decay / + G EMA / + both) over seeds, with figures."""
    wd = cfg.d_weight_decay
    seeds = [seed + i for i in range(cfg.third_stage_seeds)]
    variants = [
        ("plain", 0.0, False),
        (f"+ D weight decay {wd:g}", wd, False),
        (f"+ G EMA {cfg.ema_decay:g}", 0.0, True),
        ("+ both", wd, True),
    ]
    headers = ["variant", "mixture", "raw G modes", "raw G HQ %", "raw HQ mean"]
    headers += ["EMA G modes", "EMA G HQ %", "EMA HQ mean", "time s"]
    rows, json_rows, grid, curves = [], [], [], []
    for key in cfg.third_stage_mixtures:
        m = MIXTURES[key]
        per_seed = {
            (s, w): lookup(cfg.third_stage_loss, key, w, s) for s in seeds for w in (0.0, wd)
        }
        for label, w, use_ema in variants:
            rs = [per_seed[s, w] for s in seeds]
            cells, entry = _variant_row(label, key, w, use_ema, rs, seeds, cfg)
            rows.append(cells)
            json_rows.append(entry)
        for s in seeds:
            grid.append(_seed_panels(s, m, variants, per_seed, cfg))
            curves.append(_seed_curves(key, s, per_seed[s, 0.0], per_seed[s, wd]))
    caption = (
        f"Table 2. GAN third stage (post 6583) on {cfg.third_stage_loss}, Table 1 budget; "
        f"per-seed values for seeds {', '.join(map(str, seeds))}, then their mean."
    )
    section.add_html(html_table(headers, rows, caption=caption, numeric_from=2))
    section.text.append(caption + "\n" + text_table(headers, rows))
    _third_stage_figures(section, cfg, grid, curves)
    return json_rows


def intro_html(cfg: Config) -> str:
    losses_txt = "; ".join(f"{n} ({loss.settings})" for n, loss in LOSSES.items())
    return f"""
<h3>Table 1b: one recipe for every loss (the earlier view)</h3>
<p>Small MLP GANs trained on two equal-weight 2-D Gaussian mixtures generated in code from a seeded
<code>torch.Generator</code> (fresh samples every step, nothing downloaded):
<b>8 Gaussians</b> with centres on a circle of radius 2 and σ = 0.02, and <b>25 Gaussians</b> with
centres on the grid {{−4, −2, 0, 2, 4}}² and σ = 0.05 (the usual toy settings, unscaled).
Generator: {cfg.z_dim}-d N(0, I) latent → {cfg.hidden} → {cfg.hidden} → 2, ReLU, linear output.
Critic: 2 → {cfg.hidden} → {cfg.hidden} → 1, LeakyReLU(0.2), raw scores.
Every loss gets the same budget: both nets start from the same weights, read the same data and
latent streams, Adam(lr {cfg.lr:g}, betas {cfg.betas}), batch {cfg.batch}, {cfg.steps} generator
steps, each after {cfg.d_steps} critic step(s). Nothing is tuned per loss; the only
loss-specific settings are each loss's published defaults. lr {cfg.lr:g} is higher than the usual
1e-4 to 2e-4 because at 2e-4 no loss reaches the 3σ precision of the metrics within a CPU budget.
WGAN-GP's paper trains the critic 5 steps per generator step at lr 1e-4; here it gets 1 step at
1e-3 like the others, which is not its recipe: read its row with Table 1.
Losses (all from <code>kexue.gan_losses</code>): {html.escape(losses_txt)}.</p>
<p><b>Metrics</b>, on {cfg.eval_samples} samples from a fixed latent batch: a sample is
<i>high quality</i> (HQ) if it lies within {HQ_SIGMAS:g}σ of its nearest mode centre;
<i>HQ %</i> is the share of HQ samples. With n<sub>HQ</sub> HQ samples and K modes, a mode is
<i>covered</i> if it is the nearest mode of at least max(n<sub>HQ</sub>/(4K), {COVER_MIN}) HQ
samples (a quarter of its uniform share). <i>time</i> is the wall time of the training loop alone,
with the runs sharing the machine's cores. Table 1b is one seed: toy GAN training is chaotic and a
single run can flip between success and failure, so read differences of a few points as noise.
Failures are reported as they are.</p>
"""


def third_stage_intro_html(cfg: Config) -> str:
    loss = html.escape(cfg.third_stage_loss)
    mixtures = ", ".join(cfg.third_stage_mixtures)
    return f"""
<h3>The "third stage" (post 6583) on {loss}</h3>
<p>Su Jianlin's analysis of GAN dynamics (<a href="https://kexue.fm/archives/6583">post 6583</a>,
on the Dirac GAN) finds that GAN-QP, like non-saturating SGAN and WGAN with a hard Lipschitz
constraint, does not converge locally but orbits the equilibrium; only zero-centred gradient
penalties (WGAN-div, R1) converge. His cheap remedies are a <b>light L2 weight decay on D</b>,
which changes the dynamics and damps the orbit, and an <b>EMA of G's weights</b> ("the most
powerful"), which leaves training unchanged and averages the orbit towards its centre. We train
{loss} on {html.escape(mixtures)} with the Table 1 budget, with and without an L2 weight decay of
{cfg.d_weight_decay:g} on D (Adam's coupled <code>weight_decay</code>: the gradient of
{cfg.d_weight_decay:g}/2·‖w‖² added to D's; not tuned), and evaluate both the raw G and its EMA
(<code>kexue.keras_compat.ema.EMA</code>, decay {cfg.ema_decay:g}, updated after every G
step), over {cfg.third_stage_seeds} seeds because single runs are chaotic. The EMA only reads G's
weights, so the "+ G EMA" run is the plain run and "+ both" is the weight-decay run: their raw-G
columns are equal by construction and each D setting is trained once per seed.</p>
"""
