"""Benchmark of the kexue-gan-losses losses and penalties (a script, not a test).

Needs: torch, kexue-gan-losses (editable); ``torchgan==0.1.0`` installed ``--no-deps`` for the anchor rows (the bench
environment installs it). No numpy.

What it measures: every loss and gradient penalty of ``kexue.gan_losses`` as one training step of
a small conv critic — DCGAN-style, 32×32×3 inputs, convs 32→64→128 (4×4, stride 2, LeakyReLU 0.2,
no normalisation), a linear head to ``(B,)`` scores, batch 64 — i.e. the critic forward(s), the
loss (or penalty, with its double backward) and ``backward()`` to the critic's parameters. D-side
rows run the critic on a real and a detached fake batch; G-side rows on a fake batch that is a
leaf (standing in for G's output). O-GAN uses the same trunk with a 32-dim code head; BiGAN-QP
and MEG a joint critic ``T(x, z)``.

Anchor: torchgan 0.1.0 (``torchgan.losses.functional``), where it has the same loss: minimax
(SGAN), least squares, Wasserstein, energy-based (EBGAN) and the WGAN-GP penalty. For those rows
the same step is timed with torchgan's function on the same inputs, and the value is compared on
the same scores ("parity"). torchgan's ``wasserstein_gradient_penalty`` takes *one* norm of the
whole batch's input gradient, ``(‖∇‖_batch − 1)²``, not the per-sample mean
``mean_i (‖∇_i‖ − 1)²`` of WGAN-GP; its value therefore differs, and the table says by how much.
Every penalty of ours is also checked against a per-sample oracle (one ``autograd.grad`` per
sample, in float64) — the "per-sample" column.

Timing: the variants of a row run round robin (``tools.bench._common.interleaved``), medians over
``--reps`` steps (p25–p75 shown). A second column times the loss op alone on precomputed scores
(forward + backward to the scores; penalties excluded, they need the critic), which isolates our
per-call overhead (input validation, the finite check) from the critic's cost.

Peak memory: CUDA — ``torch.cuda.max_memory_allocated`` over one step minus the allocation before.
CPU — a child process with ``MALLOC_MMAP_THRESHOLD_=65536`` (freed blocks go back to the OS)
measures ``VmHWM − VmRSS`` around one step, the peak reset through ``/proc/self/clear_refs``.

    python -m tools.bench.gan_losses.losses --quick        # smoke check
    python -m tools.bench.gan_losses.losses --write        # measurement + BENCHMARKS.md block
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import importlib.util
import json
import os
import statistics
import sys
import time
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from tools.bench._common import (
    benchmarks_header,
    benchmarks_md,
    block_markers,
    interleaved,
    json_from_child,
    load_average,
    machine_line,
    markdown_table,
    proc_status_bytes,
    publish,
    quartiles,
    versions,
)

BENCHMARKS_MD = benchmarks_md("gan-losses")
START, END = block_markers("bench:gan-losses")
HEADER = benchmarks_header("kexue-gan-losses")
B, C, HW, NZ = 64, 3, 32, 32
WIDTHS = (32, 64, 128)  # conv channels: small enough for a 2-minute run on 2 shared cores
SEED = 0

# --------------------------------------------------------------------------------------------------
# torchgan: import it, or its torch-only functional module when the package import fails
# --------------------------------------------------------------------------------------------------


def load_torchgan() -> tuple[Any | None, str]:
    """``(torchgan.losses.functional or None, note)``.

    ``import torchgan`` imports torchvision (for its logger); with a torchvision wheel that does
    not match the installed torch build that import fails, although the loss functions need torch
    only. Then the package's ``losses/functional.py`` and ``utils.py`` are loaded by file, under
    stub parent packages, without running ``torchgan/__init__.py``.
    """
    try:
        import torchgan.losses.functional as tgf

        return tgf, "torchgan imported normally"
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:160]
        for name in [m for m in sys.modules if m == "torchgan" or m.startswith("torchgan.")]:
            del sys.modules[name]
    spec = importlib.util.find_spec("torchgan")
    if spec is None or not spec.submodule_search_locations:
        return None, "torchgan not installed: anchor rows skipped"
    pkg_dir = Path(next(iter(spec.submodule_search_locations)))
    for name, path in (("torchgan", pkg_dir), ("torchgan.losses", pkg_dir / "losses")):
        stub = types.ModuleType(name)
        stub.__path__ = [str(path)]  # a package whose __init__ never runs
        sys.modules[name] = stub
    tgf = importlib.import_module("torchgan.losses.functional")
    return tgf, (
        f"`import torchgan` fails with this torch ({reason}); its torch-only "
        "`torchgan/losses/functional.py` was loaded by file instead"
    )


# --------------------------------------------------------------------------------------------------
# Networks and inputs
# --------------------------------------------------------------------------------------------------


def trunk() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(C, WIDTHS[0], 4, 2, 1),
        nn.LeakyReLU(0.2),
        nn.Conv2d(WIDTHS[0], WIDTHS[1], 4, 2, 1),
        nn.LeakyReLU(0.2),
        nn.Conv2d(WIDTHS[1], WIDTHS[2], 4, 2, 1),
        nn.LeakyReLU(0.2),
        nn.Flatten(),
    )


class Critic(nn.Module):
    """DCGAN-style critic: ``(B, 3, 32, 32) -> (B, out)``, squeezed to ``(B,)`` for ``out=1``."""

    def __init__(self, out: int = 1) -> None:
        super().__init__()
        self.body = trunk()
        self.head = nn.Linear(WIDTHS[2] * 4 * 4, out)

    def forward(self, x: Tensor) -> Tensor:
        y = self.head(self.body(x))
        return y.squeeze(1) if y.shape[1] == 1 else y


class JointCritic(nn.Module):
    """``T(x, z)``: conv features of x concatenated with z, then an MLP to ``(B,)``."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(trunk(), nn.Linear(WIDTHS[2] * 4 * 4, NZ))
        self.mlp = nn.Sequential(nn.Linear(2 * NZ, 128), nn.LeakyReLU(0.2), nn.Linear(128, 1))

    def forward(self, x: Tensor, z: Tensor) -> Tensor:
        return self.mlp(torch.cat([self.body(x), z], dim=1)).squeeze(1)


