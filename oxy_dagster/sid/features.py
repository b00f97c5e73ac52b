"""Structured item fields as integer ids for learned embeddings: category levels, brand, price band."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..data.contract import CATEGORY_SEP

N_PRICE_BANDS = 10


@dataclass
class StructuredFeatures:
    cate: np.ndarray  # (N, 3) ids per level, 0 = unknown
    brand: np.ndarray  # (N,)
    price: np.ndarray  # (N,) 0 = unknown, 1..N_PRICE_BANDS quantile bands
    vocab_sizes: dict[str, int]


def category_levels(paths: pd.Series, depth: int = 3) -> pd.DataFrame:
    """Split category paths into cumulative level keys ('A', 'A > B', 'A > B > C'); missing levels are None."""
    parts = paths.fillna("").str.split(CATEGORY_SEP)
    cols = {}
    for lvl in range(depth):
        cols[f"cate{lvl + 1}"] = [CATEGORY_SEP.join(p[: lvl + 1]) if len(p) > lvl and p[lvl] else None
                                  for p in parts]
    return pd.DataFrame(cols, index=paths.index)


def _ids(values: pd.Series) -> tuple[np.ndarray, int]:
    codes, uniques = pd.factorize(values, sort=True)
    return (codes + 1).astype(np.int64), len(uniques) + 1  # -1 (missing) -> 0


def structured_features(items: pd.DataFrame) -> StructuredFeatures:
    levels = category_levels(items["category_path"])
    cate, sizes = [], {}
    for c in levels.columns:
        ids, n = _ids(levels[c])
        cate.append(ids)
        sizes[c] = n
    brand, sizes["brand"] = _ids(items["brand"])
    price = np.zeros(len(items), dtype=np.int64)
    p = pd.to_numeric(items["price"], errors="coerce")
    known = p.notna().to_numpy()
    if known.sum() >= N_PRICE_BANDS:
        price[known] = pd.qcut(p[known].rank(method="first"), N_PRICE_BANDS, labels=False).to_numpy() + 1
    sizes["price"] = N_PRICE_BANDS + 1
    return StructuredFeatures(np.stack(cate, 1), brand, price, sizes)
