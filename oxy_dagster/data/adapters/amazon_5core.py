"""Amazon 2014 5-core in the P5 / S3-Rec / TIGER layout, any category (Beauty, Sports, Toys, ...).

``sequential_data.txt``: ``user item item ...`` (1-based ids, oldest first);
``items.jsonl`` (optional): one JSON object per item with title, categories and brand.
The files carry no timestamps, only order: the k-th interaction of a user gets
the timestamp ``2014-01-01 + k days``, so sorting by time reproduces the file
order exactly (leave-one-out then matches TIGER's split). Reviews become
``purchase`` in the ``homepage`` scenario. A root category every item shares
(``Beauty``, ``Sports & Outdoors``) is detected and dropped, so category level 1
is informative.

Without ``items.jsonl`` (the Sports folder has ids only) every item is an id with
no title, brand or category: the pipeline still runs, but text-based semantic IDs
then describe nothing (every item embeds the same empty text) and only the
collaborative parts (Swing, the sequence model) learn.

Bad input loses nothing and stops nothing below ``max_bad_fraction``: a line that
is not JSON, an item without ``item_id``, or a sequence line with a non-numeric id
is counted and kept in the ``quarantine`` table (file, line number, reason, the
line itself); past the fraction the error names the file and the first bad lines.
"""

from __future__ import annotations

import html
import json
from collections import Counter
from pathlib import Path

import pandas as pd

from ..contract import CATEGORY_SEP

BASE_EPOCH = 1388534400  # 2014-01-01T00:00:00Z
QUARANTINE_COLUMNS = ["source_file", "line", "reason", "raw_line"]


class AdapterInputError(ValueError):
    """Too many malformed lines in a dataset file; the message names the file and the first bad lines."""


def _clean(text):
    if text is None:
        return None
    text = str(text)
    for _ in range(3):  # some titles are escaped twice ("&amp;#8482")
        text, before = html.unescape(text), text
        if text == before:
            break
    return text.strip() or None


def _lines(path: Path):
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line_no, line in enumerate(fh, start=1):
            if line.strip():
                yield line_no, line.rstrip("\n")


def _sequences(path: Path, bad: list) -> tuple[list[str], list[tuple]]:
    users, events = [], []
    for line_no, line in _lines(path):
        parts = line.split()
        wrong = next((p for p in parts if not p.isdigit()), None)
        if wrong is not None:
            bad.append((str(path), line_no, f"non-numeric id {wrong[:40]!r}", line[:2000]))
            continue
        users.append(parts[0])
        events.extend((parts[0], item, BASE_EPOCH + 86400 * k) for k, item in enumerate(parts[1:]))
    return users, events


def _item_records(path: Path, bad: list) -> list[dict]:
    records = []
    for line_no, line in _lines(path):
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            bad.append((str(path), line_no, f"not JSON: {exc.msg} (column {exc.colno})", line[:2000]))
            continue
        if not isinstance(rec, dict) or rec.get("item_id") in (None, ""):
            bad.append((str(path), line_no, "no item_id", line[:2000]))
            continue
        records.append(rec)
    return records


def _constant_root(records: list[dict]) -> str | None:
    """The first category every categorised item shares (the dataset's own name), if there is one."""
    roots = Counter(cats[0] for r in records if (cats := [c for c in (r.get("categories") or [[]])[0] if c]))
    return next(iter(roots)) if len(roots) == 1 else None


def read_amazon_5core(root: str | Path, name: str = "amazon 5-core",
                      max_bad_fraction: float = 0.01) -> dict[str, pd.DataFrame]:
    """The raw items / users / events tables, plus ``quarantine`` (the lines that could not be read)."""
    root = Path(root)
    seq_file, items_file = root / "sequential_data.txt", root / "items.jsonl"
    if not seq_file.exists():
        raise FileNotFoundError(f"{name} adapter: {seq_file} not found (set OXY_DATASETS or the dataset path)")
    bad: list[tuple] = []
    users, events = _sequences(seq_file, bad)
    ev = pd.DataFrame(events, columns=["user_id", "item_id", "timestamp"])
    ev["behavior"], ev["scenario"], ev["trigger_item_id"], ev["query"] = "purchase", "homepage", None, None
    if items_file.exists():
        records = _item_records(items_file, bad)
        root_cat = _constant_root(records)
    else:  # ids only: one row per item the sequences mention
        records = [{"item_id": i} for i in sorted(set(ev.item_id), key=int)]
        root_cat = None
    rows = []
    for rec in records:
        cats = [c for c in (rec.get("categories") or [[]])[0] if c]
        cats = cats[1:] if root_cat is not None and cats[:1] == [root_cat] else cats
        brand = _clean(rec.get("brand"))
        rows.append(dict(item_id=str(rec["item_id"]), title=_clean(rec.get("title")),
                         brand=None if brand in (None, "Unknown") else brand,
                         category_path=CATEGORY_SEP.join(_clean(c) for c in cats) or "Unknown",
                         price=None, image_path=None))
    quarantine = pd.DataFrame(bad, columns=QUARANTINE_COLUMNS)
    n_lines = len(users) + len(records) + len(bad)
    if bad and len(bad) > max_bad_fraction * n_lines:
        first = "\n".join(f"  {f} line {n}: {why}" for f, n, why, _ in bad[:5])
        raise AdapterInputError(f"{name} adapter: {len(bad)} of {n_lines} lines malformed "
                                f"({len(bad) / n_lines:.2%} > allowed {max_bad_fraction:.2%}). First:\n{first}")
    us = pd.DataFrame({"user_id": users, "age_band": None, "gender": None, "city": None, "spending_tier": None})
    return {"items": pd.DataFrame(rows, columns=["item_id", "title", "brand", "category_path", "price", "image_path"]),
            "users": us, "events": ev, "quarantine": quarantine}
