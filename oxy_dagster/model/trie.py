"""A prefix trie over valid code tuples, as tensors, for constrained decoding.

Level ``l`` maps each distinct prefix of length ``l`` (an integer id) to the
codes allowed next, stored CSR-style (``offsets``, ``children``) plus a dense
child lookup ``child_id[prefix, code] -> prefix id at level l+1`` kept as a
sorted key array for ``searchsorted``. At the last level the prefix id is the
item's row in ``items``. An optional candidate pool (a scenario's allowed items)
is just a trie built from fewer tuples.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class CodeTrie:
    levels: int
    vocab: list[int]  # codes per level
    offsets: list[torch.Tensor]  # per level: (n_prefix + 1,) start of each prefix's children
    children: list[torch.Tensor]  # per level: allowed codes, grouped by prefix
    keys: list[torch.Tensor]  # per level: sorted prefix * vocab + code of every edge
    next_id: list[torch.Tensor]  # per level: prefix id at the next level for each key
    item_of_leaf: torch.Tensor  # leaf prefix id -> row in the item table

    @classmethod
    def build(cls, codes: np.ndarray, vocab: list[int] | None = None) -> CodeTrie:
        """``codes``: (N, L) int array of unique code tuples, row i = item i."""
        codes = np.asarray(codes, dtype=np.int64)
        n, levels = codes.shape
        if len(np.unique(codes, axis=0)) != n:
            raise ValueError("code tuples are not unique: disambiguate collisions before building the trie")
        vocab = vocab or [int(codes[:, i].max()) + 1 for i in range(levels)]
        if any(codes[:, i].max() >= vocab[i] for i in range(levels)) or codes.min() < 0:
            raise ValueError(f"codes out of range for vocab sizes {vocab}")
        offsets, children, keys, next_ids = [], [], [], []
        prefix = np.zeros(n, dtype=np.int64)  # all items start at the root (prefix id 0)
        n_prefix = 1
        for lvl in range(levels):
            key = prefix * vocab[lvl] + codes[:, lvl]
            uniq, inv = np.unique(key, return_inverse=True)
            parent, code = uniq // vocab[lvl], uniq % vocab[lvl]
            counts = np.bincount(parent, minlength=n_prefix)
            offsets.append(torch.from_numpy(np.concatenate([[0], np.cumsum(counts)])))
            children.append(torch.from_numpy(code))
            keys.append(torch.from_numpy(uniq))
            next_ids.append(torch.arange(len(uniq)))
            prefix, n_prefix = inv.ravel(), len(uniq)
        item_of_leaf = torch.empty(n_prefix, dtype=torch.long)
        item_of_leaf[torch.from_numpy(prefix)] = torch.arange(n)
        return cls(levels, vocab, offsets, children, keys, next_ids, item_of_leaf)

    def allowed_mask(self, level: int, prefix_ids: torch.Tensor) -> torch.Tensor:
        """(B,) prefix ids at ``level`` -> (B, vocab[level]) bool mask of allowed next codes."""
        off = self.offsets[level]
        start, end = off[prefix_ids], off[prefix_ids + 1]
        counts = end - start
        rows = torch.repeat_interleave(torch.arange(len(prefix_ids)), counts)
        idx = torch.repeat_interleave(start - torch.cumsum(counts, 0) + counts, counts) + torch.arange(
            int(counts.sum()))
        mask = torch.zeros(len(prefix_ids), self.vocab[level], dtype=torch.bool)
        mask[rows, self.children[level][idx]] = True
        return mask

    def step(self, level: int, prefix_ids: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """Prefix ids after appending ``codes`` (which must be allowed)."""
        key = prefix_ids * self.vocab[level] + codes
        pos = torch.searchsorted(self.keys[level], key)
        if (pos >= len(self.keys[level])).any() or (self.keys[level][pos.clamp(max=len(self.keys[level]) - 1)]
                                                     != key).any():
            raise ValueError("decoding left the trie (an invalid code was chosen)")
        return self.next_id[level][pos]

    def restrict(self, codes: np.ndarray, rows: np.ndarray) -> tuple[CodeTrie, np.ndarray]:
        """A trie over a candidate pool (item rows); returns it and the pool rows (leaf -> global item row)."""
        rows = np.asarray(rows)
        return CodeTrie.build(np.asarray(codes)[rows], self.vocab), rows


@dataclass
class DenseTrie:
    """The trie as dense per-level tables for fast decoding: ``child[level][prefix, code]`` is the prefix id
    at the next level (the item row at the last level) or -1 where ``code`` is not allowed after ``prefix``.
    One gather per level replaces the CSR walk; the tables hold sum over levels of n_prefix x vocab int32."""

    levels: int
    vocab: list[int]
    child: list[torch.Tensor]  # per level: (n_prefix, vocab[level]) int64, -1 = not allowed

    @classmethod
    def from_trie(cls, trie: CodeTrie, max_entries: int = 200_000_000) -> DenseTrie:
        tables = []
        for lvl in range(trie.levels):
            keys, v = trie.keys[lvl], trie.vocab[lvl]
            n_prefix = len(trie.offsets[lvl]) - 1
            if n_prefix * v > max_entries:
                raise ValueError(f"level {lvl}: a dense table of {n_prefix} x {v} exceeds {max_entries} entries")
            table = torch.full((n_prefix, v), -1, dtype=torch.long)
            nxt = trie.next_id[lvl] if lvl < trie.levels - 1 else trie.item_of_leaf[trie.next_id[lvl]]
            table.view(-1)[keys] = nxt
            tables.append(table)
        return cls(trie.levels, list(trie.vocab), tables)
