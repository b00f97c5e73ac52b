"""The hybrid-mask attention as one Triton kernel (reference and mask rule: ``kernels/pytorch/hybrid_attention.py``).

Flash-attention style: one program per (batch x head, block of queries) streams the key blocks with an online
softmax, so the (Tq, Tk) score matrix is never written to memory. The mask is computed from indices and the
row's lengths inside the kernel (no mask tensor is read), and key blocks past the row's length, or past the
causal frontier of the whole query block, are skipped. Forward only (inference and serving).

Runs on a GPU, or on CPU tensors under ``TRITON_INTERPRET=1`` (how the tests compare it with the reference).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

LOG2E = 1.4426950408889634  # exp(x) = exp2(x * log2 e)

@triton.jit
def _hybrid_attention_fwd(q_ptr, k_ptr, v_ptr, o_ptr, qlen_ptr, klen_ptr, scale, H, TQ, TK, n_prefix,
                          sq_b, sq_h, sq_t, sk_b, sk_h, sk_t, sv_b, sv_h, sv_t, so_b, so_h, so_t,
                          CAUSAL: tl.constexpr, D: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    bh = tl.program_id(0)
    b, h = bh // H, bh % H
    m0 = tl.program_id(1) * BLOCK_M
    q_len = tl.load(qlen_ptr + b)
    k_len = tl.load(klen_ptr + b)
    offs_m = m0 + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, D)
    q = tl.load(q_ptr + b * sq_b + h * sq_h + offs_m[:, None] * sq_t + offs_d[None, :],
                mask=offs_m[:, None] < TQ, other=0.0)
    m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)
    l_i = tl.zeros([BLOCK_M], tl.float32)
    acc = tl.zeros([BLOCK_M, D], tl.float32)
    end = k_len
    if CAUSAL:  # no key after the block's last query's frontier is visible (except the prefix, below it anyway)
        end = tl.minimum(k_len, tl.maximum(m0 + BLOCK_M + k_len - q_len, n_prefix))
    for n0 in range(0, end, BLOCK_N):
        offs_n = n0 + tl.arange(0, BLOCK_N)
        kv_in = offs_n[:, None] < TK
        k = tl.load(k_ptr + b * sk_b + h * sk_h + offs_n[:, None] * sk_t + offs_d[None, :], mask=kv_in, other=0.0)
        v = tl.load(v_ptr + b * sv_b + h * sv_h + offs_n[:, None] * sv_t + offs_d[None, :], mask=kv_in, other=0.0)
        s = tl.dot(q, tl.trans(k)) * scale  # operands in the input dtype (bf16 on tensor cores), fp32 sums
        ok = (offs_m[:, None] < q_len) & (offs_n[None, :] < k_len)
        if CAUSAL:
            ok = ok & ((offs_n[None, :] < n_prefix) | (offs_n[None, :] <= offs_m[:, None] + k_len - q_len))
        s = tl.where(ok, s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, 1))
        m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)  # rows with nothing visible yet
        alpha = tl.exp2(m_i - m_safe)  # scores are in log2 units (scale carries log2 e)
        p = tl.exp2(s - m_safe[:, None])
        l_i = l_i * alpha + tl.sum(p, 1)
        acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v)
        m_i = m_new
    out = acc / tl.where(l_i > 0, l_i, 1.0)[:, None]
    tl.store(o_ptr + b * so_b + h * so_h + offs_m[:, None] * so_t + offs_d[None, :], out.to(o_ptr.dtype.element_ty),
             mask=offs_m[:, None] < TQ)


def launch_config(tq: int, tk: int) -> dict:
    """Blocks, warps and pipeline stages by shape: long sequences take 128-query blocks and a 3-stage pipeline
    (flash-attention's usual forward setting for head dimension 64); a few decoder queries one small block."""
    if tq >= 128:
        return {"block_m": 128, "block_n": 64, "num_warps": 8, "num_stages": 3}
    return {"block_m": 64, "block_n": 64, "num_warps": 4, "num_stages": 2}


def hybrid_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, q_len: torch.Tensor, k_len: torch.Tensor,
                     causal: bool = False, n_prefix: int = 0, scale: float | None = None,
                     block_m: int | None = None, block_n: int | None = None, num_warps: int | None = None,
                     num_stages: int | None = None) -> torch.Tensor:
    """Same contract as the reference. The head dimension must be a power of two >= 16 (tl.dot). The dots take
    the inputs' dtype (bf16 / fp16 run on tensor cores; fp32 inputs as Triton's default fp32 dot), softmax
    and sums are fp32. Block sizes, warps and pipeline stages: ``benchmarks/hybrid_attention_gpu.py`` sweeps
    them."""
    B, H, TQ, D = q.shape
    TK = k.shape[2]
    if D < 16 or D & (D - 1):
        raise ValueError(f"head dimension {D} must be a power of two >= 16 for the Triton kernel")
    if k.stride(-1) != 1 or v.stride(-1) != 1 or q.stride(-1) != 1:
        q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
    o = torch.empty_like(q)
    cfg = launch_config(TQ, TK)
    block_m, block_n = block_m or cfg["block_m"], block_n or cfg["block_n"]
    num_warps, num_stages = num_warps or cfg["num_warps"], num_stages or cfg["num_stages"]
    block_m = min(block_m, max(16, triton.next_power_of_2(TQ)))
    block_n = min(block_n, max(16, triton.next_power_of_2(TK)))
    grid = (B * H, triton.cdiv(TQ, block_m))
    _hybrid_attention_fwd[grid](q, k, v, o, q_len.to(torch.int32).contiguous(), k_len.to(torch.int32).contiguous(),
                                (D ** -0.5 if scale is None else scale) * LOG2E, H, TQ, TK, n_prefix,
                                *q.stride()[:3], *k.stride()[:3], *v.stride()[:3], *o.stride()[:3],
                                CAUSAL=causal, D=D, BLOCK_M=block_m, BLOCK_N=block_n, num_warps=num_warps,
                                num_stages=num_stages)
    return o
