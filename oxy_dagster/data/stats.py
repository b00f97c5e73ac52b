"""Dataset statistics and the plots a person looks at first."""

from __future__ import annotations

from pathlib import Path

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from ..io import save_figure


def dataset_stats(items: DataFrame, users: DataFrame, events: DataFrame, splits: DataFrame) -> dict:
    seq = splits.groupBy("user_id").agg(F.count("*").alias("n"))
    q = seq.approxQuantile("n", [0.5, 0.9, 0.99], 0.0)
    n_users = seq.count()
    n_items = items.count()
    n_inter = splits.count()
    stats = {
        "users": n_users, "items": n_items, "interactions": n_inter, "events": events.count(),
        "user_profiles": users.count(),
        "items_in_interactions": splits.select("item_id").distinct().count(),
        "density": n_inter / max(1, n_users * n_items),
        "seq_len_mean": n_inter / max(1, n_users), "seq_len_p50": q[0], "seq_len_p90": q[1], "seq_len_p99": q[2],
        "items_missing_title": items.filter(F.col("title").isNull()).count(),
        "events_with_trigger": events.filter(F.col("trigger_item_id").isNotNull()).count(),
        "events_with_query": events.filter(F.col("query").isNotNull()).count(),
    }
    for col in ("behavior", "scenario", "split"):
        src = events if col != "split" else splits
        for r in src.groupBy(col).count().collect():
            stats[f"{col}_{r[col]}"] = r["count"]
    return stats


def plot_overview(splits: DataFrame, events: DataFrame, path: str | Path) -> Path:
    """Sequence-length histogram and scenario x behaviour counts, one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lens = splits.groupBy("user_id").count().toPandas()["count"]
    sb = events.groupBy("scenario", "behavior").count().toPandas().pivot(
        index="scenario", columns="behavior", values="count").fillna(0)
    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    ax[0].hist(lens.clip(upper=lens.quantile(0.99)), bins=40, color="#3b6ea5")
    ax[0].set(title="interactions per user", xlabel="sequence length", ylabel="users")
    sb.plot.bar(ax=ax[1], stacked=True)
    ax[1].set(title="events by scenario and behaviour", xlabel="", ylabel="events")
    fig.tight_layout()
    return save_figure(fig, path, dpi=110)
