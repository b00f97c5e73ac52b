"""Shared text (+image) encoding of the catalogue, and the side-by-side comparison of V1-V4."""

import json

import dagster as dg
import pandas as pd
import pyarrow.parquet as pq

from oxy_dagster.io import write_csv, write_text
from oxy_dagster.paths import DataPaths
from oxy_dagster.sid.build import build_text_embeddings
from oxy_dagster.sid.metrics import comparison_markdown, plot_load_balance
from oxy_dagster.sid.versions import VERSIONS

from ..resources import DatasetResource, MlflowResource

COMPARED = ["coverage_l1", "coverage_l2", "coverage_l3", "purity_cate1", "purity_cate2", "purity_cate3",
            "collision_p90", "collision_p99", "collision_p999", "balance_p25", "balance_p75", "balance_p90",
            "unique_items", "rqkmeans_s"]


@dg.asset(group_name="sid", deps=["items"], compute_kind="torch")
def item_text_embeddings(context: dg.AssetExecutionContext, paths: dg.ResourceParam[DataPaths]) -> dg.MaterializeResult:
    """all-MiniLM-L6-v2 vectors of title + brand + category (offline), plus EfficientNet-Lite0 where images exist."""
    info = build_text_embeddings(paths)
    if info["image_branch"] != "on":
        context.log.info(f"image branch {info['image_branch']}")
    return dg.MaterializeResult(metadata=info)


@dg.asset(group_name="sid", deps=["sid_codebooks"], compute_kind="mlflow")
def sid_comparison(context: dg.AssetExecutionContext, dataset: DatasetResource, paths: dg.ResourceParam[DataPaths],
                   mlflow_tracking: MlflowResource) -> dg.MaterializeResult:
    """Every SID version side by side (seed Table 2): one table and one load-balance plot, also in MLflow."""
    metrics = {v: json.loads((paths.sid / v / "metrics.json").read_text()) for v in VERSIONS}
    table = pd.DataFrame({v: {k: m.get(k) for k in COMPARED} for v, m in metrics.items()})
    codes = {v: pq.read_table(paths.sid / v / "codes.parquet").to_pandas()[["c1", "c2", "c3"]].to_numpy()
             for v in VERSIONS}
    md = comparison_markdown(metrics, COMPARED)
    with mlflow_tracking.run(context, "sid", f"comparison-{dataset.name}", {"dataset": dataset.name}) as run:
        for v, m in metrics.items():
            run.metrics({f"{v}_{k}": float(m[k]) for k in COMPARED}, to_metadata=False)
        run.artifact(write_text(paths.sid / "comparison.md", md + "\n"))
        run.artifact(write_csv(table, paths.sid / "comparison.csv"))
        png = paths.sid / "comparison_load_balance.png"
        plot_load_balance(codes, metrics["V1"]["width"], png)
        run.plot("load_balance", png)
    return run.result(table=dg.MetadataValue.md(md))
