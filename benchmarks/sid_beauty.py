"""Benchmark: SID versions V1-V4 on Amazon Beauty (seed Table 2 metrics), side by side.

Builds the Beauty data tables (Spark), encodes the 12,101 items once, then for
each version trains its fusion encoder (V2-V4), runs RQ-KMeans 3 x 256 and
computes the metrics. Writes benchmarks/results/sid_beauty.json, logs a run to
MLflow with the comparison table and the load-balance plot.
Usage: ``python -m benchmarks.sid_beauty [--dataset-path DIR] [--width 256]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from benchmarks.common import RESULTS, write_result
from oxy_dagster.data.pipeline import run_all
from oxy_dagster.data.sources import DatasetConfig
from oxy_dagster.io import write_text
from oxy_dagster.paths import DataPaths
from oxy_dagster.sid.build import build_codebook, build_item_embeddings, build_text_embeddings, load_items
from oxy_dagster.sid.metrics import comparison_markdown, plot_load_balance
from oxy_dagster.spark import get_spark, stop_spark

KEYS = ["coverage_l1", "coverage_l2", "coverage_l3", "purity_cate1", "purity_cate2", "purity_cate3",
        "collision_p90", "collision_p99", "collision_p999", "balance_p25", "balance_p75", "balance_p90",
        "unique_items", "rqkmeans_s"]


def fused_rate(paths: DataPaths, version: str, text_rate: float) -> float:
    """Items/s of text encoding + the version's fusion encoder (inference only)."""
    from oxy_dagster.sid.build import load_fusion
    from oxy_dagster.sid.contrastive import embed_items

    model, inputs = load_fusion(paths, version)
    t0 = time.perf_counter()
    with torch.no_grad():
        embed_items(model, inputs)
    fusion_rate = inputs.text.shape[0] / (time.perf_counter() - t0)
    return 1.0 / (1.0 / text_rate + 1.0 / fusion_rate)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dataset-path", default=None)
    ap.add_argument("--width", type=int, default=0)
    ap.add_argument("--workdir", default=None, help="keep artifacts here (default: a temporary folder)")
    args = ap.parse_args()
    tmp = tempfile.TemporaryDirectory(prefix="oxy-sid-bench-")
    root = Path(args.workdir or tmp.name)
    paths = DataPaths(root)
    if not (paths.swing / "_schema.json").exists():
        run_all(get_spark(), DatasetConfig(kind="beauty", path=args.dataset_path), root)
        stop_spark()
    enc = build_text_embeddings(paths)
    results, codes = {}, {}
    for v in ("V1", "V2", "V3", "V4"):
        info = build_item_embeddings(paths, v)
        m = build_codebook(paths, v, width=args.width or None)
        rate = enc["encode_items_per_s"] if v == "V1" else fused_rate(paths, v, enc["encode_items_per_s"])
        results[v] = {**{k: m[k] for k in KEYS}, "encode_items_per_s": round(rate, 1),
                      "train_s": info.get("train_s", 0.0), "width": m["width"]}
        codes[v] = pd.read_parquet(paths.sid / v / "codes.parquet")[["c1", "c2", "c3"]].to_numpy()
        print(v, results[v], flush=True)
    plot_load_balance(codes, results["V1"]["width"], RESULTS / "sid_beauty_load_balance.png")
    md = comparison_markdown(results, [*KEYS, "encode_items_per_s", "train_s", "width"])
    write_text(RESULTS / "sid_beauty.md", md + "\n")
    write_result("sid_beauty", results, {"items": len(load_items(paths)), "image_branch": enc["image_branch"]},
                 artifacts=[RESULTS / "sid_beauty.md", RESULTS / "sid_beauty_load_balance.png"])
    print(md)


if __name__ == "__main__":
    main()
