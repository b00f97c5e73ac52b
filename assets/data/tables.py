"""Raw and validated tables (items, users, events)."""


import json

import dagster as dg
import mlflow

from oxy_dagster.data.contract import ValidationPolicy
from oxy_dagster.data.pipeline import build_raw, build_validated

from ..resources import DatasetResource, MlflowResource, SparkResource, StorageResource

TABLES = ("items", "users", "events")


@dg.multi_asset(
    specs=[dg.AssetSpec(f"raw_{t}", group_name="data", description=f"raw {t} table as the source delivers it")
           for t in TABLES],
    compute_kind="python",
)
def raw_tables(context: dg.AssetExecutionContext, dataset: DatasetResource, storage: StorageResource):
    """Generate (synthetic) or convert (public datasets) the raw tables; a shop's own files are used as they are."""
    paths = storage.data_paths(dataset.name)
    raw = build_raw(dataset.config(), paths)
    for t in TABLES:
        yield dg.MaterializeResult(asset_key=f"raw_{t}", metadata={
            "path": dg.MetadataValue.path(raw[t]), "dataset": dataset.name})


@dg.multi_asset(
    specs=[dg.AssetSpec(t, group_name="data", deps=[f"raw_{t}"] + (["items", "users"] if t == "events" else []),
                        description=f"validated {t}: typed parquet, bad rows quarantined with reasons")
           for t in TABLES],
    compute_kind="pyspark",
)
def validated_tables(context: dg.AssetExecutionContext, dataset: DatasetResource, storage: StorageResource,
                     spark: SparkResource, mlflow_tracking: MlflowResource):
    """Validate against the data contract; fail only past ``max_bad_fraction`` bad rows per table."""
    paths = storage.data_paths(dataset.name)
    policy = ValidationPolicy(max_bad_fraction=dataset.max_bad_fraction)
    with mlflow_tracking.run(context, "data", f"validate-{dataset.name}",
                             {"dataset": dataset.name, "max_bad_fraction": policy.max_bad_fraction}):
        summary = build_validated(spark.session(), paths, policy)
        for t, s in summary.items():
            mlflow.log_metrics({f"{t}_rows_good": s["rows_good"], f"{t}_rows_bad": s["rows_bad"]})
        mlflow.log_text(json.dumps(summary, indent=2), "validation_summary.json")
    for t in TABLES:
        s = summary[t]
        yield dg.MaterializeResult(asset_key=t, metadata={
            "rows": s["rows_good"], "quarantined_rows": s["rows_bad"], "bad_fraction": s["bad_fraction"],
            "quarantine_reasons": dg.MetadataValue.json(s["reasons"]),
            "quarantine": dg.MetadataValue.path(s["quarantine"]),
            "path": dg.MetadataValue.path(str(paths.table(t))), "dataset": dataset.name})
