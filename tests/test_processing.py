"""Leave-one-out splits, Swing and multi-scenario samples on hand-made data with known answers."""

import math
from datetime import datetime, timedelta

import pytest
from pyspark.sql import Row

from oxy_dagster.data.interactions import collapse_funnels, leave_one_out
from oxy_dagster.data.samples import SampleConfig, build_samples
from oxy_dagster.data.swing import SwingConfig, swing

T0 = datetime(2025, 3, 1)


def _events(spark, rows):
    return spark.createDataFrame([
        Row(user_id=u, item_id=i, timestamp=T0 + timedelta(minutes=m), behavior=b, scenario=s,
            trigger_item_id=t, query=q, event_seq=n)
        for n, (u, i, m, b, s, t, q) in enumerate(rows)
    ], "user_id string, item_id string, timestamp timestamp, behavior string, scenario string, "
       "trigger_item_id string, query string, event_seq long")


@pytest.fixture(scope="module")
def splits(spark):
    ev = _events(spark, [
        ("u1", "a", 0, "click", "homepage", None, None),
        ("u1", "a", 1, "cart", "homepage", None, None),
        ("u1", "a", 2, "purchase", "homepage", None, None),
        ("u1", "b", 3, "click", "search", None, "phone cse"),
        ("u1", "c", 4, "click", "related", "b", None),
        ("u1", "d", 5, "cart", "cart", "c", None),
        ("u1", "a", 6, "click", "homepage", "zz", None),  # a homepage event carrying a stray trigger
        ("u2", "x", 0, "click", "homepage", None, None),
        ("u2", "y", 0, "click", "homepage", None, None),  # same timestamp: source order breaks the tie
        ("u3", "x", 0, "click", "channel", "y", None),
        ("u3", "x", 1, "click", "related", "y", None),  # same item, other scenario: a new interaction
        ("u3", "y", 2, "click", "homepage", None, None),
    ])
    return leave_one_out(collapse_funnels(ev)).cache()


def test_funnels_collapse_and_leave_one_out(splits):
    rows = {(r.user_id, r.pos): r for r in splits.collect()}
    u1 = [rows[("u1", p)] for p in range(5)]
    assert [r.item_id for r in u1] == ["a", "b", "c", "d", "a"]
    assert u1[0].behavior == "purchase" and u1[0].n_events == 3
    assert [r.split for r in u1] == ["train", "train", "train", "valid", "test"]
    assert [rows[("u2", p)].item_id for p in range(2)] == ["x", "y"]
    assert {rows[("u2", p)].split for p in range(2)} == {"train"}  # < 3 interactions: train only
    assert [rows[("u3", p)].split for p in range(3)] == ["train", "valid", "test"]


def test_samples_follow_table1(spark, splits):
    users = spark.createDataFrame([Row(user_id="u1", age_band="25-34", gender="F", city="Chengdu",
                                       spending_tier="mid")])
    s = {(r.user_id, r.pos): r for r in build_samples(splits, users, SampleConfig(short_len=2, long_len=1)).collect()}
    assert ("u1", 0) not in s  # no history, no sample
    b, c, d, last = s[("u1", 1)], s[("u1", 2)], s[("u1", 3)], s[("u1", 4)]
    assert (b.instruction_source, b.instruction_text) == ("query", "phone cse")
    assert b.trigger_item_id is None and b.short_item_ids == ["a"] and b.long_item_ids == []
    assert c.trigger_item_id == "b" and c.instruction_source == "default" and c.instruction_text is None
    assert d.short_item_ids == ["b", "c"] and d.long_item_ids == ["a"] and d.weight == 2.0
    assert d.short_behaviors == ["click", "click"] and d.long_behaviors == ["purchase"]
    assert last.trigger_item_id is None  # homepage has no trigger in Table 1
    assert last.short_item_ids == ["c", "d"] and last.split == "test" and last.city == "Chengdu"
    assert s[("u2", 1)].age_band is None
    assert len(d.short_timestamps) == 2 and d.short_timestamps[0] < d.short_timestamps[1]


def test_swing_known_answer(spark):
    inter = spark.createDataFrame(
        [Row(user_id=u, item_id=i, timestamp=T0) for u, items in
         (("u1", "abc"), ("u2", "ab"), ("u3", "abc"), ("u4", "d")) for i in items])
    plain = {(r.item_i, r.item_j): r.score for r in swing(inter, SwingConfig(alpha=1.0, user_power=0.0)).collect()}
    assert plain[("a", "b")] == pytest.approx(1 / 3 + 1 / 4 + 1 / 3)
    assert plain[("b", "a")] == pytest.approx(plain[("a", "b")])
    assert plain[("a", "c")] == pytest.approx(1 / 4) and plain[("b", "c")] == pytest.approx(1 / 4)
    assert not any("d" in k for k in plain)
    weighted = {(r.item_i, r.item_j): r.score for r in swing(inter, SwingConfig(alpha=1.0)).collect()}
    assert weighted[("a", "b")] == pytest.approx(2 / (3 * math.sqrt(6)) + 1 / 12)
    top1 = {(r.item_i, r.item_j) for r in swing(inter, SwingConfig(top_k=1)).collect()}
    assert top1 == {("a", "b"), ("b", "a"), ("c", "a")}
