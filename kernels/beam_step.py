"""The beam step (trie mask + log-softmax + beam scores + top-k): Triton on GPU, the PyTorch reference on CPU."""

from __future__ import annotations

import torch

from .pytorch.beam_step import beam_step as beam_step_reference


def beam_step(logits: torch.Tensor, scores: torch.Tensor, prefix: torch.Tensor, table: torch.Tensor, k_next: int,
              noise: torch.Tensor | None = None):
    """See ``kernels/pytorch/beam_step.py`` for the contract; both implementations are tested equal."""
    if logits.is_cuda:
        from .triton.beam_step import beam_step as beam_step_triton

        return beam_step_triton(logits, scores, prefix, table, k_next, noise)
    return beam_step_reference(logits, scores, prefix, table, k_next, noise)
