"""Public-dataset adapters: Beauty counts through the Spark pipeline, MovieLens, raw Amazon 2014 files."""

import gzip
import json

import pytest

from oxy_dagster.data.adapters import AdapterInputError, read_amazon_5core, read_amazon_raw, read_movielens_100k
from oxy_dagster.data.pipeline import build_raw, build_splits, build_validated, quarantined_lines
from oxy_dagster.data.sources import DatasetConfig
from oxy_dagster.paths import DataPaths


def _need(path):
    if not path.exists():
        pytest.skip(f"dataset not found at {path} (set OXY_DATASETS)")
    return path


def test_beauty_counts_match_tiger(spark, datasets_dir, tmp_path):
    root = _need(datasets_dir / "amazon_beauty_2014_5core")
    paths = DataPaths(tmp_path / "beauty")
    build_raw(DatasetConfig(kind="beauty", path=str(root)), paths)
    summary = build_validated(spark, paths)
    assert all(s["rows_bad"] == 0 for s in summary.values())
    counts = build_splits(spark, paths)
    assert counts["users"] == 22363 and counts["interactions"] == 198502
    assert summary["items"]["rows_good"] == 12101
    assert counts["test"] == counts["valid"] == 22363
    # The sequence order of the file is kept: user 1's last item is the test target.
    first = next(open(root / "sequential_data.txt")).split()
    test_row = spark.read.parquet(str(paths.splits)).filter("user_id = '1' and split = 'test'").first()
    assert test_row.item_id == first[-1]


def test_beauty_titles_unescaped(datasets_dir):
    t = read_amazon_5core(_need(datasets_dir / "amazon_beauty_2014_5core"), "Beauty")
    assert t["quarantine"].empty
    titles = t["items"].title.dropna()
    assert not titles.str.contains("&amp;|&quot;|&#").any()
    assert t["items"].title.isna().sum() == 7
    assert not t["items"].category_path.str.startswith("Beauty").any()


