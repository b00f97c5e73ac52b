"""Shared text (+image) encoding of the catalogue, and the side-by-side comparison of V1-V4."""

import json

import dagster as dg
import mlflow
import pandas as pd
import pyarrow.parquet as pq

from oxy_dagster.sid.build import build_text_embeddings, sid_root
from oxy_dagster.sid.metrics import comparison_markdown, plot_load_balance
from oxy_dagster.sid.versions import VERSIONS

from ..metadata import plot
from ..resources import DatasetResource, MlflowResource, StorageResource

COMPARED = ["coverage_l1", "coverage_l2", "coverage_l3", "purity_cate1", "purity_cate2", "purity_cate3",
            "collision_p90", "collision_p99", "collision_p999", "balance_p25", "balance_p75", "balance_p90",
            "unique_items", "rqkmeans_s"]


@dg.asset(group_name="sid", deps=["items"], compute_kind="torch")
def item_text_embeddings(context: dg.AssetExecutionContext, dataset: DatasetResource,
                         storage: StorageResource) -> dg.MaterializeResult:
    """all-MiniLM-L6-v2 vectors of title + brand + category (offline), plus EfficientNet-Lite0 where images exist."""
    info = build_text_embeddings(storage.data_paths(dataset.name))
    if info["image_branch"] != "on":
        context.log.info(f"image branch {info['image_branch']}")
    return dg.MaterializeResult(metadata=info)


@dg.asset(group_name="sid", deps=[[v, "sid_codebooks"] for v in VERSIONS], compute_kind="mlflow")
def sid_comparison(context: dg.AssetExecutionContext, dataset: DatasetResource, storage: StorageResource,
                   mlflow_tracking: MlflowResource) -> dg.MaterializeResult:
    """V1-V4 side by side (seed Table 2): one table and one load-balance plot, also in MLflow."""
    root = sid_root(storage.data_paths(dataset.name))
    metrics = {v: json.loads((root / v / "metrics.json").read_text()) for v in VERSIONS}
    table = pd.DataFrame({v: {k: m.get(k) for k in COMPARED} for v, m in metrics.items()})
    codes = {v: pq.read_table(root / v / "codes.parquet").to_pandas()[["c1", "c2", "c3"]].to_numpy()
             for v in VERSIONS}
    png = root / "comparison_load_balance.png"
    plot_load_balance(codes, metrics["V1"]["width"], png)
    md = comparison_markdown(metrics, COMPARED)
    (root / "comparison.md").write_text(md + "\n")
    table.to_csv(root / "comparison.csv")
    with mlflow_tracking.run(context, "sid", f"comparison-{dataset.name}", {"dataset": dataset.name}):
        for v, m in metrics.items():
            mlflow.log_metrics({f"{v}_{k}": float(m[k]) for k in COMPARED})
        for f in ("comparison.md", "comparison.csv", "comparison_load_balance.png"):
            mlflow.log_artifact(str(root / f))
    return dg.MaterializeResult(metadata={"table": dg.MetadataValue.md(md), "load_balance": plot(png)})
