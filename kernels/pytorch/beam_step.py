"""One step of trie-constrained beam search, in plain PyTorch (the reference of ``kernels/triton/beam_step.py``).

For B requests with K beams each over a code vocabulary of V:

    candidate[b, k, c] = scores[b, k] + log_softmax(logits[b, k])[c]   if code c is allowed after beam k
                       = -inf                                           otherwise
    allowed            = table[prefix[b, k], c] >= 0 and prefix[b, k] >= 0

and the ``k_next`` best of the K x V candidates per request (ranked by candidate + noise when
``noise`` is given: Gumbel noise turns the top-k into sampling without replacement) become the
next beams: their candidate score, origin beam, code and next prefix id (``table`` entry; -1 for
a -inf candidate).
"""

from __future__ import annotations

import torch


def beam_step(logits: torch.Tensor, scores: torch.Tensor, prefix: torch.Tensor, table: torch.Tensor, k_next: int,
              noise: torch.Tensor | None = None):
    """logits (B, K, V) float, scores (B, K), prefix (B, K) int64, table (P, V) int64 -> (scores, origin, code,
    prefix) each (B, min(k_next, K*V))."""
    n_req, n_beams, vocab = logits.shape
    child = table[prefix.clamp(min=0)]  # (B, K, V)
    allowed = (child >= 0) & (prefix >= 0)[..., None]
    cand = (scores[..., None] + torch.log_softmax(logits.float(), -1)).masked_fill(~allowed, float("-inf"))
    flat = cand.view(n_req, n_beams * vocab)
    key = flat if noise is None else flat + noise.view(n_req, n_beams * vocab)
    idx = key.topk(min(k_next, n_beams * vocab), dim=1).indices
    new_scores = flat.gather(1, idx)
    new_prefix = child.view(n_req, n_beams * vocab).gather(1, idx).masked_fill(~torch.isfinite(new_scores), -1)
    return new_scores, idx // vocab, idx % vocab, new_prefix
