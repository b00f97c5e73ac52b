"""The raw Amazon 2014 download format: ``reviews_<cat>_5.json.gz`` + ``meta_<cat>.json.gz``.

Review lines are JSON; metadata lines are Python dict literals in the original
dump (single quotes), parsed with ``ast.literal_eval`` (never ``eval``).
Interactions are ordered by ``unixReviewTime`` (ties keep file order, as
ActionPiece does); each review becomes a ``purchase`` in ``homepage``.
Items without metadata keep their ASIN with category ``Unknown``.
"""

from __future__ import annotations

import ast
import gzip
import html
import json
from pathlib import Path

import pandas as pd

from ..contract import CATEGORY_SEP


def _records(path: Path):
    if not path.exists():
        raise FileNotFoundError(f"Amazon raw adapter: {path} not found")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as fh:
        for line_no, line in enumerate(fh, start=1):
            line = line.strip()
            if not line:
                continue
            try:
                yield line_no, json.loads(line)
            except json.JSONDecodeError:
                try:
                    yield line_no, ast.literal_eval(line)
                except (ValueError, SyntaxError) as exc:
                    raise ValueError(f"{path} line {line_no}: not JSON nor a dict literal ({exc})") from exc


def read_amazon_raw(root: str | Path, category: str) -> dict[str, pd.DataFrame]:
    root = Path(root)
    reviews = [(r.get("reviewerID"), r.get("asin"), r.get("unixReviewTime"), n)
               for n, r in _records(root / f"reviews_{category}_5.json.gz")]
    ev = pd.DataFrame(reviews, columns=["user_id", "item_id", "timestamp", "_line"])
    ev = ev.sort_values(["user_id", "timestamp", "_line"], kind="stable").drop(columns="_line")
    ev["behavior"], ev["scenario"], ev["trigger_item_id"], ev["query"] = "purchase", "homepage", None, None
    wanted = set(ev.item_id.dropna())
    meta = {}
    for _, m in _records(root / f"meta_{category}.json.gz"):
        if m.get("asin") in wanted:
            meta[m["asin"]] = m
    rows = []
    for asin in sorted(wanted):
        m = meta.get(asin, {})
        cats = (m.get("categories") or [[]])[0]
        title = html.unescape(m["title"]).strip() if m.get("title") else None
        price = m.get("price")
        rows.append(dict(item_id=asin, title=title or None, brand=(m.get("brand") or None),
                         category_path=CATEGORY_SEP.join(html.unescape(c) for c in cats) or "Unknown",
                         price=float(price) if isinstance(price, (int, float)) else None,
                         image_path=m.get("imUrl")))
    users = pd.DataFrame({"user_id": sorted(set(ev.user_id.dropna())), "age_band": None, "gender": None,
                          "city": None, "spending_tier": None})
    return {"items": pd.DataFrame(rows), "users": users, "events": ev.reset_index(drop=True)}