def _toys(folder, items_lines, seq_lines):
    """A small 5-core folder of another category (root 'Toys & Games'), written line by line."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "items.jsonl").write_text("".join(line + "\n" for line in items_lines))
    (folder / "sequential_data.txt").write_text("".join(line + "\n" for line in seq_lines))
    return folder


TOY_ITEMS = [json.dumps({"item_id": i, "title": f"Toy {i} &amp; co", "brand": "Lego" if i % 2 else "Unknown",
                         "categories": [["Toys & Games", "Building", f"Set {i % 3}"]]}) for i in range(1, 7)]
TOY_SEQS = ["1 1 2 3 4 5", "2 2 3 4 5 6", "3 6 5 4 3 2 1"]


def test_any_amazon_category_drops_its_constant_root(spark, tmp_path):
    """Another category through the same adapter and the Spark pipeline: the shared root is detected."""
    folder = _toys(tmp_path / "amazon_toys_2014_5core", TOY_ITEMS, TOY_SEQS)
    t = read_amazon_5core(folder, "Toys")
    assert t["items"].category_path.tolist()[:2] == ["Building > Set 1", "Building > Set 2"]
    assert t["items"].brand.tolist()[:2] == ["Lego", None] and t["items"].title[0] == "Toy 1 & co"
    assert len(t["events"]) == 16 and t["quarantine"].empty
    paths = DataPaths(tmp_path / "work")
    cfg = DatasetConfig(kind="amazon5core", category="toys", path=None)
    assert cfg.folder().name == "amazon_toys_2014_5core"  # the default folder, read from the category
    build_raw(DatasetConfig(kind="amazon5core", category="Toys", path=str(folder)), paths)
    assert all(s["rows_bad"] == 0 for s in build_validated(spark, paths).values())
    assert build_splits(spark, paths)["users"] == 3


def test_malformed_lines_are_quarantined_and_counted_or_named(tmp_path):
    bad_json = '{"item_id": 7, "title": "tab\there"}'  # a raw tab inside a string: not JSON
    items = TOY_ITEMS + [bad_json, json.dumps({"title": "no id"})]
    seqs = TOY_SEQS + ["4 1 2 x3 4 5"]
    folder = _toys(tmp_path / "toys", items, seqs)
    t = read_amazon_5core(folder, "Toys", max_bad_fraction=0.5)
    q = t["quarantine"]
    assert len(q) == 3 and len(t["items"]) == 6 and sorted(t["users"].user_id) == ["1", "2", "3"]
    rows = {(q.source_file[i].rsplit("/", 1)[-1], int(q.line[i])): q.reason[i] for i in range(len(q))}
    assert rows[("items.jsonl", 7)].startswith("not JSON: Invalid control character")
    assert rows[("items.jsonl", 8)] == "no item_id" and rows[("sequential_data.txt", 4)] == "non-numeric id 'x3'"
    paths = DataPaths(tmp_path / "work")  # the raw stage keeps them beside the raw tables
    raw = build_raw(DatasetConfig(kind="amazon5core", category="Toys", path=str(folder), max_bad_fraction=0.5), paths)
    assert len(quarantined_lines(raw)) == 3
    with pytest.raises(AdapterInputError, match=r"(?s)3 of 12 lines malformed .*items.jsonl line 7: not JSON"):
        read_amazon_5core(folder, "Toys", max_bad_fraction=0.01)
    # the raw assets count them in their metadata
    import dagster as dg

    from assets.data.tables import raw_tables
    from assets.resources import DatasetResource

    result = dg.materialize([raw_tables], resources={
        "paths": DataPaths(tmp_path / "dagster"),
        "dataset": DatasetResource(kind="amazon5core", category="Toys", path=str(folder), max_bad_fraction=0.5)})
    meta = result.asset_materializations_for_node("raw_tables")[0].metadata
    assert meta["quarantined_source_lines"].value == 3 and meta["dataset"].value == "amazon5core_Toys"


def test_sports_ids_only(datasets_dir):
    """Sports has no items.jsonl: one item per id in the sequences, no text, category Unknown."""
    t = read_amazon_5core(_need(datasets_dir / "amazon_sports_2014_5core"), "Sports")
    assert (len(t["users"]), len(t["items"]), len(t["events"])) == (35598, 18357, 296337)
    assert t["items"].title.isna().all() and set(t["items"].category_path) == {"Unknown"}


def test_movielens_profiles_and_timestamps(datasets_dir):
    t = read_movielens_100k(_need(datasets_dir / "movielens_100k"))
    assert (len(t["users"]), len(t["items"]), len(t["events"])) == (943, 1682, 100000)
    u1 = t["users"].set_index("user_id").loc["1"]
    assert (u1.age_band, u1.gender, u1.city) == ("18-24", "M", "zip857")
    assert t["events"].timestamp.min() > 8e8
    assert set(t["events"].behavior) == {"click", "purchase"}


def test_amazon_raw_download_format(tmp_path):
    reviews = [
        {"reviewerID": "R1", "asin": "A2", "overall": 5.0, "unixReviewTime": 200},
        {"reviewerID": "R1", "asin": "A1", "overall": 4.0, "unixReviewTime": 100},
        {"reviewerID": "R2", "asin": "A1", "overall": 3.0, "unixReviewTime": 300},
        {"reviewerID": "R2", "asin": "A3", "overall": 3.0, "unixReviewTime": 300},
    ]
    with gzip.open(tmp_path / "reviews_Toys_5.json.gz", "wt") as fh:
        fh.write("\n".join(json.dumps(r) for r in reviews) + "\n")
    meta = [  # the 2014 dump writes Python dict literals, not JSON
        "{'asin': 'A1', 'title': 'Rock &amp; Roll Blocks', 'price': 12.5, 'imUrl': 'http://x/a1.jpg', "
        "'categories': [['Toys & Games', 'Building Toys']], 'brand': 'Bricko'}",
        '{"asin": "A2", "title": "Puzzle", "categories": [["Toys & Games", "Puzzles"]]}',
        "{'asin': 'A9', 'title': 'not reviewed'}",
    ]
    with gzip.open(tmp_path / "meta_Toys.json.gz", "wt") as fh:
        fh.write("\n".join(meta) + "\n")
    t = read_amazon_raw(tmp_path, "Toys")
    ev = t["events"]
    assert list(ev[ev.user_id == "R1"].item_id) == ["A1", "A2"]  # sorted by review time
    assert list(ev[ev.user_id == "R2"].item_id) == ["A1", "A3"]  # ties keep file order
    items = t["items"].set_index("item_id")
    assert sorted(items.index) == ["A1", "A2", "A3"]
    assert items.loc["A1", "title"] == "Rock & Roll Blocks" and items.loc["A1", "price"] == 12.5
    assert items.loc["A1", "category_path"] == "Toys & Games > Building Toys"
    assert items.loc["A3", "category_path"] == "Unknown"  # no metadata: kept, not dropped
    (tmp_path / "meta_Bad.json.gz").write_bytes(gzip.compress(b"{'asin': broken\n"))
    (tmp_path / "reviews_Bad_5.json.gz").write_bytes(gzip.compress(json.dumps(reviews[0]).encode()))
    with pytest.raises(ValueError, match=r"meta_Bad\.json\.gz line 1"):
        read_amazon_raw(tmp_path, "Bad")


def test_unknown_dataset_kind_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset kind 'nope'"):
        build_raw(DatasetConfig(kind="nope"), DataPaths(tmp_path))
