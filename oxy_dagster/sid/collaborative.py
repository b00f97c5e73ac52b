"""Collaborative item vectors for the tokenizer: a spectral embedding of the train-split user-item matrix.

Content-only codes (TIGER) put items that read alike under one prefix; LETTER, ETEGRec and LC-Rec report gains
from codes that also know which items are bought together. Here that signal is the top singular vectors of the
degree-normalised user-item matrix D_u^-1/2 X D_i^-1/2 (the matrix LightGCN propagates over), built from
training interactions only, so a validation or test target never shapes its own code. The first singular
vector follows item degree (popularity), not taste, and is dropped.

A catalogue without item content (Amazon Sports here: ids only) gives every item the same content vector; its
codes then come from these vectors alone. Elsewhere ``mix_embeddings`` concatenates the two, weighted.

An item bought by few users has a spectral vector drawn from a handful of rows: noise, at full length once normalised.
``shrink`` k scales each item's vector by n / (n + k) for its n training users, so a rare item's code follows its
content and a popular item's its buyers (a James-Stein-style shrinkage towards "no collaborative evidence").
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.sparse.linalg import svds


def collaborative_embeddings(interactions: pd.DataFrame, item_ids, dim: int = 64, seed: int = 0,
                             shrink: float = 0.0) -> np.ndarray:
    """(N, dim) vectors in the order of ``item_ids`` from (user_id, item_id) rows: unit length, or n / (n + shrink)
    for an item of n distinct training users when ``shrink`` > 0; items never seen in ``interactions`` get zero
    vectors. ``dim`` is capped by the matrix's rank."""
    if shrink < 0:
        raise ValueError(f"collaborative shrink must be >= 0, got {shrink}")
    item_ids = pd.Index(item_ids)
    cols = item_ids.get_indexer(interactions["item_id"])
    unknown = cols < 0
    if unknown.any():
        raise ValueError(f"{int(unknown.sum())} interaction(s) name items missing from the catalogue, e.g. "
                         f"{interactions['item_id'][unknown].iloc[:3].tolist()}")
    rows, users = pd.factorize(interactions["user_id"])
    x = sp.csr_matrix((np.ones(len(cols), dtype=np.float64), (rows, cols)), shape=(len(users), len(item_ids)))
    x.sum_duplicates()
    x.data[:] = 1.0  # seen or not: a repeat purchase is not a stronger tie between two items
    du, di = np.asarray(x.sum(1)).ravel(), np.asarray(x.sum(0)).ravel()
    norm = sp.diags(1 / np.sqrt(np.maximum(du, 1))) @ x @ sp.diags(1 / np.sqrt(np.maximum(di, 1)))
    k = min(dim + 1, min(norm.shape) - 1)
    if k < 2:
        raise ValueError(f"too few users or items for a collaborative embedding: matrix {norm.shape}")
    v0 = np.random.default_rng(seed).standard_normal(min(norm.shape))
    _, s, vt = svds(norm, k=k, v0=v0)
    order = np.argsort(-s)[1:]  # drop the degree direction
    emb = vt[order].T * s[order]
    emb /= np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    emb[di == 0] = 0.0  # unseen items: their column is empty, what the solver leaves there is rounding noise
    if shrink > 0:
        emb *= (di / (di + shrink))[:, None]
    return emb.astype(np.float32)


def content_is_degenerate(emb: np.ndarray, min_distinct: float = 0.1) -> bool:
    """True when fewer than ``min_distinct`` of the items have a content vector of their own (ids-only data:
    every item embeds the same placeholder text, so content cannot tell items apart)."""
    distinct = np.unique(np.round(emb.astype(np.float64), 4), axis=0).shape[0]
    return distinct < max(2, min_distinct * len(emb))


def mix_embeddings(content: np.ndarray, collaborative: np.ndarray, weight: float) -> np.ndarray:
    """Concatenate unit-normalised content and collaborative vectors scaled by sqrt(1 - w) and sqrt(w), so a
    dot product is (1 - w) * content similarity + w * collaborative similarity."""
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"collaborative weight must be in [0, 1], got {weight}")
    if weight == 0.0:
        return content
    if weight == 1.0:
        return collaborative
    c = content / np.maximum(np.linalg.norm(content, axis=1, keepdims=True), 1e-12)
    return np.concatenate([c * np.sqrt(1 - weight), collaborative * np.sqrt(weight)], axis=1).astype(np.float32)
