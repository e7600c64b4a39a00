"""Packed parameters (0.2.1): ActNorm (bias, log-scale), Conv2dZeros (bias, log-scale), the LU 1×1
conv (L, U, log|s|) and LearnedTop are one tensor each. Old checkpoints load, and Adam on the packed
tensors follows exactly the trajectory of Adam on the old separate tensors (it is elementwise)."""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from torch.func import functional_call

from kexue.flows import ActNorm, Invertible1x1Conv, glow
from kexue.flows.nets import Conv2dZeros
from kexue.flows.priors import LearnedTop

DATA = Path(__file__).parent / "data" / "glow_v0_2_0.pt"


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _small_glow(seed: int = 0) -> torch.nn.Module:
    return glow((1, 4, 4), levels=2, steps=1, hidden=8, generator=_gen(seed)).double()


def test_kexue_flows_0_2_0_checkpoint_loads() -> None:
    # made by kexue-flows 0.2.0 (commit e49246e): glow((1, 4, 4), levels=2, steps=1, hidden=8,
    # generator seed 0).double(), data init + 3 Adam steps, then log_prob of 5 stored points
    saved = torch.load(DATA, weights_only=True)
    old_keys = set(saved["state_dict"])
    assert {
        "levels.0.transform.layers.1.logs_param",
        "levels.0.transform.layers.2.log_s",
    } <= old_keys
    model = _small_glow(seed=7)
    model.load_state_dict(saved["state_dict"])  # strict
    model.eval()
    torch.testing.assert_close(model.log_prob(saved["x"]), saved["log_prob"], atol=1e-12, rtol=0)
    assert len(model.state_dict()) < len(old_keys)  # packed: fewer tensors
    again = _small_glow(seed=8)
    again.load_state_dict(model.state_dict())  # the new layout round-trips
    torch.testing.assert_close(again.eval().log_prob(saved["x"]), saved["log_prob"], atol=0, rtol=0)


def _legacy(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The pre-0.2.1 tensors of ``model`` (separate leaves), keyed by their packed owner."""
    out: dict[str, torch.Tensor] = {}
    for name, mod in model.named_modules():
        if isinstance(mod, (ActNorm, Conv2dZeros, LearnedTop)):
            for i, part in enumerate(mod.bias_logs.detach().clone().unbind(0)):
                out[f"{name}.bias_logs.{i}"] = part
        elif isinstance(mod, Invertible1x1Conv) and mod.lu:
            p = mod.lu_packed.detach()
            out[f"{name}.lu.lower"] = torch.tril(p, -1).clone()
            out[f"{name}.lu.upper"] = torch.triu(p, 1).clone()
            out[f"{name}.lu.log_s"] = torch.diagonal(p).clone()
    for t in out.values():
        t.requires_grad_(True)
    return out


def _packed_from(
    legacy: dict[str, torch.Tensor], model: torch.nn.Module
) -> dict[str, torch.Tensor]:
    params = dict(model.named_parameters())
    for name in [k for k in params if k.endswith(".bias_logs")]:
        params[name] = torch.stack([legacy[f"{name}.0"], legacy[f"{name}.1"]])
    for name in [k for k in params if k.endswith(".lu_packed")]:
        base = name.removesuffix("lu_packed") + "lu."
        lower, upper, log_s = (legacy[base + k] for k in ("lower", "upper", "log_s"))
        params[name] = torch.tril(lower, -1) + torch.triu(upper, 1) + torch.diag(log_s)
    return params


def test_adam_on_packed_tensors_equals_adam_on_separate_tensors() -> None:
    packed = _small_glow()
    packed.train()
    x0 = torch.rand(8, 1, 4, 4, generator=_gen(1), dtype=torch.float64)
    packed.log_prob(x0)  # ActNorm data init
    twin = copy.deepcopy(packed)
    legacy = _legacy(twin)
    packed_names = {
        k for k in dict(twin.named_parameters()) if k.endswith(("bias_logs", "lu_packed"))
    }
    others = [p for k, p in twin.named_parameters() if k not in packed_names]
    assert len(legacy) > len(packed_names)  # the old layout really had more tensors
    opt_a = torch.optim.Adam(packed.parameters(), lr=1e-2)
    opt_b = torch.optim.Adam([*others, *legacy.values()], lr=1e-2)
    g = _gen(2)
    for _ in range(3):
        x = torch.rand(8, 1, 4, 4, generator=g, dtype=torch.float64)
        loss_a = -packed.log_prob(x).mean()
        opt_a.zero_grad()
        loss_a.backward()
        opt_a.step()
        params = _packed_from(legacy, twin)
        loss_b = -_log_prob(twin, params, x).mean()
        torch.testing.assert_close(loss_b, loss_a, atol=0, rtol=0)
        opt_b.zero_grad()
        loss_b.backward()
        opt_b.step()
    final = _packed_from(legacy, twin)
    for name, p in packed.named_parameters():
        torch.testing.assert_close(final[name].detach(), p.detach(), atol=0, rtol=0, msg=name)


class _LogProb(torch.nn.Module):
    def __init__(self, m: torch.nn.Module) -> None:
        super().__init__()
        self.m = m

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.m.log_prob(x)


def _log_prob(
    model: torch.nn.Module, params: dict[str, torch.Tensor], x: torch.Tensor
) -> torch.Tensor:
    return functional_call(_LogProb(model), {f"m.{k}": v for k, v in params.items()}, (x,))