@dataclass
class World:
    d: Critic
    enc: Critic
    t: JointCritic
    x_real: Tensor
    x_fake: Tensor  # detached fake batch (D step)
    x_fake_old: Tensor
    z: Tensor
    x_hat: Tensor  # one fixed interpolation, shared by ours and torchgan
    gen: torch.Generator


def make_world(device: torch.device) -> World:
    torch.manual_seed(SEED)
    g = torch.Generator(device=device).manual_seed(SEED)
    d, enc, t = Critic().to(device), Critic(NZ).to(device), JointCritic().to(device)
    x_real = torch.rand(B, C, HW, HW, generator=g, device=device) * 2 - 1
    x_fake = torch.randn(B, C, HW, HW, generator=g, device=device).tanh()
    x_fake_old = x_fake + 0.05 * torch.randn(B, C, HW, HW, generator=g, device=device)
    z = torch.randn(B, NZ, generator=g, device=device)
    u = torch.rand(B, 1, 1, 1, generator=g, device=device)
    x_hat = u * x_real + (1 - u) * x_fake
    return World(d, enc, t, x_real, x_fake, x_fake_old, z, x_hat, g)


# --------------------------------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------------------------------


@dataclass
class Case:
    name: str
    family: str
    step: Callable[[World], Tensor]  # returns the loss; the runner calls backward()
    anchor: Callable[[World], Tensor] | None = None
    # loss on scores only (real, fake) -> Tensor, for the op-only timing and the value parity
    op: Callable[[Tensor, Tensor], Tensor] | None = None
    anchor_op: Callable[[Tensor, Tensor], Tensor] | None = None
    oracle: Callable[[World], tuple[Tensor, Tensor]] | None = None  # (ours, per-sample oracle)


def _leaf(x: Tensor) -> Tensor:
    return x.detach().clone().requires_grad_()


def d_case(name: str, family: str, fn: Callable[..., Tensor], **kw: Any) -> Case:
    def step(w: World) -> Tensor:
        return fn(w.d(w.x_real), w.d(w.x_fake), **kw)

    return Case(name, family, step, op=lambda r, f: fn(r, f, **kw))


def g_case(
    name: str, family: str, fn: Callable[..., Tensor], *, needs_real: bool, **kw: Any
) -> Case:
    if needs_real:

        def step(w: World) -> Tensor:
            return fn(w.d(w.x_real), w.d(_leaf(w.x_fake)), **kw)

        return Case(name, family, step, op=lambda r, f: fn(r, f, **kw))

    def step_g(w: World) -> Tensor:
        return fn(w.d(_leaf(w.x_fake)), **kw)

    return Case(name, family, step_g, op=lambda r, f: fn(f, **kw))


