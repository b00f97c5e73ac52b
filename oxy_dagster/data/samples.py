"""Multi-scenario training samples following the seed's Table 1 (section 2.3.4).

One sample per interaction that has at least one earlier interaction:
* scenario information always;
* the trigger item only where the scenario has one (channel, related, cart);
* the contextual-reasoning source: the search query for search samples
  (``instruction_source='query'``), a default marker otherwise (``'default'``,
  the model's learnable default embedding);
* a short-term history (the last ``short_len`` interactions, oldest first) and
  a long-term history (up to ``long_len`` interactions before those), each with
  behaviours and timestamps, for IGR;
* the target item, behaviour and next-token weight (purchase > cart > click);
* the user's profile and the leave-one-out split of the target.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from ..settings import setting
from .contract import DEFAULT_BEHAVIOR_WEIGHTS, SCENARIOS_WITH_TRIGGER

DEFAULT_INSTRUCTION = "default"


@dataclass
class SampleConfig:
    short_len: int = setting(20, "short-term history length (TIGER: 20)")
    long_len: int = setting(256, "long-term history kept before the short one (IGR picks from it)")
    behavior_weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_BEHAVIOR_WEIGHTS))


def _history(w, lo: int, hi: int, col: str):
    """Ordered list of ``col`` over the frame [lo, hi] (sorted by position, robust to executor order)."""
    frame = F.array_sort(F.collect_list(F.struct("pos", col)).over(w.rowsBetween(lo, hi)))
    return F.transform(frame, lambda s: s[col])


def build_samples(splits: DataFrame, users: DataFrame, cfg: SampleConfig | None = None) -> DataFrame:
    cfg = cfg or SampleConfig()
    w = Window.partitionBy("user_id").orderBy("pos")
    s_lo, l_lo, l_hi = -cfg.short_len, -(cfg.short_len + cfg.long_len), -(cfg.short_len + 1)
    df = splits.withColumn("ts_s", F.unix_timestamp("timestamp"))
    for name, col in (("item_ids", "item_id"), ("behaviors", "behavior"), ("timestamps", "ts_s")):
        df = df.withColumn(f"short_{name}", _history(w, s_lo, -1, col))
        df = df.withColumn(f"long_{name}", _history(w, l_lo, l_hi, col))
    weights = F.create_map(*[x for k, v in cfg.behavior_weights.items() for x in (F.lit(k), F.lit(float(v)))])
    has_query = (F.col("scenario") == "search") & F.col("query").isNotNull()
    df = df.filter(F.col("pos") >= 1).select(
        "user_id",
        F.col("item_id").alias("target_item_id"),
        F.col("behavior").alias("target_behavior"),
        F.coalesce(weights[F.col("behavior")], F.lit(1.0)).alias("weight"),
        "scenario",
        F.when(F.col("scenario").isin(*SCENARIOS_WITH_TRIGGER), F.col("trigger_item_id")).alias("trigger_item_id"),
        F.when(has_query, F.lit("query")).otherwise(F.lit(DEFAULT_INSTRUCTION)).alias("instruction_source"),
        F.when(has_query, F.col("query")).alias("instruction_text"),
        "short_item_ids", "short_behaviors", "short_timestamps", "long_item_ids", "long_behaviors", "long_timestamps",
        F.col("ts_s").alias("timestamp"), "pos", "split",
    )
    profile = users.select("user_id", "age_band", "gender", "city", "spending_tier")
    return df.join(profile, "user_id", "left")
