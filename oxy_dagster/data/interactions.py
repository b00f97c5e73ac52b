"""Interactions and leave-one-out splits (Spark).

A click -> cart -> purchase funnel on one item in one scenario is one
interaction whose behaviour is the strongest step reached; interactions are
ordered per user by time (ties by source row). As in TIGER, the last
interaction is the test target, the second-to-last the validation target and
the rest train. Users with fewer than three interactions stay in train.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from .contract import BEHAVIORS


def _map(pairs):
    return F.create_map(*[F.lit(x) for kv in pairs for x in kv])


def collapse_funnels(events: DataFrame) -> DataFrame:
    """Merge consecutive events on the same (item, scenario, trigger) of a user into one interaction."""
    w = Window.partitionBy("user_id").orderBy("timestamp", "event_seq")
    key = F.concat_ws("\u0001", "item_id", "scenario", F.coalesce("trigger_item_id", F.lit("")))
    ev = events.withColumn("_key", key).withColumn("_prev", F.lag("_key").over(w))
    ev = ev.withColumn("_new", F.when(F.col("_prev").isNull() | (F.col("_prev") != F.col("_key")), 1).otherwise(0))
    ev = ev.withColumn("_grp", F.sum("_new").over(w.rowsBetween(Window.unboundedPreceding, 0)))
    agg = ev.groupBy("user_id", "_grp").agg(
        F.min_by("item_id", F.struct("timestamp", "event_seq")).alias("item_id"),
        F.min("timestamp").alias("timestamp"),
        F.min("event_seq").alias("event_seq"),
        F.max(_map((b, i) for i, b in enumerate(BEHAVIORS))[F.col("behavior")]).alias("_b"),
        F.first("scenario").alias("scenario"),
        F.first("trigger_item_id", ignorenulls=True).alias("trigger_item_id"),
        F.first("query", ignorenulls=True).alias("query"),
        F.count("*").alias("n_events"),
    )
    return agg.withColumn("behavior", _map(enumerate(BEHAVIORS))[F.col("_b")]).drop("_b", "_grp")


def leave_one_out(interactions: DataFrame) -> DataFrame:
    """Add ``pos`` (0-based), ``seq_len`` and ``split`` (train / valid / test) per interaction."""
    w = Window.partitionBy("user_id").orderBy("timestamp", "event_seq")
    df = interactions.withColumn("pos", F.row_number().over(w) - 1).withColumn(
        "seq_len", F.count("*").over(Window.partitionBy("user_id")))
    split = (F.when(F.col("seq_len") < 3, "train").when(F.col("pos") == F.col("seq_len") - 1, "test")
             .when(F.col("pos") == F.col("seq_len") - 2, "valid").otherwise("train"))
    return df.withColumn("split", split)