def per_sample_sqnorms(critic: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """Oracle: ‖∇_x D(x_i)‖² one sample at a time, float64."""
    out = []
    for i in range(x.shape[0]):
        xi = x[i : i + 1].detach().double().requires_grad_()
        (g,) = torch.autograd.grad(critic(xi).sum(), xi)
        out.append(g.pow(2).sum())
    return torch.stack(out)


def _classic_cases(gl: Any) -> list[Case]:
    return [
        d_case("sgan D", "classic", gl.sgan_discriminator_loss),
        g_case("sgan G (non-saturating)", "classic", gl.sgan_generator_loss, needs_real=False),
        g_case(
            "sgan G (saturating)",
            "classic",
            gl.sgan_generator_loss,
            needs_real=False,
            saturating=True,
        ),
        d_case("sgan D (real label 0.9)", "classic", gl.sgan_discriminator_loss, real_label=0.9),
        d_case("lsgan D", "classic", gl.lsgan_discriminator_loss),
        g_case("lsgan G", "classic", gl.lsgan_generator_loss, needs_real=False),
        d_case("hinge D", "classic", gl.hinge_discriminator_loss),
        g_case("hinge G", "classic", gl.hinge_generator_loss, needs_real=False),
        d_case("wgan D", "classic", gl.wgan_discriminator_loss),
        g_case("wgan G", "classic", gl.wgan_generator_loss, needs_real=False),
        d_case("ebgan D (margin 1)", "classic", gl.ebgan_discriminator_loss, margin=1.0),
        g_case("ebgan G", "classic", gl.ebgan_generator_loss, needs_real=False),
    ]


def _torchgan_anchors(tgf: Any) -> dict[str, Callable[[Tensor, Tensor], Tensor]]:
    """torchgan's function for each classic row that it has, on scores ``(real, fake)``."""
    return {
        "sgan D": lambda r, f: tgf.minimax_discriminator_loss(r, f),
        "sgan G (non-saturating)": lambda r, f: tgf.minimax_generator_loss(f, nonsaturating=True),
        "sgan G (saturating)": lambda r, f: tgf.minimax_generator_loss(f, nonsaturating=False),
        "sgan D (real label 0.9)": lambda r, f: tgf.minimax_discriminator_loss(
            r, f, label_smoothing=0.1
        ),
        "lsgan D": lambda r, f: tgf.least_squares_discriminator_loss(r, f),
        "lsgan G": lambda r, f: tgf.least_squares_generator_loss(f),
        "wgan D": lambda r, f: tgf.wasserstein_discriminator_loss(r, f),
        "wgan G": lambda r, f: tgf.wasserstein_generator_loss(f),
        "ebgan D (margin 1)": lambda r, f: tgf.energy_based_discriminator_loss(r, f, 1.0),
        "ebgan G": lambda r, f: tgf.energy_based_generator_loss(f),
    }


def _attach_torchgan_anchors(cases: list[Case], tgf: Any) -> None:
    anchors = _torchgan_anchors(tgf)
    for case in cases:
        if case.name in anchors:
            a = anchors[case.name]
            case.anchor_op = a
            g_side = " G" in case.name

            def anchor_step(
                w: World, a: Callable[..., Tensor] = a, g_side: bool = g_side
            ) -> Tensor:
                if g_side:
                    f = w.d(_leaf(w.x_fake))
                    return a(f, f)
                return a(w.d(w.x_real), w.d(w.x_fake))

            case.anchor = anchor_step


def _relativistic_cases(gl: Any) -> list[Case]:
    cases: list[Case] = []
    for v in ("rsgan", "rasgan", "ralsgan", "rahinge"):
        cases.append(d_case(f"{v} D", "relativistic", getattr(gl, f"{v}_discriminator_loss")))
        cases.append(
            g_case(f"{v} G", "relativistic", getattr(gl, f"{v}_generator_loss"), needs_real=True)
        )
    return cases


def _f_gan_cases(gl: Any) -> list[Case]:
    cases: list[Case] = []
    for div in sorted(gl.F_DIVERGENCES):
        cases.append(
            d_case(f"f-GAN D ({div})", "f-GAN", gl.f_gan_discriminator_loss, divergence=div)
        )
        cases.append(
            g_case(
                f"f-GAN G ({div})",
                "f-GAN",
                gl.f_gan_generator_loss,
                needs_real=False,
                divergence=div,
            )
        )
    return cases


def _gan_qp_cases(gl: Any) -> list[Case]:
    cases: list[Case] = []
    for norm in ("l1", "l2"):

        def qp_d(w: World, norm: str = norm) -> Tensor:
            return gl.gan_qp_discriminator_loss(
                w.d(w.x_real), w.d(w.x_fake), w.x_real, w.x_fake, norm=norm
            )

        cases.append(Case(f"gan-qp D ({norm})", "GAN-QP", qp_d))
    cases.append(g_case("gan-qp G", "GAN-QP", gl.gan_qp_generator_loss, needs_real=True))
    return cases


def _ogan_cases(gl: Any) -> list[Case]:
    """O-GAN (encoder with a 32-dim code)."""

    def ogan_e(w: World) -> Tensor:
        return gl.ogan_encoder_loss(w.enc(w.x_real), w.enc(w.x_fake), w.z, w.x_real, w.x_fake)

    def ogan_g(w: World) -> Tensor:
        return gl.ogan_generator_loss(w.enc(_leaf(w.x_fake)), w.z)

    def ogan_single(w: World) -> Tensor:
        return gl.ogan_single_loss(w.enc, w.x_real, _leaf(w.x_fake), w.z).loss

    return [
        Case("o-gan E", "O-GAN", ogan_e),
        Case("o-gan G", "O-GAN", ogan_g),
        Case("o-gan single loss (replay)", "O-GAN", ogan_single),
    ]


def _bigan_qp_cases(gl: Any) -> list[Case]:
    """BiGAN-QP (joint critic T(x, z); the encoder output e_real stands in as the code of x_real)."""

    def bigan(w: World) -> Tensor:
        e_real = w.enc(w.x_real).detach()
        return gl.bigan_qp_critic_loss(
            w.t(w.x_real, e_real), w.t(w.x_fake, w.z), w.x_real, w.x_fake, e_real, w.z
        )

    return [Case("bigan-qp critic", "BiGAN-QP", bigan)]


def _energy_cases(gl: Any) -> list[Case]:
    def contrastive(w: World) -> Tensor:
        return gl.contrastive_energy_loss(w.d(w.x_real), w.d(w.x_fake))

    def meg(w: World) -> Tensor:
        return gl.meg_mutual_information_loss(w.t, _leaf(w.x_fake), w.z, generator=w.gen)

    def entropy(w: World) -> Tensor:
        return gl.encoder_entropy_surrogate(w.z, w.enc(_leaf(w.x_fake)))

    return [
        Case("contrastive energy", "energy", contrastive),
        Case("MEG mutual information", "energy", meg),
        Case("encoder entropy surrogate", "energy", entropy),
    ]


def _imle_cases(gl: Any) -> list[Case]:
    """IMLE and VI regulariser (G side; no critic for IMLE: nearest neighbours in pixel space)."""

    def imle(w: World) -> Tensor:
        return gl.imle_loss(w.x_real, _leaf(w.x_fake))

    def vgan(w: World) -> Tensor:
        xf = _leaf(w.x_fake)
        return gl.vgan_generator_loss(w.d(xf), xf, w.x_fake_old)

    return [Case("imle", "IMLE", imle), Case("vgan G (VI)", "IMLE", vgan)]


def _single_loss_cases(gl: Any) -> list[Case]:
    """The single-loss trick."""

    def single(w: World) -> Tensor:
        return gl.single_loss(
            w.d,
            w.d(w.x_real),
            _leaf(w.x_fake),
            d_loss_fn=gl.hinge_discriminator_loss,
            g_loss_fn=lambda r, f: gl.hinge_generator_loss(f),
        ).loss

    return [Case("single loss (hinge, replay)", "single-loss", single)]


def _double_critic(w: World) -> Critic:
    dd = Critic().double()
    dd.load_state_dict(w.d.state_dict())
    return dd


def _penalty_oracles(gl: Any) -> dict[str, Callable[[World], tuple[Tensor, Tensor]]]:
    """``(ours, per-sample loop oracle)`` in float64, for the penalties that have one."""

    def oracle_gp(w: World) -> tuple[Tensor, Tensor]:
        dd = _double_critic(w)
        xh = _leaf(w.x_hat.double())
        ours = gl.gradient_penalty(dd(xh), xh, weight=10.0, eps=0.0)
        return ours, 10.0 * (per_sample_sqnorms(dd, w.x_hat).sqrt() - 1).pow(2).mean()

    def oracle_r1(w: World) -> tuple[Tensor, Tensor]:
        dd = _double_critic(w)
        xr = _leaf(w.x_real.double())
        return gl.r1_penalty(dd(xr), xr, gamma=10.0), 5.0 * per_sample_sqnorms(dd, w.x_real).mean()

    def oracle_wdiv(w: World) -> tuple[Tensor, Tensor]:
        dd = _double_critic(w)
        xr, xf = _leaf(w.x_real.double()), _leaf(w.x_fake.double())
        ours = gl.wgan_div_penalty(dd(xr), xr, dd(xf), xf)
        sr, sf = per_sample_sqnorms(dd, w.x_real), per_sample_sqnorms(dd, w.x_fake)
        return ours, (sr.pow(3).mean() + sf.pow(3).mean())  # k/2 · (E‖∇‖⁶ + E‖∇‖⁶), k = 2

    return {"gp": oracle_gp, "r1": oracle_r1, "wdiv": oracle_wdiv}


def _gradient_penalty_case(gl: Any, tgf: Any | None, oracle: Callable[..., Any]) -> Case:
    def gp(w: World) -> Tensor:
        xh = _leaf(w.x_hat)
        return gl.gradient_penalty(w.d(xh), xh, weight=10.0)

    gp_case = Case("gradient penalty (WGAN-GP, λ=10)", "penalty", gp, oracle=oracle)
    if tgf is not None:

        def tg_gp(w: World) -> Tensor:
            xh = _leaf(w.x_hat)
            return 10.0 * tgf.wasserstein_gradient_penalty(xh, w.d(xh))

        gp_case.anchor = tg_gp
    return gp_case


def _penalty_cases(gl: Any, tgf: Any | None) -> list[Case]:
    """Penalties (the WGAN critic loss they are added to is not included: penalty alone)."""

    def gp_critic(w: World) -> Tensor:
        return gl.wgan_gp_penalty(w.d, w.x_real, w.x_fake, generator=w.gen)

    def r1(w: World) -> Tensor:
        xr = _leaf(w.x_real)
        return gl.r1_penalty(w.d(xr), xr)

    def r2(w: World) -> Tensor:
        xf = _leaf(w.x_fake)
        return gl.r2_penalty(w.d(xf), xf)

    def r1_critic(w: World) -> Tensor:
        return gl.r1_penalty_from_critic(w.d, w.x_real)

    def wdiv(w: World) -> Tensor:
        xr, xf = _leaf(w.x_real), _leaf(w.x_fake)
        return gl.wgan_div_penalty(w.d(xr), xr, w.d(xf), xf)

    def score(w: World) -> Tensor:
        xr = _leaf(w.x_real)
        return gl.score_penalty(w.d(xr), xr)

    def ortho(w: World) -> Tensor:
        return gl.model_orthogonal_regularization(w.d)

    oracles = _penalty_oracles(gl)
    return [
        *_extra_penalty_cases(gl, tgf),
        _gradient_penalty_case(gl, tgf, oracles["gp"]),
        Case("wgan_gp_penalty (critic form, interpolates)", "penalty", gp_critic),
        Case("R1 (γ=10)", "penalty", r1, oracle=oracles["r1"]),
        Case("R2 (γ=10)", "penalty", r2),
        Case("R1 from critic", "penalty", r1_critic),
        Case("WGAN-div (k=2, p=6)", "penalty", wdiv, oracle=oracles["wdiv"]),
        Case("score penalty (energy)", "penalty", score),
        Case("orthogonal regulariser (BigGAN, all weights)", "regulariser", ortho),
    ]


def _extra_penalty_cases(gl: Any, tgf: Any | None) -> list[Case]:
    """0.2 additions: DRAGAN (torchgan's whole-batch-norm form as the anchor), lazy R1, LeCam,
    and a DiffAugment'ed hinge D step."""
    from kexue.gan_losses.augment import DiffAugment

    def dragan(w: World) -> Tensor:
        return gl.dragan_penalty(w.d, w.x_real, generator=w.gen)

    def lazy_r1(w: World) -> Tensor:
        xr = _leaf(w.x_real)
        return gl.lazy_r1_penalty(w.d(xr), xr, interval=16)

    anchors = gl.LeCamAnchors(start_step=0)

    def lecam(w: World) -> Tensor:
        r, f = w.d(w.x_real), w.d(w.x_fake)
        return gl.hinge_discriminator_loss(r, f) + gl.lecam_regularization(
            r, f, anchors, weight=0.3
        )

    aug = DiffAugment("color,translation,cutout")

    def diffaug(w: World) -> Tensor:
        return gl.hinge_discriminator_loss(w.d(aug(w.x_real)), w.d(aug(w.x_fake)))

    case = Case("DRAGAN (λ=10, k=1)", "penalty", dragan)
    if tgf is not None:

        def tg_dragan(w: World) -> Tensor:
            xp = gl.dragan_points(w.x_real, generator=w.gen)
            return 10.0 * tgf.dragan_gradient_penalty(xp, w.d(xp))

        case.anchor = tg_dragan
    return [
        case,
        Case("lazy R1 (γ=10, ×16 on a due step)", "penalty", lazy_r1),
        Case("hinge D + LeCam (λ=0.3)", "regulariser", lecam),
        Case("hinge D on DiffAugment (color,translation,cutout)", "augment", diffaug),
    ]


def build_cases(gl: Any, tgf: Any | None) -> list[Case]:
    """Every row of the table, in table order: one builder per family."""
    classic = _classic_cases(gl)
    if tgf is not None:
        _attach_torchgan_anchors(classic, tgf)
    return [
        *classic,
        *_relativistic_cases(gl),
        *_f_gan_cases(gl),
        *_gan_qp_cases(gl),
        *_ogan_cases(gl),
        *_bigan_qp_cases(gl),
        *_energy_cases(gl),
        *_imle_cases(gl),
        *_single_loss_cases(gl),
        *_penalty_cases(gl, tgf),
    ]


# --------------------------------------------------------------------------------------------------
# Measurement
# --------------------------------------------------------------------------------------------------


def step_fn(w: World, body: Callable[[World], Tensor]) -> Callable[[], None]:
    params = [*w.d.parameters(), *w.enc.parameters(), *w.t.parameters()]

    def step() -> None:
        for p in params:
            p.grad = None
        body(w).backward()

    return step


def op_fn(op: Callable[[Tensor, Tensor], Tensor], r: Tensor, f: Tensor) -> Callable[[], None]:
    rl, fl = _leaf(r), _leaf(f)

    def step() -> None:
        rl.grad = fl.grad = None
        op(rl, fl).backward()

    return step


def parity(case: Case, w: World) -> str:
    if case.anchor_op is not None:
        with torch.no_grad():
            r, f = w.d(w.x_real), w.d(w.x_fake)
        ours, theirs = case.op(r, f), case.anchor_op(r, f)  # type: ignore[misc]
        err = (ours - theirs).abs().item() / max(theirs.abs().item(), 1e-12)
        return f"equal (rel {err:.0e})" if err < 1e-5 else f"DIFFERS (rel {err:.1e})"
    if case.anchor is not None:  # the gradient penalty: whole-batch norm in torchgan
        ours, theirs = case.step(w).item(), case.anchor(w).item()
        return f"differs by design: whole-batch norm ({theirs:.4g} vs ours {ours:.4g})"
    return "—"


def oracle_note(case: Case, w: World) -> str:
    if case.oracle is None:
        return "per-sample (flattened C·H·W)" if case.family == "penalty" else ""
    ours, oracle = case.oracle(w)
    err = (ours - oracle).abs().item() / max(oracle.abs().item(), 1e-300)
    verdict = "per-sample ✓" if err < 1e-9 else "per-sample ✗"
    return f"{verdict} (rel {err:.0e} vs loop oracle)"


def measure_peaks(cases: list[Case], device: torch.device) -> dict[str, dict[str, int]]:
    """Peak extra bytes of one step, ours and anchor (see the module docstring)."""
    w = make_world(device)
    out: dict[str, dict[str, int]] = {}
    for case in cases:
        out[case.name] = {}
        for label, body in (("ours", case.step), ("anchor", case.anchor)):
            if body is None:
                continue
            fn = step_fn(w, body)
            fn()  # warm: first-call allocations (caches, autograd state) are not the step's
            out[case.name][label] = one_peak(fn, device)
    return out


def one_peak(fn: Callable[[], None], device: torch.device) -> int:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        fn()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - before
    before = proc_status_bytes("VmRSS")
    with open("/proc/self/clear_refs", "w", encoding="utf-8") as f:
        f.write("5")
    fn()
    return max(proc_status_bytes("VmHWM") - before, 0)


def cpu_peaks_in_child(quick: bool) -> dict[str, dict[str, int]]:
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536")
    cmd = [sys.executable, "-m", "tools.bench.gan_losses.losses", "--peaks-only", "--device", "cpu"]
    cmd += ["--threads", str(torch.get_num_threads())]
    return json_from_child(cmd, what="CPU peak-memory child", env=env, timeout=300) or {}


def fmt_ms(ts: list[float]) -> tuple[str, float]:
    p25, med, p75 = quartiles(ts)
    return f"{med * 1e3:.1f} ({p25 * 1e3:.1f}–{p75 * 1e3:.1f})", med


def fmt_mib(b: int | None) -> str:
    return "n/a" if b is None else f"{b / 2**20:.1f}"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="few repetitions (smoke check)")
    ap.add_argument("--reps", type=int, default=None, help="timed steps per variant")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--write", action="store_true", help="rewrite the BENCHMARKS.md block")
    ap.add_argument("--benchmarks-md", type=Path, default=BENCHMARKS_MD)
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch intra-op threads (default 1: on a loaded 2-core machine a second OpenMP "
        "thread makes tiny ops wait at barriers; BCE of 64 logits took 28 ms with 2 threads "
        "at load 8 vs 54 µs with 1)",
    )
    ap.add_argument("--peaks-only", action="store_true", help=argparse.SUPPRESS)
    return ap.parse_args(argv)


