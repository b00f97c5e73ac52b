"""The naive baseline of the serving benchmark: constrained beam search the way a generic
``generate(..., prefix_allowed_tokens_fn=...)`` does it, on the same model.

Per request (no batching), every level re-runs the decoder over the whole sequence of every beam
(no KV cache, the encoder output copied per beam), asks a Python callback for the codes allowed after
each beam's prefix (a dict trie), and masks the full vocabulary with them. It returns the same lists
as the fast decoder (tested), so the benchmark compares equal work done two ways.
"""

from __future__ import annotations

import numpy as np
import torch


def prefix_allowed_fn(codes: np.ndarray):
    """A ``prefix_allowed_tokens_fn``: tuple of codes so far -> list of allowed next codes."""
    allowed: dict[tuple, set] = {}
    for row in codes.tolist():
        for lvl in range(len(row)):
            allowed.setdefault(tuple(row[:lvl]), set()).add(row[lvl])
    table = {k: sorted(v) for k, v in allowed.items()}
    return lambda prefix: table.get(tuple(prefix), [])


@torch.inference_mode()
def naive_beam_search(model, batch: dict, allowed_fn, item_of: dict, beam: int, topk: int):
    """One request (batch of 1): (item rows, log-probabilities), best first."""
    instr, query = model.instruction(batch)
    memory, mask, _ = model.encode(batch, query)
    prefix = model.prefix(instr)
    seqs, scores, first = [[]], torch.zeros(1), None
    for lvl in range(len(model.cfg.code_vocab)):
        n = len(seqs)
        toks = [prefix.expand(n, -1, -1)]
        if lvl:
            codes = torch.tensor(seqs)
            toks += [model.code_token(i, codes[:, i]).unsqueeze(1) for i in range(lvl)]
        h, _ = model.decode(torch.cat(toks, 1), memory.repeat(n, 1, 1), mask.repeat(n, 1))
        if lvl == 0:
            first = h[:, -1]  # the state that predicts the first code: the dense head's query
        logp = torch.log_softmax(model.heads[lvl](h[:, -1]).float(), -1)
        vocab = logp.shape[-1]
        block = torch.full((n, vocab), float("-inf"))
        for i, seq in enumerate(seqs):  # the generic logits processor: one callback per beam, full-vocab mask
            block[i, allowed_fn(seq)] = 0.0
        cand = (scores[:, None] + logp + block).flatten()
        k = min(beam if lvl < len(model.cfg.code_vocab) - 1 else max(beam, topk), int(torch.isfinite(cand).sum()))
        top = cand.topk(k)
        seqs = [seqs[int(j) // vocab] + [int(j) % vocab] for j in top.indices]
        scores = top.values
    items = torch.tensor([item_of[tuple(s)] for s in seqs])
    scores = model.rescore(first, items[None], scores[None])[0]  # the dense mix, as the served decoder ranks
    scores, order = scores.topk(min(topk, len(scores)))
    return items[order], scores
