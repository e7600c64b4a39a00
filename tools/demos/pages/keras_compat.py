"""The keras-compat section's page: one table row and one scatter row per run (raw G, fixed-decay
EMA, warm-up EMA), the HQ-share curves per mixture, and the text around them."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

from kexue.keras_compat import EMAWarmup
from tools.workloads.gan_toy import (
    MIXTURES,
    Config,
    hq_percent,
    metrics_json,
    modes_covered,
)

from .._report import (
    ScatterPanel,
    curve_panels,
    figure_html,
)

if TYPE_CHECKING:
    from ..keras_compat import EMARun, RunSpec


def run_row(spec: RunSpec, r: EMARun, cfg: Config) -> tuple[list[Any], dict[str, Any]]:
    """One table row (raw, fixed-decay EMA and warm-up EMA G) and its results.json entry."""
    res = r.result
    note = f" (diverged at {res.diverged_at})" if res.diverged_at else ""
    cells = [
        spec.loss,
        spec.mixture,
        modes_covered(res.raw) + note,
        hq_percent(res.raw),
        modes_covered(res.ema),
        hq_percent(res.ema),
        modes_covered(r.warm),
        hq_percent(r.warm),
        f"{r.warm_final_decay:.4f}",
        f"{res.wall_s:.1f}",
    ]
    entry = {
        "loss": spec.loss,
        "mixture": spec.mixture,
        "seed": spec.seed,
        "wall_s": round(res.wall_s, 2),
        "diverged_at": res.diverged_at,
        "raw_g": metrics_json(res.raw),
        "ema_g": metrics_json(res.ema),
        "warmup_ema_g": metrics_json(r.warm),
        "warmup_final_decay": r.warm_final_decay,
    }
    return cells, entry


def run_panels(spec: RunSpec, r: EMARun, cfg: Config, warm_label: str) -> list[ScatterPanel]:
    """One scatter row: the run's raw G, fixed-decay EMA and warm-up EMA samples."""
    res = r.result
    m = MIXTURES[spec.mixture]
    centers = m.centers.numpy()
    n = cfg.plot_samples
    panels = [
        (f"{spec.loss}, {spec.mixture} · raw G", res.raw_samples, res.raw),
        (f"EMA {cfg.ema_decay:g}", res.ema_samples, res.ema),
        (warm_label, r.warm_samples, r.warm),
    ]
    return [
        ScatterPanel(
            f"{title}\n{modes_covered(met)} modes · HQ {hq_percent(met)}%",
            samples[:n].numpy(),
            centers,
            m.limit,
        )
        for title, samples, met in panels
    ]


def curves_html(
    key: str, specs: list[RunSpec], runs: list[EMARun], cfg: Config, warm_label: str
) -> str:
    """HQ-share curves on mixture ``key``: raw G (solid), EMA (dashed), warm-up EMA (dotted)."""
    dashed = {"linestyle": "--", "linewidth": 1.6}
    dotted = {"linestyle": ":", "linewidth": 1.6}
    panels_c = []
    for spec, r in zip(specs, runs):
        if spec.mixture != key:
            continue
        res = r.result
        panels_c.append(
            (
                f"{spec.loss} on {key}",
                [
                    ("raw G", res.trace_steps, [100 * v for v in res.trace_raw_hq], {}),
                    (
                        f"EMA {cfg.ema_decay:g}",
                        res.trace_steps,
                        [100 * v for v in res.trace_ema_hq],
                        dashed,
                    ),
                    (warm_label, res.trace_steps, [100 * v for v in r.warm_trace_hq], dotted),
                ],
            )
        )
    return figure_html(
        curve_panels(panels_c, xlabel="generator step", ylabel="HQ samples (%)", ylim=(0, 100)),
        alt=f"share of HQ samples during training on {key}, raw and EMA G",
        caption=(
            f"{MIXTURES[key].title}: share of HQ samples during training "
            f"({cfg.trace_samples} fixed latents, every {cfg.trace_every} steps)."
        ),
    )


def intro_html(
    cfg: Config, mixtures: tuple[str, ...], loss_names: tuple[str, ...], warmup: EMAWarmup
) -> str:
    """What the section trains and which three generators it evaluates."""
    losses = ", ".join(html.escape(n) for n in loss_names)
    mix = ", ".join(html.escape(MIXTURES[k].title) for k in mixtures)
    final = 1 - (1 + cfg.steps / warmup.gamma) ** (-warmup.power)
    return f"""
<p>Su Jianlin's analysis of GAN dynamics (<a href="https://kexue.fm/archives/6583">post 6583</a>)
finds that losses such as GAN-QP, hinge and non-saturating SGAN orbit the equilibrium instead of
converging, and calls an <b>exponential moving average of the generator's weights</b> the most
powerful of his cheap fixes: Θ ← mΘ + (1 − m)θ after every G step
(<a href="https://kexue.fm/archives/6575">post 6575</a>) never changes the training path and
averages the orbit towards its centre. We train {losses} on {mix} with the gan-losses section's
networks, data, optimiser, budget ({cfg.steps} generator steps) and seed — the raw-G columns are
that section's Table 1 runs — and evaluate three generators of each run:
the raw G; <code>kexue.keras_compat.ema.EMA(g, decay={cfg.ema_decay:g})</code>
(copy-initialised, fixed decay); and the same EMA with the timm / ema-pytorch warm-up
<code>EMAWarmup(gamma={warmup.gamma:g}, power={warmup.power:.3g})</code>, decay_t =
min(1 − (1 + t/γ)<sup>−p</sup>, {cfg.ema_decay:g}), which forgets the early weights faster (its
decay is {final:.4f} after {cfg.steps} updates instead of {cfg.ema_decay:g}). Both EMAs are updated
after every G step of the same run; the metrics are the gan-losses section's (HQ: within 3σ of
the nearest mode; covered: at least a quarter of a mode's uniform share of the HQ samples).</p>
"""


def reading_html(cfg: Config) -> str:
    horizon = 1 / (1 - cfg.ema_decay)
    return f"""
<p><b>Reading the table.</b> The fixed-decay EMA averages over about 1/(1 − {cfg.ema_decay:g}) =
{horizon:.0f} steps: it helps where the raw G circles around a good solution, and it can hurt
where the raw G is still moving, since the average lags behind it. The warm-up EMA has a shorter
memory at the end of a run shorter than ~30k steps, so it follows the raw G more closely. Single
seed: read differences of a few points as noise (the gan-losses section's Table 2 repeats GAN-QP
over seeds).seeds).</p>
"""
