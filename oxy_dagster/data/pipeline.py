"""The data stage end to end, one function per artifact (the Dagster assets wrap these).

All artifacts of one dataset live under ``<work>/data/<dataset>/``.
"""

from __future__ import annotations

import json
from pathlib import Path

from pyspark.sql import SparkSession

from ..io import write_json, write_table
from ..paths import DataPaths
from .contract import ValidationPolicy
from .interactions import collapse_funnels, leave_one_out
from .samples import SampleConfig, build_samples
from .sources import DatasetConfig, materialize_raw
from .stats import dataset_stats, plot_overview
from .swing import SwingConfig, swing
from .validate import TABLE_ORDER, validate_all


def build_raw(cfg: DatasetConfig, paths: DataPaths) -> dict[str, str]:
    raw = {k: str(v) for k, v in materialize_raw(cfg, paths.raw).items()}
    write_json(paths.raw_manifest, raw)
    return raw


def quarantined_lines(raw: dict[str, str]):
    """The adapter's quarantine (file, line, reason, raw line) of a raw manifest; empty if it has none."""
    import pandas as pd

    from .sources import QUARANTINE

    return pd.read_parquet(raw[QUARANTINE]) if QUARANTINE in raw else pd.DataFrame(columns=["source_file", "line"])


def build_validated(spark: SparkSession, paths: DataPaths, policy: ValidationPolicy | None = None,
                    tables: tuple[str, ...] = TABLE_ORDER) -> dict:
    """Validate ``tables`` (default all three); ``validated/summary.json`` keeps the latest entry of each table."""
    raw = json.loads(paths.raw_manifest.read_text())
    results = validate_all(spark, raw, paths.validated, policy, tables)
    summary_path = paths.validated / "summary.json"
    earlier = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    summary = {name: {"rows_in": r.total, "rows_bad": r.bad, "rows_good": r.total - r.bad,
                      "bad_fraction": r.bad_fraction, "reasons": r.reasons, "quarantine": r.quarantine_path}
               for name, r in results.items()}
    write_json(summary_path, {**earlier, **summary})
    return summary


def build_splits(spark: SparkSession, paths: DataPaths) -> dict:
    events = spark.read.parquet(str(paths.table("events")))
    splits = leave_one_out(collapse_funnels(events))
    write_table(splits, paths.splits)
    df = spark.read.parquet(str(paths.splits))
    counts = {r["split"]: r["count"] for r in df.groupBy("split").count().collect()}
    return {"interactions": df.count(), "users": df.select("user_id").distinct().count(), **counts}


def build_swing(spark: SparkSession, paths: DataPaths, cfg: SwingConfig | None = None) -> dict:
    train = spark.read.parquet(str(paths.splits)).filter("split = 'train'")
    write_table(swing(train, cfg), paths.swing)
    df = spark.read.parquet(str(paths.swing))
    return {"pairs": df.count(), "items_with_neighbours": df.select("item_i").distinct().count()}


def build_samples_table(spark: SparkSession, paths: DataPaths, cfg: SampleConfig | None = None) -> dict:
    splits = spark.read.parquet(str(paths.splits))
    users = spark.read.parquet(str(paths.table("users")))
    write_table(build_samples(splits, users, cfg), paths.samples)
    df = spark.read.parquet(str(paths.samples))
    out = {"samples": df.count()}
    for r in df.groupBy("split", "scenario", "instruction_source").count().collect():
        out[f"{r['split']}/{r['scenario']}/{r['instruction_source']}"] = r["count"]
    return out


def build_stats(spark: SparkSession, paths: DataPaths) -> tuple[dict, Path]:
    read = lambda p: spark.read.parquet(str(p))  # noqa: E731
    items, users, events = (read(paths.table(n)) for n in ("items", "users", "events"))
    splits = read(paths.splits)
    stats = dataset_stats(items, users, events, splits)
    write_json(paths.reports / "stats.json", stats)
    png = plot_overview(splits, events, paths.reports / "overview.png")
    return stats, png


def run_all(spark: SparkSession, cfg: DatasetConfig, root: str | Path, policy: ValidationPolicy | None = None,
            swing_cfg: SwingConfig | None = None, sample_cfg: SampleConfig | None = None) -> dict:
    """Run every data step in order (what the Dagster graph does), returning their summaries."""
    paths = DataPaths(Path(root))
    out = {"raw": build_raw(cfg, paths), "validated": build_validated(spark, paths, policy),
           "splits": build_splits(spark, paths), "swing": build_swing(spark, paths, swing_cfg),
           "samples": build_samples_table(spark, paths, sample_cfg)}
    out["stats"] = build_stats(spark, paths)[0]
    return out
