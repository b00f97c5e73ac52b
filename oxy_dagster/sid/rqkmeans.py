"""Residual-quantization k-means (RQ-KMeans) with faiss, plus deterministic collision handling.

Level l clusters the residuals left by levels < l into ``width`` centroids
(faiss k-means, trained on a configurable sample), so each item gets a
coarse-to-fine code tuple. ``balanced=True`` assigns the fitted items under a
capacity of ``ceil(N / width * (1 + slack))`` per code (greedy, most confident
items first), which flattens the load; new items are always assigned to their
nearest centroid.

Collisions (several items on one 3-code tuple) are resolved TIGER-style with an
extra 4th code: the items of a tuple are ranked by distance to the tuple's
reconstruction (ties by item id) and numbered 0, 1, ... We prefer this to
moving items to the nearest free code because the three semantic codes stay
exactly what the quantizer said (the prefix keeps its meaning, metrics are
measured on it), the result is deterministic, and the decoding trie only gains
a short fourth level.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import faiss
import numpy as np
from tqdm import tqdm


def default_width(n_items: int) -> int:
    """Codebook width from catalogue size: ~2*sqrt(N) rounded to a power of two, in [16, 8192] (12k -> 256)."""
    return int(min(8192, max(16, 2 ** round(math.log2(2 * math.sqrt(max(n_items, 1)))))))


def check_vectors(x: np.ndarray, ids=None) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != 2 or len(x) == 0:
        raise ValueError(f"expected a non-empty (N, D) matrix, got shape {x.shape}")
    bad = ~np.isfinite(x).all(1)
    zero = ~bad & (np.abs(np.nan_to_num(x)).sum(1) == 0)
    if bad.any() or zero.any():
        name = (lambda i: str(ids[i])) if ids is not None else int
        raise ValueError(f"{int(bad.sum())} vector(s) with NaN/inf (e.g. {[name(i) for i in np.flatnonzero(bad)[:5]]})"
                         f" and {int(zero.sum())} all-zero vector(s) (e.g. "
                         f"{[name(i) for i in np.flatnonzero(zero)[:5]]}): fix the encoder input")
    return x


@dataclass
class RQKMeans:
    levels: int = 3
    width: int = 256
    niter: int = 20
    seed: int = 0
    train_size: int | None = None  # sample this many items to train each level (None: all)
    balanced: bool = False
    slack: float = 0.1
    nredo: int = 1  # k-means restarts per level (the best objective wins)
    init: str = "auto"  # kmeans++ | random | auto (kmeans++ while width * n_train * dim <= 2e10)
    centroids: list[np.ndarray] | None = None

    def fit(self, x: np.ndarray, ids=None) -> np.ndarray:
        """Train the codebooks on (a sample of) ``x`` and return the codes of every row of ``x``."""
        x = check_vectors(x, ids)
        n = len(x)
        n_train = min(n, self.train_size or n)
        if n_train < self.width:
            raise ValueError(f"RQ-KMeans needs at least width={self.width} training items per level, got {n_train}; "
                             f"use a smaller width (default_width({n}) = {default_width(n)})")
        rng = np.random.default_rng(self.seed)
        sample = np.sort(rng.choice(n, n_train, replace=False)) if n_train < n else np.arange(n)
        residual = x.copy()
        codes = np.zeros((n, self.levels), dtype=np.int32)
        self.centroids = []
        for lvl in tqdm(range(self.levels), desc=f"RQ-KMeans {self.levels}x{self.width}"):
            km = faiss.Kmeans(x.shape[1], self.width, niter=self.niter, seed=self.seed + lvl, verbose=False,
                              nredo=self.nredo, max_points_per_centroid=max(256, math.ceil(n_train / self.width)))
            train = residual[sample]
            use_pp = self.init == "kmeans++" or (
                self.init == "auto" and self.width * len(train) * train.shape[1] <= 2e10)
            km.train(train, init_centroids=kmeans_pp(train, self.width, self.seed + lvl) if use_pp else None)
            cents = km.centroids.astype(np.float32)
            codes[:, lvl] = self._balanced_assign(residual, cents) if self.balanced else _nearest(residual, cents)
            residual -= cents[codes[:, lvl]]
            self.centroids.append(cents)
        return codes

    def encode(self, x: np.ndarray) -> np.ndarray:
        """Codes for new vectors with the fitted codebooks (nearest centroid at every level)."""
        if self.centroids is None:
            raise RuntimeError("RQKMeans.encode before fit")
        residual = check_vectors(x).copy()
        codes = np.zeros((len(x), self.levels), dtype=np.int32)
        for lvl, cents in enumerate(self.centroids):
            codes[:, lvl] = _nearest(residual, cents)
            residual -= cents[codes[:, lvl]]
        return codes

    def reconstruct(self, codes: np.ndarray) -> np.ndarray:
        return sum(c[codes[:, i]] for i, c in enumerate(self.centroids))

    def _balanced_assign(self, x: np.ndarray, cents: np.ndarray, top: int = 32) -> np.ndarray:
        cap = math.ceil(round(len(x) / len(cents) * (1 + self.slack), 6))
        index = faiss.IndexFlatL2(cents.shape[1])
        index.add(cents)
        dist, cand = index.search(x, min(top, len(cents)))
        load = np.zeros(len(cents), dtype=np.int64)
        out = np.full(len(x), -1, dtype=np.int32)
        for i in np.argsort(dist[:, 0], kind="stable"):  # most confident first
            for c in cand[i]:
                if load[c] < cap:
                    out[i] = c
                    load[c] += 1
                    break
            if out[i] < 0:  # every candidate full: nearest centroid with room
                d = ((cents - x[i]) ** 2).sum(1)
                d[load >= cap] = np.inf
                out[i] = int(np.argmin(d))
                load[out[i]] += 1
        return out


def kmeans_pp(x: np.ndarray, k: int, seed: int) -> np.ndarray:
    """k-means++ seeding (D^2 sampling): avoids the merged / split clusters of random initialization."""
    rng = np.random.default_rng(seed)
    norms = (x ** 2).sum(1)
    cents = np.empty((k, x.shape[1]), dtype=np.float32)
    cents[0] = x[rng.integers(len(x))]
    d2 = np.maximum(norms - 2 * x @ cents[0] + (cents[0] ** 2).sum(), 0)
    for i in range(1, k):
        total = d2.sum()
        j = rng.choice(len(x), p=d2 / total) if total > 0 else rng.integers(len(x))
        cents[i] = x[j]
        d2 = np.minimum(d2, np.maximum(norms - 2 * x @ cents[i] + (cents[i] ** 2).sum(), 0))
    return cents


def _nearest(x: np.ndarray, cents: np.ndarray) -> np.ndarray:
    index = faiss.IndexFlatL2(cents.shape[1])
    index.add(cents)
    return index.search(x, 1)[1][:, 0].astype(np.int32)


def disambiguate(codes: np.ndarray, x: np.ndarray, recon: np.ndarray, item_ids) -> np.ndarray:
    """The extra 4th code: rank within each colliding tuple by distance to its reconstruction, then item id."""
    dist = ((x - recon) ** 2).sum(1)
    order = np.lexsort((np.asarray(item_ids, dtype=str), dist, *codes.T[::-1]))
    extra = np.zeros(len(codes), dtype=np.int32)
    sorted_codes = codes[order]
    new_group = np.ones(len(order), dtype=bool)
    new_group[1:] = (sorted_codes[1:] != sorted_codes[:-1]).any(1)
    group_start = np.maximum.accumulate(np.where(new_group, np.arange(len(order)), 0))
    extra[order] = np.arange(len(order)) - group_start
    return extra