def time_step(case: Case, w: World, reps: int, device: torch.device) -> list[Any]:
    """The main table's row of one case (peak-memory columns are inserted later)."""
    fns = {"ours": step_fn(w, case.step)}
    if case.anchor is not None:
        fns["torchgan"] = step_fn(w, case.anchor)
    times = interleaved(fns, warmup=1, reps=reps, device=device)
    ours_s, ours_med = fmt_ms(times["ours"])
    if "torchgan" in times:
        tg_s, tg_med = fmt_ms(times["torchgan"])
        ratio = f"{tg_med / ours_med:.2f}×"
    else:
        tg_s, ratio = "—", "—"
    return [case.family, case.name, ours_s, tg_s, ratio, parity(case, w), oracle_note(case, w)]


def time_op(
    case: Case, gl: Any, r0: Tensor, f0: Tensor, op_reps: int, device: torch.device
) -> list[Any]:
    """The loss-op table's row of one case that has an op and a torchgan op."""
    assert case.op is not None and case.anchor_op is not None
    unchecked = case.op

    def no_checks(r: Tensor, f: Tensor, op: Callable[..., Tensor] = unchecked) -> Tensor:
        with gl.finite_checks(False):
            return op(r, f)

    ofns = {
        "ours": op_fn(case.op, r0, f0),
        "ours, no finite check": op_fn(no_checks, r0, f0),
        "torchgan": op_fn(case.anchor_op, r0, f0),
    }
    ot = interleaved(ofns, warmup=3, reps=op_reps, device=device)
    om, tm = statistics.median(ot["ours"]), statistics.median(ot["torchgan"])
    nm = statistics.median(ot["ours, no finite check"])
    return [case.name, f"{om * 1e6:.0f}", f"{nm * 1e6:.0f}", f"{tm * 1e6:.0f}", f"{tm / om:.2f}×"]


