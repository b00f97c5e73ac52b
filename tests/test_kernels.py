"""Triton kernels against their PyTorch references, on CPU under TRITON_INTERPRET=1 (one subprocess, so the
interpreter setting never leaks into the rest of the suite)."""

import os
import subprocess
import sys
from pathlib import Path

import torch

from kernels.beam_step import beam_step
from kernels.pytorch.beam_step import beam_step as reference

ROOT = Path(__file__).resolve().parent.parent

COMPARE_BEAM_STEP = r"""
import torch
from kernels.pytorch.beam_step import beam_step as reference
from kernels.triton.beam_step import beam_step as kernel

torch.manual_seed(0)
# (requests, beams, vocab, prefixes, k_next, sampling); blocks of 64 candidates per top-k program, so the larger
# cases take two or three rounds of block top-k (the GPU default is 4,096 a block)
cases = [(1, 1, 6, 3, 4, False), (3, 4, 6, 9, 5, False), (2, 8, 37, 20, 16, True), (2, 16, 40, 60, 24, False),
         (1, 20, 64, 100, 32, True)]
for n_req, beams, vocab, n_prefix, k, sampling in cases:
    logits = torch.randn(n_req, beams, vocab)
    scores = -torch.rand(n_req, beams) * 5
    prefix = torch.randint(0, n_prefix, (n_req, beams))
    prefix[0, -1] = -1  # a dead beam
    table = torch.where(torch.rand(n_prefix, vocab) < 0.3, torch.randint(0, 10_000, (n_prefix, vocab)), -1)
    noise = -torch.log(-torch.log(torch.rand(n_req, beams, vocab))) if sampling else None
    want = reference(logits, scores, prefix, table, k, noise)
    for topk in ("triton", "torch"):  # the block top-k rounds, or torch.topk after the fused kernel
        got = kernel(logits, scores, prefix, table, k, noise, block=64, topk=topk)
        finite = torch.isfinite(want[0])
        assert torch.equal(finite, torch.isfinite(got[0])), (n_req, beams, vocab)
        assert torch.allclose(want[0][finite], got[0][finite], atol=1e-5)  # the same scores, in the same order
        # every kernel pick is a real candidate with the reference's score and the trie's next prefix ...
        allowed = (table[prefix.clamp(min=0)] >= 0) & (prefix >= 0)[..., None]
        cand = (scores[..., None] + torch.log_softmax(logits, -1)).masked_fill(~allowed, float("-inf"))
        s, origin, code, nxt = got
        b = torch.arange(n_req)[:, None].expand_as(origin)
        assert torch.allclose(cand[b, origin, code][finite], s[finite], atol=1e-5)
        assert torch.equal(nxt[finite], table[prefix[b, origin], code][finite]) and (nxt[~finite] == -1).all()
        # ... and it picks what the reference picks, but for candidates within float noise of each other
        key = cand if noise is None else cand + noise
        kth = (key.flatten(1).gather(1, want[1] * vocab + want[2])[:, -1:])
        picks = zip(got[1] * vocab + got[2], want[1] * vocab + want[2], key.flatten(1), kth)
        for mine, theirs, row_key, row_kth in picks:
            differ = set(mine.tolist()) ^ set(theirs.tolist())
            assert all(abs(row_key[i] - row_kth[0]) < 1e-4 or not torch.isfinite(row_key[i]) for i in differ), differ
print("ok", len(cases))
"""


def run_interpreted(script: str) -> str:
    """``script`` in a fresh interpreter with ``TRITON_INTERPRET=1``; its last stdout line."""
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    return out.stdout.strip().splitlines()[-1]


def test_beam_step_triton_kernel_matches_the_pytorch_reference():
    assert run_interpreted(COMPARE_BEAM_STEP) == "ok 5"


def test_beam_step_reference_by_hand():
    # one request, two beams over 3 codes; beam 1's prefix allows codes 0 and 2 only, beam 0 allows code 1
    logits = torch.log(torch.tensor([[[0.2, 0.5, 0.3], [0.6, 0.1, 0.3]]]))
    scores = torch.log(torch.tensor([[0.5, 0.25]]))
    table = torch.tensor([[-1, 7, -1], [4, -1, 9]])
    s, origin, code, nxt = reference(logits, scores, torch.tensor([[0, 1]]), table, 3)
    # candidates: beam0/code1 0.5*0.5=0.25, beam1/code0 0.25*0.6=0.15, beam1/code2 0.25*0.3=0.075
    assert torch.allclose(s.exp(), torch.tensor([[0.25, 0.15, 0.075]]))
    assert origin.tolist() == [[0, 1, 1]] and code.tolist() == [[1, 0, 2]] and nxt.tolist() == [[7, 4, 9]]
    # asking for more beams than there are valid candidates pads with -inf and prefix -1
    s, _, _, nxt = reference(logits, scores, torch.tensor([[0, 1]]), table, 4)
    assert torch.isinf(s[0, 3]) and nxt[0, 3] == -1


