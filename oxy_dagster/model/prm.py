"""Promise's process reward model (seed 001 abstract, seed 002 "Promise"): a light scorer of partial SID paths.

Beside a frozen generator: the PRM's own embeddings of a SID prefix (one table per code level, summed, plus a
level embedding) are the queries of one cross-attention over the generator's encoder output (padding masked),
and an MLP head turns [query, attended] into one score per prefix. It is trained with InfoNCE per level: the
target item's prefix against the prefixes of sampled catalogue items (valid SIDs) and against its siblings (the
target's parent prefix with another code the trie allows); a sample sharing the target's prefix is no negative.

In beam search (``decoding.beam_search(prm=...)``) it spends test-time compute on accuracy: at every level
before the last, the generator's best ``expand x beam`` extensions are re-ranked by their log-probability plus
``weight x`` the PRM's log-softmax over them, and the best ``beam`` survive, so prefixes the generator drifts
into but the PRM finds implausible for this user are pruned. Stored beam scores stay the generator's, so the
final list is ranked by the generator.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from ..settings import setting


@dataclass
class PRMConfig:
    """The process reward model and its use in beam search."""

    d_model: int = setting(64, "PRM width")
    n_heads: int = setting(4, "heads of its cross-attention over the generator's encoder output")
    negatives: int = setting(63, "sampled negatives per target in the InfoNCE")
    sibling_share: float = setting(0.5, "share of the negatives that are siblings: the target's prefix with "
                                        "another code allowed at the last level, what pruning must tell apart")
    steps: int = setting(300, "training steps (the generator stays frozen)")
    batch_size: int = setting(128, "targets per step")
    lr: float = setting(2e-3, "AdamW learning rate")
    weight: float = setting(0.5, "weight of the PRM's log-softmax beside the generator's log-probability")
    expand: int = setting(2, "candidates per level re-ranked: expand x beam")
    seed: int = setting(0, "seed of batches and negatives")


class ProcessRewardModel(nn.Module):
    def __init__(self, code_vocab: tuple[int, ...], d_memory: int, cfg: PRMConfig | None = None):
        super().__init__()
        cfg = cfg or PRMConfig()
        self.cfg = cfg
        self.levels = len(code_vocab)
        self.codes = nn.ModuleList(nn.Embedding(v, cfg.d_model) for v in code_vocab)
        self.level = nn.Embedding(self.levels, cfg.d_model)
        self.memory_in = nn.Linear(d_memory, cfg.d_model)
        self.attn = nn.MultiheadAttention(cfg.d_model, cfg.n_heads, batch_first=True)
        self.head = nn.Sequential(nn.Linear(2 * cfg.d_model, cfg.d_model), nn.GELU(), nn.Linear(cfg.d_model, 1))

    def forward(self, memory: torch.Tensor, pad: torch.Tensor, paths: torch.Tensor) -> torch.Tensor:
        """Scores (N, P) of ``paths`` (N, P, depth) of codes, for users whose encoder output is ``memory`` (N, T, D)
        with ``pad`` (N, T) True at padding."""
        depth = paths.shape[-1]
        q = sum(self.codes[j](paths[..., j]) for j in range(depth)) + self.level.weight[depth - 1]
        m = self.memory_in(memory)
        attended, _ = self.attn(q, m, m, key_padding_mask=pad)
        return self.head(torch.cat([q, attended], -1)).squeeze(-1)


def train_prm(generator, data, rows: np.ndarray, codes: np.ndarray, cfg: PRMConfig | None = None,
              log=None, progress: bool = True) -> ProcessRewardModel:
    """Fit a PRM on the training ``rows`` of ``data`` against the frozen ``generator``'s encoder output."""
    from .trie import CodeTrie

    cfg = cfg or PRMConfig()
    trie = CodeTrie.build(codes, list(generator.cfg.code_vocab))
    n_sib = int(round(cfg.negatives * cfg.sibling_share))
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    generator.eval()
    prm = ProcessRewardModel(tuple(generator.cfg.code_vocab), generator.cfg.d_model, cfg)
    opt = torch.optim.AdamW(prm.parameters(), lr=cfg.lr)
    table = torch.from_numpy(codes).long()
    for step in tqdm(range(cfg.steps), desc="prm", disable=not progress, mininterval=2):
        batch = data.batch(rows[rng.integers(0, len(rows), cfg.batch_size)])
        with torch.no_grad():
            _, query = generator.instruction(batch)
            memory, pad, _ = generator.encode(batch, query)
        negatives = torch.from_numpy(rng.integers(0, len(codes), (cfg.batch_size, cfg.negatives)))
        target = table[batch["target"]]
        candidates = torch.cat([target[:, None], table[negatives]], 1)  # target first
        node = torch.zeros(len(target), dtype=torch.long)  # the target's prefix id in the trie
        loss = memory.new_zeros(())
        for depth in range(1, prm.levels):  # the prefixes beam search prunes (every level before the last)
            paths = candidates[..., :depth].clone()
            if n_sib:
                paths[:, 1:1 + n_sib] = _siblings(trie, depth - 1, node, target, n_sib)
            scores = prm(memory, pad, paths)
            same = (paths[:, 1:] == paths[:, :1]).all(-1)  # a sample with the target's prefix is no negative
            scores = torch.cat([scores[:, :1], scores[:, 1:].masked_fill(same, -1e4)], 1)
            loss = loss + F.cross_entropy(scores, torch.zeros(len(scores), dtype=torch.long))
            node = trie.step(depth - 1, node, target[:, depth - 1])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if log and (step + 1) % 50 == 0:
            log({"step": step + 1, "prm_loss": float(loss.detach()) / (prm.levels - 1)})
    return prm.eval()


def _siblings(trie, level: int, node: torch.Tensor, target: torch.Tensor, n: int) -> torch.Tensor:
    """(B, n, level + 1) paths: the target's first ``level`` codes and another code the trie allows after them.
    A target without a sibling gets its own path (then masked as no negative)."""
    allowed = trie.allowed_mask(level, node)
    allowed[torch.arange(len(node)), target[:, level]] = False
    lonely = ~allowed.any(1)
    allowed[lonely, target[lonely, level]] = True
    code = torch.multinomial(allowed.float(), n, replacement=True)
    return torch.cat([target[:, None, :level].expand(-1, n, -1), code[..., None]], -1)