def run_cases(
    cases: list[Case], gl: Any, device: torch.device, reps: int, op_reps: int
) -> tuple[list[list[Any]], list[list[Any]]]:
    """``(rows, op_rows)``: the step timings of every case, the op timings where torchgan has one."""
    w = make_world(device)
    with torch.no_grad():
        r0, f0 = w.d(w.x_real), w.d(w.x_fake)
    rows: list[list[Any]] = []
    op_rows: list[list[Any]] = []
    for case in cases:
        rows.append(time_step(case, w, reps, device))
        if case.op is not None and case.anchor_op is not None:
            op_rows.append(time_op(case, gl, r0, f0, op_reps, device))
        print(f"{case.name}: {rows[-1][2]} ms", file=sys.stderr)
    return rows, op_rows


def add_peaks(rows: list[list[Any]], cases: list[Case], device: torch.device, quick: bool) -> None:
    peaks = measure_peaks(cases, device) if device.type == "cuda" else cpu_peaks_in_child(quick)
    for row, case in zip(rows, cases):
        p = peaks.get(case.name, {})
        row.insert(4, fmt_mib(p.get("ours")))
        row.insert(5, fmt_mib(p.get("anchor")) if case.anchor is not None else "—")


def render_header(
    args: argparse.Namespace,
    argv: list[str] | None,
    device: torch.device,
    counts: tuple[int, int, float],
    tg_note: str,
) -> list[str]:
    """The block's heading and its list of conditions; ``counts`` = (reps, op_reps, wall s)."""
    reps, op_reps, wall = counts
    v = versions("kexue-gan-losses", "torchgan", "torchvision")
    machine, load = machine_line(device), load_average()
    cmd = "python -m tools.bench.gan_losses.losses " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    mem_how = (
        "torch.cuda.max_memory_allocated over one step"
        if device.type == "cuda"
        else "VmHWM − VmRSS over one step in a child process with MALLOC_MMAP_THRESHOLD_=65536"
    )
    return [
        "## Losses and penalties: one critic step (forward + loss + backward)",
        "",
        f"- Date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- Command: `{cmd.strip()}` (from the repository root, bench environment)",
        f"- Mode: {'quick' if args.quick else 'full'}; {reps} timed steps per variant, round "
        f"robin; loss-op table {op_reps}; wall time {wall:.0f} s",
        f"- Machine: {machine}; device {device}; load average (1/5/15 min) at the end {load}",
        "- Versions: " + ", ".join(f"{k} {val}" for k, val in v.items()),
        f"- torchgan: {tg_note}",
        f"- Critic: DCGAN-style convs 3→{WIDTHS[0]}→{WIDTHS[1]}→{WIDTHS[2]} (4×4, stride 2, LeakyReLU 0.2, no norm), "
        f"linear head; inputs {B}×{C}×{HW}×{HW}; O-GAN encoder: same trunk, {NZ}-dim code; "
        "BiGAN-QP / MEG: joint critic T(x, z). D rows: critic on real + detached fake; "
        "G rows: critic on a fake leaf. Penalty rows: the penalty alone (its double backward).",
        f"- Peak memory: {mem_how}, MiB.",
        "- Parity: same scores into both functions (float32); the penalty is compared on the "
        "same interpolates. Per-sample: our penalty vs a loop of one `autograd.grad` per "
        "sample (float64, eps 0).",
        "",
    ]


