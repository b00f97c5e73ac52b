"""GPU benchmark of the beam-step kernel (``kernels/triton/beam_step.py``) against its PyTorch reference.

Shapes of the serving path: B requests x K beams over V codes, K = 256 / 512, V = 256, B = 1 / 8 / 32. Each
shape is checked equal to the reference first, then timed with CUDA events (median of 50 after warm-up).
Refuses to run without a GPU (no CPU figures are recorded under this name). Usage on a GPU machine:
``python -m benchmarks.beam_step_gpu`` -> ``benchmarks/results/beam_step_gpu.json``.
"""

from __future__ import annotations

import sys

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
            want, got = reference(logits, scores, prefix, table, beams), kernel(logits, scores, prefix, table, beams)
            ok = torch.allclose(want[0].nan_to_num(-1e9), got[0].nan_to_num(-1e9), atol=1e-4)
            args = (logits, scores, prefix, table, beams)
            ref_ms, ker_ms = timed(reference, args), timed(kernel, args)
            rows.append({"beams": beams, "requests": n_req, "vocab": vocab, "reference_ms": round(ref_ms, 4),
                         "triton_ms": round(ker_ms, 4), "speedup": round(ref_ms / ker_ms, 2), "equal": bool(ok)})
            print(rows[-1], flush=True)
    write_result("beam_step_gpu", {"device": torch.cuda.get_device_name(0), "shapes": rows})


if __name__ == "__main__":
    main()
