"""Positive pairs for contrastive training, as item positions in the catalogue order."""

from __future__ import annotations

import numpy as np
import pandas as pd


def swing_pairs(swing: pd.DataFrame, pos: dict, max_rank: int = 10) -> np.ndarray:
    s = swing[swing["rank"] <= max_rank]
    a, b = s.item_i.map(pos), s.item_j.map(pos)
    ok = a.notna() & b.notna()
    return np.stack([a[ok].to_numpy(np.int64), b[ok].to_numpy(np.int64)], 1) if ok.any() else np.zeros((0, 2), int)


def normalize_query(q: str) -> str:
    return " ".join(str(q).lower().split())


def query_pairs(search: pd.DataFrame, pos: dict) -> tuple[np.ndarray, list[str]]:
    """(query row, item) pairs from train search interactions; returns pairs and the distinct query texts."""
    if search.empty:
        return np.zeros((0, 2), int), []
    q = search.assign(q=search["query"].map(normalize_query), p=search.item_id.map(pos)).dropna(subset=["p"])
    texts = sorted(q.q.unique())
    row = {t: i for i, t in enumerate(texts)}
    pairs = np.stack([q.q.map(row).to_numpy(np.int64), q.p.to_numpy(np.int64)], 1)
    return pairs, texts


def peer_pairs(search: pd.DataFrame, leaf: pd.Series, pos: dict, seed: int = 0, per_item: int = 2,
               max_group: int = 20) -> np.ndarray:
    """Items under the same query and leaf category; without queries, random items of the same leaf."""
    rng = np.random.default_rng(seed)
    out = []
    if not search.empty:
        s = search.assign(q=search["query"].map(normalize_query), leaf=search.item_id.map(leaf),
                          p=search.item_id.map(pos)).dropna(subset=["p", "leaf"])
        for _, g in s.groupby(["q", "leaf"]):
            ids = np.unique(g.p.to_numpy(np.int64))[:max_group]
            if len(ids) > 1:
                a, b = np.meshgrid(ids, ids)
                m = a != b
                out.append(np.stack([a[m], b[m]], 1))
    if not out:
        groups = pd.Series(np.arange(len(leaf)), index=leaf.to_numpy()).groupby(level=0)
        for _, g in groups:
            ids = g.to_numpy()
            if len(ids) > 1:
                a = np.repeat(ids, per_item)
                b = rng.choice(ids, len(a))
                keep = a != b
                out.append(np.stack([a[keep], b[keep]], 1))
    return np.concatenate(out).astype(np.int64) if out else np.zeros((0, 2), int)
