"""Value parity of kexue-vq's FSQ, LFQ, residual FSQ/LFQ and SimVQ with vector-quantize-pytorch.

Same inputs, same parameters (projections copied where there are any), fp32:

- FSQ (odd, even and symmetric levels, eval, no projection; and with num_codebooks): indices equal
  (count of differing indices) and codes bitwise equal;
- LFQ (training mode, ``commitment_loss_weight=0.25``, ``frac_per_sample_entropy=1``, the full
  N × 2^b softmax on vqp's side): indices equal; each loss term's relative error for kexue with
  ``log_clamp=1e-5`` (vqp's clamped log) and with kexue's exact entropies (the clamp's own size);
  gradient of the total w.r.t. the input;
- residual FSQ / residual LFQ: indices equal, outputs max |Δ|;
- SimVQ (vqp ``rotation_trick=False``): indices equal, loss relative error.

    python -m tools.bench.vq.parity            # print
    python -m tools.bench.vq.parity --write    # and rewrite its block of BENCHMARKS.md
"""

from __future__ import annotations

from typing import Any

import torch

from tools.bench._common import machine_line, markdown_table, run_facts, versions
from tools.bench.vq._cli import bench_main


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach().double(), b.detach().double()
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))


def fsq_rows(vqp: Any) -> list[list[Any]]:
    """FSQ / residual FSQ index parity on Gaussian inputs (scaled ×2 to reach every level)."""
    from kexue.vq import FSQ, ResidualFSQ

    rows = []
    g = torch.Generator().manual_seed(0)
    for levels, sym, heads in [
        ([8, 5, 5, 5], False, 1),
        ([8, 6, 5], False, 1),
        ([4, 4, 4, 4], False, 1),
        ([2, 4, 6], True, 1),
        ([7, 5, 5, 5, 5], False, 2),
    ]:
        x = torch.randn(4, 4096, len(levels) * heads, generator=g) * 2
        theirs = vqp.FSQ(levels, num_codebooks=heads, preserve_symmetry=sym).eval()
        ours = FSQ(levels, num_codebooks=heads, bound="symmetric" if sym else "paper")
        q, idx = theirs(x)
        out = ours(x)
        diff = int((idx.long() != out.indices).sum())
        name = (
            f"FSQ {levels}"
            + (" symmetric" if sym else "")
            + (f" ×{heads} heads" if heads > 1 else "")
        )
        rows.append([name, idx.numel(), diff, f"{float((q - out.quantized).abs().max()):.1e}"])
    for levels, stages in [([5, 5, 5], 3), ([8, 8], 2)]:
        x = torch.randn(4, 4096, len(levels), generator=g)
        theirs = vqp.ResidualFSQ(dim=len(levels), levels=levels, num_quantizers=stages).eval()
        ours = ResidualFSQ(levels, stages)
        q, idx = theirs(x)
        out = ours(x)
        diff = int((idx.long() != out.indices).sum())
        delta = f"{float((q - out.quantized).abs().max()):.1e}"
        rows.append([f"ResidualFSQ {levels} × {stages}", idx.numel(), diff, delta])
    return rows


