"""GPU benchmark of the beam-step kernel (``kernels/triton/beam_step.py``) against its PyTorch reference.

Shapes of the serving path: B requests x K beams over V codes, K = 256 / 512, V = 256, B = 1 / 8 / 32. Each
shape is checked equal to the reference first, then timed with CUDA events (median of 50 after warm-up), for the
kernel's own block top-k and for the fused candidate kernel followed by ``torch.topk``.
Refuses to run without a GPU (no CPU figures are recorded under this name). Usage on a GPU machine:
``python -m benchmarks.beam_step_gpu`` -> ``benchmarks/results/beam_step_gpu.json``.
"""

from __future__ import annotations

import sys
from functools import partial

import torch

from benchmarks.common import write_result
from kernels.pytorch.beam_step import beam_step as reference
from kernels.triton.beam_step import beam_step as kernel


def timed(fn, args, reps: int = 50) -> float:
    for _ in range(5):
        fn(*args)
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn(*args)
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return sorted(times)[len(times) // 2]


def main() -> None:
    if not torch.cuda.is_available():
        sys.exit("beam_step_gpu needs a CUDA GPU (the CPU path is the PyTorch reference, tested under "
                 "TRITON_INTERPRET=1)")
    dev, vocab, n_prefix = torch.device("cuda"), 256, 6000
    table = torch.where(torch.rand(n_prefix, vocab, device=dev) < 0.05,
                        torch.randint(0, 12000, (n_prefix, vocab), device=dev), -1)
    rows = []
    for beams in (256, 512):
        for n_req in (1, 8, 32):
            logits = torch.randn(n_req, beams, vocab, device=dev)
            scores = -torch.rand(n_req, beams, device=dev) * 5
            prefix = torch.randint(0, n_prefix, (n_req, beams), device=dev)
            want = reference(logits, scores, prefix, table, beams)
            args = (logits, scores, prefix, table, beams)
            row = {"beams": beams, "requests": n_req, "vocab": vocab, "reference_ms": round(timed(reference, args), 4)}
            for topk in ("triton", "torch"):  # the kernel's own block top-k, or torch.topk after the fused kernel
                fn = partial(kernel, topk=topk)
                got = fn(*args)
                name = "triton" if topk == "triton" else "triton_torch_topk"
                row[f"{name}_ms"] = round(timed(fn, args), 4)
                row[f"{name}_speedup"] = round(row["reference_ms"] / row[f"{name}_ms"], 2)
                row[f"{name}_equal"] = bool(torch.allclose(want[0].nan_to_num(-1e9), got[0].nan_to_num(-1e9),
                                                           atol=1e-4))
            rows.append(row)
            print(rows[-1], flush=True)
    write_result("beam_step_gpu", {"device": torch.cuda.get_device_name(0), "shapes": rows})


if __name__ == "__main__":
    main()
