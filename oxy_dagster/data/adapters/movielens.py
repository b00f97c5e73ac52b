"""MovieLens-100K (RecBole atomic files): timestamps, demographics and zip codes.

Ratings >= 4 become ``purchase`` (a strong positive), lower ratings ``click``;
all in the ``homepage`` scenario. Age is bucketed into the contract's bands,
the 3-digit zip prefix stands for the location, and genres become a
two-level category path ``Movies > <first genre>``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..contract import CATEGORY_SEP


def _age_band(age: int) -> str:
    for upper, band in ((18, "<18"), (25, "18-24"), (35, "25-34"), (45, "35-44"), (55, "45-54")):
        if age < upper:
            return band
    return "55+"


def _read_atomic(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise FileNotFoundError(f"MovieLens adapter: {path} not found (set OXY_DATASETS or the dataset path)")
    df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    df.columns = [c.split(":")[0] for c in df.columns]
    return df


def read_movielens_100k(root: str | Path) -> dict[str, pd.DataFrame]:
    root = Path(root)
    inter = _read_atomic(root / "ml-100k.inter")
    item = _read_atomic(root / "ml-100k.item")
    user = _read_atomic(root / "ml-100k.user")
    events = pd.DataFrame({
        "user_id": inter.user_id, "item_id": inter.item_id, "timestamp": inter.timestamp.astype(float).astype(int),
        "behavior": ["purchase" if float(r) >= 4 else "click" for r in inter.rating],
        "scenario": "homepage", "trigger_item_id": None, "query": None,
    })
    genres = item["class"].str.split().str[0].fillna("Unknown")
    items = pd.DataFrame({
        "item_id": item.item_id,
        "title": item.movie_title + " (" + item.release_year + ")",
        "brand": None, "category_path": "Movies" + CATEGORY_SEP + genres, "price": None, "image_path": None,
    })
    users = pd.DataFrame({
        "user_id": user.user_id, "age_band": [_age_band(int(a)) for a in user.age],
        "gender": user.gender.str.upper(), "city": "zip" + user.zip_code.str[:3], "spending_tier": None,
    })
    return {"items": items, "users": users, "events": events}
