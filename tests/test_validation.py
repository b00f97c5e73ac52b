"""Bad input: counted, quarantined with file/row/field reasons, failing only past the policy."""

import json

import pandas as pd
import pytest

from oxy_dagster.data.contract import EVENTS, ITEMS, ValidationPolicy
from oxy_dagster.data.pipeline import build_validated
from oxy_dagster.data.validate import DataValidationError, read_raw, validate_table
from oxy_dagster.paths import DataPaths

ITEMS_CSV = """item_id,title,brand,category_path,price,image_path
a,Alpha Phone,Acme,Electronics > Phones > Smartphones,999,
b,Beta Case,Acme,Electronics > Phone Accessories > Phone Cases,19.5,
c,,Zed,Electronics > Phone Accessories > Chargers,not-a-price,
a,Alpha Phone again,Acme,Electronics > Phones > Smartphones,10,
d,Delta Cable,Zed,,5,
"""

USERS_CSV = """user_id,age_band,gender,city,spending_tier
u1,25-34,F,Chengdu,mid
u2,,M,,
u3,99+,X,Harbin,low
"""

EVENTS_CSV = """user_id,item_id,timestamp,behavior,scenario,trigger_item_id,query
u1,a,2025-01-01T10:00:00Z,click,homepage,,
u1,b,1735725600,cart,cart,a,
u2,b,2025-01-02 08:00:00,purchase,search,,phone case
u2,zzz,2025-01-02 09:00:00,click,homepage,,
u1,a,yesterday,click,homepage,,
u2,a,2025-01-03T00:00:00Z,favourite,homepage,,
,a,2025-01-03T00:00:00Z,click,homepage,,
u1,a,2025-01-04T00:00:00Z,click,related,nope,
u1,a,2025-01-04T00:00:00Z,click,homepage,,,extra,fields
"""


@pytest.fixture()
def raw_files(tmp_path):
    files = {}
    for name, text in (("items", ITEMS_CSV), ("users", USERS_CSV), ("events", EVENTS_CSV)):
        p = tmp_path / f"{name}.csv"
        p.write_text(text)
        files[name] = str(p)
    paths = DataPaths(tmp_path / "out")
    paths.raw.mkdir(parents=True)
    paths.raw_manifest.write_text(json.dumps(files))
    return files, paths


def test_bad_rows_are_quarantined_with_reasons(spark, raw_files):
    files, paths = raw_files
    summary = build_validated(spark, paths, ValidationPolicy(max_bad_fraction=1.0))
    assert summary["items"]["rows_in"] == 5
    assert summary["items"]["rows_bad"] == 3  # bad price, duplicate id, missing category
    assert summary["users"]["rows_bad"] == 1  # age band and gender out of range
    # unknown item, bad timestamp, bad behaviour, missing user, unknown trigger, malformed line
    assert summary["events"]["rows_bad"] == 6
    q = pd.read_parquet(paths.quarantine("events")).sort_values("row")
    assert list(q.row) == [4, 5, 6, 7, 8, 9]
    reasons = dict(zip(q.row, q.reason))
    assert "item_id: unknown id 'zzz'" in reasons[4]
    assert "timestamp: cannot parse 'yesterday'" in reasons[5]
    assert "behavior: 'favourite' not in" in reasons[6]
    assert "user_id: missing required value" in reasons[7]
    assert "trigger_item_id: unknown id 'nope'" in reasons[8]
    assert "malformed record" in reasons[9]
    assert set(q.source_file) == {files["events"]}
    items_q = pd.read_parquet(paths.quarantine("items"))
    assert any("duplicate 'a' (first at row 1)" in r for r in items_q.reason)
    # Nothing is lost: good + quarantined == input, and the good rows are typed.
    good = spark.read.parquet(str(paths.table("events")))
    assert good.count() + len(q) == 9
    ts = {r["item_id"]: r["timestamp"] for r in good.collect()}
    assert str(ts["b"]).startswith("2025-01-0")
    assert dict(good.dtypes)["timestamp"] == "timestamp"


