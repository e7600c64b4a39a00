"""Post-hoc EMA (Karras et al. 2023, EDM2): track power-function EMAs, snapshot them, and
reconstruct an EMA of any σ_rel after training.

:class:`PowerEMA` keeps one power-function :class:`~kexue.keras_compat.ema.EMA` per σ_rel (edm2
tracks {0.05, 0.10}) and writes a snapshot of every profile each ``snapshot_every`` calls, in
memory or to a directory (rank 0 writes; atomic renames). :func:`reconstruct` solves the paper's
least-squares system (Algorithm 3) for the coefficients x with Σ xᵢ·θ̂ᵢ closest, in L², to the
profile of the target σ_rel at time t, and streams the snapshots one at a time.

Time is counted in optimiser steps after ``update_after_step`` (the units cancel in the solve). An
update covering Δt steps uses β = (1 − Δt/t)^(γ+1) (edm2), also for ``update_every`` > 1, where
ema-pytorch's ``KarrasEMA`` takes Δt = 1 and realises a different profile (not ported).

References:
    Karras et al., "Analyzing and Improving the Training Dynamics of Diffusion Models",
    arXiv 2312.02696, §3 and Appendix C.2; NVlabs/edm2 ``training/phema.py``,
    ``reconstruct_phema.py``; lucidrains/ema-pytorch ``PostHocEMA`` (ema-pytorch#14, PR #17).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ._power import gamma_to_sigma_rel, profile_inner, sigma_rel_to_gamma
from .ema import EMA
from .progress import is_rank_zero

__all__ = ["PowerEMA", "posthoc_coefficients", "reconstruct"]

_FORMAT = "kexue-posthoc-1"
Snapshot = dict[str, Any]


class PowerEMA:
    """Power-function EMAs of a model at several σ_rel, with snapshots for :func:`reconstruct`.

    Call :meth:`update` after every optimiser step (or :meth:`attach`). Every ``snapshot_every``
    calls each profile's average is snapshot: ``{"format", "sigma_rel", "gamma", "t", "step",
    "params", "buffers"}`` with tensors in ``snapshot_dtype`` on the CPU. With a directory
    ``store`` rank 0 writes ``phema-<step>-<profile>.pt`` (written under a temporary name and
    renamed, so a crash never leaves half a file); other ranks write nothing. Resuming from
    :meth:`state_dict` continues bitwise as if never interrupted.

    Arguments:
        model: the live model (wrappers are stripped).
        sigma_rels: relative widths of the tracked profiles; default (0.05, 0.10) (edm2).
        snapshot_every: calls between snapshots (> 0); edm2 snapshots every 8 Mi images.
        store: ``"memory"`` (default; :attr:`snapshots`) or a directory path.
        snapshot_dtype: dtype of the saved tensors; default ``torch.float16`` (edm2,
            ema-pytorch). ``torch.float32`` halves the reconstruction's quantisation error.
        update_every / update_after_step / device / dtype / skip_nonfinite: passed to each
            :class:`EMA` (Δt = steps covered by an update; t counts steps after
            ``update_after_step``).

    Buffers are copied from the live model (edm2 averages parameters only).

    Example:
        >>> phema = PowerEMA(net, (0.05, 0.10), snapshot_every=100, store="ckpt/phema")
        >>> phema.attach(opt)
        >>> ...  # train
        >>> net.load_state_dict(reconstruct("ckpt/phema", sigma_rel=0.07))
    """

    def __init__(
        self,
        model: nn.Module,
        sigma_rels: Sequence[float] = (0.05, 0.10),
        *,
        snapshot_every: int,
        store: str | os.PathLike[str] = "memory",
        snapshot_dtype: torch.dtype = torch.float16,
        update_every: int = 1,
        update_after_step: int = 0,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        skip_nonfinite: bool = False,
    ) -> None:
        if isinstance(sigma_rels, (int, float)) or not len(sigma_rels):
            raise ValueError(f"sigma_rels must be a non-empty sequence, got {sigma_rels!r}")
        if (
            isinstance(snapshot_every, bool)
            or not isinstance(snapshot_every, int)
            or snapshot_every < 1
        ):
            raise ValueError(f"snapshot_every must be an integer >= 1, got {snapshot_every!r}")
        if not (isinstance(snapshot_dtype, torch.dtype) and snapshot_dtype.is_floating_point):
            raise ValueError(
                f"snapshot_dtype must be a floating torch.dtype, got {snapshot_dtype!r}"
            )
        self.emas = [
            EMA(
                model,
                sigma_rel=float(s),
                buffers="copy",
                update_every=update_every,
                update_after_step=update_after_step,
                device=device,
                dtype=dtype,
                skip_nonfinite=skip_nonfinite,
            )
            for s in sigma_rels
        ]
        self.sigma_rels = tuple(float(s) for s in sigma_rels)
        self.snapshot_every = snapshot_every
        self.snapshot_dtype = snapshot_dtype
        self.directory = None if str(store) == "memory" else Path(store)
        self.snapshots: list[Snapshot] = []  # memory store
        self.num_calls = 0

    @torch.no_grad()
    def update(self, model: nn.Module | None = None) -> None:
        """Update every profile; snapshot them every ``snapshot_every`` calls."""
        for ema in self.emas:
            ema.update(model)
        self.num_calls += 1
        if self.num_calls % self.snapshot_every == 0:
            self.snapshot()

    def attach(self, optimizer: torch.optim.Optimizer) -> Any:
        """Call :meth:`update` after every ``optimizer.step()``; returns the hook handle."""
        return optimizer.register_step_post_hook(lambda opt, args, kwargs: self.update())

    def _snapshot_of(self, ema: EMA) -> Snapshot:
        def cast(named: Iterable[tuple[str, Tensor]]) -> dict[str, Tensor]:
            return {
                n: (v.to(self.snapshot_dtype) if v.is_floating_point() else v)
                .detach()
                .cpu()
                .clone()
                for n, v in named
            }

        t = ema._t if isinstance(ema._t, int) else float(ema._t)  # one read per snapshot
        return {
            "format": _FORMAT,
            "sigma_rel": ema.sigma_rel,
            "gamma": ema.gamma,
            "t": float(t),
            "step": self.num_calls,
            "params": cast(ema.module.named_parameters()),
            "buffers": cast(ema.module.named_buffers()),
        }

    def snapshot(self) -> list[Snapshot]:
        """Snapshot every profile now (also called by :meth:`update`); returns the snapshots."""
        snaps = [self._snapshot_of(e) for e in self.emas]
        if self.directory is None:
            self.snapshots.extend(snaps)
        elif is_rank_zero():
            self.directory.mkdir(parents=True, exist_ok=True)
            for i, snap in enumerate(snaps):
                path = self.directory / f"phema-{self.num_calls:010d}-{i}.pt"
                tmp = path.with_suffix(".pt.tmp")
                torch.save(snap, tmp)
                os.replace(tmp, path)
        return snaps

    def state_dict(self) -> dict[str, Any]:
        """The profiles' states, the call count and (memory store) the snapshots."""
        return {
            "num_calls": self.num_calls,
            "sigma_rels": self.sigma_rels,
            "emas": [e.state_dict() for e in self.emas],
            "snapshots": list(self.snapshots),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (the σ_rels must match)."""
        if tuple(state["sigma_rels"]) != self.sigma_rels:
            raise ValueError(
                f"state_dict tracks sigma_rels {tuple(state['sigma_rels'])}, this PowerEMA "
                f"{self.sigma_rels}"
            )
        for ema, s in zip(self.emas, state["emas"], strict=True):
            ema.load_state_dict(s)
        self.num_calls = int(state["num_calls"])
        self.snapshots = list(state.get("snapshots", []))


def _as_snapshots(snapshots: Any) -> list[Snapshot | Path]:
    if isinstance(snapshots, PowerEMA):
        if snapshots.directory is None:
            return list(snapshots.snapshots)
        snapshots = snapshots.directory
    if isinstance(snapshots, (str, os.PathLike)):
        files = sorted(Path(snapshots).glob("phema-*.pt"))
        if not files:
            raise ValueError(f"snapshots: no phema-*.pt files in {str(snapshots)!r}")
        return list(files)
    out = list(snapshots)
    if not out:
        raise ValueError("snapshots: empty")
    return out


def _load(item: Snapshot | Path) -> Snapshot:
    snap = (
        item
        if isinstance(item, dict)
        else torch.load(item, map_location="cpu", mmap=True, weights_only=True)
    )
    if snap.get("format") != _FORMAT:
        raise ValueError(
            f"snapshots: {item if not isinstance(item, dict) else 'a dict'} is not a kexue post-hoc snapshot"
        )
    return snap


def posthoc_coefficients(
    ts: Sequence[float], gammas: Sequence[float], t: float, gamma: float
) -> tuple[np.ndarray, float, float]:
    """Least-squares coefficients of snapshots (tᵢ, γᵢ) for the target profile (t, γ).

    Solves A x = b with A_ij = ⟨p_i, p_j⟩, b_i = ⟨p_i, p_target⟩ in float64 (paper Algorithm 3,
    ``lstsq`` so that repeated profiles do not break it), then rescales x to sum 1 (edm2
    ``solve_posthoc_coefficients``). Returns ``(x, residual, cond(A))`` with the relative L²
    residual r = √((⟨p,p⟩ − 2xᵀb + xᵀAx)/⟨p,p⟩) of the rescaled x.
    """
    n = len(ts)
    a = np.array(
        [[profile_inner(ts[i], gammas[i], ts[j], gammas[j]) for j in range(n)] for i in range(n)]
    )
    b = np.array([profile_inner(ts[i], gammas[i], t, gamma) for i in range(n)])
    x = np.linalg.lstsq(a, b, rcond=None)[0]
    x = x / x.sum()
    pp = profile_inner(t, gamma, t, gamma)
    residual = float(np.sqrt(max(pp - 2 * x @ b + x @ a @ x, 0.0) / pp))
    return x, residual, float(np.linalg.cond(a))


def reconstruct(
    snapshots: Any,
    sigma_rel: float | None = None,
    *,
    gamma: float | None = None,
    t: float | None = None,
    dtype: torch.dtype = torch.float32,
    return_info: bool = False,
) -> dict[str, Tensor] | tuple[dict[str, Tensor], dict[str, Any]]:
    """Synthesise the power-function EMA of ``sigma_rel`` (or ``gamma``) at time ``t`` from
    snapshots (edm2 semantics).

    Snapshots after ``t`` are ignored (default ``t``: the latest snapshot's); the coefficients come
    from :func:`posthoc_coefficients`; the parameters are Σ xᵢ·θ̂ᵢ, accumulated in float64 one
    snapshot at a time, and the buffers are those of the latest snapshot at or before ``t``.
    Warns when cond(A) > 1e12 or the relative residual exceeds 0.05.

    Arguments:
        snapshots: a :class:`PowerEMA`, a directory of ``phema-*.pt`` files, or a sequence of
            snapshot dicts / paths.
        sigma_rel / gamma: the target profile (one of them).
        t: the target time in steps (default: the latest snapshot).
        dtype: dtype of the returned parameters (default float32).
        return_info: also return ``{"coefficients", "residual", "cond", "t", "used"}``.

    Returns:
        A state dict for the model (``model.load_state_dict(...)``), or ``(state, info)``.
    """
    if (sigma_rel is None) == (gamma is None):
        raise ValueError("give exactly one of sigma_rel and gamma")
    g = sigma_rel_to_gamma(sigma_rel) if gamma is None else float(gamma)
    gamma_to_sigma_rel(g)  # validates
    items = _as_snapshots(snapshots)
    heads = []
    for item in items:
        s = _load(item)
        heads.append((float(s["t"]), float(s["gamma"]), int(s["step"]), item))
    t_r = max(h[0] for h in heads) if t is None else float(t)
    used = [h for h in heads if 0 < h[0] <= t_r]
    if not used:
        raise ValueError(
            f"t: no snapshot with 0 < t_i <= {t_r} (snapshot times {sorted({h[0] for h in heads})})"
        )
    x, residual, cond = posthoc_coefficients([h[0] for h in used], [h[1] for h in used], t_r, g)
    if cond > 1e12 or residual > 0.05:
        warnings.warn(
            f"reconstruct: ill-posed target (cond(A) = {cond:.3g}, relative residual "
            f"{residual:.3g}); track profiles closer to sigma_rel={gamma_to_sigma_rel(g):.4f} or "
            "snapshot more often",
            RuntimeWarning,
            stacklevel=2,
        )
    acc: dict[str, Tensor] = {}
    latest = max(used, key=lambda h: (h[0], h[2]))
    buffers: dict[str, Tensor] = {}
    for coef, h in zip(x, used, strict=True):
        snap = _load(h[3])
        for name, v in snap["params"].items():
            term = v.double() * float(coef)
            acc[name] = acc[name] + term if name in acc else term
        if h is latest:
            buffers = {n: v.clone() for n, v in snap["buffers"].items()}
    state = {n: v.to(dtype) for n, v in acc.items()} | buffers
    if return_info:
        info = {"coefficients": x, "residual": residual, "cond": cond, "t": t_r, "used": len(used)}
        return state, info
    return state
