"""Swing item-to-item scores (Spark).

For items i and j, every pair of distinct users {u, v} who both interacted
with i and j adds ``w_u * w_v / (alpha + |I_u & I_v|)``, with user weights
``w_u = |I_u| ** -user_power`` (0.5 by default; 0 gives the original Swing).
Users who share many items are likely to co-occur by chance, so they count
less. Only train interactions are used (no leakage of valid/test targets).
Each user keeps its ``max_items_per_user`` most recent items and each item at
most ``max_users_per_item`` users (deterministic hash sample) to bound the
quadratic pair join. The result keeps the top ``top_k`` neighbours per item.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from ..settings import setting


@dataclass
class SwingConfig:
    alpha: float = setting(1.0, "smoothing in 1 / (alpha + |I_u & I_v|)")
    user_power: float = setting(0.5, "user weight |I_u|^-power (0: the original Swing)")
    max_items_per_user: int = setting(100, "most recent items kept per user")
    max_users_per_item: int = setting(300, "users sampled per item (hash sample)")
    top_k: int = setting(50, "neighbours kept per item")


def swing(interactions: DataFrame, cfg: SwingConfig | None = None) -> DataFrame:
    """``interactions`` has user_id, item_id, timestamp. Returns item_i, item_j, score, rank."""
    cfg = cfg or SwingConfig()
    ui = interactions.groupBy("user_id", "item_id").agg(F.max("timestamp").alias("ts"))
    ui = ui.withColumn("_r", F.row_number().over(Window.partitionBy("user_id").orderBy(F.desc("ts"), "item_id")))
    ui = ui.filter(F.col("_r") <= cfg.max_items_per_user)
    ui = ui.withColumn("_s", F.row_number().over(Window.partitionBy("item_id").orderBy(F.xxhash64("user_id"),
                                                                                        "user_id")))
    ui = ui.filter(F.col("_s") <= cfg.max_users_per_item).select("user_id", "item_id")
    weights = ui.groupBy("user_id").agg(F.pow(F.count("*").cast("double"), -cfg.user_power).alias("w"))
    a, b = ui.alias("a"), ui.alias("b")
    pairs = a.join(b, (F.col("a.item_id") == F.col("b.item_id")) & (F.col("a.user_id") < F.col("b.user_id")))
    uv = (pairs.groupBy(F.col("a.user_id").alias("u"), F.col("b.user_id").alias("v"))
          .agg(F.collect_set("a.item_id").alias("common"))
          .withColumn("c", F.size("common")).filter(F.col("c") >= 2))
    uv = (uv.join(weights.select(F.col("user_id").alias("u"), F.col("w").alias("wu")), "u")
          .join(weights.select(F.col("user_id").alias("v"), F.col("w").alias("wv")), "v")
          .withColumn("contrib", F.col("wu") * F.col("wv") / (F.lit(cfg.alpha) + F.col("c"))))
    ij = (uv.select(F.explode("common").alias("item_i"), "common", "contrib")
          .select("item_i", F.explode("common").alias("item_j"), "contrib")
          .filter(F.col("item_i") != F.col("item_j")))
    scores = ij.groupBy("item_i", "item_j").agg(F.sum("contrib").alias("score"))
    w = Window.partitionBy("item_i").orderBy(F.desc("score"), "item_j")
    return scores.withColumn("rank", F.row_number().over(w)).filter(F.col("rank") <= cfg.top_k)