def test_run_fails_past_threshold_naming_file_row_field(spark, raw_files):
    files, paths = raw_files
    with pytest.raises(DataValidationError) as err:
        build_validated(spark, paths, ValidationPolicy(max_bad_fraction=0.2))
    msg = str(err.value)
    assert "items: 3 of 5 rows bad" in msg
    assert f"{files['items']} row 3 field 'price'" in msg
    assert "not a number 'not-a-price'" in msg
    # The quarantine was written before failing: nothing dropped silently.
    assert len(pd.read_parquet(paths.quarantine("items"))) == 3


def test_missing_required_column_is_a_clear_error(spark, tmp_path):
    p = tmp_path / "events.csv"
    p.write_text("user_id,item_id,behavior,scenario\nu1,a,click,homepage\n")
    with pytest.raises(DataValidationError, match=r"events\.csv: events table lacks required column\(s\) "
                                                  r"\['timestamp'\]"):
        read_raw(spark, p, EVENTS)


def test_jsonl_and_parquet_inputs(spark, tmp_path):
    rows = [{"item_id": "x", "title": "X", "category_path": "A > B", "price": 3},
            {"item_id": "y", "title": "Y", "category_path": "A > C", "price": -1}]
    p = tmp_path / "items.jsonl"
    p.write_text("\n".join(json.dumps(r) for r in rows) + "\n{broken json\n")
    res = validate_table(spark, read_raw(spark, p, ITEMS), ITEMS, tmp_path / "q1", ValidationPolicy(1.0))
    assert (res.total, res.bad) == (3, 2)
    assert res.reasons == {"price": 1, "row": 1}
    pq = tmp_path / "items.parquet"
    pd.DataFrame(rows).to_parquet(pq)
    res = validate_table(spark, read_raw(spark, pq, ITEMS), ITEMS, tmp_path / "q2", ValidationPolicy(1.0))
    assert (res.total, res.bad) == (2, 1)
    assert res.good.collect()[0]["price"] == 3.0


def test_empty_table_is_a_clear_error(spark, tmp_path):
    p = tmp_path / "items.csv"
    p.write_text("item_id,title,brand,category_path,price,image_path\n")
    with pytest.raises(DataValidationError, match="items: the table has no rows"):
        validate_table(spark, read_raw(spark, p, ITEMS), ITEMS, tmp_path / "q")


IMPRESSIONS_CSV = """request_id,user_id,item_id,timestamp,scenario,position,trigger_item_id,query
r1,u1,a,2025-01-01T09:59:57Z,homepage,0,,
r1,u1,b,2025-01-01T09:59:57Z,homepage,1,,
r1,u1,d,2025-01-01T09:59:57Z,homepage,two,,
r2,u2,b,2025-01-02T07:59:57Z,search,-1,,phone case
r2,u9,a,2025-01-02T07:59:57Z,search,0,,phone case
,u2,a,2025-01-02T07:59:57Z,search,3,,phone case
"""


def test_impressions_are_validated_like_the_other_tables(spark, raw_files, tmp_path):
    files, paths = raw_files
    (tmp_path / "impressions.csv").write_text(IMPRESSIONS_CSV)
    paths.raw_manifest.write_text(json.dumps({**files, "impressions": str(tmp_path / "impressions.csv")}))
    summary = build_validated(spark, paths, ValidationPolicy(max_bad_fraction=1.0))
    assert summary["impressions"]["rows_in"] == 6 and summary["impressions"]["rows_bad"] == 4
    # a non-integer and a negative position, an unknown user, a missing request id (item d was quarantined
    # from the catalogue for its missing category, so its impression goes too)
    q = pd.read_parquet(paths.quarantine("impressions"))
    reasons = " ".join(q.reason)
    assert "position: not an integer 'two'" in reasons and "position: below 0 '-1'" in reasons
    assert "user_id: unknown id 'u9'" in reasons and "request_id: missing required value" in reasons
    good = pd.read_parquet(paths.table("impressions"))
    assert good.position.tolist() == [0, 1] and str(good.position.dtype) == "int64"


def test_a_dataset_without_impressions_gets_an_empty_typed_table(spark, raw_files):
    _, paths = raw_files
    summary = build_validated(spark, paths, ValidationPolicy(max_bad_fraction=1.0))
    assert summary["impressions"]["rows_in"] == 0
    empty = pd.read_parquet(paths.table("impressions"))
    assert len(empty) == 0 and list(empty.columns)[:6] == ["request_id", "user_id", "item_id", "timestamp",
                                                            "scenario", "position"]
