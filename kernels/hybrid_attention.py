"""Hybrid-mask attention: the Triton kernel on GPU, the PyTorch reference elsewhere (and whenever gradients flow:
the kernel is forward-only)."""

from __future__ import annotations

import torch

from .pytorch.hybrid_attention import hybrid_attention as hybrid_attention_reference


def hybrid_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, q_len: torch.Tensor, k_len: torch.Tensor,
                     causal: bool = False, n_prefix: int = 0, scale: float | None = None) -> torch.Tensor:
    """See ``kernels/pytorch/hybrid_attention.py`` for the mask rule; both implementations are tested equal."""
    d = q.shape[-1]
    if q.is_cuda and not torch.is_grad_enabled() and d >= 16 and d & (d - 1) == 0:
        from .triton.hybrid_attention import hybrid_attention as hybrid_attention_triton

        return hybrid_attention_triton(q, k, v, q_len, k_len, causal, n_prefix, scale)
    return hybrid_attention_reference(q, k, v, q_len, k_len, causal, n_prefix, scale)
