"""Amazon Beauty 2014 5-core in the P5 / S3-Rec / TIGER layout.

``sequential_data.txt``: ``user item item ...`` (1-based ids, oldest first);
``items.jsonl``: one JSON object per item with title, categories and brand.
The files carry no timestamps, only order: we give the k-th interaction of a
user the timestamp ``2014-01-01 + k days`` so that sorting by time reproduces
the file order exactly (leave-one-out then matches TIGER's split). Reviews are
mapped to ``purchase`` in the ``homepage`` scenario. The constant root
category ``Beauty`` is dropped so that category level 1 is informative.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import pandas as pd

from ..contract import CATEGORY_SEP

BASE_EPOCH = 1388534400  # 2014-01-01T00:00:00Z


def _clean(text):
    if text is None:
        return None
    text = str(text)
    for _ in range(3):  # some titles are escaped twice ("&amp;#8482")
        text, before = html.unescape(text), text
        if text == before:
            break
    return text.strip() or None


def read_beauty(root: str | Path) -> dict[str, pd.DataFrame]:
    root = Path(root)
    seq_file, items_file = root / "sequential_data.txt", root / "items.jsonl"
    for f in (seq_file, items_file):
        if not f.exists():
            raise FileNotFoundError(f"Beauty adapter: {f} not found (set OXY_DATASETS or the dataset path)")
    users, events = [], []
    with open(seq_file) as fh:
        for line in fh:
            parts = line.split()
            if not parts:
                continue
            user = parts[0]
            users.append(user)
            for k, item in enumerate(parts[1:]):
                events.append((user, item, BASE_EPOCH + 86400 * k))
    ev = pd.DataFrame(events, columns=["user_id", "item_id", "timestamp"])
    ev["behavior"] = "purchase"
    ev["scenario"] = "homepage"
    ev["trigger_item_id"] = None
    ev["query"] = None
    rows = []
    with open(items_file) as fh:
        for line in fh:
            rec = json.loads(line)
            cats = (rec.get("categories") or [[]])[0]
            cats = [c for c in cats if c][1:] if cats and cats[0] == "Beauty" else cats
            brand = _clean(rec.get("brand"))
            rows.append(dict(item_id=str(rec["item_id"]), title=_clean(rec.get("title")),
                             brand=None if brand in (None, "Unknown") else brand,
                             category_path=CATEGORY_SEP.join(_clean(c) for c in cats) or "Unknown",
                             price=None, image_path=None))
    items = pd.DataFrame(rows)
    us = pd.DataFrame({"user_id": users, "age_band": None, "gender": None, "city": None, "spending_tier": None})
    return {"items": items, "users": us, "events": ev}
