"""Benchmark: the Spark data pipeline on Amazon Beauty 2014 5-core.

Runs raw -> validated -> leave-one-out -> Swing -> training samples -> stats
in one local Spark session and records counts, wall time and the peak RSS of
Python + JVM. Usage: ``python -m benchmarks.data_beauty [--dataset-path DIR]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time

from benchmarks.common import PeakRSS, write_result
from oxy_dagster.data.pipeline import run_all
from oxy_dagster.data.sources import DatasetConfig
from oxy_dagster.spark import SparkConfig, get_spark


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dataset-path", default=None, help="Beauty folder (default: $OXY_DATASETS/amazon_beauty_...)")
    ap.add_argument("--master", default="local[*]")
    args = ap.parse_args()
    with PeakRSS() as rss:
        t0 = time.perf_counter()
        spark = get_spark(SparkConfig(master=args.master))
        startup = time.perf_counter() - t0
        with tempfile.TemporaryDirectory(prefix="oxy-bench-") as tmp:
            t1 = time.perf_counter()
            out = run_all(spark, DatasetConfig(kind="beauty", path=args.dataset_path), tmp)
            wall = time.perf_counter() - t1
    stats = out["stats"]
    figures = {"users": stats["users"], "items": stats["items"], "interactions": stats["interactions"],
               "spark_wall_s": round(wall, 1), "spark_startup_s": round(startup, 1), "peak_rss_mb": rss.peak_mb,
               "swing_pairs": out["swing"]["pairs"], "training_samples": out["samples"]["samples"]}
    path = write_result("data_beauty", figures, {"master": args.master})
    print(path.read_text())


if __name__ == "__main__":
    main()