def render_tables(rows: list[list[Any]], op_rows: list[list[Any]]) -> list[str]:
    return [
        markdown_table(
            [
                "family",
                "loss / penalty",
                "ours ms (p25–p75)",
                "torchgan ms (p25–p75)",
                "ours peak MiB",
                "torchgan peak MiB",
                "torchgan / ours",
                "value parity vs torchgan",
                "per-sample norm",
            ],
            [[r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8]] for r in rows],
        ),
        "",
        "Loss op alone on precomputed scores (B = 64; forward + backward to the scores), "
        "median µs — our per-call overhead (validation, the finite check) against torchgan's "
        "bare expressions:",
        "",
        markdown_table(
            ["loss", "ours µs", "ours, finite checks off µs", "torchgan µs", "torchgan / ours"],
            op_rows,
        ),
        "",
    ]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    import kexue.gan_losses as gl

    tgf, tg_note = load_torchgan()
    cases = build_cases(gl, tgf)
    if args.peaks_only:
        print(json.dumps(measure_peaks(cases, device)))
        return 0

    t_start = time.perf_counter()
    reps = args.reps or (2 if args.quick else 5)
    op_reps = 20 if args.quick else 100
    rows, op_rows = run_cases(cases, gl, device, reps, op_reps)
    add_peaks(rows, cases, device, args.quick)
    wall = time.perf_counter() - t_start

    header = render_header(args, argv, device, (reps, op_reps, wall), tg_note)
    text = "\n".join(header + render_tables(rows, op_rows))
    publish(text, args.benchmarks_md, START, END, write=args.write, header=HEADER)
    return 0


if __name__ == "__main__":
    sys.exit(main())