def test_dispatcher_uses_the_reference_on_cpu():
    logits, scores = torch.randn(2, 3, 5), torch.zeros(2, 3)
    prefix, table = torch.zeros(2, 3, dtype=torch.long), torch.arange(5).view(1, 5)
    for a, b in zip(beam_step(logits, scores, prefix, table, 4), reference(logits, scores, prefix, table, 4)):
        assert torch.equal(a, b)


COMPARE_HYBRID_ATTENTION = r"""
import torch
from kernels.pytorch.hybrid_attention import hybrid_attention as reference
from kernels.triton.hybrid_attention import hybrid_attention as kernel

torch.manual_seed(0)
# (B, H, Tq, Tk, D, causal, n_prefix, q_len, k_len, block): encoder self-attention over padded histories,
# causal decoder with the BOS + instruction prefix, cross-attention, a cached decoding step, an empty row
cases = [(3, 2, 21, 21, 16, False, 0, [21, 21, 21], [21, 9, 1], 16),
         (3, 2, 7, 7, 32, True, 2, [7, 5, 3], [7, 5, 3], 16),
         (2, 4, 6, 40, 16, False, 0, [6, 4], [40, 17], 16),
         (2, 2, 1, 9, 16, True, 2, [1, 1], [9, 4], 16),
         (2, 2, 37, 37, 64, True, 3, [37, 0], [37, 0], 16),
         (1, 1, 70, 70, 16, True, 1, [70], [70], 32)]
for B, H, tq, tk, d, causal, n_prefix, ql, kl, block in cases:
    q, k, v = torch.randn(B, H, tq, d), torch.randn(B, H, tk, d), torch.randn(B, H, tk, d)
    q_len, k_len = torch.tensor(ql), torch.tensor(kl)
    want = reference(q, k, v, q_len, k_len, causal, n_prefix)
    got = kernel(q, k, v, q_len, k_len, causal, n_prefix, block_m=block, block_n=block, num_warps=8, num_stages=3)
    err = (want - got).abs().max().item()
    assert err < 1e-4, (B, H, tq, tk, d, causal, n_prefix, err)
print("ok", len(cases))
"""


def test_hybrid_attention_triton_kernel_matches_the_pytorch_reference():
    assert run_interpreted(COMPARE_HYBRID_ATTENTION) == "ok 6"


def test_hybrid_attention_reference_follows_the_mask_rule():
    import torch.nn.functional as F

    from kernels.hybrid_attention import hybrid_attention
    from kernels.pytorch.hybrid_attention import hybrid_mask

    m = hybrid_mask(torch.tensor([4, 2]), torch.tensor([5, 3]), 4, 5, causal=True, n_prefix=2)[:, 0].int()
    # row 0: 4 queries over 5 keys (one cached), prefix of 2 visible to all; row 1: 2 queries over 3 keys, padded
    assert m[0].tolist() == [[1, 1, 0, 0, 0], [1, 1, 1, 0, 0], [1, 1, 1, 1, 0], [1, 1, 1, 1, 1]]
    assert m[1].tolist() == [[1, 1, 0, 0, 0], [1, 1, 1, 0, 0], [0, 0, 0, 0, 0], [0, 0, 0, 0, 0]]
    torch.manual_seed(1)
    q, k, v = torch.randn(2, 2, 4, 8), torch.randn(2, 2, 5, 8), torch.randn(2, 2, 5, 8)
    out = hybrid_attention(q, k, v, torch.tensor([4, 2]), torch.tensor([5, 3]), causal=True, n_prefix=2)
    full = F.scaled_dot_product_attention(q[:1], k[:1], v[:1], attn_mask=m[:1, None].bool())
    assert torch.allclose(out[:1], full, atol=1e-5)  # rows with visible keys: plain masked attention
    assert out[1, :, 2:].abs().max() == 0  # padded query rows: zeros, not NaN
    # the generator's own attention path agrees: causal decoder self-attention with nothing padded
    plain = F.scaled_dot_product_attention(q, k[:, :, :4], v[:, :, :4], is_causal=True)
    mine = hybrid_attention(q, k[:, :, :4], v[:, :, :4], torch.tensor([4, 4]), torch.tensor([4, 4]), causal=True)
    assert torch.allclose(plain, mine, atol=1e-5)