def lfq_rows(vqp: Any) -> list[list[Any]]:
    """LFQ index parity and loss-term relative errors (train mode, full softmax on vqp's side)."""
    from kexue.vq import LFQ, ResidualLFQ

    rows = []
    for bits, heads, n, scale in [(8, 1, 4096, 0.02), (12, 1, 1024, 0.02), (6, 3, 2048, 0.05)]:
        torch.manual_seed(bits)
        x = (torch.randn(4, n // 4, bits * heads) * scale).requires_grad_()
        theirs = vqp.LFQ(
            codebook_size=2**bits, num_codebooks=heads, commitment_loss_weight=0.25
        ).train()
        (q, idx, aux), br = theirs(x, return_loss_breakdown=True)
        g_theirs = torch.autograd.grad(aux, x)[0]
        for clamp in (1e-5, None):
            ours = LFQ(bits, num_codebooks=heads, commitment_weight=0.25, log_clamp=clamp)
            out = ours(x)
            g_ours = torch.autograd.grad(out.loss, x)[0]
            terms = [
                _rel(out.losses["per_sample_entropy"], br.per_sample_entropy),
                _rel(out.losses["codebook_entropy"], br.batch_entropy),
                _rel(out.losses["commitment"], 0.25 * br.commitment),
                _rel(out.loss, aux),
                _rel(g_ours, g_theirs),
            ]
            diff = int((idx != out.indices).sum())
            name = f"LFQ {bits} bits" + (f" ×{heads} heads" if heads > 1 else "")
            name += ", kexue log_clamp=1e-5" if clamp else ", kexue exact entropy"
            rows.append([name, idx.numel(), diff, *(f"{t:.1e}" for t in terms)])
    torch.manual_seed(1)
    x = torch.randn(4, 1024, 6)
    theirs = vqp.ResidualLFQ(
        dim=6, num_quantizers=3, codebook_size=64, commitment_loss_weight=0.25
    ).train()
    q, idx, losses = theirs(x)
    out = ResidualLFQ(6, 3, commitment_weight=0.25, log_clamp=1e-5)(x)
    diff = int((idx != out.indices).sum())
    rows.append(
        [
            "ResidualLFQ 6 bits × 3, log_clamp=1e-5",
            idx.numel(),
            diff,
            "—",
            "—",
            "—",
            f"{_rel(out.loss, losses.sum()):.1e}",
            f"out Δ {float((q - out.quantized).abs().max()):.1e}",
        ]
    )
    return rows


def simvq_row(vqp: Any) -> list[Any]:
    from kexue.vq import SimVQ

    torch.manual_seed(0)
    theirs = vqp.SimVQ(dim=32, codebook_size=1024, rotation_trick=False)
    ours = SimVQ(1024, 32)
    ours.frozen_codebook.copy_(theirs.frozen_codebook)
    ours.project.weight.data.copy_(theirs.code_transform.weight)
    x = torch.randn(8, 512, 32)
    q, idx, loss = theirs(x)
    out = ours(x)
    diff = int((idx != out.indices).sum())
    return [
        "SimVQ K=1024, D=32 (STE)",
        idx.numel(),
        diff,
        f"{_rel(out.loss, loss):.1e}",
        f"{float((q - out.quantized).abs().max()):.1e}",
    ]


def results_markdown(argv: list[str]) -> str:
    import vector_quantize_pytorch as vqp

    torch.set_num_threads(1)
    facts = run_facts(
        f"python -m tools.bench.vq.parity {' '.join(argv)}".strip(),
        mode="CPU, fp32, 1 thread",
        machine=machine_line(),
        versions=versions("kexue-vq", "vector-quantize-pytorch"),
    )
    fsq = markdown_table(
        ["quantiser", "indices", "indices differing", "max abs Δ output"], fsq_rows(vqp)
    )
    lfq = markdown_table(
        [
            "LFQ",
            "indices",
            "differing",
            "rel err H_s",
            "rel err H_b",
            "rel err commit",
            "rel err total",
            "rel err ∂total/∂x",
        ],
        lfq_rows(vqp),
    )
    sim = markdown_table(
        ["SimVQ", "indices", "differing", "rel err loss", "max abs Δ output"], [simvq_row(vqp)]
    )
    return "\n".join(
        [
            "### Parity with vector-quantize-pytorch (FSQ, LFQ, residual, SimVQ)",
            "",
            *facts,
            "",
            fsq,
            "",
            lfq,
            "",
            sim,
            "",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    return bench_main(__doc__, "bench:vq-modern-parity", argv, lambda _args, a: results_markdown(a))


if __name__ == "__main__":
    raise SystemExit(main())
