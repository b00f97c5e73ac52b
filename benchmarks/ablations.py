"""Benchmark: the seed's ablations (Tables 5, 6, 7, 9 and a scale slice) on the synthetic default shop.

Builds the default synthetic data and SID V3 in a work dir, trains every distinct
configuration for the same step budget, evaluates on the test split and writes
benchmarks/results/ablations.json (+ .md), logging the table to MLflow.
Usage: ``python -m benchmarks.ablations [--steps 250] [--seeds 1] [--tables ...] [--merge] [--workdir DIR]``;
``--seeds N`` trains every configuration with N seeds and reports mean and standard deviation.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from benchmarks.common import RESULTS, write_result
from oxy_dagster.data.pipeline import run_all
from oxy_dagster.data.sources import DatasetConfig
from oxy_dagster.io import write_text
from oxy_dagster.model.ablation import TABLES, AblationConfig, ablation_markdown, run_ablations
from oxy_dagster.paths import DataPaths
from oxy_dagster.sid.build import build_codebook, build_item_embeddings, build_text_embeddings
from oxy_dagster.spark import get_spark, stop_spark


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--steps", type=int, default=250)
    ap.add_argument("--eval-rows", type=int, default=1000)
    ap.add_argument("--seeds", type=int, default=1, help="seeds per configuration (mean and std reported)")
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--tables", default="", help="comma-separated subset of " + ",".join(TABLES))
    ap.add_argument("--merge", action="store_true",
                    help="keep the other tables' rows from the existing ablations.json (same steps and eval rows)")
    args = ap.parse_args()
    tmp = tempfile.TemporaryDirectory(prefix="oxy-ablation-")
    paths = DataPaths(Path(args.workdir or tmp.name))
    if not (paths.samples / "_schema.json").exists():
        run_all(get_spark(), DatasetConfig(kind="synthetic"), paths.root)
        stop_spark()
    if not (paths.sid / "V3" / "codes.parquet").exists():
        build_text_embeddings(paths)
        build_item_embeddings(paths, "V3")
        build_codebook(paths, "V3")
    acfg = AblationConfig(steps=args.steps, eval_rows=args.eval_rows, n_seeds=args.seeds)
    tables = [t for t in args.tables.split(",") if t] or None
    result = run_ablations(paths, acfg, tables=tables, log=lambda row: print(row, flush=True))
    old_path = RESULTS / "ablations.json"
    if args.merge and old_path.exists():
        old = json.loads(old_path.read_text())
        if (old.get("steps"), old.get("eval_rows")) != (acfg.steps, acfg.eval_rows):
            raise SystemExit("--merge needs the same --steps and --eval-rows as the existing ablations.json")
        rerun = {r["table"] for r in result["rows"]}
        result["rows"] = [r for r in old["rows"] if r["table"] not in rerun] + result["rows"]
        tables = sorted(set(old.get("tables", [])) | set(tables or TABLES))
    md = ablation_markdown(result)
    write_text(RESULTS / "ablations.md", md)
    figures = {"steps": acfg.steps, "eval_rows": acfg.eval_rows, "sid_version": acfg.sid_version,
               "tables": tables or list(TABLES),
               "rows": result["rows"], "trigger_masking": result["trigger_masking"]}
    write_result("ablations", figures, {"dataset": "synthetic", "steps": acfg.steps},
                 artifacts=[RESULTS / "ablations.md"])
    print(md)


if __name__ == "__main__":
    main()
