"""One step of trie-constrained beam search as Triton kernels (reference: ``kernels/pytorch/beam_step.py``).

1. ``_candidates``: one program per (request, beam) row: the trie gather, mask, log-softmax and beam
   score in one pass over the row's V logits (a GPU-resident fusion of five PyTorch ops).
2. ``_block_topk``: one program per (request, block of candidates): the block's best ``KP`` keys,
   with their positions packed into the low bits of an int64 key (float bits made order-preserving in
   the high 32), so one ``tl.topk`` returns values and indices together; ties go to the lower index.
   The driver repeats it until one block is left (K x V = 65,536 candidates at beam 256 over 256
   codes: 16 blocks of 4,096, then one).

Runs on a GPU, or on CPU tensors under ``TRITON_INTERPRET=1`` (how the tests compare it with the
reference).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _candidates(logits_ptr, scores_ptr, prefix_ptr, table_ptr, noise_ptr, cand_ptr, key_ptr, V,
                HAS_NOISE: tl.constexpr, BLOCK_V: tl.constexpr):
    row = tl.program_id(0)
    offs = tl.arange(0, BLOCK_V)
    inside = offs < V
    x = tl.load(logits_ptr + row * V + offs, mask=inside, other=float("-inf")).to(tl.float32)
    top = tl.max(x, 0)
    lse = top + tl.log(tl.sum(tl.exp(x - top), 0))
    p = tl.load(prefix_ptr + row)
    child = tl.load(table_ptr + tl.maximum(p, 0) * V + offs, mask=inside, other=-1)
    allowed = (child >= 0) & (p >= 0) & inside
    cand = tl.where(allowed, tl.load(scores_ptr + row) + x - lse, float("-inf"))
    tl.store(cand_ptr + row * V + offs, cand, mask=inside)
    if HAS_NOISE:
        cand = cand + tl.load(noise_ptr + row * V + offs, mask=inside, other=0.0)
    tl.store(key_ptr + row * V + offs, cand, mask=inside)


@triton.jit
def _block_topk(key_ptr, out_ptr, N, n_blocks, BLOCK: tl.constexpr, KP: tl.constexpr):
    req, blk = tl.program_id(0), tl.program_id(1)
    offs = blk * BLOCK + tl.arange(0, BLOCK)
    x = tl.load(key_ptr + req * N + offs, mask=offs < N, other=float("-inf"))
    bits = x.to(tl.int32, bitcast=True)
    ordered = bits ^ ((bits >> 31) & 0x7FFFFFFF)  # float order as signed-int order
    packed = (ordered.to(tl.int64) << 32) | (0x7FFFFFFF - offs).to(tl.int64)  # lower index wins a tie
    best = tl.topk(packed, KP)
    tl.store(out_ptr + (req * n_blocks + blk) * KP + tl.arange(0, KP), best)


def _topk_positions(keys: torch.Tensor, k: int, block: int = 4096) -> torch.Tensor:
    """Positions of the k largest entries per row of keys (B, N), best first, by rounds of block top-k."""
    n_req = keys.shape[0]
    kp = triton.next_power_of_2(k)
    block = max(triton.next_power_of_2(block), 2 * kp)
    pos = torch.arange(keys.shape[1], device=keys.device).expand(n_req, -1)
    while True:
        n = keys.shape[1]
        n_blocks = triton.cdiv(n, block)
        out = torch.empty((n_req, n_blocks, kp), dtype=torch.int64, device=keys.device)
        _block_topk[(n_req, n_blocks)](keys.contiguous(), out, n, n_blocks, BLOCK=block, KP=kp)
        local = (0x7FFFFFFF - (out & 0xFFFFFFFF)).view(n_req, -1)
        keys, pos = keys.gather(1, local), pos.gather(1, local)
        if n_blocks == 1:
            return pos[:, :k]


def beam_step(logits: torch.Tensor, scores: torch.Tensor, prefix: torch.Tensor, table: torch.Tensor, k_next: int,
              noise: torch.Tensor | None = None, block: int = 4096, topk: str = "torch"):
    """Same contract as ``kernels.pytorch.beam_step.beam_step``; ``block``: candidates per top-k program;
    ``topk``: "torch" (the fused candidates, then ``torch.topk``; the default: 1.03-1.44x the reference on an
    H200 in 5 of 6 serving shapes, ``benchmarks/results/beam_step_gpu.json``) or "triton" (the block top-k
    rounds above: 0.57-0.90x the reference there)."""
    if topk not in ("triton", "torch"):
        raise ValueError(f"topk must be 'triton' or 'torch', not {topk!r}")
    n_req, n_beams, vocab = logits.shape
    rows = n_req * n_beams
    cand = torch.empty((rows, vocab), dtype=torch.float32, device=logits.device)
    key = torch.empty_like(cand) if noise is not None else cand
    _candidates[(rows,)](logits.contiguous(), scores.float().contiguous(), prefix.contiguous(), table.contiguous(),
                         noise.contiguous() if noise is not None else cand, cand, key, vocab,
                         HAS_NOISE=noise is not None, BLOCK_V=triton.next_power_of_2(vocab))
    k = min(k_next, n_beams * vocab)
    flat = key.view(n_req, -1)
    idx = _topk_positions(flat, k, block) if topk == "triton" else flat.topk(k, dim=1).indices
    new_scores = cand.view(n_req, -1).gather(1, idx)
    origin, code = idx // vocab, idx % vocab
    new_prefix = table[prefix.gather(1, origin).clamp(min=0), code].masked_fill(~torch.isfinite(new_scores), -1)
    return new_scores, origin, code, new_prefix
