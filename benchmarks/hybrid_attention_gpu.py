"""GPU benchmark of the hybrid-mask attention kernel (``kernels/triton/hybrid_attention.py``) against PyTorch SDPA
with the same boolean mask, FlexAttention with the rule as a ``mask_mod``, and ``torch.compile`` of the reference.

Shapes of the generator: jagged encoder self-attention over histories (no causal mask, padded keys), and the causal
decoder with the BOS + instruction prefix, in bf16. Each implementation is checked against the float32 reference
first, then timed with CUDA events (median of 50 after warm-up); the kernel also under every ``SWEEP`` block /
warp / stage configuration, beside the one its shape heuristic picks. Refuses to run without a GPU (the CPU path is
the reference, tested against the kernel under TRITON_INTERPRET=1). Seed 000 reports its kernel at 1.7x
FlexAttention and 3x torch.compile. Usage on a GPU machine:
``python -m benchmarks.hybrid_attention_gpu`` -> ``benchmarks/results/hybrid_attention_gpu.json``.
"""

from __future__ import annotations

import sys

import torch
import torch.nn.functional as F

from benchmarks.beam_step_gpu import timed
from benchmarks.common import write_result
from kernels.pytorch.hybrid_attention import hybrid_attention as reference
from kernels.pytorch.hybrid_attention import hybrid_mask
from kernels.triton.hybrid_attention import hybrid_attention as kernel
from kernels.triton.hybrid_attention import launch_config

SHAPES = [  # name, B, H, Tq, Tk, D, causal, n_prefix
    ("encoder_b256_t256", 256, 8, 256, 256, 64, False, 0),
    ("encoder_b64_t1024", 64, 8, 1024, 1024, 64, False, 0),
    ("decoder_b256_t8_prefix2", 256, 8, 8, 8, 64, True, 2),
    ("prefix_lm_b64_t1024", 64, 8, 1024, 1024, 64, True, 2),
]


def flex(q, k, v, q_len, k_len, causal, n_prefix):
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention

    def rule(b, h, i, j):
        ok = (i < q_len[b]) & (j < k_len[b])
        return ok & ((j < n_prefix) | (j <= i + k_len[b] - q_len[b])) if causal else ok

    block = create_block_mask(rule, q.shape[0], None, q.shape[2], k.shape[2], device=q.device)
    fn = torch.compile(flex_attention)
    return lambda: fn(q, k, v, block_mask=block)


# (block_m, block_n, num_warps, num_stages) tried for the kernel beside its shape heuristic (``launch_config``)
SWEEP = [(64, 64, 4, 2), (64, 64, 4, 3), (128, 64, 4, 3), (128, 64, 8, 3), (128, 128, 8, 3), (64, 32, 4, 3),
         (32, 32, 4, 2)]


def sweep(q, k, v, q_len, k_len, causal, n_prefix) -> dict:
    """Milliseconds of every SWEEP configuration (the same output; configurations that fail are skipped)."""
    out = {}
    for bm, bn, w, st in SWEEP:
        def fn(bm=bm, bn=bn, w=w, st=st):
            return kernel(q, k, v, q_len, k_len, causal, n_prefix, block_m=bm, block_n=bn, num_warps=w, num_stages=st)
        try:
            out[f"{bm}x{bn}_w{w}_s{st}"] = round(timed(fn, ()), 4)
        except Exception as e:  # e.g. out of shared memory for a large block
            print(f"config {bm}x{bn} w{w} s{st}: {type(e).__name__}", flush=True)
    return out


def implementations(q, k, v, q_len, k_len, causal, n_prefix, mask, compiled_ref) -> dict:
    return {"triton": lambda: kernel(q, k, v, q_len, k_len, causal, n_prefix),
            "sdpa_mask": lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=mask),
            "flex_attention": flex(q, k, v, q_len, k_len, causal, n_prefix),
            "compiled_reference": lambda: compiled_ref(q, k, v, q_len, k_len, causal, n_prefix)}


def main() -> None:
    if not torch.cuda.is_available():
        sys.exit("hybrid_attention_gpu needs a CUDA GPU (the CPU path is the PyTorch reference, tested under "
                 "TRITON_INTERPRET=1)")
    torch.manual_seed(0)
    dev, out = torch.device("cuda"), {}
    compiled_ref = torch.compile(reference)
    for name, B, H, tq, tk, d, causal, n_prefix in SHAPES:
        q, k, v = (torch.randn(B, H, t, d, device=dev, dtype=torch.bfloat16) for t in (tq, tk, tk))
        k_len = torch.randint(tk // 4, tk + 1, (B,), device=dev)
        q_len = k_len if tq == tk else torch.full((B,), tq, device=dev)
        want = reference(q.float(), k.float(), v.float(), q_len, k_len, causal, n_prefix)
        mask = hybrid_mask(q_len, k_len, tq, tk, causal, n_prefix)
        runs = implementations(q, k, v, q_len, k_len, causal, n_prefix, mask, compiled_ref)
        row = {}
        visible = mask.squeeze(1).any(-1)[:, None, :, None].expand_as(want)
        for impl, fn in runs.items():
            got = fn().float()
            row[f"{impl}_max_err"] = float((got - want).abs()[visible].max())
            row[f"{impl}_ms"] = timed(lambda fn=fn: fn(), ())
        for impl in ("sdpa_mask", "flex_attention", "compiled_reference"):
            row[f"speedup_vs_{impl}"] = row[f"{impl}_ms"] / row["triton_ms"]
        row["triton_config"] = launch_config(tq, tk)
        row["triton_sweep_ms"] = sweep(q, k, v, q_len, k_len, causal, n_prefix)
        if row["triton_sweep_ms"]:
            row["triton_best_config"] = min(row["triton_sweep_ms"], key=row["triton_sweep_ms"].get)
            row["triton_best_ms"] = row["triton_sweep_ms"][row["triton_best_config"]]
        out[name] = row
        print(name, {k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}, flush=True)
    write_result("hybrid_attention_gpu", {"shapes": out})


if __name__ == "__main__":
    main()
