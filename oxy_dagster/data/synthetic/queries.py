"""Noisy search queries: truncations, typos, brand words (the seed's "foam case", "wine gi")."""

from __future__ import annotations

import numpy as np

from .vocab import Leaf

MODIFIERS = ("cheap", "best", "new", "for kids", "for mom", "gift", "2025", "sale")


def make_query(rng: np.random.Generator, leaf: Leaf, brand: str | None) -> str:
    q = str(leaf.nouns[int(rng.integers(len(leaf.nouns)))])
    r = rng.random()
    if r < 0.2 and brand:
        q = f"{brand.lower()} {q}"
    elif r < 0.35:
        q = f"{q} {MODIFIERS[int(rng.integers(len(MODIFIERS)))]}"
    noise = rng.random()
    if noise < 0.15 and len(q) > 6:  # truncated input
        q = q[: int(rng.integers(max(4, len(q) // 2), len(q)))]
    elif noise < 0.25 and len(q) > 4:  # swapped letters
        i = int(rng.integers(1, len(q) - 2))
        q = q[:i] + q[i + 1] + q[i] + q[i + 2:]
    return q.strip()
