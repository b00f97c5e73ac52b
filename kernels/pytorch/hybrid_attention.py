"""The generator's attention under its hybrid mask in plain PyTorch: the reference the Triton kernel is tested on.

One rule covers every attention in the generator (seed 2.3):

    visible(b, i, j) = i < q_len[b] and j < k_len[b] and (not causal or j < n_prefix or j <= i + k_len[b] - q_len[b])

- jagged batches and encoder padding: row ``b`` has ``q_len[b]`` real queries and ``k_len[b]`` real keys;
- causal decoder: query ``i`` sees keys up to its own position (aligned at the end of the key range, so a
  decoding step with a KV cache of ``k_len - q_len`` earlier tokens works unchanged);
- instruction token: the first ``n_prefix`` keys (BOS and the instruction) are visible to every query, a
  prefix-LM block inside the causal mask.

Queries with no visible key (padding rows) return zeros.
"""

from __future__ import annotations

import torch


def hybrid_mask(q_len: torch.Tensor, k_len: torch.Tensor, tq: int, tk: int, causal: bool, n_prefix: int = 0):
    """(B, 1, Tq, Tk) boolean: True where query i may attend to key j."""
    i = torch.arange(tq, device=q_len.device)[None, :, None]
    j = torch.arange(tk, device=q_len.device)[None, None, :]
    ql, kl = q_len[:, None, None], k_len[:, None, None]
    ok = (i < ql) & (j < kl)
    if causal:
        ok = ok & ((j < n_prefix) | (j <= i + kl - ql))
    return ok[:, None]


def hybrid_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, q_len: torch.Tensor, k_len: torch.Tensor,
                     causal: bool = False, n_prefix: int = 0, scale: float | None = None) -> torch.Tensor:
    """q: (B, H, Tq, D), k and v: (B, H, Tk, D); q_len, k_len: (B,) int. Returns (B, H, Tq, D) in q's dtype."""
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    mask = hybrid_mask(q_len, k_len, q.shape[2], k.shape[2], causal, n_prefix)
    s = (q.float() @ k.float().transpose(-1, -2)) * scale
    s = s.masked_fill(~mask, float("-inf"))
    p = torch.softmax(s, -1).nan_to_num(0.0)  # a row with no visible key: all -inf -> NaN -> zeros
    return (p @ v.float()).to(q.dtype)
