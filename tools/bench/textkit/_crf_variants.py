"""The variants of one setting of ``python -m tools.bench.textkit.crf``: seeded inputs, the
pytorch-crf and kexue callables (NLL forward+backward, Viterbi), their agreement, and the peak
memory of one call per variant, measured in a fresh process
(``python -m tools.bench.textkit._crf_variants '<json job>'``)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from typing import Any

import torch

from tools.bench._common import json_from_child, proc_status_bytes

SEED = 0
NLL = ("pytorch-crf", "kexue auto", "kexue matmul", "kexue lse")
DECODE = ("pytorch-crf", "kexue", "kexue max")


def inputs(b: int, t: int, k: int, masked: bool) -> dict[str, Any]:
    g = torch.Generator().manual_seed(SEED)
    h = torch.randn(b, t, k, generator=g)
    tags = torch.randint(0, k, (b, t), generator=g)
    if masked:
        lengths = torch.randint(t // 4, t + 1, (b,), generator=g)
    else:
        lengths = torch.full((b,), t)
    mask = torch.arange(t) < lengths[:, None]
    return {"h": h, "tags": tags, "mask": mask}


def build(b: int, t: int, k: int, masked: bool, has_ref: bool) -> dict[str, Any]:
    """Models and the zero-argument callables of one setting."""
    from kexue.textkit.tagging.crf.functional import viterbi_decode
    from kexue.textkit.tagging.crf.module import CRF

    torch.manual_seed(SEED)
    x = inputs(b, t, k, masked)
    h = x["h"].requires_grad_(True)
    tags, mask = x["tags"], x["mask"]
    if has_ref:
        import torchcrf

        ref = torchcrf.CRF(k, batch_first=True)
        ours = {n: CRF.from_pytorch_crf(ref, algorithm=n.split()[1]) for n in NLL[1:]}
    else:
        ours = {n: CRF(k, algorithm=n.split()[1]) for n in NLL[1:]}
    nll: dict[str, Callable[[], Any]] = {}
    models = {}
    if has_ref:

        def ref_nll() -> None:
            h.grad = None
            ref.zero_grad()
            (-ref(h, tags, mask, reduction="sum")).backward()

        nll[NLL[0]] = ref_nll
        models[NLL[0]] = ref
    for name, crf in ours.items():

        def our_nll(crf: Any = crf) -> None:
            h.grad = None
            crf.zero_grad()
            crf(h, tags, mask, reduction="sum").backward()

        nll[name] = our_nll
        models[name] = crf
    hd = h.detach()
    decode: dict[str, Callable[[], Any]] = {}
    if has_ref:
        decode[DECODE[0]] = lambda: ref.decode(hd, mask)
    decode[DECODE[1]] = lambda: ours["kexue auto"].decode(hd, mask)
    auto = ours["kexue auto"]
    decode[DECODE[2]] = lambda: viterbi_decode(
        hd, auto.transitions.detach(), mask=mask, start=auto.start_transitions.detach(),
        end=auto.end_transitions.detach(), algorithm="max",
    )  # fmt: skip
    return {"nll": nll, "decode": decode, "models": models, "x": x}


def agreement(parts: dict[str, Any], has_ref: bool) -> dict[str, Any]:
    if not has_ref:
        return {}
    x, models = parts["x"], parts["models"]
    h, tags, mask = x["h"].detach(), x["tags"], x["mask"]
    with torch.no_grad():
        want = models[NLL[0]](h, tags, mask, reduction="none")
        dll = {
            name: float((models[name].log_likelihood(h, tags, mask, "none") - want).abs().max())
            for name in NLL[1:]
        }
        ref_paths = models[NLL[0]].decode(h, mask)
        same = {}
        for name in DECODE[1:]:
            ours = parts["decode"][name]()
            ours = ours[0] if isinstance(ours, tuple) else ours
            hits = sum(ours[i, : len(p)].tolist() == p for i, p in enumerate(ref_paths))
            same[name] = hits / len(ref_paths)
    return {"dll": dll, "same": same}


def child_memory(job: dict[str, Any]) -> dict[str, int]:
    """Peak extra bytes of one call per variant (run in a fresh process)."""
    torch.set_num_threads(job["threads"])
    b, t, k = job["shape"]
    parts = build(b, t, k, job["masked"], job["has_ref"])
    out = {}
    for kind in ("nll", "decode"):
        for name, fn in parts[kind].items():
            fn()  # warm-up
            before = proc_status_bytes("VmRSS")
            with open("/proc/self/clear_refs", "w", encoding="utf-8") as f:
                f.write("5")
            fn()
            out[f"{kind}:{name}"] = proc_status_bytes("VmHWM") - before
    return out


def memory(shape: tuple[int, int, int], masked: bool, args: argparse.Namespace) -> dict[str, int]:
    job = {"shape": list(shape), "masked": masked, "has_ref": args.has_ref, "threads": args.threads}
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", __spec__.name, json.dumps(job)]
    return json_from_child(cmd, what="memory child", env=env) or {}


if __name__ == "__main__":  # a child of ``memory``: one setting's peaks as one JSON line
    print(json.dumps(child_memory(json.loads(sys.argv[1]))))
